//! The replies the shipped configurations build, byte by byte: memcached error responses and noop
//! answers, Bolt error responses (Hessian and Protobuf) and heartbeat acks, and the answer to a
//! request whose sections do not parse.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::BytesMut;
use common::*;
use metaprotocol_core::{Codec, CodecError, LocalReply, MessageType, Mutation, ReplyKind, ResponseStatus, WireBuf};
use metaprotocol_framed::{FramedCodec, FramedLayout};

type Message = metaprotocol_core::Message<FramedLayout>;

fn decode(codec: &FramedCodec, frame: &[u8]) -> Message {
    codec.clone().decode(&mut BytesMut::from(frame)).unwrap().unwrap()
}

fn wire(codec: &FramedCodec, m: &Message) -> Vec<u8> {
    let mut out = WireBuf::new();
    codec.clone().encode(m, &Mutation::new(), &mut out).unwrap();
    out.take_bytes().to_vec()
}

#[test]
fn memcached_error_replies_answer_the_opcode_with_a_status_and_a_text() {
    let codec = memcached();
    let mut req = decode(&codec, &mc_set(0xdead_beef, "user:1", b"alice"));
    let _ = req.take_metadata();
    for (kind, status) in [
        (ReplyKind::Timeout, 0x86u16),
        (ReplyKind::OverLimit, 0x85),
        (ReplyKind::Denied, 0x83),
        (ReplyKind::BadRequest, 0x04),
        (ReplyKind::RouteNotFound, 0x84),
        (ReplyKind::InternalError, 0x84),
    ] {
        let reply = codec.local_reply(&req, &LocalReply::new(kind, "why")).unwrap();
        let text = format!("metaproxy {kind}: why");
        assert_eq!(
            wire(&codec, &reply),
            mc_response(0x01, status, 0xdead_beef, b"", b"", text.as_bytes())
                .iter()
                .enumerate()
                .map(|(i, b)| if (16..24).contains(&i) { 0 } else { *b })
                .collect::<Vec<u8>>(),
            "{kind}"
        );
        assert_eq!(reply.metadata.message_type, MessageType::Error, "{kind}");
    }
}

#[test]
fn memcached_noop_is_answered_by_the_proxy() {
    let codec = memcached();
    let ping = decode(&codec, &mc(0x80, 0x0a, 0, 99, 0, b"", b"", b""));
    assert_eq!(ping.metadata.message_type, MessageType::Ping);
    let pong = codec.heartbeat_reply(&ping).unwrap();
    assert_eq!(wire(&codec, &pong), mc(0x81, 0x0a, 0, 99, 0, b"", b"", b"").to_vec());
    let get = decode(&codec, &mc_get(1, "k"));
    assert!(codec.heartbeat_reply(&get).is_err(), "only pings are answered");
}

#[test]
fn bolt_error_replies_carry_the_text_as_the_client_reads_it() {
    let codec = bolt();
    let mut req = decode(&codec, &bolt_typical_request(41));
    let _ = req.take_metadata();
    let reply = codec.local_reply(&req, &LocalReply::new(ReplyKind::RouteNotFound, "no route")).unwrap();
    let f = wire(&codec, &reply);
    assert_eq!(
        &f[..12],
        &[1, 0, 0, 2, 1, 0, 0, 0, 41, 1, 0, 6],
        "proto, response, RPC response, ver2, id, codec, NO_PROCESSOR"
    );
    assert_eq!(&f[12..16], &[0, 0, 0, 0], "no class, no header");
    let content = &f[20..];
    assert_eq!(u32::from_be_bytes(f[16..20].try_into().unwrap()) as usize, content.len());
    let text = b"metaproxy route_not_found: no route";
    let class = b"com.alipay.remoting.rpc.exception.RpcServerException";
    assert_eq!(&content[..3], &[0x4f, 0xc8, 0x34]);
    assert_eq!(&content[3..3 + class.len()], class);
    let tail = [&[b'S', 0, text.len() as u8][..], text, b"NN"].concat();
    assert!(content.ends_with(&tail), "{content:?}");
    assert_eq!(
        (reply.metadata.message_type, reply.metadata.response_status),
        (MessageType::Error, ResponseStatus::Error)
    );
    // A Protobuf request (codec 11) gets the bare text.
    let mut proto = decode(&codec, &bolt_proto_request(42));
    let _ = proto.take_metadata();
    let reply = codec.local_reply(&proto, &LocalReply::new(ReplyKind::Timeout, "slow")).unwrap();
    let f = wire(&codec, &reply);
    assert_eq!((f[9], f[11]), (11, 7), "codec copied, TIMEOUT");
    assert_eq!(&f[20..], b"metaproxy timeout: slow");
}

#[test]
fn bolt_heartbeats_get_an_ack() {
    let codec = bolt();
    let ping = decode(&codec, &bolt_request(1, 0, 4242, 1, "", b"", b""));
    assert_eq!(ping.metadata.message_type, MessageType::Ping);
    let ack = codec.heartbeat_reply(&ping).unwrap();
    assert_eq!(wire(&codec, &ack), bolt_response(0, 4242, 1, 0, "", b"", b"").to_vec());
}

#[test]
fn a_request_whose_sections_do_not_parse_gets_a_bad_request_reply() {
    let codec = bolt();
    // A header entry that claims more bytes than its block holds.
    let mut headers = bolt_headers(&[("service", "x")]);
    headers[3] = 200;
    let frame = bolt_request(1, 1, 7, 1, REQUEST_CLASS, &headers, b"body");
    let err = codec.clone().decode(&mut BytesMut::from(&frame[..])).unwrap_err();
    let CodecError::BadRequest { request_id, frame: carried, .. } = &err else { panic!("{err}") };
    assert_eq!((*request_id, carried.len()), (7, frame.len()));
    let reply = codec.malformed_reply(&err).unwrap();
    let f = wire(&codec, &reply);
    assert_eq!((f[8], f[11]), (7, 9), "id 7, CODEC_EXCEPTION");
    assert!(String::from_utf8_lossy(&f).contains("metaproxy bad_request: malformed message"));
    // A one-way request is not answered; nor is a response.
    let oneway = bolt_request(2, 1, 8, 1, REQUEST_CLASS, &headers, b"body");
    let err = codec.clone().decode(&mut BytesMut::from(&oneway[..])).unwrap_err();
    assert!(codec.malformed_reply(&err).is_none());
    let err = codec.clone().decode(&mut BytesMut::from(&[2u8, 0, 0][..])).unwrap_err();
    assert!(codec.malformed_reply(&err).is_none(), "{err}");
}

#[test]
fn a_mutation_rewrites_the_bolt_header_and_its_length() {
    let codec = bolt();
    let headers = bolt_headers(&[("service", "com.example.demo.Greeter:1.0"), ("trace", "t-1")]);
    let req = decode(&codec, &bolt_request(1, 1, 3, 1, REQUEST_CLASS, &headers, b"body"));
    let mut mu = Mutation::new();
    mu.set("x-routed-by", "metaproxy").remove("trace");
    let mut out = WireBuf::new();
    codec.clone().encode(&req, &mu, &mut out).unwrap();
    let expected = bolt_headers(&[("service", "com.example.demo.Greeter:1.0"), ("x-routed-by", "metaproxy")]);
    assert_eq!(out.take_bytes(), bolt_request(1, 1, 3, 1, REQUEST_CLASS, &expected, b"body"));
    // memcached frames have no pairs: a mutation leaves them as they are.
    let mc_codec = memcached();
    let get = decode(&mc_codec, &mc_get(5, "k"));
    let mut out = WireBuf::new();
    mc_codec.clone().encode(&get, &mu, &mut out).unwrap();
    assert_eq!(out.take_bytes(), mc_get(5, "k"));
}
