//! Arbitrary bytes to the Thrift decoder (transport and protocol chosen by the first byte: auto or
//! fixed), fed in two reads, then re-encoded with and without a mutation and a sequence-id
//! rewrite: nothing may panic, and a passthrough gives the frame back byte for byte.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use metaprotocol_core::{Codec, LocalReply, Mutation, ReplyKind, WireBuf};
use metaprotocol_thrift::{ProtocolOption, ThriftCodec, ThriftOptions, TransportOption};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let transport = [TransportOption::Auto, TransportOption::Framed, TransportOption::Unframed, TransportOption::Header][usize::from(mode & 3)];
    let protocol = [ProtocolOption::Auto, ProtocolOption::Binary, ProtocolOption::Compact][usize::from((mode >> 2) % 3)];
    let mut codec = ThriftCodec::new(ThriftOptions {
        transport,
        protocol,
        lax_binary: mode & 0x40 != 0,
        max_frame_size: 1 << 20,
        max_depth: 32,
        max_container_size: 10_000,
    });
    let split = usize::from(mode >> 4).min(data.len());
    let mut buf = BytesMut::from(&data[..split]);
    let _ = codec.decode(&mut buf);
    buf.extend_from_slice(&data[split..]);
    let mut mutation = Mutation::new();
    mutation.set("x-fuzz", "1").remove("trace");
    for _ in 0..16 {
        match codec.decode(&mut buf) {
            Ok(Some(mut msg)) => {
                let mut out = WireBuf::new();
                codec.encode(&msg, &Mutation::new(), &mut out).expect("passthrough encode");
                assert_eq!(out.take_bytes(), *msg.frame());
                let _ = codec.encode(&msg, &mutation, &mut out);
                let _ = codec.rewrite_request_id(&mut msg, 300);
                let _ = codec.encode(&msg, &mutation, &mut out);
                let _ = codec.local_reply(&msg.metadata, &LocalReply::new(ReplyKind::Timeout, "fuzz"));
            }
            _ => break,
        }
    }
});
