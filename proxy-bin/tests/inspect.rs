//! `metaproxy inspect`, driven as a user runs it: the real binary on capture files.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn metaproxy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_metaproxy")).args(args).output().expect("run metaproxy")
}

fn capture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../codecs/dubbo/fixtures/peers/python3-dubbo.requests.bin")
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The length of the Dubbo frame at the start of `bytes`.
fn frame_len(bytes: &[u8]) -> usize {
    16 + u32::from_be_bytes(bytes[12..16].try_into().unwrap()) as usize
}

#[test]
fn prints_one_json_object_per_message() {
    let out = metaproxy(&["inspect", "--protocol", "dubbo", capture().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() > 3);
    let first = &lines[0];
    assert_eq!(first["offset"], 0);
    assert_eq!(first["message_type"], "request");
    assert_eq!(first["request_id"], 0);
    assert_eq!(first["operation"], "org.apache.dubbo.demo.DemoService/sayHello");
    assert_eq!(first["kvs"]["interface"], "org.apache.dubbo.demo.DemoService");
    assert_eq!(first["header_size"], 16);
    assert_eq!(lines[1]["offset"], first["size"]);
    assert_eq!(lines[1]["kvs"]["batchjob"], "true");
    let total: u64 = lines.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    assert_eq!(total, std::fs::metadata(capture()).unwrap().len());
}

#[test]
fn a_corrupt_message_is_reported_at_its_byte_offset() {
    let mut bytes = std::fs::read(capture()).unwrap();
    let first_len = frame_len(&bytes);
    bytes[first_len] = 0x00; // the second message's first magic byte
    let p = temp_file("corrupt.bin", &bytes);
    let out = metaproxy(&["inspect", "-p", "dubbo", p.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1, "the first message still prints");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("byte offset {first_len}: malformed message at byte 0: bad magic")), "{err}");
}

#[test]
fn a_truncated_capture_names_where_the_last_message_starts() {
    let bytes = std::fs::read(capture()).unwrap();
    let mut last = 0;
    while last + frame_len(&bytes[last..]) < bytes.len() {
        last += frame_len(&bytes[last..]);
    }
    let p = temp_file("truncated.bin", &bytes[..bytes.len() - 3]);
    let out = metaproxy(&["inspect", "-p", "dubbo", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let left = bytes.len() - 3 - last;
    assert!(
        err.contains(&format!("byte offset {last}: the file ends inside a message ({left} bytes left undecoded)")),
        "{err}"
    );
}

#[test]
fn codec_options_apply_and_are_validated() {
    let c = capture();
    let out =
        metaproxy(&["inspect", "-p", "dubbo", "--codec-options", r#"{"max_frame_size": 32}"#, c.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds the maximum frame size of 32 bytes"));
    let out = metaproxy(&["inspect", "-p", "dubbo", "--codec-options", r#"{"max_frame": 32}"#, c.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `max_frame`"));
}

#[test]
fn an_unknown_protocol_lists_the_registered_ones() {
    let out = metaproxy(&["inspect", "-p", "nope", capture().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown codec `nope` (registered: dubbo, framed, thrift)"));
}

#[test]
fn plugins_lists_codecs_and_filters() {
    let out = metaproxy(&["plugins"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("protocols: dubbo, framed, thrift"), "{text}");
    assert!(text.contains("filters: deny, local_ratelimit"), "{text}");
}

#[test]
fn inspects_real_dubbo_captures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../codecs/dubbo/fixtures/peers");
    let requests = dir.join("python3-dubbo.requests.bin");
    let responses = dir.join("dubbo-py.responses.bin");
    let out = metaproxy(&["inspect", "--protocol", "dubbo", requests.to_str().unwrap(), responses.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first = &lines[0];
    assert_eq!(first["message_type"], "request");
    assert_eq!(first["operation"], "org.apache.dubbo.demo.DemoService/sayHello");
    assert_eq!(first["kvs"]["dubbo_version"], "2.4.10");
    assert!(lines.iter().any(|l| l["kvs"]["batchjob"] == "true"));
    assert!(lines.iter().any(|l| l["message_type"] == "ping"));
    assert!(lines.iter().any(|l| l["message_type"] == "error" && l["kvs"]["status"] == "60"));
}

#[test]
fn inspects_thrift_captures_in_every_transport() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../codecs/thrift/fixtures/captures");
    for name in ["framed-binary", "buffered-compact", "header-compact"] {
        let file = dir.join(format!("{name}.requests.bin"));
        let out = metaproxy(&["inspect", "--protocol", "thrift", file.to_str().unwrap()]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["kvs"]["method"], "sayHello", "{name}");
        assert!(lines.iter().any(|l| l["message_type"] == "oneway"), "{name}");
        if name.starts_with("header") {
            assert!(lines.iter().any(|l| l["kvs"]["x-tag"] == "blue"), "{name}");
        }
    }
}
