//! Replies the codec builds: local replies in each request's own framing and protocol (also on a
//! connection that mixes protocols), malformed replies to bad requests, and what has none.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{message, reply_body, rich_args};
use metaprotocol_core::{Codec, CodecError, KeyValues, LocalReply, Message, MessageType, Mutation, ReplyKind, WireBuf};
use metaprotocol_thrift::protocol::{message_type, put_header, read_header, Protocol};
use metaprotocol_thrift::transport::{put_header_prefix, read_header_block, Transport};
use metaprotocol_thrift::{app_error, Framing, ThriftCodec, ThriftLayout, ThriftOptions, TransportOption};

fn decode(codec: &mut ThriftCodec, frame: &[u8]) -> Message<ThriftLayout> {
    let mut buf = BytesMut::from(frame);
    let m = codec.decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    m
}

/// A THeader call with the given flags and one info header.
fn header_call(p: Protocol, flags: u16, name: &str, seqid: i32, body: &[u8]) -> Bytes {
    let mut payload = BytesMut::new();
    put_header(&mut payload, p, message_type::CALL, name.as_bytes(), seqid);
    payload.put_slice(body);
    let info: KeyValues = [(Bytes::from_static(b"trace"), Bytes::from_static(b"t-9"))].into_iter().collect();
    let mut out = BytesMut::new();
    put_header_prefix(&mut out, flags, seqid, p, &info, payload.len()).unwrap();
    out.put_slice(&payload);
    out.freeze()
}

/// The TApplicationException type of an exception frame: the i32 before the final STOP.
fn app_type(p: Protocol, frame: &[u8]) -> i32 {
    match p {
        Protocol::Binary => i32::from_be_bytes(frame[frame.len() - 5..frame.len() - 1].try_into().unwrap()),
        Protocol::Compact => i32::from(frame[frame.len() - 2] >> 1),
    }
}

/// What a reply frame says: THeader flags and protocol, or the framed/unframed payload's protocol.
fn reply_variant(frame: &[u8], transport: Transport) -> (Option<u16>, Protocol, i32) {
    let (flags, protocol, at) = match transport {
        Transport::Header => {
            let b = read_header_block(frame).unwrap();
            (Some(b.flags), b.protocol, b.payload_at)
        }
        Transport::Framed => (None, Protocol::detect(frame[4], false).unwrap(), 4),
        Transport::Unframed => (None, Protocol::detect(frame[0], false).unwrap(), 0),
    };
    let h = read_header(protocol, &frame[at..], false).unwrap();
    assert_eq!(h.kind, message_type::EXCEPTION);
    (flags, protocol, h.seqid)
}

#[test]
fn a_connection_mixing_protocols_answers_each_request_in_its_own() {
    // One THeader connection, one codec: binary, compact, binary again, with different flags.
    let calls = [
        (Protocol::Binary, 0x0001, 11),
        (Protocol::Compact, 0x0000, 12),
        (Protocol::Binary, 0x0004, 13),
        (Protocol::Compact, 0x0001, 14),
    ];
    let mut wire = BytesMut::new();
    for (p, flags, seqid) in calls {
        wire.put_slice(&header_call(p, flags, "Greeter:sayHello", seqid, &rich_args(p, "x")));
    }
    let mut codec = ThriftCodec::default();
    let mut requests = Vec::new();
    while let Some(m) = codec.decode(&mut wire).unwrap() {
        requests.push(m);
    }
    assert_eq!(requests.len(), calls.len());
    // Answer them last to first: whatever the codec decoded last must not matter, and neither
    // must the key/values, which the proxy moves out before replying.
    for ((p, flags, seqid), request) in calls.iter().zip(&requests).rev() {
        assert_eq!(request.layout().protocol(), *p);
        let mut light = request.clone();
        let _ = light.take_metadata();
        for (kind, want) in [
            (ReplyKind::NoHealthyUpstream, app_error::INTERNAL_ERROR),
            (ReplyKind::RouteNotFound, app_error::UNKNOWN_METHOD),
            (ReplyKind::UpstreamReset, app_error::INTERNAL_ERROR),
        ] {
            let reply = codec.local_reply(&light, &LocalReply::new(kind, "nope")).unwrap();
            assert_eq!(reply.layout().protocol(), *p, "seqid {seqid}: {kind}");
            assert!(matches!(reply.layout().framing(), Framing::Header { flags: f, .. } if f == *flags));
            let mut out = WireBuf::new();
            codec.encode(&reply, &Mutation::new(), &mut out).unwrap();
            let bytes = out.take_bytes();
            assert_eq!(reply_variant(&bytes, Transport::Header), (Some(*flags), *p, *seqid));
            assert_eq!(app_type(*p, &bytes), want, "{p:?} {kind}");
            let again = decode(&mut ThriftCodec::default(), &bytes);
            assert_eq!(again, reply, "the reply as built is the reply as decoded");
            assert_eq!(again.metadata.method(), Some(&b"sayHello"[..]), "replies carry the bare method name");
        }
    }
}

#[test]
fn replies_follow_the_request_not_the_last_decoded_message() {
    // Framed connections each have one protocol; the codec answering may have decoded another.
    for (t, p, other) in [
        (Transport::Framed, Protocol::Binary, Protocol::Compact),
        (Transport::Framed, Protocol::Compact, Protocol::Binary),
        (Transport::Unframed, Protocol::Compact, Protocol::Binary),
    ] {
        let req =
            decode(&mut ThriftCodec::default(), &message(t, p, message_type::CALL, "add", 5, &rich_args(p, "x"), &[]));
        let mut codec = ThriftCodec::default();
        decode(&mut codec, &message(t, other, message_type::CALL, "add", 6, &rich_args(other, "y"), &[]));
        let reply = codec.local_reply(&req, &LocalReply::new(ReplyKind::Timeout, "slow")).unwrap();
        assert_eq!(reply_variant(reply.frame(), t), (None, p, 5), "{t:?} {p:?}");
        assert_eq!(reply.metadata.message_type, MessageType::Error);
        assert_eq!(app_type(p, reply.frame()), app_error::INTERNAL_ERROR);
    }
}

/// A call whose frame is whole but whose args struct lost its final STOP.
fn truncated_call(t: Transport, p: Protocol, name: &str, seqid: i32) -> Bytes {
    let args = rich_args(p, "x");
    let body = &args[..args.len() - 1];
    match t {
        Transport::Header => header_call(p, 0x0001, name, seqid, body),
        _ => message(t, p, message_type::CALL, name, seqid, body, &[]),
    }
}

#[test]
fn bad_requests_get_a_protocol_error_in_their_own_variant() {
    for (t, p) in [
        (Transport::Framed, Protocol::Binary),
        (Transport::Framed, Protocol::Compact),
        (Transport::Header, Protocol::Binary),
        (Transport::Header, Protocol::Compact),
    ] {
        let bad = truncated_call(t, p, "Greeter:sayHello", 77);
        let good = match t {
            Transport::Header => header_call(p, 0x0001, "next", 78, &rich_args(p, "y")),
            _ => message(t, p, message_type::CALL, "next", 78, &rich_args(p, "y"), &[]),
        };
        let mut buf = BytesMut::new();
        buf.put_slice(&bad);
        buf.put_slice(&good);
        let mut codec = ThriftCodec::default();
        let err = codec.decode(&mut buf).unwrap_err();
        let CodecError::BadRequest { request_id, frame, .. } = &err else { panic!("{t:?} {p:?}: {err}") };
        assert_eq!((*request_id, frame), (77, &bad), "{t:?} {p:?}");
        assert!(err.to_string().contains("STOP"), "{err}");
        // The frame was consumed: the stream is still in step.
        assert_eq!(buf.len(), good.len());
        // The reply comes from the error alone, whatever the codec decodes meanwhile.
        let next = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(next.metadata.request_id, 78);
        let reply = codec.malformed_reply(&err).expect("a bad request is answered");
        assert_eq!(reply.metadata.request_id, 77);
        assert_eq!(reply.metadata.message_type, MessageType::Error);
        assert_eq!(reply.metadata.method(), Some(&b"sayHello"[..]));
        let flags = (t == Transport::Header).then_some(0x0001);
        assert_eq!(reply_variant(reply.frame(), t), (flags, p, 77), "{t:?} {p:?}");
        assert_eq!(app_type(p, reply.frame()), app_error::PROTOCOL_ERROR);
        assert_eq!(decode(&mut ThriftCodec::default(), reply.frame()), reply);
    }
}

#[test]
fn what_is_not_a_bad_request() {
    let p = Protocol::Binary;
    let args = rich_args(p, "x");
    let cut = &args[..args.len() - 1];
    // Replies and one-way calls are forwarded without looking at their bodies.
    for kind in [message_type::REPLY, message_type::ONEWAY] {
        let f = message(Transport::Framed, p, kind, "m", 1, cut, &[]);
        assert!(ThriftCodec::default().decode(&mut BytesMut::from(&f[..])).unwrap().is_some());
    }
    // A call whose header does not parse names no request to answer.
    let mut f = message(Transport::Framed, p, message_type::CALL, "m", 1, &args, &[]).to_vec();
    f[5] = 0x02; // binary version 0x8002
    let err = ThriftCodec::default().decode(&mut BytesMut::from(&f[..])).unwrap_err();
    assert!(!matches!(err, CodecError::BadRequest { .. }), "{err}");
    assert!(ThriftCodec::default().malformed_reply(&err).is_none());
    // Unframed: a body that does not parse leaves the message's end unknown; the connection closes.
    let f = message(Transport::Unframed, p, message_type::CALL, "m", 1, &[0x7f, 0, 1, 0], &[]);
    let err = ThriftCodec::default().decode(&mut BytesMut::from(&f[..])).unwrap_err();
    assert!(!matches!(err, CodecError::BadRequest { .. }), "{err}");
    // An unframed listener does not answer a BadRequest (it cannot produce one).
    let unframed =
        ThriftCodec::new(ThriftOptions { transport: TransportOption::Unframed, ..ThriftOptions::default() }).unwrap();
    let bad = truncated_call(Transport::Framed, p, "m", 3);
    let fake = CodecError::bad_request(3, bad, CodecError::malformed(0, "x"));
    assert!(unframed.malformed_reply(&fake).is_none());
    assert!(ThriftCodec::default().malformed_reply(&fake).is_some());
}

#[test]
fn thrift_has_no_heartbeats() {
    let p = Protocol::Compact;
    let req = decode(
        &mut ThriftCodec::default(),
        &message(Transport::Framed, p, message_type::REPLY, "m", 1, &reply_body(p, false), &[]),
    );
    assert!(matches!(ThriftCodec::default().heartbeat_reply(&req), Err(CodecError::Unsupported(_))));
}
