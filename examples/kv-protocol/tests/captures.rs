//! The committed capture `captures/session.kv` (client-to-server bytes of one kv connection) is
//! generated here; the test fails when the file and the generator disagree.
//! Regenerate with `UPDATE_CAPTURES=1 cargo test -p metaprotocol-example-kv --test captures`.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use bytes::BytesMut;
use kv_protocol::{FrameBuilder, KvCodec, KvType};
use metaprotocol_core::{Codec, MessageType};

fn session() -> Vec<u8> {
    let frames = [
        FrameBuilder::request(1, "org.demo.UserService", "getUser").header("trace", "a1").body("{\"id\":7}"),
        FrameBuilder::request(2, "org.demo.ReportService", "export").header("batchjob", "true").body("{\"month\":11}"),
        FrameBuilder::new(KvType::Oneway, 3).header("service", "org.demo.AuditLog").header("method", "append"),
        FrameBuilder::new(KvType::Ping, 4),
    ];
    frames.iter().flat_map(|f| f.build().unwrap().to_vec()).collect()
}

#[test]
fn session_capture_matches_its_generator() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/session.kv");
    let want = session();
    if std::env::var_os("UPDATE_CAPTURES").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got, want, "captures/session.kv is stale: run with UPDATE_CAPTURES=1");

    let mut codec = KvCodec::default();
    let mut buf = BytesMut::from(&got[..]);
    let mut types = Vec::new();
    while let Some(m) = codec.decode(&mut buf).unwrap() {
        types.push(m.metadata.message_type);
    }
    assert!(buf.is_empty());
    assert_eq!(types, [MessageType::Request, MessageType::Request, MessageType::Oneway, MessageType::Ping]);
}
