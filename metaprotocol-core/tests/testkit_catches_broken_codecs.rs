//! The conformance kit must fail codecs that break the contract. Each test wraps a conforming codec
//! (`tiny`, in `common/`) with one flaw and checks that the kit reports exactly that kind of failure.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg(feature = "testkit")]

mod common;

use bytes::{Bytes, BytesMut};
use common::{frame, Tiny, TinyLayout};
use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_core::{Codec, CodecError, LocalReply, Message, MessageType, Metadata, Mutation, WireBuf};

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
    ReplyFromCodecState,
    PongAsPing,
}

#[derive(Clone)]
struct Broken {
    inner: Tiny,
    flaw: Flaw,
    /// The last decoded request id: what a codec must not build replies from.
    last_id: u64,
}

type Msg = Message<TinyLayout>;

impl Codec for Broken {
    type Layout = TinyLayout;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Msg>, CodecError> {
        let r = self.decode_inner(src);
        if let Ok(Some(m)) = &r {
            self.last_id = m.metadata.request_id;
        }
        r
    }

    fn encode(&mut self, message: &Msg, mutation: &Mutation, dst: &mut WireBuf) -> Result<(), CodecError> {
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

    fn local_reply(&self, request: &Msg, reply: &LocalReply) -> Result<Msg, CodecError> {
        match self.flaw {
            Flaw::OkStatusLocalReply => {
                let f = frame(MessageType::Response, request.metadata.request_id, &[], b"");
                Ok(Tiny::default().decode(&mut BytesMut::from(&f[..]))?.expect("whole frame"))
            }
            Flaw::ReplyFromCodecState => {
                let light =
                    Message::new(Metadata::new(MessageType::Request, self.last_id), Bytes::new(), *request.layout());
                self.inner.local_reply(&light, reply)
            }
            _ => self.inner.local_reply(request, reply),
        }
    }

    fn heartbeat_reply(&self, ping: &Msg) -> Result<Msg, CodecError> {
        if self.flaw == Flaw::PongAsPing {
            let f = frame(MessageType::Ping, ping.metadata.request_id, &[], b"");
            return Ok(Tiny::default().decode(&mut BytesMut::from(&f[..]))?.expect("whole frame"));
        }
        self.inner.heartbeat_reply(ping)
    }

    fn malformed_reply(&self, error: &CodecError) -> Option<Msg> {
        self.inner.malformed_reply(error)
    }
}

impl Broken {
    fn decode_inner(&mut self, src: &mut BytesMut) -> Result<Option<Msg>, CodecError> {
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
}

fn failures(flaw: Flaw) -> Vec<String> {
    // The inner codec's limit is 1 MiB, the wrapper claims 64 KiB: without its own check the
    // wrapper lets a 256 KiB frame through (the NoFrameSizeLimit flaw); with it, it refuses it.
    let inner = Tiny { max_frame_size: if flaw == Flaw::NoFrameSizeLimit { 1 << 20 } else { 64 * 1024 } };
    let kit = ConformanceKit::new(move || Broken { inner: inner.clone(), flaw, last_id: 0 })
        .frame(frame(MessageType::Request, 1, &[("service", "S"), ("method", "m"), ("trace", "t")], b"body"))
        .frame(frame(MessageType::Request, 5, &[("method", "n")], b"other"))
        .frame(frame(MessageType::Response, 1, &[], b"ok"))
        .frame_rewritten_whole(frame(MessageType::Ping, 3, &[], b""))
        .removable_key("trace")
        .oversized_prefix(&b"TY\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00"[..])
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

#[test]
fn catches_a_reply_built_from_codec_state_instead_of_the_request() {
    assert_caught(Flaw::ReplyFromCodecState, "local-reply");
}

#[test]
fn catches_a_heartbeat_answer_that_is_not_a_pong() {
    assert_caught(Flaw::PongAsPing, "heartbeat");
}
