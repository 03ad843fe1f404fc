//! Replies built from the request alone (local, malformed, heartbeat) and the typed layout they
//! are built from.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{Codec, CodecError, LocalReply, MessageType, Mutation, ReplyKind, ResponseStatus, WireBuf};
use metaprotocol_dubbo::{
    Attachments, Body, DubboCodec, DubboLayout, DubboOptions, RequestLayout, ResponseKind, ResponseLayout, Span,
};

type Message = metaprotocol_core::Message<DubboLayout>;

fn decode(frame: &[u8]) -> Message {
    let mut buf = BytesMut::from(frame);
    let m = DubboCodec::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    m
}

fn encode(m: &Message) -> Bytes {
    let mut out = WireBuf::new();
    DubboCodec::default().encode(m, &Mutation::new(), &mut out).unwrap();
    out.take_bytes()
}

/// A reply as built must be the message its bytes decode to.
fn assert_built_as_decoded(reply: &Message) {
    let back = decode(&encode(reply));
    assert_eq!(&back, reply);
}

#[test]
fn request_layout_records_where_the_operation_and_attachments_lie() {
    let frame = common::request(3, true, "x", &[("trace", "t")]);
    let m = decode(&frame);
    let Body::Request(RequestLayout { service, method, attachments }) = m.layout().body else {
        panic!("{:?}", m.layout())
    };
    assert_eq!(m.layout().flags, 0xc2);
    assert!(m.layout().is_two_way_request() && m.layout().is_mutable());
    // The encoded string, its two length bytes (33 characters: the medium form) included.
    assert_eq!(&frame[service.range()][..2], b"\x30\x21");
    assert_eq!(&frame[service.range()][2..], b"org.apache.dubbo.demo.DemoService");
    assert_eq!(&frame[method.range()], b"\x08sayHello");
    let Attachments::Map(map) = attachments else { panic!("{attachments:?}") };
    assert_eq!((frame[map.start as usize], map.end as usize), (b'H', frame.len()));
    let none = decode(&common::request(4, true, "x", &[]));
    let Body::Request(r) = none.layout().body else { panic!() };
    assert!(r.attachments.is_map(), "the builder writes an empty map");
}

#[test]
fn response_layout_keeps_the_body_kind() {
    for kind in 0..6 {
        let m = decode(&common::response(5, kind, &[("a", "b")]));
        let Body::Response(ResponseLayout { kind: k, kind_end, attachments }) = m.layout().body else { panic!() };
        assert_eq!(k, ResponseKind::from_wire(kind).unwrap());
        assert_eq!(kind_end, 17);
        assert_eq!(attachments.is_map(), kind >= 3);
        if kind < 3 {
            assert_eq!(attachments, Attachments::Absent(Span { start: m.len() as u32, end: m.len() as u32 }));
        }
    }
    // An unknown body kind is an error, not a default.
    let mut b = BytesMut::new();
    metaprotocol_dubbo::hessian::write_int(&mut b, 6);
    let err = DubboCodec::default().decode(&mut BytesMut::from(&common::frame(0x02, 20, 1, &b)[..])).unwrap_err();
    assert!(err.to_string().contains("unknown response body kind"), "{err}");
}

#[test]
fn local_replies_name_a_chunked_operation_and_answer_in_hessian2() {
    // A service name over 32,768 units comes in two chunks: the reply text joins them.
    let long = format!("org.demo.{}", "S".repeat(40_000));
    let mut b = BytesMut::new();
    for s in ["2.0.2", &long, "", "m", ""] {
        common::s(&mut b, s);
    }
    common::attachments(&mut b, &[]);
    let mut req = decode(&common::frame(0xc2, 0, 21, &b));
    let _ = req.take_metadata();
    let reply = DubboCodec::default().local_reply(&req, &LocalReply::new(ReplyKind::Denied, "not you")).unwrap();
    let text = reply.metadata.get("error_message").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap();
    assert!(text.starts_with("metaproxy denied: not you (org.demo.SSS"), "{}", &text[..60]);
    assert!(text.len() <= metaprotocol_dubbo::reply::MAX_TEXT, "long texts are cut: {}", text.len());
    assert_eq!(reply.metadata.get("status"), Some(&b"80"[..]));
    assert_built_as_decoded(&reply);
    // A request in another serialization is answered in Hessian 2, the serialization of the text.
    let forwarding = DubboCodec::new(DubboOptions { forward_serializations: vec![6], ..DubboOptions::default() });
    let other =
        forwarding.clone().decode(&mut BytesMut::from(&common::frame(0xc6, 0, 22, b"{}")[..])).unwrap().unwrap();
    let reply = DubboCodec::default().local_reply(&other, &LocalReply::new(ReplyKind::Timeout, "slow")).unwrap();
    assert_eq!((reply.frame()[2], reply.frame()[3]), (0x02, 31));
    assert_eq!(reply.metadata.get("error_message"), Some(&b"metaproxy timeout: slow"[..]));
    assert_built_as_decoded(&reply);
}

#[test]
fn a_request_whose_body_fails_gets_a_bad_request_reply_from_the_error() {
    let mut bad = BytesMut::new();
    for s in ["2.0.2", "org.demo.Greeter", "", "greet", "Ljava/lang/String"] {
        common::s(&mut bad, s);
    }
    let frame = common::frame(0xc2, 0, 77, &bad);
    let mut codec = DubboCodec::default();
    let mut buf = BytesMut::from(&frame[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(buf.is_empty(), "the whole frame is consumed");
    let CodecError::BadRequest { request_id, frame: carried, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*request_id, carried), (77, &frame));
    // Any codec answers it from the error alone.
    let reply = DubboCodec::default().malformed_reply(&err).unwrap();
    assert_eq!(reply.metadata.request_id, 77);
    assert_eq!(reply.metadata.message_type, MessageType::Error);
    assert_eq!(reply.metadata.response_status, ResponseStatus::Error);
    assert_eq!(reply.metadata.get("status"), Some(&b"40"[..]));
    let text = String::from_utf8_lossy(reply.metadata.get("error_message").unwrap()).into_owned();
    assert!(text.contains("invalid parameter type descriptor") && text.contains("(org.demo.Greeter/greet)"), "{text}");
    assert_built_as_decoded(&reply);
    // A one-way request is owed nothing: a plain error, and no reply.
    let oneway = common::frame(0x82, 0, 78, &bad);
    let err = codec.decode(&mut BytesMut::from(&oneway[..])).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { .. }), "{err:?}");
    assert!(codec.malformed_reply(&err).is_none());
    // A body that breaks before the operation is read still gets its answer.
    let early = common::frame(0xc2, 0, 79, b"\x05ab");
    let err = codec.decode(&mut BytesMut::from(&early[..])).unwrap_err();
    let reply = codec.malformed_reply(&err).unwrap();
    assert_eq!(reply.metadata.request_id, 79);
    assert!(!String::from_utf8_lossy(reply.metadata.get("error_message").unwrap()).contains('('));
}

#[test]
fn pongs_answer_in_the_pings_serialization() {
    let ping = decode(&common::frame(0xe6, 0, 5, b"N"));
    assert_eq!(ping.metadata.message_type, MessageType::Ping);
    assert_eq!(ping.layout().body, Body::Event);
    let pong = DubboCodec::default().heartbeat_reply(&ping).unwrap();
    assert_eq!(&pong.frame()[..4], &[0xda, 0xbb, 0x26, 20]);
    assert_built_as_decoded(&pong);
}

#[test]
fn the_health_check_request_is_a_ping_the_codec_answers_with_a_pong_of_its_id() {
    let codec = DubboCodec::default();
    let mut ping = codec.health_check_request().unwrap();
    assert_built_as_decoded(&ping);
    assert_eq!(ping.metadata.message_type, MessageType::Ping);
    assert!(ping.layout().is_event() && ping.layout().is_two_way_request());
    // The checker gives it an id of its own; the bytes carry it, and the pong answers with it.
    codec.rewrite_request_id(&mut ping, 77).unwrap();
    let sent = decode(&encode(&ping));
    assert_eq!((sent.metadata.message_type, sent.metadata.request_id), (MessageType::Ping, 77));
    let pong = codec.heartbeat_reply(&sent).unwrap();
    let answered = decode(&encode(&pong));
    assert_eq!((answered.metadata.message_type, answered.metadata.request_id), (MessageType::Pong, 77));
}
