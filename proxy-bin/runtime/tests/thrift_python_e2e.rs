//! Apache Thrift's Python library through metaproxy in every transport and protocol: a Python
//! client calls two Python servers, routed by method name and (on THeader) by a header key; a
//! declared exception and a one-way call pass through; an unrouted method reaches the client as a
//! TApplicationException (UNKNOWN_METHOD). Also the `echo` call, whose struct holds every Thrift
//! type, round-trips intact.
//!
//! Needs the Python peers: `codecs/thrift/fixtures/install.sh` (run by `scripts/test.sh`).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::peers::{run_json, PeerServer};
use serde_json::{json, Value};

fn server(transport: &str, protocol: &str, name: &str) -> PeerServer {
    PeerServer::start(
        "codecs/thrift/fixtures/server.py",
        &["--transport", transport, "--protocol", protocol, "--port", "0", "--name", name],
    )
}

fn call(transport: &str, protocol: &str, port: u16, method: &str, args: &[&str], headers: &[&str]) -> Value {
    let mut a: Vec<String> =
        ["--transport", transport, "--protocol", protocol, "--port", &port.to_string(), "--method", method]
            .map(String::from)
            .to_vec();
    for x in args {
        a.extend(["--arg".to_string(), x.to_string()]);
    }
    for h in headers {
        a.extend(["--header".to_string(), h.to_string()]);
    }
    run_json("codecs/thrift/fixtures/client_call.py", &a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_thrift_through_metaproxy_in_every_transport_and_protocol() {
    for transport in ["framed", "buffered", "header"] {
        for protocol in ["binary", "compact"] {
            let (a, b) = (server(transport, protocol, "A"), server(transport, protocol, "B"));
            let yaml = format!(
                r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: thrift
    routes:
      - name: tagged
        match: [{{ key: x-tag, exact: blue }}]
        route: {{ cluster: b }}
      - name: greeter
        match: [{{ key: method, regex: "sayHello|add|log|echo" }}, {{ key: method, exact: echo, invert: true }}]
        route: {{ cluster: a }}
      - name: echo
        match: [{{ key: method, exact: echo }}, {{ key: x-allow-echo, present: true }}]
        route: {{ cluster: a }}
clusters:
  - {{ name: a, endpoints: [{{ address: "127.0.0.1:{}" }}] }}
  - {{ name: b, endpoints: [{{ address: "127.0.0.1:{}" }}] }}
access_log: {{ enabled: false }}
"#,
                a.port, b.port
            );
            let registry = metaproxy_runtime::default_registry().unwrap();
            let cfg = metaproxy_runtime::config::load_str(&yaml, "thrift.yaml", &registry).unwrap();
            let running = metaproxy_runtime::server::start(cfg).await.unwrap();
            let port = running.address("in").unwrap().port();
            let label = format!("{transport}/{protocol}");
            tokio::task::spawn_blocking(move || {
                let (t, p) = (transport, protocol);
                // Routed by method to A.
                assert_eq!(
                    call(t, p, port, "sayHello", &["world"], &[]),
                    json!({"ok": true, "result": "Hello world from A"}),
                    "{label}"
                );
                // A declared exception passes through as the server wrote it.
                let e = call(t, p, port, "add", &["-1", "1"], &[]);
                assert_eq!(
                    (e["ok"].clone(), e["error_type"].clone(), e["code"].clone()),
                    (json!(false), json!("demo.ttypes.DemoError"), json!(7)),
                    "{label}: {e}"
                );
                assert_eq!(call(t, p, port, "add", &["2", "3"], &[]), json!({"ok": true, "result": 5}), "{label}");
                // A one-way call is forwarded and needs no answer.
                assert_eq!(call(t, p, port, "log", &["a line"], &[]), json!({"ok": true, "result": null}), "{label}");
                // No route: a TApplicationException of type UNKNOWN_METHOD, in the client's own framing.
                let e = call(t, p, port, "echo", &[], &[]);
                assert_eq!(
                    (e["error_type"].clone(), e["type"].clone()),
                    (json!("thrift.Thrift.TApplicationException"), json!(1)),
                    "{label}: {e}"
                );
                assert!(e["message"].as_str().unwrap().contains("route_not_found"), "{label}: {e}");
                if t == "header" {
                    // Routed by a THeader key to B, which sees the header too.
                    let r = call(t, p, port, "sayHello", &["world"], &["x-tag=blue"]);
                    assert_eq!(r, json!({"ok": true, "result": "Hello world from B [blue]"}), "{label}");
                    // A header opens the echo route; every Thrift type round-trips.
                    let r = call(t, p, port, "echo", &[], &["x-allow-echo=1"]);
                    assert_eq!((r["ok"].clone(), r["echo_equal"].clone()), (json!(true), json!(true)), "{label}: {r}");
                }
            })
            .await
            .unwrap();
            running.shutdown().await;
        }
    }
}
