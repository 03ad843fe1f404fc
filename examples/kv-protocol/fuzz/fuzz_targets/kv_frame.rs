//! Feeds arbitrary bytes to the kv template codec in two reads, and re-encodes what decodes, with
//! and without a mutation and an id rewrite: nothing may panic, a passthrough gives the frame back
//! byte for byte, and a mutated frame decodes to the mutation's effect with the body untouched.
//! Every reply the codec builds (local replies to requests, pongs to pings, answers to bad
//! requests) must encode and decode back to itself.
//!
//! Input: byte 0 picks the maximum frame size (bit 0: the default 4 MiB, or 256 bytes, so that
//! mutations and large frames meet the limit), byte 1 says where to split the rest into two reads.
#![no_main]

use bytes::BytesMut;
use kv_protocol::{KvCodec, KvLayout, KvOptions};
use libfuzzer_sys::fuzz_target;
use metaprotocol_core::{Codec, CodecError, LocalReply, Message, MessageType, Mutation, ReplyKind, WireBuf};

/// The maximum frame sizes byte 0 picks from.
const MAX_FRAME_SIZES: [usize; 2] = [4 * 1024 * 1024, 256];

/// A reply as built must be what its bytes decode to.
fn check_reply(codec: &mut KvCodec, reply: &Message<KvLayout>) {
    let mut out = WireBuf::new();
    codec.encode(reply, &Mutation::new(), &mut out).expect("a reply encodes");
    let mut buf = BytesMut::from(&out.take_bytes()[..]);
    let back = KvCodec::default().decode(&mut buf).expect("a reply decodes").expect("a whole reply");
    assert!(buf.is_empty());
    assert_eq!(&back, reply, "a reply as built differs from the reply as decoded");
}

fuzz_target!(|data: &[u8]| {
    let (Some(&pick), Some(&split)) = (data.first(), data.get(1)) else { return };
    let options = KvOptions { max_frame_size: MAX_FRAME_SIZES[usize::from(pick & 1)] };
    let mut codec = KvCodec::new(options.clone()).expect("valid options");
    let data = &data[2..];
    let split = usize::from(split).min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    if let Err(e) = codec.decode(&mut buf) {
        check_malformed(&mut codec, &e);
        return;
    }
    buf.extend_from_slice(&data[split..]);
    // A small mutation, and one that grows the header block past the small maximum frame size.
    let mut small = Mutation::new();
    small.set("x-fuzz", "1").remove("trace");
    let mut large = Mutation::new();
    large.set("service", vec![b's'; 300]).remove("method");
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
                let body_at = msg.layout().body_at as usize;
                let body = msg.frame().slice(body_at..);
                if codec.encode(&msg, &small, &mut out).is_ok() {
                    // A mutated frame decodes, with the mutation applied and the body untouched.
                    let mut again = BytesMut::from(&out.take_bytes()[..]);
                    let m = KvCodec::new(options.clone())
                        .expect("valid options")
                        .decode(&mut again)
                        .expect("a mutated frame decodes")
                        .expect("a whole mutated frame");
                    assert!(again.is_empty());
                    assert_eq!(m.metadata.request_id, msg.metadata.request_id);
                    assert_eq!(m.metadata.message_type, msg.metadata.message_type);
                    assert_eq!(m.metadata.kvs.get("x-fuzz"), Some(&b"1"[..]));
                    assert!(!m.metadata.kvs.contains("trace"));
                    assert_eq!(m.frame().slice(m.layout().body_at as usize..), body, "the body changed");
                }
                let _ = codec.encode(&msg, &large, &mut out);
                out.take_bytes();
                let _ = codec.rewrite_request_id(&mut msg, 7);
                codec.encode(&msg, &Mutation::new(), &mut out).expect("an id rewrite encodes");
                let mut again = BytesMut::from(&out.take_bytes()[..]);
                let m = codec.clone().decode(&mut again).expect("a rewritten frame decodes").expect("whole");
                assert_eq!(m.metadata.request_id, 7);
                let _ = codec.encode(&msg, &small, &mut out);
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
                } else {
                    assert!(codec.heartbeat_reply(&msg).is_err(), "only a ping gets a pong");
                }
            }
            Ok(None) => break,
            Err(e) => {
                check_malformed(&mut codec, &e);
                break;
            }
        }
    }
});

/// A malformed reply, when there is one, answers the bad request and decodes.
fn check_malformed(codec: &mut KvCodec, error: &CodecError) {
    if let Some(reply) = codec.malformed_reply(error) {
        assert!(matches!(error, CodecError::BadRequest { request_id, .. } if *request_id == reply.metadata.request_id));
        check_reply(codec, &reply);
    }
}
