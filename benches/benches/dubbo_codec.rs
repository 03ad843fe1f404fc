//! The Dubbo codec on a typical request: decode, passthrough encode, encode with one attachment
//! added.

// criterion_group! generates an undocumented public function; setup failures may panic.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use metaprotocol_core::{Codec, Mutation, WireBuf};
use metaprotocol_dubbo::DubboCodec;

fn dubbo(c: &mut Criterion) {
    let frame = metaprotocol_benches::dubbo_typical_request().expect("frame builds");
    let mut codec = DubboCodec::default();
    let mut group = c.benchmark_group("dubbo");
    group.throughput(Throughput::Elements(1));
    // Refilling the read buffer (a ~1.3 KiB copy, as a socket read does) is part of each iteration.
    let mut buf = BytesMut::with_capacity(frame.len() * 2);
    group.bench_function("decode_typical_request", |b| {
        b.iter(|| {
            buf.extend_from_slice(&frame);
            black_box(codec.decode(&mut buf).ok().flatten())
        })
    });
    let msg = codec.decode(&mut BytesMut::from(&frame[..])).ok().flatten().expect("decodes");
    let mut out = WireBuf::new();
    let empty = Mutation::new();
    group.bench_function("encode_passthrough", |b| {
        b.iter(|| {
            out.clear();
            let _ = codec.encode(black_box(&msg), &empty, &mut out);
            black_box(out.len())
        })
    });
    let mut add = Mutation::new();
    add.set("x-routed-by", "metaproxy");
    group.bench_function("encode_add_one_attachment", |b| {
        b.iter(|| {
            out.clear();
            let _ = codec.encode(black_box(&msg), &add, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, dubbo);
criterion_main!(benches);
