//! Each codec on a typical request: decode, passthrough encode, and encode with one key added.
//! Run one protocol with `cargo bench -p metaprotocol-benches --bench codecs -- dubbo` (or
//! `-- framed` for the framed codec on SOFA Bolt, configured by `examples/configs/bolt.yaml`).

// criterion_group! generates an undocumented public function; setup failures may panic.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kv_protocol::{FrameBuilder, KvCodec};
use metaprotocol_core::{Codec, Mutation, WireBuf};
use metaprotocol_dubbo::DubboCodec;

/// The three measurements for one codec and one frame.
fn bench_codec<C: Codec>(c: &mut Criterion, name: &str, mut codec: C, frame: Bytes) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    // Refilling the read buffer (a copy, as a socket read does) is part of each decode.
    let mut buf = BytesMut::with_capacity(frame.len() * 2);
    group.bench_function("decode", |b| {
        b.iter(|| {
            buf.extend_from_slice(&frame);
            black_box(codec.decode(&mut buf).ok().flatten())
        })
    });
    let msg = codec.decode(&mut BytesMut::from(&frame[..])).ok().flatten().expect("the frame decodes");
    // One output queue reused across messages, as a connection's writer does.
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
    group.bench_function("encode_add_one_key", |b| {
        b.iter(|| {
            out.clear();
            let _ = codec.encode(black_box(&msg), &add, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn codecs(c: &mut Criterion) {
    let dubbo = metaprotocol_benches::dubbo_typical_request().expect("frame builds");
    bench_codec(c, "dubbo_typical_request", DubboCodec::default(), dubbo);
    let response =
        metaprotocol_dubbo::build::value_response(1, &"y".repeat(1024), &[("served-by", "p1")]).expect("frame builds");
    bench_codec(c, "dubbo_value_response", DubboCodec::default(), response);
    let kv = FrameBuilder::request(7, "org.demo.UserService", "getUserProfile")
        .header("version", "1.0.0")
        .header("traceId", "4bf92f3577b34da6a3ce929d0e0e4736")
        .header("batchjob", "false")
        .header("tenant", "acme")
        .body(vec![b'x'; 1024])
        .build()
        .expect("frame builds");
    bench_codec(c, "kv_1k_request", KvCodec::default(), kv);
    use metaprotocol_thrift::protocol::Protocol;
    use metaprotocol_thrift::transport::Transport;
    for (t, p, name) in [
        (Transport::Framed, Protocol::Binary, "thrift_framed_binary"),
        (Transport::Framed, Protocol::Compact, "thrift_framed_compact"),
        (Transport::Unframed, Protocol::Binary, "thrift_unframed_binary"),
        (Transport::Unframed, Protocol::Compact, "thrift_unframed_compact"),
        (Transport::Header, Protocol::Binary, "thrift_header_binary"),
        (Transport::Header, Protocol::Compact, "thrift_header_compact"),
    ] {
        let frame = metaprotocol_benches::thrift_typical_call(t, p).expect("frame builds");
        bench_codec(c, name, metaprotocol_thrift::ThriftCodec::default(), frame);
    }
}

/// A 1 KiB SOFA Bolt request as sofa-rpc-node writes one: the 22-byte header, the request class,
/// the `service` header entry, 1 KiB of content.
fn bolt_1k_request() -> Bytes {
    let class = b"com.alipay.sofa.rpc.core.request.SofaRequest";
    let (key, value) = (&b"service"[..], &b"com.example.demo.Greeter:1.0"[..]);
    let mut header = Vec::new();
    for part in [key, value] {
        header.extend_from_slice(&(part.len() as u32).to_be_bytes());
        header.extend_from_slice(part);
    }
    let content = vec![b'x'; 1024];
    let mut b = BytesMut::new();
    b.extend_from_slice(&[1, 1, 0, 1, 1]); // proto, request, cmdcode RPC request, ver2
    b.extend_from_slice(&7u32.to_be_bytes()); // request id
    b.extend_from_slice(&[1]); // codec: Hessian 2
    b.extend_from_slice(&3000u32.to_be_bytes()); // timeout
    b.extend_from_slice(&(class.len() as u16).to_be_bytes());
    b.extend_from_slice(&(header.len() as u16).to_be_bytes());
    b.extend_from_slice(&(content.len() as u32).to_be_bytes());
    b.extend_from_slice(class);
    b.extend_from_slice(&header);
    b.extend_from_slice(&content);
    b.freeze()
}

/// The framed codec as `examples/configs/bolt.yaml` configures it.
fn framed_bolt() -> metaprotocol_framed::FramedCodec {
    use metaprotocol_core::CodecFactory;
    let text = include_str!("../../examples/configs/bolt.yaml");
    let config: serde_json::Value = serde_saphyr::from_str(text).expect("bolt.yaml parses");
    let options = config.pointer("/listeners/0/codec").expect("bolt.yaml has a codec block");
    metaprotocol_framed::FramedCodecFactory.configure(options).expect("bolt.yaml is valid")
}

fn framed(c: &mut Criterion) {
    bench_codec(c, "framed_bolt_1k_request", framed_bolt(), bolt_1k_request());
}

criterion_group!(benches, codecs, framed);
criterion_main!(benches);
