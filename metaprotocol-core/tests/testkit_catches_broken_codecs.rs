//! The conformance kit must fail codecs that break the contract. Each test wraps the (conforming)
//! template codec with one flaw and checks that the kit reports exactly that kind of failure.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg(feature = "testkit")]

use bytes::{Bytes, BytesMut};
use kv_protocol::{FrameBuilder, KvCodec, KvOptions, KvType};
use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_core::{Codec, CodecError, LocalReply, Message, Metadata, Mutation, ResponseStatus, WireBuf};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Flaw {
    None,
    CopiesOnPassthrough,
    IgnoresMutation,
    IgnoresRequestId,
    ConsumesPartialFrames,
    ErrsOnPartialFrames,
    PanicsOnShortInput,
    NoFrameSizeLimit,
    OkStatusLocalReply,
}

struct Broken {
    inner: KvCodec,
    flaw: Flaw,
}

impl Codec for Broken {
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        match self.flaw {
            Flaw::PanicsOnShortInput => {
                let _ = src[7];
            }
            Flaw::ConsumesPartialFrames if src.len() > 8 => {
                let before = src.len();
                let r = self.inner.decode(src);
                if matches!(r, Ok(None)) && src.len() == before {
                    let _ = src.split_to(1);
                    return Ok(None);
                }
                return r;
            }
            Flaw::ErrsOnPartialFrames => {
                return self.inner.decode(src).and_then(|m| m.ok_or(CodecError::malformed(0, "short")).map(Some));
            }
            _ => {}
        }
        self.inner.decode(src)
    }

    fn encode(&mut self, message: &Message, mutation: &Mutation, dst: &mut WireBuf) -> Result<(), CodecError> {
        match self.flaw {
            Flaw::CopiesOnPassthrough if mutation.is_empty() && !message.request_id_changed() => {
                dst.push(Bytes::copy_from_slice(message.frame()));
                Ok(())
            }
            Flaw::IgnoresMutation | Flaw::IgnoresRequestId => {
                let mut m = message.clone();
                if self.flaw == Flaw::IgnoresRequestId {
                    m = Message::new(
                        Metadata { request_id: message.wire_request_id(), ..message.metadata.clone() },
                        message.frame().clone(),
                        *message.layout(),
                    );
                }
                let mu = if self.flaw == Flaw::IgnoresMutation { Mutation::new() } else { mutation.clone() };
                self.inner.encode(&m, &mu, dst)
            }
            _ => self.inner.encode(message, mutation, dst),
        }
    }

    fn max_frame_size(&self) -> usize {
        64 * 1024
    }

    fn local_reply(&self, request: &Metadata, reply: &LocalReply) -> Result<Message, CodecError> {
        if self.flaw == Flaw::OkStatusLocalReply {
            let frame = FrameBuilder::new(KvType::Response, request.request_id).build()?;
            let mut buf = BytesMut::from(&frame[..]);
            return KvCodec::default().decode(&mut buf).map(|m| m.expect("whole frame"));
        }
        self.inner.local_reply(request, reply)
    }

    fn heartbeat_reply(&self, heartbeat: &Message) -> Result<Option<Message>, CodecError> {
        self.inner.heartbeat_reply(heartbeat)
    }
}

fn failures(flaw: Flaw) -> Vec<String> {
    // The inner codec's limit is 4 MiB, the wrapper claims 64 KiB: without its own check the
    // wrapper lets a 1 MiB frame through (the NoFrameSizeLimit flaw); with it, it refuses it.
    let inner =
        if flaw == Flaw::NoFrameSizeLimit { KvOptions::default() } else { KvOptions { max_frame_size: 64 * 1024 } };
    let kit = ConformanceKit::new(move || Broken { inner: KvCodec::new(inner.clone()), flaw })
        .frame(FrameBuilder::request(1, "S", "m").header("trace", "t").body("body").build().unwrap())
        .frame(FrameBuilder::new(KvType::Response, 1).status(ResponseStatus::Ok).body("ok").build().unwrap())
        .removable_key("trace")
        .oversized_prefix(&b"KV\x01\x00\x00\x10\x00\x00"[..])
        .garbage_rounds(200);
    kit.check()
}

fn assert_caught(flaw: Flaw, check: &str) {
    let f = failures(flaw);
    assert!(f.iter().any(|x| x.starts_with(&format!("[{check}]"))), "{flaw:?} was not caught by [{check}]: {f:#?}");
}

#[test]
fn conforming_codec_passes() {
    assert_eq!(failures(Flaw::None), Vec::<String>::new());
}

#[test]
fn catches_a_copy_on_passthrough() {
    assert_caught(Flaw::CopiesOnPassthrough, "passthrough");
}

#[test]
fn catches_an_ignored_mutation() {
    assert_caught(Flaw::IgnoresMutation, "mutation");
}

#[test]
fn catches_an_ignored_request_id() {
    assert_caught(Flaw::IgnoresRequestId, "request-id");
}

#[test]
fn catches_consuming_a_partial_frame() {
    assert_caught(Flaw::ConsumesPartialFrames, "split");
}

#[test]
fn catches_an_error_on_a_partial_frame() {
    assert_caught(Flaw::ErrsOnPartialFrames, "split");
    assert_caught(Flaw::ErrsOnPartialFrames, "byte-by-byte");
}

#[test]
fn catches_a_panic_on_short_input() {
    assert_caught(Flaw::PanicsOnShortInput, "split");
    assert_caught(Flaw::PanicsOnShortInput, "truncated");
}

#[test]
fn catches_a_missing_frame_size_limit() {
    assert_caught(Flaw::NoFrameSizeLimit, "oversized");
}

#[test]
fn catches_a_local_reply_that_is_not_an_error() {
    assert_caught(Flaw::OkStatusLocalReply, "local-reply");
}
