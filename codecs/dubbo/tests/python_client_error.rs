//! A real Dubbo client (PyPI `python3-dubbo`) calls a server that answers with the codec's local
//! error reply: the client must raise its own Dubbo error carrying our message, not fail to parse.
//!
//! Needs the Python peers: `codecs/dubbo/fixtures/peers/install.sh` (run by `scripts/test.sh`).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use metaprotocol_core::{Codec, LocalReply, MessageType, Mutation, ReplyKind, WireBuf};
use metaprotocol_dubbo::DubboCodec;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let p = root().join("target/peers/venv/bin/python");
    assert!(p.exists(), "Python peers missing: run codecs/dubbo/fixtures/peers/install.sh (scripts/test.sh does)");
    p
}

/// Serves one connection: answers heartbeats, and answers the first request with `reply`.
fn serve_one(listener: TcpListener, reply: LocalReply) -> std::thread::JoinHandle<Option<String>> {
    std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().ok()?;
        sock.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        let mut codec = DubboCodec::default();
        let mut buf = BytesMut::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(msg) = codec.decode(&mut buf).expect("the client's bytes decode") {
                let answer = match msg.metadata.message_type {
                    MessageType::Ping => Some(codec.heartbeat_reply(&msg).unwrap()),
                    MessageType::Request => {
                        // As the proxy does: the reply is built from the request without its metadata.
                        let mut light = msg.clone();
                        let _ = light.take_metadata();
                        Some(codec.local_reply(&light, &reply).unwrap())
                    }
                    _ => None,
                };
                if let Some(answer) = answer {
                    let mut out = WireBuf::new();
                    codec.encode(&answer, &Mutation::new(), &mut out).unwrap();
                    sock.write_all(&out.take_bytes()).ok()?;
                    if msg.metadata.message_type == MessageType::Request {
                        return Some(msg.metadata.operation().to_string());
                    }
                }
            }
            let n = sock.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
}

fn call(port: u16) -> Value {
    let out = Command::new(python())
        .arg(root().join("codecs/dubbo/fixtures/peers/client_call.py"))
        .args(["--client", "python3-dubbo", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--interface", "org.apache.dubbo.demo.DemoService", "--method", "sayHello", "--arg", "metaproxy"])
        .args(["--timeout", "10"])
        .output()
        .expect("run client_call.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line =
        stdout.lines().last().unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn python3_dubbo_raises_its_dubbo_error_for_our_error_replies() {
    for (kind, status) in [
        (ReplyKind::RouteNotFound, 60),
        (ReplyKind::Timeout, 31),
        (ReplyKind::BadRequest, 40),
        (ReplyKind::OverLimit, 80),
        (ReplyKind::UpstreamReset, 80),
        (ReplyKind::InternalError, 80),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = serve_one(listener, LocalReply::new(kind, "no route matched this request"));
        let result = call(port);
        let operation = server.join().unwrap();
        eprintln!("status {status}: python3-dubbo says {result}");
        assert_eq!(operation.as_deref(), Some("org.apache.dubbo.demo.DemoService/sayHello"), "the request decoded");
        assert_eq!(result["ok"], false, "{kind}: {result}");
        let error_type = result["error_type"].as_str().unwrap();
        let message = result["message"].as_str().unwrap();
        assert_eq!(error_type, "dubbo.common.exceptions.DubboResponseException", "{kind}");
        assert!(message.contains("no route matched this request"), "{kind} (status {status}): {message}");
        assert!(message.contains(kind.as_str()), "{kind}: {message}");
    }
}
