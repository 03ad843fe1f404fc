//! Feeds arbitrary bytes to the framed codec, configured by one of the shipped configurations
//! (`examples/configs/memcached-binary.yaml` or `bolt.yaml`, picked by the first byte), in two
//! reads (the second byte says where to split), and re-encodes what decodes, with and without a
//! mutation and an id rewrite: nothing may panic, and a passthrough must give the frame back byte
//! for byte. Every reply the codec builds (local replies to requests, acks to pings, answers to
//! bad requests) must encode and decode back to itself.
#![no_main]

use std::sync::OnceLock;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use metaprotocol_core::{Codec, CodecFactory, LocalReply, Message, MessageType, Mutation, ReplyKind, WireBuf};
use metaprotocol_framed::{FramedCodec, FramedCodecFactory, FramedLayout};

const CONFIGS: [&str; 2] = [
    include_str!("../../../../examples/configs/memcached-binary.yaml"),
    include_str!("../../../../examples/configs/bolt.yaml"),
];

/// The codec of the first listener of each shipped configuration.
fn codecs() -> &'static [FramedCodec; 2] {
    static CODECS: OnceLock<[FramedCodec; 2]> = OnceLock::new();
    CODECS.get_or_init(|| {
        CONFIGS.map(|text| {
            let config: serde_json::Value = serde_saphyr::from_str(text).expect("a shipped configuration parses");
            FramedCodecFactory.configure(&config["listeners"][0]["codec"]).expect("a shipped configuration is valid")
        })
    })
}

/// A reply as built must be what its bytes decode to.
fn check_reply(codec: &mut FramedCodec, reply: &Message<FramedLayout>) {
    let mut out = WireBuf::new();
    codec.encode(reply, &Mutation::new(), &mut out).expect("a reply encodes");
    let mut buf = BytesMut::from(&out.take_bytes()[..]);
    let back = codec.clone().decode(&mut buf).expect("a reply decodes").expect("a whole reply");
    assert!(buf.is_empty());
    assert_eq!(&back, reply, "a reply as built differs from the reply as decoded");
}

fuzz_target!(|data: &[u8]| {
    let (Some(&pick), Some(&split)) = (data.first(), data.get(1)) else { return };
    let mut codec = codecs()[usize::from(pick & 1)].clone();
    let data = &data[2..];
    let split = usize::from(split).min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    let _ = codec.decode(&mut buf);
    buf.extend_from_slice(&data[split..]);
    let mut mutation = Mutation::new();
    mutation.set("x-fuzz", "1").remove("service");
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
                if codec.encode(&msg, &mutation, &mut out).is_ok() {
                    // A mutated frame decodes.
                    let mut again = BytesMut::from(&out.take_bytes()[..]);
                    let m = codec.clone().decode(&mut again).expect("a mutated frame decodes").expect("whole");
                    assert!(again.is_empty());
                    assert_eq!(m.metadata.request_id, msg.metadata.request_id);
                }
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
                    let pong = codec.heartbeat_reply(&msg).expect("a ping gets an answer");
                    check_reply(&mut codec, &pong);
                }
            }
            Ok(None) => break,
            Err(e) => {
                if let Some(reply) = codec.malformed_reply(&e) {
                    assert!(matches!(&e, metaprotocol_core::CodecError::BadRequest { request_id, .. }
                        if *request_id == reply.metadata.request_id));
                    check_reply(&mut codec, &reply);
                }
                break;
            }
        }
    }
});
