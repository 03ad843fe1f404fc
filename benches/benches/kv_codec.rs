//! The template codec: decode, passthrough encode, and encode with one key added.

// criterion_group! generates an undocumented public function; setup failures may panic.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kv_protocol::{FrameBuilder, KvCodec};
use metaprotocol_core::{Codec, Mutation, WireBuf};

fn kv(c: &mut Criterion) {
    let frame = FrameBuilder::request(7, "org.demo.UserService", "getUserProfile")
        .header("version", "1.0.0")
        .header("traceId", "4bf92f3577b34da6a3ce929d0e0e4736")
        .header("batchjob", "false")
        .header("tenant", "acme")
        .body(vec![b'x'; 1024])
        .build()
        .expect("frame builds");
    let mut codec = KvCodec::default();
    let mut group = c.benchmark_group("kv");
    group.throughput(Throughput::Elements(1));
    // Refilling the read buffer is part of each iteration, as it is on a socket.
    let mut buf = BytesMut::with_capacity(frame.len() * 2);
    group.bench_function("decode_1k_request", |b| {
        b.iter(|| {
            buf.extend_from_slice(&frame);
            black_box(codec.decode(&mut buf).ok().flatten())
        })
    });
    let mut src = BytesMut::from(&frame[..]);
    let msg = codec.decode(&mut src).ok().flatten().expect("decodes");
    let empty = Mutation::new();
    // One output queue reused across messages, as a connection's writer does.
    let mut out = WireBuf::new();
    group.bench_function("encode_passthrough", |b| {
        b.iter(|| {
            out.clear();
            let _ = codec.encode(black_box(&msg), &empty, &mut out);
            black_box(out.len())
        })
    });
    let mut add = Mutation::new();
    add.set("x-routed-by", "metaproxy");
    group.bench_function("encode_add_one_key", |b| {
        b.iter(|| {
            out.clear();
            let _ = codec.encode(black_box(&msg), &add, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, kv);
criterion_main!(benches);
