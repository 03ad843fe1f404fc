//! Feeds arbitrary bytes to the Dubbo decoder in two reads, and re-encodes what decodes, with
//! and without a mutation and an id rewrite: nothing may panic, and a passthrough must give the
//! frame back byte for byte.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use metaprotocol_core::{Codec, LocalReply, Mutation, ReplyKind, WireBuf};
use metaprotocol_dubbo::{DubboCodec, DubboOptions};

fuzz_target!(|data: &[u8]| {
    let mut codec = DubboCodec::new(DubboOptions { max_frame_size: 1 << 20, ..DubboOptions::default() });
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
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
                let _ = codec.rewrite_request_id(&mut msg, 7);
                let _ = codec.encode(&msg, &mutation, &mut out);
                let _ = codec.local_reply(&msg.metadata, &LocalReply::new(ReplyKind::Timeout, "fuzz"));
                let _ = codec.heartbeat_reply(&msg);
            }
            _ => break,
        }
    }
});
