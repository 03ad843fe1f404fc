//! The options the shipped configurations do not use, on two made-up protocols: little-endian
//! fields, a type in the bits of a mask, ping and pong values, a header whose size a field gives,
//! a whole-frame length, a length that counts the rest of the frame with an adjustment, sections
//! with their own length prefixes, two-byte and one-byte pair prefixes, and bytes fields. Each
//! passes the conformance kit, and a mutation fixes every length that covers the pairs.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_core::{Codec, CodecFactory, LocalReply, MessageType, Mutation, ReplyKind, WireBuf};
use metaprotocol_framed::{FramedCodec, FramedCodecFactory};
use serde_json::json;

/// "TY" magic, flags (type in bits 0-2), header length (u16 LE), frame length (u32 LE, whole
/// frame), id (u64 LE), status (u8), then: service (u8 prefix), pairs (u16 prefix, u16 items),
/// both inside the header, then the body.
fn toy() -> FramedCodec {
    FramedCodecFactory
        .configure(&json!({
            "endian": "little",
            "max_frame_size": 65536,
            "magic": {"offset": 0, "any_of": ["5459"]},
            "request_id": {"offset": 9, "width": 8},
            "message_type": {"offset": 2, "width": 1, "mask": "0x07",
                             "request": [0], "response": [1], "oneway": [2], "ping": [3], "pong": [4]},
            "status": {"offset": 17, "width": 1, "ok": [0], "business": [7]},
            "service_key": "service",
            "frame": {
                "header_size": 18,
                "header_length": {"offset": 3, "width": 2},
                "length": {"offset": 5, "width": 4, "counts": "frame"},
                "fields": [{"key": "flags", "offset": 2, "width": 1, "format": "bytes"},
                           {"key": "priority", "offset": 2, "width": 1, "mask": "0xf0"}],
                "sections": [
                    {"name": "service", "prefix": 1, "key": "service"},
                    {"name": "headers", "prefix": 2, "pairs": {"width": 2}},
                    {"name": "body", "rest": true}
                ]
            },
            "error_reply": {
                "set": [{"offset": 2, "width": 1, "mask": "0x07", "value": 1}],
                "copy": [{"offset": 2, "width": 1}],
                "status": {"default": 9, "timeout": 8},
                "text": {"section": "body"}
            },
            "heartbeat_reply": {"set": [{"offset": 2, "width": 1, "mask": "0x07", "value": 4}]}
        }))
        .unwrap()
}

fn toy_frame(kind: u8, id: u64, status: u8, service: &str, pairs: &[(&str, &str)], body: &[u8]) -> Bytes {
    let mut block = BytesMut::new();
    for (k, v) in pairs {
        block.put_u16_le(k.len() as u16);
        block.put_slice(k.as_bytes());
        block.put_u16_le(v.len() as u16);
        block.put_slice(v.as_bytes());
    }
    let header_len = 18 + 1 + service.len() + 2 + block.len();
    let mut f = BytesMut::new();
    f.put_slice(b"TY");
    f.put_u8(kind | 0x50);
    f.put_u16_le(header_len as u16);
    f.put_u32_le((header_len + body.len()) as u32);
    f.put_u64_le(id);
    f.put_u8(status);
    f.put_u8(service.len() as u8);
    f.put_slice(service.as_bytes());
    f.put_u16_le(block.len() as u16);
    f.put_slice(&block);
    f.put_slice(body);
    f.freeze()
}

/// A Thrift-like framing: u32 length of the rest (big endian) at 0, magic at 4, type at 6, id at
/// 7 (u32), status at 11, then a pairs section with a u32 prefix and one-byte items, then the body.
fn lenfirst() -> FramedCodec {
    FramedCodecFactory
        .configure(&json!({
            "magic": {"offset": 4, "any_of": ["cafe"]},
            "request_id": {"offset": 7, "width": 4},
            "message_type": {"offset": 6, "width": 1, "mask": "0x7f", "request": [1], "response": [2], "oneway": [4],
                             "heartbeat": {"offset": 6, "width": 1, "mask": "0x80", "values": [1]}},
            "status": {"offset": 11, "width": 1, "ok": [0]},
            "frame": {
                "header_size": 12,
                "length": {"offset": 0, "width": 4, "counts": "rest", "adjust": 2},
                "sections": [{"name": "meta", "prefix": 4, "pairs": {"width": 1}}, {"name": "body", "rest": true}]
            },
            "error_reply": {"set": [{"offset": 6, "width": 1, "value": 2}], "status": {"default": 1},
                            "text": {"section": "body", "format": "hessian_string"}},
            "heartbeat_reply": {"set": [{"offset": 6, "width": 1, "value": "0x82"}]}
        }))
        .unwrap()
}

fn lenfirst_frame(kind: u8, id: u32, pairs: &[(&str, &str)], body: &[u8]) -> Bytes {
    let mut block = BytesMut::new();
    for (k, v) in pairs {
        block.put_u8(k.len() as u8);
        block.put_slice(k.as_bytes());
        block.put_u8(v.len() as u8);
        block.put_slice(v.as_bytes());
    }
    let mut f = BytesMut::new();
    // `adjust: 2`: the field says 2 bytes less than what follows it.
    f.put_u32((8 + 4 + block.len() + body.len() - 2) as u32);
    f.put_slice(&[0xca, 0xfe, kind]);
    f.put_u32(id);
    f.put_u8(0);
    f.put_u32(block.len() as u32);
    f.put_slice(&block);
    f.put_slice(body);
    f.freeze()
}

fn encode(
    codec: &mut FramedCodec,
    m: &metaprotocol_core::Message<metaprotocol_framed::FramedLayout>,
    mu: &Mutation,
) -> Bytes {
    let mut out = WireBuf::new();
    codec.encode(m, mu, &mut out).unwrap();
    out.take_bytes()
}

#[test]
fn a_little_endian_protocol_with_a_variable_header_passes_the_kit() {
    ConformanceKit::new(toy)
        .frame(toy_frame(0, 1, 0, "svc.Users", &[("trace", "t1"), ("tenant", "acme")], b"payload"))
        .frame(toy_frame(2, u64::MAX - 1, 0, "svc.Users", &[("trace", "t2")], b"oneway"))
        .frame(toy_frame(0, 3, 0, "", &[], b""))
        .frame(toy_frame(1, 1, 0, "", &[("trace", "t1")], b"result"))
        .frame(toy_frame(1, 1, 7, "", &[], b"business"))
        .frame(toy_frame(1, 1, 5, "", &[], b"failure"))
        .frame_without_kv(toy_frame(3, 9, 0, "", &[], b""))
        .frame_without_kv(toy_frame(4, 9, 0, "", &[], b""))
        .removable_key("trace")
        .run();
}

#[test]
fn a_length_first_protocol_passes_the_kit() {
    ConformanceKit::new(lenfirst)
        .frame(lenfirst_frame(1, 1, &[("trace", "t1"), ("k", "v")], b"payload"))
        .frame(lenfirst_frame(4, 2, &[("trace", "t2")], b"x"))
        .frame(lenfirst_frame(2, 1, &[], b"result"))
        .frame_without_kv(lenfirst_frame(0x81, 3, &[], b""))
        .frame_without_kv(lenfirst_frame(0x82, 3, &[], b""))
        .removable_key("trace")
        .run();
}

#[test]
fn toy_metadata_and_mutations_fix_every_covering_length() {
    let mut codec = toy();
    let frame = toy_frame(0, 0x0102_0304_0506_0708, 0, "svc.Users", &[("trace", "t1")], b"payload");
    let m = codec.decode(&mut BytesMut::from(&frame[..])).unwrap().unwrap();
    let md = &m.metadata;
    assert_eq!(md.message_type, MessageType::Request);
    assert_eq!(md.request_id, 0x0102_0304_0506_0708);
    assert_eq!(md.kvs.get("flags"), Some(&[0x50u8][..]));
    assert_eq!(md.kvs.get_str("priority"), Some("5"));
    assert_eq!(md.service(), Some(&b"svc.Users"[..]));
    assert_eq!(md.kvs.get_str("trace"), Some("t1"));
    assert_eq!(md.header_size as usize, frame.len() - 7);
    let mut mu = Mutation::new();
    mu.set("tenant", "a-much-longer-value").remove("trace");
    let out = encode(&mut codec, &m, &mu);
    assert_eq!(
        out,
        toy_frame(0, 0x0102_0304_0506_0708, 0, "svc.Users", &[("tenant", "a-much-longer-value")], b"payload")
    );
    // A request id rewrite with a mutation, and one without.
    let mut m2 = m.clone();
    codec.rewrite_request_id(&mut m2, 5).unwrap();
    assert_eq!(
        encode(&mut codec, &m2, &Mutation::new()),
        toy_frame(0, 5, 0, "svc.Users", &[("trace", "t1")], b"payload")
    );
    assert_eq!(
        encode(&mut codec, &m2, &mu),
        toy_frame(0, 5, 0, "svc.Users", &[("tenant", "a-much-longer-value")], b"payload")
    );
}

#[test]
fn toy_replies_follow_the_configuration() {
    let codec = toy();
    let req = codec.decode_one(&toy_frame(0, 77, 0, "svc.Users", &[("trace", "t1")], b"payload"));
    let reply = codec.local_reply(&req, &LocalReply::new(ReplyKind::Timeout, "too slow")).unwrap();
    let f = reply.frame();
    assert_eq!(&f[..2], b"TY");
    assert_eq!(f[2], 0x51, "the request's flags, type bits set to response");
    assert_eq!(f[17], 8, "the timeout status");
    assert_eq!(reply.metadata.request_id, 77);
    assert!(f.ends_with(b"metaproxy timeout: too slow"), "{f:?}");
    let other = codec.local_reply(&req, &LocalReply::new(ReplyKind::Denied, "no")).unwrap();
    assert_eq!(other.frame()[17], 9, "the default status");
    let ping = codec.decode_one(&toy_frame(3, 12, 0, "", &[], b""));
    let pong = codec.heartbeat_reply(&ping).unwrap();
    assert_eq!((pong.metadata.message_type, pong.metadata.request_id), (MessageType::Pong, 12));
    let lf = lenfirst();
    let req = lf.decode_one(&lenfirst_frame(1, 5, &[], b""));
    let reply = lf.local_reply(&req, &LocalReply::new(ReplyKind::RouteNotFound, "none")).unwrap();
    assert!(reply.frame().ends_with(b"S\x00\x1fmetaproxy route_not_found: none"), "{:?}", reply.frame());
}

/// Decodes one whole frame.
trait DecodeOne {
    fn decode_one(&self, frame: &[u8]) -> metaprotocol_core::Message<metaprotocol_framed::FramedLayout>;
}

impl DecodeOne for FramedCodec {
    fn decode_one(&self, frame: &[u8]) -> metaprotocol_core::Message<metaprotocol_framed::FramedLayout> {
        let mut buf = BytesMut::from(frame);
        let m = self.clone().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        m
    }
}
