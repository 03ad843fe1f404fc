//! Feeds arbitrary bytes to the Dubbo decoder in two reads, and re-encodes what decodes, with
//! and without a mutation and an id rewrite: nothing may panic, and a passthrough must give the
//! frame back byte for byte. Every reply the codec builds (local replies to requests, pongs to
//! pings, malformed replies to bad requests and to incomplete requests given up on) must encode
//! and decode back to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use metaprotocol_core::{Codec, CodecError, LocalReply, Message, MessageType, Mutation, ReplyKind, WireBuf};
use metaprotocol_dubbo::{DubboCodec, DubboLayout, DubboOptions};

fn options() -> DubboOptions {
    DubboOptions { max_frame_size: 1 << 20, ..DubboOptions::default() }
}

/// A reply as built must be what its bytes decode to.
fn check_reply(codec: &mut DubboCodec, reply: &Message<DubboLayout>) {
    let mut out = WireBuf::new();
    codec.encode(reply, &Mutation::new(), &mut out).expect("a reply encodes");
    let mut buf = BytesMut::from(&out.take_bytes()[..]);
    let back = DubboCodec::new(options()).decode(&mut buf).expect("a reply decodes").expect("a whole reply");
    assert!(buf.is_empty());
    assert_eq!(&back, reply, "a reply as built differs from the reply as decoded");
}

fuzz_target!(|data: &[u8]| {
    let mut codec = DubboCodec::new(options());
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    let _ = codec.decode(&mut buf);
    buf.extend_from_slice(&data[split..]);
    let mut mutation = Mutation::new();
    mutation.set("x-fuzz", "1").remove("trace");
    // Decode until the codec wants more bytes or fails, as a connection does; a decoded
    // message always consumes bytes, so this ends.
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(mut msg)) => {
                assert!(buf.len() < before, "a message decoded from no bytes");
                let mut out = WireBuf::new();
                codec.encode(&msg, &Mutation::new(), &mut out).expect("passthrough encode");
                assert_eq!(out.take_bytes(), *msg.frame());
                let _ = codec.encode(&msg, &mutation, &mut out);
                let _ = codec.rewrite_request_id(&mut msg, 7);
                let _ = codec.encode(&msg, &mutation, &mut out);
                let message_type = msg.metadata.message_type;
                // Replies are built from the request without its metadata, as the proxy does.
                let _ = msg.take_metadata();
                if message_type == MessageType::Request {
                    let reply = codec.local_reply(&msg, &LocalReply::new(ReplyKind::Timeout, "fuzz"));
                    check_reply(&mut codec, &reply.expect("a request gets a local reply"));
                }
                if message_type == MessageType::Ping {
                    let pong = codec.heartbeat_reply(&msg).expect("a ping gets a pong");
                    check_reply(&mut codec, &pong);
                }
            }
            Ok(None) => {
                // What is left is an incomplete frame: the proxy gives up on it (too slow, too
                // big for the buffers), and a two-way request named by its header gets a reply.
                if !buf.is_empty() {
                    let e = codec.refuse_partial(&buf, CodecError::Refused("fuzz".into()));
                    check_malformed(&mut codec, &e);
                }
                break;
            }
            Err(e) => {
                check_malformed(&mut codec, &e);
                break;
            }
        }
    }
});

/// A malformed reply, when there is one, answers the bad request and decodes.
fn check_malformed(codec: &mut DubboCodec, e: &CodecError) {
    if let Some(reply) = codec.malformed_reply(e) {
        assert!(matches!(e, CodecError::BadRequest { request_id, .. } if *request_id == reply.metadata.request_id));
        check_reply(codec, &reply);
    }
}
