//! Real Dubbo peers from PyPI through metaproxy: the `python3-dubbo` client calls two `dubbo-py`
//! providers, routed by method and by interface, and gets the proxy's error reply for a request no
//! route matches.
//!
//! Needs the Python peers: `codecs/dubbo/fixtures/peers/install.sh` (run by `scripts/test.sh`).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::peers::{run_json, PeerServer};
use serde_json::Value;

fn provider(name: &str) -> PeerServer {
    PeerServer::start("codecs/dubbo/fixtures/peers/provider.py", &["--port", "0", "--name", name])
}

fn call(port: u16, interface: &str, method: &str) -> Value {
    let args = [
        "--client",
        "python3-dubbo",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--interface",
        interface,
        "--method",
        method,
        "--arg",
        "metaproxy",
        "--timeout",
        "10",
    ];
    run_json("codecs/dubbo/fixtures/peers/client_call.py", &args.map(String::from))
}

const INTERFACE: &str = "org.apache.dubbo.demo.DemoService";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python3_dubbo_through_metaproxy_to_two_dubbo_py_providers() {
    let (a, b) = (provider("A"), provider("B"));
    let yaml = format!(
        r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: by-method
        match: [{{ key: method, exact: sayHello }}, {{ key: interface, exact: {INTERFACE} }}]
        route: {{ cluster: a }}
      - name: by-interface
        match: [{{ key: interface, prefix: org.apache.dubbo.demo. }}, {{ key: method, regex: "get.*" }}]
        route: {{ cluster: b }}
clusters:
  - {{ name: a, endpoints: [{{ address: "127.0.0.1:{}" }}] }}
  - {{ name: b, endpoints: [{{ address: "127.0.0.1:{}" }}] }}
access_log: {{ enabled: false }}
"#,
        a.port, b.port
    );
    let registry = metaproxy_runtime::default_registry().unwrap();
    let cfg = metaproxy_runtime::config::load_str(&yaml, "test.yaml", &registry).unwrap();
    let running = metaproxy_runtime::server::start(cfg).await.unwrap();
    let port = running.address("in").unwrap().port();
    let results = tokio::task::spawn_blocking(move || {
        [call(port, INTERFACE, "sayHello"), call(port, INTERFACE, "getUser"), call(port, INTERFACE, "sayNull")]
    })
    .await
    .unwrap();
    // Routed by method to provider A.
    assert_eq!(results[0], serde_json::json!({"ok": true, "result": "Hello metaproxy from A"}), "{results:?}");
    // Routed by interface (and a method regex) to provider B, which returns a User object.
    assert_eq!(results[1]["ok"], true, "{results:?}");
    assert!(results[1]["result"].to_string().contains("metaproxy@example.org"), "{results:?}");
    // No route: the client raises its Dubbo error with the proxy's message.
    assert_eq!(results[2]["ok"], false, "{results:?}");
    assert_eq!(results[2]["error_type"], "dubbo.common.exceptions.DubboResponseException");
    assert!(results[2]["message"].as_str().unwrap().contains("route_not_found"), "{results:?}");
    running.shutdown().await;
}
