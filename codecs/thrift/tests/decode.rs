//! What the Thrift codec reads from each kind of message, and the replies it makes.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::BytesMut;
use common::{message, reply_body, rich_args};
use metaprotocol_core::{Codec, LocalReply, Message, MessageType, Mutation, ReplyKind, ResponseStatus, WireBuf};
use metaprotocol_thrift::protocol::{message_type, Protocol};
use metaprotocol_thrift::transport::Transport;
use metaprotocol_thrift::{ThriftCodec, ThriftLayout, ThriftOptions, TransportOption};

fn decode(codec: &mut ThriftCodec, frame: &[u8]) -> Message<ThriftLayout> {
    let mut buf = BytesMut::from(frame);
    let m = codec.decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    m
}

#[test]
fn multiplexed_names_headers_and_types() {
    let mut c = ThriftCodec::default();
    let f = message(
        Transport::Header,
        Protocol::Compact,
        message_type::CALL,
        "Billing:charge",
        42,
        &rich_args(Protocol::Compact, "acct"),
        &[("batchjob", "true")],
    );
    let m = decode(&mut c, &f);
    assert_eq!(m.metadata.message_type, MessageType::Request);
    assert_eq!(m.metadata.request_id, 42);
    assert_eq!(m.metadata.operation().to_string(), "Billing/charge");
    assert_eq!(m.metadata.kvs.get_str("method"), Some("charge"));
    assert_eq!(m.metadata.kvs.get_str("service"), Some("Billing"));
    assert_eq!(m.metadata.kvs.get_str("BatchJob"), Some("true"));
    let oneway = message(
        Transport::Header,
        Protocol::Compact,
        message_type::ONEWAY,
        "log",
        43,
        &rich_args(Protocol::Compact, "x"),
        &[],
    );
    assert_eq!(decode(&mut c, &oneway).metadata.message_type, MessageType::Oneway);
}

#[test]
fn replies_with_declared_exceptions_are_business_exceptions() {
    for p in [Protocol::Binary, Protocol::Compact] {
        let mut c = ThriftCodec::default();
        let ok =
            decode(&mut c, &message(Transport::Framed, p, message_type::REPLY, "add", 1, &reply_body(p, false), &[]));
        assert_eq!(
            (ok.metadata.message_type, ok.metadata.response_status),
            (MessageType::Response, ResponseStatus::Ok)
        );
        let ex =
            decode(&mut c, &message(Transport::Framed, p, message_type::REPLY, "add", 2, &reply_body(p, true), &[]));
        assert_eq!(ex.metadata.response_status, ResponseStatus::BusinessException);
    }
}

#[test]
fn local_replies_are_application_exceptions_in_the_requests_transport_and_protocol() {
    for (t, p) in [
        (Transport::Framed, Protocol::Binary),
        (Transport::Unframed, Protocol::Compact),
        (Transport::Header, Protocol::Compact),
    ] {
        let mut c = ThriftCodec::default();
        let req = decode(&mut c, &message(t, p, message_type::CALL, "sayHello", 9, &rich_args(p, "x"), &[]));
        for (kind, app_type) in [
            (ReplyKind::RouteNotFound, 1),
            (ReplyKind::Timeout, 6),
            (ReplyKind::BadRequest, 7),
            (ReplyKind::UpstreamReset, 6),
            (ReplyKind::NoHealthyUpstream, 6),
        ] {
            let reply = c.local_reply(&req, &LocalReply::new(kind, "nope")).unwrap();
            assert_eq!(reply.metadata.message_type, MessageType::Error);
            assert_eq!(reply.metadata.request_id, 9);
            // Decoded by a codec fixed to the request's transport: same framing.
            let fixed = match t {
                Transport::Framed => TransportOption::Framed,
                Transport::Unframed => TransportOption::Unframed,
                Transport::Header => TransportOption::Header,
            };
            let mut strict = ThriftCodec::new(ThriftOptions { transport: fixed, ..ThriftOptions::default() }).unwrap();
            let again = decode(&mut strict, reply.frame());
            assert_eq!(again.metadata.request_id, 9);
            // The TApplicationException's type field is the last i32 before the final STOP.
            let body = reply.frame();
            let t_byte = match p {
                Protocol::Binary => body[body.len() - 2] as i32,
                Protocol::Compact => (body[body.len() - 2] >> 1) as i32,
            };
            assert_eq!(t_byte, app_type, "{t:?} {p:?} {kind}");
        }
    }
}

#[test]
fn framed_mutations_are_ignored_and_header_mutations_applied() {
    let mut c = ThriftCodec::default();
    let framed = message(
        Transport::Framed,
        Protocol::Binary,
        message_type::CALL,
        "m",
        1,
        &rich_args(Protocol::Binary, "x"),
        &[],
    );
    let m = decode(&mut c, &framed);
    let mut mu = Mutation::new();
    mu.set("x-routed-by", "metaproxy");
    let mut out = WireBuf::new();
    c.encode(&m, &mu, &mut out).unwrap();
    assert_eq!(out.take_bytes(), framed);
    let mut c = ThriftCodec::default();
    let header = message(
        Transport::Header,
        Protocol::Binary,
        message_type::CALL,
        "m",
        1,
        &rich_args(Protocol::Binary, "x"),
        &[("a", "1")],
    );
    let m = decode(&mut c, &header);
    c.encode(&m, &mu, &mut out).unwrap();
    let chunks: Vec<_> = out.chunks_iter().cloned().collect();
    assert_eq!(chunks.len(), 2, "a new header, then the payload spliced");
    let back = decode(&mut ThriftCodec::default(), &out.take_bytes());
    assert_eq!(back.metadata.kvs.get_str("x-routed-by"), Some("metaproxy"));
    assert_eq!(back.metadata.kvs.get_str("a"), Some("1"));
}

#[test]
fn transforms_and_garbage_are_refused_clearly() {
    // A THeader frame announcing one transform (zlib = 1).
    let frame = [0, 0, 0, 14, 0x0f, 0xff, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0];
    let err = ThriftCodec::default().decode(&mut BytesMut::from(&frame[..])).unwrap_err();
    assert!(err.to_string().contains("transform 1"), "{err}");
    let err = ThriftCodec::default().decode(&mut BytesMut::from(&b"GET / HTTP/1.1\r\n"[..])).unwrap_err();
    assert!(err.to_string().contains("not a Thrift message"), "{err}");
    // A list claiming more elements than the limit.
    let mut c = ThriftCodec::new(ThriftOptions { max_container_size: 10, ..ThriftOptions::default() }).unwrap();
    let body = [0x0f, 0, 1, 0x08, 0, 0, 0, 11];
    let f = message(Transport::Unframed, Protocol::Binary, message_type::CALL, "m", 1, &body, &[]);
    assert!(c.decode(&mut BytesMut::from(&f[..])).is_err());
}

#[test]
fn sequence_id_rewrites_resize_compact_varints_and_fix_lengths() {
    for t in [Transport::Framed, Transport::Unframed, Transport::Header] {
        for p in [Protocol::Binary, Protocol::Compact] {
            let original =
                message(t, p, message_type::CALL, "Greeter:sayHello", 1, &rich_args(p, "x"), &[("trace", "t-1")]);
            let mut c = ThriftCodec::default();
            let mut m = decode(&mut c, &original);
            let mut previous = 1;
            // As compact varints: 5 bytes, 3, 1, 1, 2, then back to the original.
            for id in [u64::from(u32::MAX), 300_000, 0, 127, 128, 1] {
                assert_eq!(c.rewrite_request_id(&mut m, id).unwrap(), previous);
                let mut out = WireBuf::new();
                let mut mu = Mutation::new();
                mu.set("x-hop", "1");
                c.encode(&m, &mu, &mut out).unwrap();
                let bytes = out.take_bytes();
                let again = decode(&mut ThriftCodec::default(), &bytes);
                assert_eq!(again.metadata.request_id, id, "{t:?} {p:?}");
                assert_eq!(again.metadata.operation().to_string(), "Greeter/sayHello");
                assert_eq!(again.metadata.kvs.get_str("x-hop"), (t == Transport::Header).then_some("1"));
                if t == Transport::Header {
                    // THeader's own sequence id follows the message's.
                    assert_eq!(u64::from(u32::from_be_bytes(bytes[8..12].try_into().unwrap())), id);
                } else {
                    assert_eq!(id != 1, bytes != original, "{t:?} {p:?}: only the id changed");
                }
                // Without a mutation too.
                let mut out = WireBuf::new();
                c.encode(&m, &Mutation::new(), &mut out).unwrap();
                let plain = decode(&mut ThriftCodec::default(), &out.take_bytes());
                assert_eq!(
                    (plain.metadata.request_id, plain.metadata.kvs.get_str("trace")),
                    (id, again.metadata.kvs.get_str("trace"))
                );
                previous = id;
            }
        }
    }
}

#[test]
fn a_rewrite_that_would_outgrow_the_maximum_frame_size_is_refused() {
    let p = Protocol::Compact;
    let f = message(Transport::Framed, p, message_type::CALL, "method", 1, &rich_args(p, "x"), &[]);
    let options = ThriftOptions { max_frame_size: f.len(), ..ThriftOptions::default() };
    let mut c = ThriftCodec::new(options).unwrap();
    let mut m = decode(&mut c, &f);
    c.rewrite_request_id(&mut m, u64::from(u32::MAX)).unwrap();
    let mut out = WireBuf::new();
    assert!(c.encode(&m, &Mutation::new(), &mut out).is_err());
    assert!(out.is_empty(), "nothing was queued");
    assert!(c.rewrite_request_id(&mut m, u64::from(u32::MAX) + 1).is_err());
}
