//! Frames captured from real peers, decoded with the shipped configurations: pylibmc (libmemcached,
//! binary mode) and Debian's memcached; sofa-rpc-node's client and server (SOFA Bolt). Recorded
//! by `fixtures/peers/capture.sh`; `fixtures/peers/captures.json` holds what each frame carries,
//! parsed independently in Python, and what the clients saw.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_core::{Codec, MessageType, ResponseStatus};
use metaprotocol_framed::{FramedCodec, FramedLayout};
use serde_json::Value;

type Message = metaprotocol_core::Message<FramedLayout>;

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/peers")
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("captures.json")).unwrap()).unwrap()
}

/// Every message of a capture file, with its offset; the whole file must decode.
fn decode_file(codec: FramedCodec, name: &str) -> (Bytes, Vec<(usize, Message)>) {
    let data = Bytes::from(std::fs::read(dir().join(name)).unwrap());
    let mut buf = BytesMut::from(&data[..]);
    let mut codec = codec;
    let (mut out, mut offset) = (Vec::new(), 0);
    while let Some(m) = codec.decode(&mut buf).unwrap_or_else(|e| panic!("{name} at {offset}: {e}")) {
        let len = m.len();
        out.push((offset, m));
        offset += len;
    }
    assert!(buf.is_empty(), "{name}: {} bytes left over", buf.len());
    (data, out)
}

fn expected(manifest: &Value, file: &str) -> Vec<Value> {
    manifest["messages"].as_array().unwrap().iter().filter(|m| m["file"] == file).cloned().collect()
}

fn kv(m: &Message, key: &str) -> Option<String> {
    m.metadata.kvs.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn every_captured_memcached_frame_decodes_as_the_peers_meant_it() {
    let manifest = manifest();
    let mut seen = 0;
    for file in ["memcached.requests.bin", "memcached.responses.bin"] {
        let (_, got) = decode_file(memcached(), file);
        let want = expected(&manifest, file);
        assert_eq!(got.len(), want.len(), "{file}: message count");
        for ((offset, m), w) in got.iter().zip(&want) {
            let at = format!("{file} at {offset} ({})", w["opcode_name"]);
            let md = &m.metadata;
            assert_eq!(*offset as u64, w["offset"].as_u64().unwrap(), "{at}");
            assert_eq!(m.len() as u64, w["length"].as_u64().unwrap(), "{at}");
            assert_eq!(md.request_id, w["opaque"].as_u64().unwrap(), "{at}: the opaque is the request id");
            let opcode = w["opcode"].as_u64().unwrap();
            assert_eq!(kv(m, "opcode"), Some(opcode.to_string()), "{at}");
            assert_eq!(kv(m, "key").unwrap_or_default(), w["key"].as_str().unwrap(), "{at}");
            assert_eq!(md.operation().to_string(), opcode.to_string(), "{at}: method_key is the opcode");
            let code = w["vbucket_or_status"].as_u64().unwrap();
            if w["magic"] == 0x80 {
                let want = if opcode == 0x0a { MessageType::Ping } else { MessageType::Request };
                assert_eq!(md.message_type, want, "{at}");
                assert_eq!(kv(m, "vbucket"), Some(code.to_string()), "{at}");
            } else {
                let (want, status) = match (opcode, code) {
                    (0x0a, _) => (MessageType::Pong, ResponseStatus::Ok),
                    (_, 0) => (MessageType::Response, ResponseStatus::Ok),
                    (_, 1 | 2 | 5 | 6) => (MessageType::Response, ResponseStatus::BusinessException),
                    _ => (MessageType::Error, ResponseStatus::Error),
                };
                assert_eq!((md.message_type, md.response_status), (want, status), "{at}");
                assert_eq!(kv(m, "status"), Some(code.to_string()), "{at}");
            }
            assert_eq!(m.layout().pairs, None, "{at}: memcached frames carry no pairs");
            seen += 1;
        }
    }
    assert!(seen >= 100, "{seen}");
    // What the client did is in the capture: its keys, routed as the examples route them.
    let observed = &manifest["observed"]["memcached"];
    assert_eq!(observed["get_batch"]["result"], "queued");
    assert_eq!(observed["incr"]["result"], 15);
    let keys: Vec<&str> = manifest["messages"].as_array().unwrap().iter().filter_map(|m| m["key"].as_str()).collect();
    for k in ["user:1", "batch:job-1", "counter", "big"] {
        assert!(keys.contains(&k), "{k}");
    }
}

#[test]
fn every_captured_bolt_frame_decodes_as_the_peers_meant_it() {
    let manifest = manifest();
    let mut seen = 0;
    for file in ["bolt.requests.bin", "bolt.responses.bin"] {
        let (_, got) = decode_file(bolt(), file);
        let want = expected(&manifest, file);
        assert_eq!(got.len(), want.len(), "{file}: message count");
        for ((offset, m), w) in got.iter().zip(&want) {
            let at = format!("{file} at {offset}");
            let md = &m.metadata;
            assert_eq!(*offset as u64, w["offset"].as_u64().unwrap(), "{at}");
            assert_eq!(m.len() as u64, w["length"].as_u64().unwrap(), "{at}");
            assert_eq!(md.request_id, w["request_id"].as_u64().unwrap(), "{at}");
            let heartbeat = w["cmdcode"] == 0;
            let want = match (w["type"].as_u64().unwrap(), heartbeat, w["status"].as_u64()) {
                (1, true, _) => MessageType::Ping,
                (0, true, _) => MessageType::Pong,
                (1, false, _) => MessageType::Request,
                (2, false, _) => MessageType::Oneway,
                (0, false, Some(0)) => MessageType::Response,
                (0, false, _) => MessageType::Error,
                other => panic!("{at}: {other:?}"),
            };
            assert_eq!(md.message_type, want, "{at}");
            assert_eq!(kv(m, "codec"), Some(w["codec"].to_string()), "{at}");
            assert_eq!(kv(m, "class").unwrap_or_default(), w["class"].as_str().unwrap(), "{at}");
            // The header entries, in order, after the fields and the class.
            let headers: Vec<(String, String)> = m
                .metadata
                .kvs
                .iter()
                .skip(2)
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            let want_headers: Vec<(String, String)> = w["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap_or_default().to_string()))
                .collect();
            assert_eq!(headers, want_headers, "{at}");
            if let Some(service) = want_headers.iter().find(|(k, _)| k == "service") {
                assert_eq!(md.operation().to_string(), service.1, "{at}: service_key");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, manifest["messages"].as_array().unwrap().iter().filter(|m| m["proto"] == 1).count());
    assert!(seen >= 12, "{seen}");
    let observed = &manifest["observed"]["bolt"];
    assert_eq!(observed["hello"]["result"], "hello metaproxy from A");
    assert_eq!(observed["heartbeat"]["result"], "acked");
}

#[test]
fn every_captured_frame_passes_the_conformance_kit() {
    let mut frames = 0;
    let mut mc = ConformanceKit::new(memcached).garbage_rounds(200);
    for file in ["memcached.requests.bin", "memcached.responses.bin"] {
        let (data, msgs) = decode_file(memcached(), file);
        for (offset, m) in msgs {
            mc = mc.frame_without_kv(data.slice(offset..offset + m.len()));
            frames += 1;
        }
    }
    mc.run();
    let mut kit = ConformanceKit::new(bolt).removable_key("tenant").garbage_rounds(200);
    for file in ["bolt.requests.bin", "bolt.responses.bin"] {
        let (data, msgs) = decode_file(bolt(), file);
        for (offset, m) in msgs {
            let bytes = data.slice(offset..offset + m.len());
            kit = if m.metadata.message_type.is_heartbeat() { kit.frame_without_kv(bytes) } else { kit.frame(bytes) };
            frames += 1;
        }
    }
    kit.run();
    assert!(frames >= 170, "{frames}");
}
