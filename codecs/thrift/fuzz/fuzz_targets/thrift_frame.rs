//! Arbitrary bytes to the Thrift decoder (transport and protocol chosen by the first byte: auto or
//! fixed), fed in two reads, then re-encoded with and without a mutation and a sequence-id
//! rewrite, and answered with a local reply (and a malformed reply after a decode error): nothing
//! may panic, a passthrough gives the frame back byte for byte, and every reply built decodes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use metaprotocol_core::{Codec, LocalReply, Mutation, ReplyKind, WireBuf};
use metaprotocol_thrift::{ProtocolOption, ThriftCodec, ThriftOptions, TransportOption};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let transport =
        [TransportOption::Auto, TransportOption::Framed, TransportOption::Unframed, TransportOption::Header]
            [usize::from(mode & 3)];
    let protocol =
        [ProtocolOption::Auto, ProtocolOption::Binary, ProtocolOption::Compact][usize::from((mode >> 2) % 3)];
    let options = ThriftOptions {
        transport,
        protocol,
        lax_binary: mode & 0x40 != 0,
        max_frame_size: 1 << 20,
        max_depth: 32,
        max_container_size: 10_000,
    };
    let mut codec = ThriftCodec::new(options).expect("valid options");
    let split = usize::from(mode >> 4).min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    if let Err(e) = codec.decode(&mut buf) {
        check_malformed(&mut codec, &e);
        return;
    }
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
                let _ = codec.rewrite_request_id(&mut msg, 300);
                let _ = codec.encode(&msg, &mutation, &mut out);
                let _ = msg.take_metadata();
                if let Ok(reply) = codec.local_reply(&msg, &LocalReply::new(ReplyKind::UpstreamReset, "fuzz")) {
                    check_reply(&reply);
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
fn check_malformed(codec: &mut ThriftCodec, error: &metaprotocol_core::CodecError) {
    if let Some(reply) = codec.malformed_reply(error) {
        let metaprotocol_core::CodecError::BadRequest { request_id, .. } = error else {
            panic!("a reply to an error that names no request: {error}")
        };
        assert_eq!(reply.metadata.request_id, *request_id);
        check_reply(&reply);
    }
}

/// A reply decodes, with a fresh codec, to the message it was built as.
fn check_reply(reply: &metaprotocol_core::Message<metaprotocol_thrift::ThriftLayout>) {
    let mut buf = BytesMut::from(&reply.frame()[..]);
    let decoded = ThriftCodec::default().decode(&mut buf).expect("a reply decodes").expect("a whole reply");
    assert!(buf.is_empty());
    assert_eq!(&decoded, reply);
}
