//! What the Dubbo codec reads from each kind of frame, and what it writes back.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{Codec, LocalReply, MessageType, Mutation, ReplyKind, ResponseStatus, WireBuf};
use metaprotocol_dubbo::hessian::Reader;
use metaprotocol_dubbo::{DubboCodec, DubboLayout, DubboOptions};

type Message = metaprotocol_core::Message<DubboLayout>;

fn decode(frame: &[u8]) -> Message {
    let mut buf = BytesMut::from(frame);
    let m = DubboCodec::default().decode(&mut buf).unwrap().unwrap();
    assert!(buf.is_empty());
    m
}

fn encode(m: &Message, mutation: &Mutation) -> Bytes {
    let mut out = WireBuf::new();
    DubboCodec::default().encode(m, mutation, &mut out).unwrap();
    out.take_bytes()
}

fn kv<'a>(m: &'a Message, key: &str) -> Option<&'a str> {
    m.metadata.kvs.get_str(key)
}

#[test]
fn request_fields_and_attachments() {
    let m = decode(&common::request_with_object(77));
    let md = &m.metadata;
    assert_eq!(md.message_type, MessageType::Request);
    assert_eq!(md.request_id, 77);
    assert_eq!(md.operation().to_string(), "org.demo.UserService/save");
    assert_eq!(kv(&m, "interface"), Some("org.demo.UserService"));
    assert_eq!(kv(&m, "method"), Some("save"));
    assert_eq!(kv(&m, "version"), Some(""));
    assert_eq!(kv(&m, "dubbo_version"), Some("2.0.2"));
    assert_eq!(kv(&m, "parameter_types"), Some("Lorg/demo/User;Ljava/util/List;"));
    assert_eq!(kv(&m, "group"), Some("gold"));
    assert_eq!(kv(&m, "BatchJob"), Some("true"));
    assert_eq!(kv(&m, "path"), Some("org.demo.UserService"));
    assert_eq!(md.header_size, 16);
    assert_eq!(md.body_size as usize, m.len() - 16);
}

#[test]
fn oneway_and_heartbeats() {
    assert_eq!(decode(&common::request(1, false, "x", &[])).metadata.message_type, MessageType::Oneway);
    let ping = decode(&common::heartbeat_request(9));
    assert_eq!(ping.metadata.message_type, MessageType::Ping);
    assert_eq!(kv(&ping, "event"), Some("request"));
    let codec = DubboCodec::default();
    let pong = codec.heartbeat_reply(&ping).unwrap();
    assert_eq!(pong.metadata.message_type, MessageType::Pong);
    assert_eq!(&encode(&pong, &Mutation::new())[..], &common::heartbeat_response(9)[..]);
    assert_eq!(pong, decode(&common::heartbeat_response(9)), "built as decoded");
    assert!(codec.heartbeat_reply(&pong).is_err(), "a heartbeat response is not a ping");
    // A one-way heartbeat asks for no answer: a pong.
    let oneway = decode(&common::frame(0xa2, 0, 10, b"N"));
    assert_eq!(oneway.metadata.message_type, MessageType::Pong);
}

#[test]
fn response_kinds_and_statuses() {
    for (kind, status, body_kind) in [
        (1, ResponseStatus::Ok, "1"),
        (2, ResponseStatus::Ok, "2"),
        (0, ResponseStatus::BusinessException, "0"),
        (4, ResponseStatus::Ok, "4"),
        (5, ResponseStatus::Ok, "5"),
        (3, ResponseStatus::BusinessException, "3"),
    ] {
        let m = decode(&common::response(5, kind, &[("served-by", "p1")]));
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_status, status, "kind {kind}");
        assert_eq!(kv(&m, "status"), Some("20"));
        assert_eq!(kv(&m, "body_kind"), Some(body_kind));
        assert_eq!(kv(&m, "served-by"), if kind >= 3 { Some("p1") } else { None });
    }
    let e = decode(&common::error_response(6, 70, "no such method"));
    assert_eq!(e.metadata.message_type, MessageType::Error);
    assert_eq!(e.metadata.response_status, ResponseStatus::Error);
    assert_eq!(kv(&e, "status"), Some("70"));
    assert_eq!(kv(&e, "error_message"), Some("no such method"));
}

#[test]
fn adding_attachments_to_a_value_response_moves_it_to_kind_4() {
    let m = decode(&common::response(5, 1, &[]));
    let mut mu = Mutation::new();
    mu.set("served-by", "metaproxy");
    let out = decode(&encode(&m, &mu));
    assert_eq!(kv(&out, "body_kind"), Some("4"));
    assert_eq!(kv(&out, "served-by"), Some("metaproxy"));
    // The value itself is untouched.
    let value_at = 17;
    let mut r = Reader::new(&out.frame()[value_at..], value_at);
    assert_eq!(
        r.read_string().unwrap().map(|s| match s {
            metaprotocol_dubbo::hessian::StrValue::Span(range) => out.frame()[range].to_vec(),
            metaprotocol_dubbo::hessian::StrValue::Joined(v) => v,
        }),
        Some(b"Hello, world".to_vec())
    );
}

#[test]
fn request_mutation_splices_the_arguments() {
    let original = common::request(3, true, &"arg".repeat(300), &[("trace", "t"), ("batchjob", "true")]);
    let m = decode(&original);
    let mut mu = Mutation::new();
    mu.remove("batchjob").set("x-routed", "batch");
    let mut out = WireBuf::new();
    DubboCodec::default().encode(&m, &mu, &mut out).unwrap();
    // header, the unchanged body up to the attachments (shared with the input), the new map.
    let chunks: Vec<_> = out.chunks_iter().cloned().collect();
    assert_eq!(chunks[0].len(), 16);
    assert_eq!(chunks[1].as_ptr(), m.frame()[16..].as_ptr());
    let back = decode(&out.take_bytes());
    assert_eq!(kv(&back, "batchjob"), None);
    assert_eq!(kv(&back, "x-routed"), Some("batch"));
    assert_eq!(kv(&back, "trace"), Some("t"));
    assert_eq!(back.metadata.body_size as usize, back.len() - 16);
}

#[test]
fn local_replies_use_dubbo_statuses_and_carry_a_message() {
    let req = decode(&common::request(11, true, "x", &[]));
    let codec = DubboCodec::default();
    for (kind, status) in [
        (ReplyKind::RouteNotFound, "60"),
        (ReplyKind::Timeout, "31"),
        (ReplyKind::OverLimit, "80"),
        (ReplyKind::BadRequest, "40"),
        (ReplyKind::ClusterNotFound, "80"),
        (ReplyKind::NoHealthyUpstream, "80"),
        (ReplyKind::Denied, "80"),
        (ReplyKind::UpstreamReset, "80"),
        (ReplyKind::InternalError, "80"),
    ] {
        // Built from the request alone: its metadata has been moved out.
        let mut light = req.clone();
        let _ = light.take_metadata();
        let reply = codec.local_reply(&light, &LocalReply::new(kind, "no route for this request")).unwrap();
        assert_eq!(reply.metadata.request_id, 11);
        assert_eq!(kv(&reply, "status"), Some(status), "{kind}");
        let msg = kv(&reply, "error_message").unwrap();
        assert!(
            msg.contains("no route for this request") && msg.contains("org.apache.dubbo.demo.DemoService/sayHello"),
            "{msg}"
        );
        // Hessian 2 serialization id, response flags.
        assert_eq!(reply.frame()[2], 0x02);
    }
}

#[test]
fn other_serializations_get_header_metadata_only() {
    let forwarding = DubboCodec::new(DubboOptions { forward_serializations: vec![6], ..DubboOptions::default() });
    let m = forwarding
        .clone()
        .decode(&mut BytesMut::from(&common::frame(0xc6, 0, 12, b"\x01\x02\x03")[..]))
        .unwrap()
        .unwrap();
    assert_eq!(m.metadata.message_type, MessageType::Request);
    assert_eq!(m.metadata.request_id, 12);
    assert_eq!(kv(&m, "serialization"), Some("6"));
    let mut mu = Mutation::new();
    mu.set("a", "b");
    assert_eq!(encode(&m, &mu), m.frame().clone(), "cannot carry attachments: forwarded unchanged");
}

#[test]
fn requests_in_serializations_not_forwarded_are_refused_with_status_40() {
    // By default only Hessian 2 passes: a provider that cannot read a frame closes the connection
    // and fails every request multiplexed on it.
    let codec = DubboCodec::default();
    let err = codec.clone().decode(&mut BytesMut::from(&common::frame(0xc6, 0, 12, b"{}")[..])).unwrap_err();
    let reply = codec.malformed_reply(&err).expect("a two-way request is answered");
    assert_eq!(reply.metadata.request_id, 12);
    assert_eq!(reply.frame().get(3), Some(&40), "{err}");
    assert!(err.to_string().contains("serialization 6"), "{err}");
    // One-way: no reply, the connection closes.
    let err = codec.clone().decode(&mut BytesMut::from(&common::frame(0x86, 0, 13, b"{}")[..])).unwrap_err();
    assert!(codec.malformed_reply(&err).is_none());
    // Responses in other serializations still pass (the provider chose them).
    assert!(codec.clone().decode(&mut BytesMut::from(&common::frame(0x06, 20, 12, b"{}")[..])).is_ok());
}

#[test]
fn frames_refused_at_their_header_are_answered() {
    let codec = DubboCodec::new(DubboOptions { max_frame_size: 1024, ..DubboOptions::default() });
    // A two-way request declaring 1 MiB: refused from the header, before its body is buffered.
    let head = [0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0x10, 0, 0];
    let err = codec.clone().decode(&mut BytesMut::from(&head[..])).unwrap_err();
    let reply = codec.malformed_reply(&err).expect("status 40 from the header alone");
    assert_eq!((reply.metadata.request_id, reply.frame().get(3)), (9, Some(&40)), "{err}");
    // An incomplete frame the proxy gives up on is answered the same way.
    let partial = [0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 100, 1, 2];
    let err = codec.refuse_partial(&partial, metaprotocol_core::CodecError::Refused("too slow".into()));
    let reply = codec.malformed_reply(&err).expect("status 40 for the refused frame");
    assert_eq!(reply.metadata.request_id, 10);
    // Fewer bytes than a header: nothing names the request.
    let err = codec.refuse_partial(&partial[..8], metaprotocol_core::CodecError::Refused("too slow".into()));
    assert!(codec.malformed_reply(&err).is_none());
}

#[test]
fn the_readonly_event_is_what_java_providers_send_on_shutdown() {
    let goaway = DubboCodec::default().goaway().expect("dubbo has one");
    // Request + event + Hessian 2, one-way, id 0, body: the string "R".
    assert_eq!(&goaway.frame()[..], &[0xda, 0xbb, 0xa2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x01, b'R'][..]);
    let m = decode(goaway.frame());
    assert_eq!(m.metadata.message_type, MessageType::Pong, "a one-way event: nothing answers it");
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    let mut bad_desc = BytesMut::new();
    for s in ["2.0.2", "S", "", "m", "Ljava/lang/String"] {
        common::s(&mut bad_desc, s);
    }
    let f = common::frame(0xc2, 0, 1, &bad_desc);
    let err = DubboCodec::default().decode(&mut BytesMut::from(&f[..])).unwrap_err();
    assert!(err.to_string().contains("invalid parameter type descriptor"), "{err}");
    let negative = [0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0];
    assert!(DubboCodec::default()
        .decode(&mut BytesMut::from(&negative[..]))
        .unwrap_err()
        .to_string()
        .contains("negative"));
    assert!(DubboCodec::default().decode(&mut BytesMut::from(&b"GET / HTTP/1.1"[..])).is_err());
}

#[test]
fn nesting_costs_no_thread_stack() {
    use metaprotocol_dubbo::hessian::{HessianError, Reader};
    use metaprotocol_dubbo::MAX_DEPTH_LIMIT;
    // Lists of one element nested MAX_DEPTH_LIMIT deep (0x79: a fixed list of length 1), then null;
    // and 100,000 levels against that limit. Both on a 64 KiB stack in a debug build: the skipper
    // walks nesting with a heap stack, so depth never reaches the thread's stack.
    let mut allowed = vec![0x79u8; MAX_DEPTH_LIMIT - 1];
    allowed.push(b'N');
    let too_deep = vec![0x79u8; 100_000];
    let (allowed, too_deep) = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || {
            let a = Reader::new(&allowed, 0).with_max_depth(MAX_DEPTH_LIMIT).skip_value().map(|_| ());
            let b = Reader::new(&too_deep, 0).with_max_depth(MAX_DEPTH_LIMIT).skip_value().map(|_| ());
            (a, b)
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(allowed.is_ok(), "{allowed:?}");
    assert!(matches!(too_deep, Err(HessianError::TooDeep { limit: MAX_DEPTH_LIMIT, .. })), "{too_deep:?}");
}
