//! Frames captured from real Dubbo peers on PyPI: requests from the `python3-dubbo` and `dubbo-py`
//! clients, responses (and heartbeats) from the `dubbo-py` provider. Recorded by
//! `fixtures/peers/capture.sh`; `fixtures/peers/captures.json` holds what each message carries, as
//! parsed independently in Python and cross-checked against what the clients sent and received.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_core::{Codec, MessageType, ResponseStatus};
use metaprotocol_dubbo::{DubboCodec, DubboLayout};
use serde_json::Value;

type Message = metaprotocol_core::Message<DubboLayout>;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/peers")
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("captures.json")).unwrap()).unwrap()
}

fn decode_file(name: &str) -> (Vec<u8>, Vec<(usize, Message)>) {
    let data = std::fs::read(dir().join(name)).unwrap();
    let mut buf = BytesMut::from(&data[..]);
    let mut codec = DubboCodec::default();
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(m) = codec.decode(&mut buf).unwrap_or_else(|e| panic!("{name} at {offset}: {e}")) {
        let len = m.len();
        out.push((offset, m));
        offset += len;
    }
    assert!(buf.is_empty(), "{name}: {} bytes left over", buf.len());
    (data, out)
}

fn as_text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The key/values after the first `skip` (codec-derived) entries, as sorted (key, value) strings
/// (the manifest's JSON objects do not keep the wire order).
fn tail_pairs(m: &Message, skip: usize) -> Vec<(String, String)> {
    let mut v: Vec<_> = m
        .metadata
        .kvs
        .iter()
        .skip(skip)
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    v.sort();
    v
}

fn expected_pairs(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Object(map) => {
            let mut v: Vec<_> = map.iter().map(|(k, v)| (k.clone(), as_text(v).expect("string attachment"))).collect();
            v.sort();
            v
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_captured_message_decodes_as_the_peers_meant_it() {
    let manifest = manifest();
    let mut total = 0;
    for file in manifest["files"].as_object().unwrap().keys() {
        let (_, got) = decode_file(file);
        let want: Vec<&Value> =
            manifest["messages"].as_array().unwrap().iter().filter(|m| m["file"] == *file).collect();
        assert_eq!(got.len(), want.len(), "{file}: message count");
        for ((offset, m), w) in got.iter().zip(want) {
            let at = format!("{file} message {} at {offset}", w["index"]);
            let md = &m.metadata;
            assert_eq!(*offset as u64, w["offset"].as_u64().unwrap(), "{at}");
            assert_eq!(m.len() as u64, w["length"].as_u64().unwrap(), "{at}");
            assert_eq!(md.request_id, w["request_id"].as_u64().unwrap(), "{at}");
            match w["kind"].as_str().unwrap() {
                "request" => {
                    let r = &w["request"];
                    let two_way = w["two_way"].as_bool().unwrap();
                    assert_eq!(
                        md.message_type,
                        if two_way { MessageType::Request } else { MessageType::Oneway },
                        "{at}"
                    );
                    let kv = |k: &str| md.kvs.get_str(k).map(str::to_string);
                    assert_eq!(kv("interface"), as_text(&r["service_path"]), "{at}");
                    assert_eq!(kv("method"), as_text(&r["method"]), "{at}");
                    assert_eq!(kv("version"), as_text(&r["service_version"]), "{at}");
                    assert_eq!(kv("dubbo_version"), as_text(&r["dubbo_version"]), "{at}");
                    assert_eq!(kv("parameter_types"), as_text(&r["parameter_types"]), "{at}");
                    assert_eq!(
                        md.operation().to_string(),
                        format!("{}/{}", r["service_path"].as_str().unwrap(), r["method"].as_str().unwrap())
                    );
                    assert_eq!(tail_pairs(m, 5), expected_pairs(&r["attachments"]), "{at}: attachments");
                }
                "response" => {
                    let r = &w["response"];
                    let status = r["status"].as_u64().unwrap();
                    assert_eq!(md.kvs.get_str("status"), Some(status.to_string().as_str()), "{at}");
                    if status == 20 {
                        let kind = r["body_kind"].as_u64().unwrap();
                        assert_eq!(md.message_type, MessageType::Response, "{at}");
                        assert_eq!(md.kvs.get_str("body_kind"), Some(kind.to_string().as_str()), "{at}");
                        let business = matches!(kind, 0 | 3);
                        assert_eq!(md.response_status == ResponseStatus::BusinessException, business, "{at}");
                        assert_eq!(tail_pairs(m, 2), expected_pairs(&r["attachments"]), "{at}: attachments");
                    } else {
                        assert_eq!(md.message_type, MessageType::Error, "{at}");
                        assert_eq!(md.response_status, ResponseStatus::Error, "{at}");
                        assert_eq!(
                            md.kvs.get_str("error_message").map(str::to_string),
                            as_text(&r["error_message"]),
                            "{at}"
                        );
                    }
                }
                "heartbeat_request" => {
                    // Two-way heartbeats want an answer; one-way ones (dubbo-py) do not.
                    let ping = m.frame()[2] & 0x40 != 0;
                    assert_eq!(md.message_type, if ping { MessageType::Ping } else { MessageType::Pong }, "{at}");
                }
                "heartbeat_response" => {
                    assert_eq!(md.message_type, MessageType::Pong, "{at}");
                }
                other => panic!("{at}: unexpected kind {other}"),
            }
            total += 1;
        }
    }
    assert_eq!(total, manifest["messages"].as_array().unwrap().len());
    assert!(total >= 60, "{total}");
}

#[test]
fn captured_heartbeats_get_the_replies_dubbo_expects() {
    let codec = DubboCodec::default();
    let (_, msgs) = decode_file("python3-dubbo.requests.bin");
    let ping = msgs.iter().map(|(_, m)| m).find(|m| m.frame()[2] == 0xe2).expect("a two-way heartbeat");
    assert_eq!(ping.metadata.message_type, MessageType::Ping);
    let pong = codec.heartbeat_reply(ping).unwrap();
    assert_eq!(pong.metadata.request_id, ping.metadata.request_id);
    assert_eq!(pong.metadata.message_type, MessageType::Pong);
    assert_eq!(pong.frame()[2], 0x22, "event response flags");
    // dubbo-py's heartbeat is one-way: a pong, which needs no reply.
    let (_, msgs) = decode_file("dubbo-py.requests.bin");
    let oneway = msgs.iter().map(|(_, m)| m).find(|m| m.frame()[2] == 0xa2).expect("a one-way heartbeat");
    assert_eq!(oneway.metadata.message_type, MessageType::Pong);
    assert!(codec.heartbeat_reply(oneway).is_err());
}

#[test]
fn every_captured_frame_passes_the_conformance_kit() {
    let manifest = manifest();
    let mut kit =
        ConformanceKit::new(DubboCodec::default).removable_key("batchjob").derived_key("body_kind").garbage_rounds(200);
    let mut frames = 0;
    for file in manifest["files"].as_object().unwrap().keys() {
        let (data, msgs) = decode_file(file);
        for (offset, m) in msgs {
            let bytes = bytes::Bytes::copy_from_slice(&data[offset..offset + m.len()]);
            let status_ok = m.metadata.kvs.get_str("status").is_none_or(|s| s == "20");
            kit = match m.metadata.message_type {
                MessageType::Ping | MessageType::Pong | MessageType::Error => kit.frame_without_kv(bytes),
                MessageType::Response if status_ok && m.metadata.kvs.get_str("body_kind") == Some("2") => {
                    kit.frame_rewritten_whole(bytes)
                }
                _ => kit.frame(bytes),
            };
            frames += 1;
        }
    }
    assert!(frames >= 60);
    kit.run();
}

#[test]
fn appending_keys_writes_the_same_frame_as_setting_them() {
    // A mutation that only adds absent keys skips reading the attachment map: the bytes must be
    // those of the general path, which reads the map and applies the mutation to it.
    let manifest = manifest();
    let mut compared = 0;
    for file in manifest["files"].as_object().unwrap().keys() {
        let (_, msgs) = decode_file(file);
        for (_, m) in msgs {
            if !matches!(m.metadata.message_type, MessageType::Request | MessageType::Response) {
                continue;
            }
            let (mut set, mut append) = (metaprotocol_core::Mutation::new(), metaprotocol_core::Mutation::new());
            set.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").set("x-é", "√");
            append.append("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").append("x-é", "√");
            let mut codec = DubboCodec::default();
            let (mut a, mut b) = (metaprotocol_core::WireBuf::new(), metaprotocol_core::WireBuf::new());
            codec.encode(&m, &set, &mut a).unwrap();
            codec.encode(&m, &append, &mut b).unwrap();
            let (a, b) = (a.take_bytes(), b.take_bytes());
            assert_eq!(a, b, "{file}: request id {}", m.metadata.request_id);
            // And the frame decodes with the new keys.
            let back = codec.decode(&mut BytesMut::from(&b[..])).unwrap().unwrap();
            if back.metadata.kvs.get_str("body_kind").is_none_or(|k| k != "2") {
                assert_eq!(back.metadata.kvs.get_str("x-é"), Some("√"), "{file}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 40, "only {compared} frames compared");
}
