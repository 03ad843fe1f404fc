//! Shared by the tests: the shipped configurations, and Bolt and memcached frames built by hand
//! from the protocols' documentation (not by the codec under test).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::too_many_arguments)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::CodecFactory;
use metaprotocol_framed::{FramedCodec, FramedCodecFactory};
use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `codec:` block of the first listener of `examples/configs/NAME`, as scripts outside the
/// project take it.
pub fn shipped_options(name: &str) -> Value {
    let text = std::fs::read_to_string(root().join("examples/configs").join(name)).unwrap();
    let config: Value = serde_saphyr::from_str(&text).unwrap();
    config["listeners"][0]["codec"].clone()
}

/// A codec configured from `examples/configs/NAME`.
pub fn shipped(name: &str) -> FramedCodec {
    FramedCodecFactory.configure(&shipped_options(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The codec of `examples/configs/memcached-binary.yaml` (configured once, then cloned: the kit
/// makes a fresh codec for every check).
pub fn memcached() -> FramedCodec {
    static CODEC: OnceLock<FramedCodec> = OnceLock::new();
    CODEC.get_or_init(|| shipped("memcached-binary.yaml")).clone()
}

/// The codec of `examples/configs/bolt.yaml`.
pub fn bolt() -> FramedCodec {
    static CODEC: OnceLock<FramedCodec> = OnceLock::new();
    CODEC.get_or_init(|| shipped("bolt.yaml")).clone()
}

/// A memcached binary protocol frame.
pub fn mc(
    magic: u8,
    opcode: u8,
    status_or_vbucket: u16,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(magic);
    b.put_u8(opcode);
    b.put_u16(key.len() as u16);
    b.put_u8(extras.len() as u8);
    b.put_u8(0);
    b.put_u16(status_or_vbucket);
    b.put_u32((extras.len() + key.len() + value.len()) as u32);
    b.put_u32(opaque);
    b.put_u64(cas);
    b.put_slice(extras);
    b.put_slice(key);
    b.put_slice(value);
    b.freeze()
}

pub fn mc_get(opaque: u32, key: &str) -> Bytes {
    mc(0x80, 0x00, 0, opaque, 0, b"", key.as_bytes(), b"")
}

pub fn mc_set(opaque: u32, key: &str, value: &[u8]) -> Bytes {
    mc(0x80, 0x01, 0, opaque, 0, &[0, 0, 0, 7, 0, 0, 0, 0], key.as_bytes(), value)
}

pub fn mc_response(opcode: u8, status: u16, opaque: u32, extras: &[u8], key: &[u8], value: &[u8]) -> Bytes {
    mc(0x81, opcode, status, opaque, 42, extras, key, value)
}

/// Bolt's key/value header map: each key and value preceded by its 32-bit length.
pub fn bolt_headers(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in pairs {
        b.extend_from_slice(&(k.len() as u32).to_be_bytes());
        b.extend_from_slice(k.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

pub const REQUEST_CLASS: &str = "com.alipay.sofa.rpc.core.request.SofaRequest";
pub const RESPONSE_CLASS: &str = "com.alipay.sofa.rpc.core.response.SofaResponse";

/// A Bolt v1 request (`kind` 1 two-way, 2 one-way; `cmd` 1 RPC, 0 heartbeat).
pub fn bolt_request(kind: u8, cmd: u16, id: u32, codec: u8, class: &str, headers: &[u8], content: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(1);
    b.put_u8(kind);
    b.put_u16(cmd);
    b.put_u8(1);
    b.put_u32(id);
    b.put_u8(codec);
    b.put_u32(3000);
    b.put_u16(class.len() as u16);
    b.put_u16(headers.len() as u16);
    b.put_u32(content.len() as u32);
    b.put_slice(class.as_bytes());
    b.put_slice(headers);
    b.put_slice(content);
    b.freeze()
}

/// A Bolt v1 response (`cmd` 2 RPC, 0 heartbeat ack).
pub fn bolt_response(cmd: u16, id: u32, codec: u8, status: u16, class: &str, headers: &[u8], content: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(1);
    b.put_u8(0);
    b.put_u16(cmd);
    b.put_u8(1);
    b.put_u32(id);
    b.put_u8(codec);
    b.put_u16(status);
    b.put_u16(class.len() as u16);
    b.put_u16(headers.len() as u16);
    b.put_u32(content.len() as u32);
    b.put_slice(class.as_bytes());
    b.put_slice(headers);
    b.put_slice(content);
    b.freeze()
}

/// A typical Hessian request: the `service` header and a 1 KiB body.
pub fn bolt_typical_request(id: u32) -> Bytes {
    let headers = bolt_headers(&[("service", "com.example.demo.Greeter:1.0")]);
    bolt_request(1, 1, id, 1, REQUEST_CLASS, &headers, &vec![b'x'; 1024])
}

/// A Protobuf request with the headers sofa-rpc-node writes for it.
pub fn bolt_proto_request(id: u32) -> Bytes {
    let headers = bolt_headers(&[
        ("service", "com.example.demo.ProtoEcho:1.0"),
        ("sofa_head_method_name", "echo"),
        ("sofa_head_target_app", ""),
        ("sofa_head_target_service", "com.example.demo.ProtoEcho:1.0"),
        ("tenant", "gold"),
    ]);
    bolt_request(1, 1, id, 11, REQUEST_CLASS, &headers, b"\x0a\x02hi")
}
