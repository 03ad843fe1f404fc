//! Real Dubbo peers from PyPI through metaproxy: the `python3-dubbo` client calls two `dubbo-py`
//! providers, routed by method and by interface, and gets the proxy's error reply for a request no
//! route matches.
//!
//! Needs the Python peers: `codecs/dubbo/fixtures/peers/install.sh` (run by `scripts/test.sh`).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let p = root().join("target/peers/venv/bin/python");
    assert!(p.exists(), "Python peers missing: run codecs/dubbo/fixtures/peers/install.sh (scripts/test.sh does)");
    p
}

/// A `dubbo-py` provider process, killed on drop.
struct PyProvider {
    child: Child,
    port: u16,
}

impl PyProvider {
    fn start(name: &str) -> PyProvider {
        let mut child = Command::new(python())
            .arg(root().join("codecs/dubbo/fixtures/peers/provider.py"))
            .args(["--port", "0", "--name", name])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start provider.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port =
            line.trim().strip_prefix("LISTENING ").unwrap_or_else(|| panic!("provider said {line:?}")).parse().unwrap();
        PyProvider { child, port }
    }
}

impl Drop for PyProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(port: u16, interface: &str, method: &str) -> Value {
    let out = Command::new(python())
        .arg(root().join("codecs/dubbo/fixtures/peers/client_call.py"))
        .args(["--client", "python3-dubbo", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--interface", interface, "--method", method, "--arg", "metaproxy", "--timeout", "10"])
        .output()
        .expect("run client_call.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
}

const INTERFACE: &str = "org.apache.dubbo.demo.DemoService";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python3_dubbo_through_metaproxy_to_two_dubbo_py_providers() {
    let (a, b) = (PyProvider::start("A"), PyProvider::start("B"));
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
