//! SOFA Bolt through the `metaproxy` binary, configured by `examples/configs/bolt.yaml` alone
//! (the `framed` codec, no Rust code): sofa-rpc-node's RpcClient calls two sofa-rpc-node
//! RpcServers. Routed on the `service` header (batch services to provider B) and on another
//! header entry (`tenant: gold`, which sofa-rpc-node writes for a Protobuf call's requestProps);
//! the provider's own exception passes through; a request no route takes gets the proxy's Bolt
//! error, which the client raises with the proxy's text; a heartbeat is acked by the proxy.
//! And `inspect` decodes the committed captures with the configuration.
//!
//! Needs the peers: `codecs/framed/fixtures/install.sh` (run by `scripts/test.sh`).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod framed_peers;

use std::process::Command;

use framed_peers::*;
use serde_json::json;

fn node(script: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(root().join("codecs/framed/fixtures/peers").join(script)).env("NODE_PATH", node_path());
    cmd
}

/// A provider named `name`, listening.
fn provider(name: &str) -> (Proc, u16) {
    let mut cmd = node("bolt_server.js");
    cmd.args(["--port", "0", "--name", name]);
    let p = Proc::start(&format!("bolt_server {name}"), cmd, false);
    let port = p.wait_for("LISTENING ").trim().trim_start_matches("LISTENING ").parse().unwrap();
    (p, port)
}

#[test]
fn sofa_rpc_node_through_metaproxy_to_two_providers() {
    let _ = node_path();
    assert!(check_example("bolt.yaml").contains("OK (1 listeners, 2 clusters)"));
    let ((_a, a), (_b, b)) = (provider("A"), provider("B"));
    let listen = free_port();
    let text = example("bolt.yaml")
        .replace("127.0.0.1:12201", &format!("127.0.0.1:{a}"))
        .replace("127.0.0.1:12202", &format!("127.0.0.1:{b}"))
        .replace("127.0.0.1:12200", &format!("127.0.0.1:{listen}"));
    let _proxy = metaproxy(&write_config("bolt.yaml", &format!("workers: 2\n{text}")));
    let mut cmd = node("bolt_client.js");
    cmd.args(["--port", &listen.to_string()]);
    let got = run_json(cmd);
    let ok = |call: &str, want: &str| assert_eq!(got[call], json!({"ok": true, "result": want}), "{call}: {got}");
    ok("hello", "hello metaproxy from A"); // com.example.demo.* -> main
    ok("batch", "ran nightly on B"); // com.example.batch.* -> batch
    ok("proto", "hi from B"); // header tenant=gold -> batch
    ok("heartbeat", "acked");
    // The provider's exception passes through as the provider wrote it.
    assert_eq!(got["fail"]["ok"], false, "{got}");
    assert_eq!(got["fail"]["message"], "com.alipay.remoting.rpc.exception.RpcServerException: Error: boom");
    // No route: the proxy's own Bolt error (NO_PROCESSOR), read by the client with its text.
    assert_eq!(got["missing"]["ok"], false, "{got}");
    assert_eq!(
        got["missing"]["message"],
        "com.alipay.remoting.rpc.exception.RpcServerException: metaproxy route_not_found: no route matched the request",
        "{got}"
    );
}

#[test]
fn inspect_decodes_the_bolt_captures() {
    let requests = capture("bolt.requests.bin");
    let responses = capture("bolt.responses.bin");
    let file = write_config("bolt-codec.yaml", &example_codec_yaml("bolt.yaml"));
    let lines = inspect(&["--protocol", "framed", "--codec-options", file.to_str().unwrap(), &requests, &responses]);
    let first = &lines[0];
    assert_eq!(first["message_type"], "request");
    assert_eq!(first["kvs"]["service"], "com.example.demo.Greeter:1.0");
    assert_eq!(first["kvs"]["class"], "com.alipay.sofa.rpc.core.request.SofaRequest");
    assert_eq!(first["operation"], "com.example.demo.Greeter:1.0");
    assert!(lines.iter().any(|l| l["kvs"]["tenant"] == "gold" && l["kvs"]["sofa_head_method_name"] == "echo"));
    assert!(lines.iter().any(|l| l["message_type"] == "ping"));
    assert!(lines.iter().any(|l| l["message_type"] == "pong"));
    assert!(lines.iter().any(|l| l["message_type"] == "error"));
}
