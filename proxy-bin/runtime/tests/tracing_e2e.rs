//! Distributed tracing end to end, with real software on both sides of the proxy and a real OTLP
//! collector (`tests/peers/otlp_receiver.py`, on the official `opentelemetry-proto` package and
//! `grpcio`) recording what the proxy exports:
//!
//! * a `python3-dubbo` client sends a `traceparent` attachment through the proxy to a `dubbo-py`
//!   provider that records the attachments it receives: the provider sees the client's trace id
//!   with the proxy's client span as parent, and the collector holds the proxy's server span
//!   (child of the client's span) and client span (child of the server span);
//! * the same through THeader headers with Apache Thrift's Python library, exported over OTLP/HTTP;
//! * retries and mirrors each get a client span; B3 and the `framed` codec's keys (SOFA Bolt)
//!   carry the context too;
//! * the collector stopped under load: no request fails, and the dropped spans are counted in
//!   `/metrics`.
//!
//! Needs the Python peers (`scripts/test.sh` installs them).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::peers::{run_json, PeerServer};
use common::{call, client, dead_address, http_get, provider, proxy, sample, status};
use metaproxy_demo_peers::provider::Behavior;
use serde_json::Value;

const INTERFACE: &str = "org.apache.dubbo.demo.DemoService";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A file in the test's temporary directory, new for each call.
fn temp_file(what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tracing");
    std::fs::create_dir_all(&dir).unwrap();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}-{what}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// JSON lines written so far.
fn lines(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Polls `path` until `done` holds for its lines (at most 10 s).
async fn wait_lines(path: &PathBuf, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let got = lines(path);
        if done(&got) {
            return got;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: not within 10 s; got {got:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The OTLP receiver, and the file it writes the spans to.
struct Collector {
    server: Option<PeerServer>,
    spans: PathBuf,
    endpoint: String,
}

impl Collector {
    fn start(protocol: &str) -> Collector {
        let spans = temp_file("spans");
        let server = PeerServer::start(
            "proxy-bin/runtime/tests/peers/otlp_receiver.py",
            &["--out", spans.to_str().unwrap(), "--protocol", protocol],
        );
        let endpoint = format!("http://127.0.0.1:{}", server.port);
        Collector { server: Some(server), spans, endpoint }
    }

    /// Spans of trace `trace_id`, once `n` of them have arrived.
    async fn trace(&self, trace_id: &str, n: usize) -> Vec<Value> {
        self.trace_until(trace_id, |s| s.len() >= n).await
    }

    /// Spans of trace `trace_id`, once `done` holds for them.
    async fn trace_until(&self, trace_id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let of_trace = |s: &[Value]| s.iter().filter(|x| x["trace_id"] == trace_id).cloned().collect::<Vec<_>>();
        let got = wait_lines(&self.spans, &format!("the spans of trace {trace_id}"), |s| done(&of_trace(s))).await;
        of_trace(&got)
    }

    /// Kills the receiver, as a collector that crashes.
    fn stop(&mut self) {
        self.server.take();
    }
}

fn of_kind<'a>(spans: &'a [Value], kind: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["kind"] == kind).collect()
}

fn only<'a>(spans: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(spans, kind);
    assert_eq!(found.len(), 1, "one {kind} span expected: {spans:#?}");
    found[0]
}

/// `traceparent`'s trace id and parent id.
fn parts(traceparent: &str) -> (String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    assert_eq!(p[0], "00", "{traceparent}");
    assert_eq!(p[3], "01", "{traceparent}");
    (p[1].to_string(), p[2].to_string())
}

fn dubbo_call(port: u16, attachments: &[(&str, &str)]) -> Value {
    let mut args: Vec<String> = [
        "--client",
        "python3-dubbo",
        "--port",
        &port.to_string(),
        "--interface",
        INTERFACE,
        "--method",
        "sayHello",
        "--arg",
        "tracing",
        "--timeout",
        "10",
    ]
    .map(String::from)
    .to_vec();
    for (k, v) in attachments {
        args.extend(["--attachment".to_string(), format!("{k}={v}")]);
    }
    run_json("codecs/dubbo/fixtures/peers/client_call.py", &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_dubbo_client_and_provider_see_the_proxy_in_the_trace() {
    let collector = Collector::start("grpc");
    let received = temp_file("provider");
    let provider = PeerServer::start(
        "codecs/dubbo/fixtures/peers/provider.py",
        &["--port", "0", "--record", received.to_str().unwrap()],
    );
    // Listener `in` samples nothing on its own (ratio 0): what it traces, it traces because the
    // caller's flag says so. Listener `root` samples everything: a request without a context
    // starts a trace there. Both share one exporter.
    let tracing = format!(
        "{{ endpoint: \"{}\", protocol: grpc, service_name: metaproxy, flush_interval: 20ms",
        collector.endpoint
    );
    let yaml = format!(
        r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    tracing: {tracing}, sample_ratio: 0.0 }}
    routes:
      - {{ name: all, route: {{ cluster: p }} }}
  - name: root
    address: 127.0.0.1:0
    protocol: dubbo
    tracing: {tracing}, sample_ratio: 1.0 }}
    routes:
      - {{ name: all, route: {{ cluster: p }} }}
clusters:
  - {{ name: p, endpoints: [{{ address: "127.0.0.1:{}" }}] }}
access_log: {{ enabled: false }}
"#,
        provider.port
    );
    let running = proxy(&yaml, &[]).await;
    let (port, root_port) = (running.address("in").unwrap().port(), running.address("root").unwrap().port());
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    let results = tokio::task::spawn_blocking(move || {
        [
            dubbo_call(
                port,
                &[("traceparent", &traceparent), ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")],
            ),
            dubbo_call(port, &[("traceparent", unsampled)]),
            dubbo_call(port, &[]),
            dubbo_call(root_port, &[]),
        ]
    })
    .await
    .unwrap();
    for r in &results {
        assert_eq!(r["ok"], true, "{results:?}");
    }
    let seen = wait_lines(&received, "4 requests at the provider", |l| l.len() >= 4).await;

    // 1. Sampled by the caller: the provider's parent is the proxy's client span, the client
    //    span's parent the server span, the server span's parent the caller's span.
    let spans = collector.trace(TRACE_ID, 2).await;
    let server = only(&spans, "SPAN_KIND_SERVER");
    let client_span = only(&spans, "SPAN_KIND_CLIENT");
    let (trace, parent) = parts(seen[0]["attachments"]["traceparent"].as_str().unwrap());
    assert_eq!(trace, TRACE_ID);
    assert_eq!(parent, client_span["span_id"], "the provider's parent is the proxy's client span");
    assert_eq!(client_span["parent_span_id"], server["span_id"]);
    assert_eq!(server["parent_span_id"], CALLER_SPAN);
    assert_ne!(server["span_id"], CALLER_SPAN);
    assert_eq!(seen[0]["attachments"]["tracestate"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "forwarded as it came");
    assert_eq!(server["trace_state"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    assert_eq!(server["name"], format!("{INTERFACE}/sayHello"));
    let attrs = &server["attributes"];
    assert_eq!(attrs["rpc.system"], "dubbo");
    assert_eq!(attrs["rpc.service"], INTERFACE);
    assert_eq!(attrs["rpc.method"], "sayHello");
    assert_eq!(attrs["metaproxy.listener"], "in");
    assert_eq!(attrs["metaproxy.route"], "all");
    assert_eq!(attrs["metaproxy.cluster"], "p");
    assert_eq!(attrs["metaproxy.outcome"], "response");
    assert_eq!(attrs["metaproxy.status"], "ok");
    assert_eq!(attrs["metaproxy.response.code"], 20);
    assert_eq!(attrs["metaproxy.upstream"], format!("127.0.0.1:{}", provider.port));
    assert!(attrs["metaproxy.request.size"].as_i64().unwrap() > 100, "{attrs}");
    assert!(attrs["metaproxy.response.size"].as_i64().unwrap() > 0, "{attrs}");
    assert_eq!(server["resource"]["service.name"], "metaproxy");
    assert_eq!(server["status"]["code"], "STATUS_CODE_UNSET");
    assert_eq!(client_span["attributes"]["server.port"], provider.port);
    assert_eq!(client_span["attributes"]["metaproxy.attempt"], 1);
    let start = |s: &Value| s["start_time_unix_nano"].as_u64().unwrap();
    let end = |s: &Value| s["end_time_unix_nano"].as_u64().unwrap();
    assert!(start(server) <= start(client_span) && end(client_span) <= end(server), "{spans:#?}");

    // 2. Not sampled by the caller: nothing recorded, and the caller's context passes untouched.
    assert_eq!(seen[1]["attachments"]["traceparent"], unsampled);
    // 3. No context and a ratio of 0: no trace, nothing added.
    assert!(seen[2]["attachments"].get("traceparent").is_none(), "{:?}", seen[2]);
    // 4. No context and a ratio of 1: the proxy starts a trace, and the provider continues it.
    let (root_trace, root_parent) = parts(seen[3]["attachments"]["traceparent"].as_str().unwrap());
    let root = collector.trace(&root_trace, 2).await;
    let root_server = only(&root, "SPAN_KIND_SERVER");
    assert_eq!(root_server["parent_span_id"], "", "a root span");
    assert_eq!(root_server["attributes"]["metaproxy.listener"], "root");
    assert_eq!(only(&root, "SPAN_KIND_CLIENT")["span_id"], root_parent);
    // The spans arrive in order from the one worker: had the unsampled requests been traced,
    // their spans would be here by now.
    let all = lines(&collector.spans);
    assert_eq!(all.len(), 4, "{all:#?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_thrift_theader_headers_carry_the_context_exported_over_otlp_http() {
    let collector = Collector::start("http");
    let received = temp_file("thrift-server");
    let server = PeerServer::start(
        "codecs/thrift/fixtures/server.py",
        &["--transport", "header", "--protocol", "binary", "--port", "0", "--record", received.to_str().unwrap()],
    );
    let yaml = format!(
        r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: thrift
    tracing: {{ endpoint: "{}", protocol: http, sample_ratio: 0.0, service_name: thrift-edge, flush_interval: 20ms }}
    routes:
      - {{ name: all, route: {{ cluster: t }} }}
clusters:
  - {{ name: t, endpoints: [{{ address: "127.0.0.1:{}" }}] }}
access_log: {{ enabled: false }}
"#,
        collector.endpoint, server.port
    );
    let running = proxy(&yaml, &[]).await;
    let port = running.address("in").unwrap().port().to_string();
    let header = format!("traceparent=00-{TRACE_ID}-{CALLER_SPAN}-01");
    let result = tokio::task::spawn_blocking(move || {
        let args = ["--transport", "header", "--protocol", "binary", "--port", &port, "--method", "sayHello"];
        let mut args: Vec<String> = args.map(String::from).to_vec();
        args.extend(["--arg", "bob", "--header", &header, "--header", "x-tag=t1"].map(String::from));
        run_json("codecs/thrift/fixtures/client_call.py", &args)
    })
    .await
    .unwrap();
    assert_eq!(result["result"], "Hello bob [t1]", "{result}");
    let seen = wait_lines(&received, "the call at the server", |l| !l.is_empty()).await;
    let spans = collector.trace(TRACE_ID, 2).await;
    let server_span = only(&spans, "SPAN_KIND_SERVER");
    let client_span = only(&spans, "SPAN_KIND_CLIENT");
    let (trace, parent) = parts(seen[0]["headers"]["traceparent"].as_str().unwrap());
    assert_eq!(trace, TRACE_ID);
    assert_eq!(parent, client_span["span_id"]);
    assert_eq!(seen[0]["headers"]["x-tag"], "t1", "other headers pass");
    assert_eq!(client_span["parent_span_id"], server_span["span_id"]);
    assert_eq!(server_span["parent_span_id"], CALLER_SPAN);
    assert_eq!(server_span["name"], "sayHello");
    assert_eq!(server_span["attributes"]["rpc.system"], "thrift");
    assert_eq!(server_span["resource"]["service.name"], "thrift-edge");
    running.shutdown().await;
}

/// The traceparent a demo provider received last.
fn last_traceparent(p: &metaproxy_demo_peers::provider::Provider) -> Option<(String, String)> {
    let last = p.stats.last_attachments.lock().unwrap();
    last.iter().find(|(k, _)| k == "traceparent").map(|(_, v)| parts(v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_mirrored_copies_each_get_a_client_span() {
    let collector = Collector::start("grpc");
    let p = provider("p", Behavior::default()).await;
    let shadow = provider("shadow", Behavior::default()).await;
    let dead = dead_address();
    let yaml = format!(
        r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    tracing: {{ endpoint: "{}", sample_ratio: 1.0, flush_interval: 20ms }}
    routes:
      - name: all
        route: {{ cluster: c }}
        retries: {{ count: 1 }}
        mirror: {{ cluster: shadow }}
clusters:
  - {{ name: c, lb: round_robin, endpoints: [{{ address: "{dead}" }}, {{ address: "{{p}}" }}] }}
  - {{ name: shadow, endpoints: [{{ address: "{{shadow}}" }}] }}
access_log: {{ enabled: false }}
"#,
        collector.endpoint
    );
    let running = proxy(&yaml, &[&p, &shadow]).await;
    let c = client(&running).await;
    // Round robin over a dead endpoint and a live one: within two requests one goes to the dead
    // endpoint first and is retried.
    let mut retried = None;
    for _ in 0..2 {
        let caller = format!("{:016x}", fastrand::u64(1..));
        let trace = format!("{:032x}", fastrand::u128(1..));
        let tp = format!("00-{trace}-{caller}-01");
        assert_eq!(status(&call(&c, "sayHello", &[("traceparent", &tp)]).await), "20");
        // The server span ends after the tries; the mirrored copy's span ends when its answer comes.
        let spans = collector
            .trace_until(&trace, |s| {
                s.iter().any(|x| x["kind"] == "SPAN_KIND_SERVER")
                    && s.iter().any(|x| x["attributes"]["metaproxy.mirror"] == true)
            })
            .await;
        let server = only(&spans, "SPAN_KIND_SERVER");
        let clients = of_kind(&spans, "SPAN_KIND_CLIENT");
        let mirror: Vec<_> = clients.iter().filter(|s| s["attributes"]["metaproxy.mirror"] == true).collect();
        assert_eq!(mirror.len(), 1, "one mirrored copy: {spans:#?}");
        assert_eq!(mirror[0]["parent_span_id"], server["span_id"], "the copy is a child of the server span");
        assert_eq!(mirror[0]["attributes"]["server.port"], shadow.address.port());
        let tries: Vec<_> = clients.iter().filter(|s| s["attributes"]["metaproxy.mirror"] != true).collect();
        assert!(tries.iter().all(|t| t["parent_span_id"] == server["span_id"]), "{spans:#?}");
        assert_eq!(server["attributes"]["metaproxy.attempts"], tries.len(), "{spans:#?}");
        // Each provider saw the context of the client span that reached it.
        let ok_try = tries.iter().find(|t| t["attributes"]["server.port"] == p.address.port()).unwrap();
        assert_eq!(last_traceparent(&p), Some((trace.clone(), ok_try["span_id"].as_str().unwrap().to_string())));
        let shadow_seen = wait_shadow(&shadow, &trace).await;
        assert_eq!(shadow_seen, mirror[0]["span_id"].as_str().unwrap());
        if tries.len() == 2 {
            retried = Some(spans.clone());
            let failed = tries.iter().find(|t| t["attributes"]["server.port"] == dead.port()).unwrap();
            assert_eq!(failed["status"]["code"], "STATUS_CODE_ERROR", "{failed}");
            assert_eq!(failed["attributes"]["metaproxy.attempt"], 1);
            assert_eq!(ok_try["attributes"]["metaproxy.attempt"], 2);
            assert_eq!(ok_try["status"]["code"], "STATUS_CODE_UNSET");
        }
    }
    assert!(retried.is_some(), "no request was retried");
    running.shutdown().await;
}

/// The parent id in the mirror provider's last traceparent, once it is of trace `trace`.
async fn wait_shadow(shadow: &metaproxy_demo_peers::provider::Provider, trace: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some((t, parent)) = last_traceparent(shadow) {
            if t == trace {
                return parent;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the mirrored copy of {trace} did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b3_in_b3_out_and_an_invalid_traceparent_starts_a_new_trace() {
    let collector = Collector::start("grpc");
    let p = provider("p", Behavior::default()).await;
    let yaml = format!(
        r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    tracing: {{ endpoint: "{}", sample_ratio: 1.0, propagation: [b3, w3c], flush_interval: 20ms }}
    routes:
      - {{ name: all, route: {{ cluster: c }} }}
clusters:
  - {{ name: c, endpoints: [{{ address: "{{p}}" }}] }}
access_log: {{ enabled: false }}
"#,
        collector.endpoint
    );
    let running = proxy(&yaml, &[&p]).await;
    let c = client(&running).await;
    let b3 = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
    assert_eq!(status(&call(&c, "sayHello", &[("b3", b3)]).await), "20");
    let spans = collector.trace("80f198ee56343ba864fe8b2a57d3eff7", 2).await;
    let server = only(&spans, "SPAN_KIND_SERVER");
    let client_span = only(&spans, "SPAN_KIND_CLIENT");
    assert_eq!(server["parent_span_id"], "e457b5a2e4d86bd1");
    let seen: Vec<(String, String)> = p.stats.last_attachments.lock().unwrap().clone();
    let get = |k: &str| seen.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let expected = format!(
        "80f198ee56343ba864fe8b2a57d3eff7-{}-1-{}",
        client_span["span_id"].as_str().unwrap(),
        server["span_id"].as_str().unwrap()
    );
    assert_eq!(get("b3"), Some(expected), "{seen:?}");
    let (trace, parent) = parts(&get("traceparent").expect("w3c is written too"));
    assert_eq!(
        (trace.as_str(), parent.as_str()),
        ("80f198ee56343ba864fe8b2a57d3eff7", client_span["span_id"].as_str().unwrap())
    );

    // `b3: 0` refuses sampling even at ratio 1; an uppercase (invalid) traceparent is ignored:
    // a new trace starts, and the provider gets a valid context in its place (and not the
    // tracestate that came with the invalid one).
    assert_eq!(status(&call(&c, "sayHello", &[("b3", "0")]).await), "20");
    assert!(p.stats.last_attachments.lock().unwrap().iter().all(|(k, _)| k != "traceparent"));
    let bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    assert_eq!(status(&call(&c, "sayHello", &[("traceparent", bad), ("tracestate", "rojo=1")]).await), "20");
    let (trace, _) = last_traceparent(&p).unwrap();
    let seen = p.stats.last_attachments.lock().unwrap().clone();
    assert!(seen.iter().all(|(k, _)| k != "tracestate"), "the stale tracestate goes with its context: {seen:?}");
    assert_ne!(trace, TRACE_ID);
    let fresh = collector.trace(&trace, 2).await;
    assert_eq!(only(&fresh, "SPAN_KIND_SERVER")["parent_span_id"], "");
    running.shutdown().await;
}

/// SOFA Bolt v1 over the shipped `framed` configuration: a request with a header map.
fn bolt_request(id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
    let class = b"com.alipay.sofa.rpc.core.request.SofaRequest";
    let mut map = Vec::new();
    for (k, v) in headers {
        map.extend_from_slice(&(k.len() as u32).to_be_bytes());
        map.extend_from_slice(k.as_bytes());
        map.extend_from_slice(&(v.len() as u32).to_be_bytes());
        map.extend_from_slice(v.as_bytes());
    }
    let content = b"hello";
    let mut b = vec![1u8, 1, 0, 1, 1];
    b.extend_from_slice(&id.to_be_bytes());
    b.push(1);
    b.extend_from_slice(&3000u32.to_be_bytes());
    b.extend_from_slice(&(class.len() as u16).to_be_bytes());
    b.extend_from_slice(&(map.len() as u16).to_be_bytes());
    b.extend_from_slice(&(content.len() as u32).to_be_bytes());
    b.extend_from_slice(class);
    b.extend_from_slice(&map);
    b.extend_from_slice(content);
    b
}

/// Reads one Bolt request (22-byte header) and returns its id and header map.
async fn read_bolt_request(s: &mut tokio::net::TcpStream) -> Option<(u32, Vec<(String, String)>)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 22];
    s.read_exact(&mut head).await.ok()?;
    let id = u32::from_be_bytes(head[5..9].try_into().unwrap());
    let class = u16::from_be_bytes([head[14], head[15]]) as usize;
    let map = u16::from_be_bytes([head[16], head[17]]) as usize;
    let content = u32::from_be_bytes(head[18..22].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; class + map + content];
    s.read_exact(&mut rest).await.ok()?;
    let (mut block, mut pairs) = (&rest[class..class + map], Vec::new());
    while block.len() >= 4 {
        let k = u32::from_be_bytes(block[..4].try_into().unwrap()) as usize;
        let key = String::from_utf8_lossy(&block[4..4 + k]).into_owned();
        block = &block[4 + k..];
        let v = u32::from_be_bytes(block[..4].try_into().unwrap()) as usize;
        pairs.push((key, String::from_utf8_lossy(&block[4..4 + v]).into_owned()));
        block = &block[4 + v..];
    }
    Some((id, pairs))
}

/// A Bolt v1 response with status 0 (success) and no header map.
fn bolt_response(id: u32) -> Vec<u8> {
    let class = b"com.alipay.sofa.rpc.core.response.SofaResponse";
    let mut b = vec![1u8, 0, 0, 2, 1];
    b.extend_from_slice(&id.to_be_bytes());
    b.push(1);
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&(class.len() as u16).to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&2u32.to_be_bytes());
    b.extend_from_slice(class);
    b.extend_from_slice(b"ok");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_framed_codec_s_keys_carry_the_context() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let collector = Collector::start("grpc");
    // An upstream that records the header map of what it receives and answers each request.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_port = upstream.local_addr().unwrap().port();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut s, _) = upstream.accept().await.unwrap();
        while let Some((id, pairs)) = read_bolt_request(&mut s).await {
            let _ = seen_tx.send(pairs);
            s.write_all(&bolt_response(id)).await.unwrap();
        }
    });
    let shipped: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(common::peers::root().join("examples/configs/bolt.yaml")).unwrap(),
    )
    .unwrap();
    let codec = serde_json::to_string(&shipped["listeners"][0]["codec"]).unwrap();
    let yaml = format!(
        r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: framed
    codec: {codec}
    tracing: {{ endpoint: "{}", sample_ratio: 0.0, flush_interval: 20ms }}
    routes:
      - {{ name: all, route: {{ cluster: u }} }}
clusters:
  - {{ name: u, endpoints: [{{ address: "127.0.0.1:{upstream_port}" }}] }}
access_log: {{ enabled: false }}
"#,
        collector.endpoint
    );
    let running = proxy(&yaml, &[]).await;
    let mut s = tokio::net::TcpStream::connect(running.address("in").unwrap()).await.unwrap();
    let tp = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    s.write_all(&bolt_request(7, &[("service", "com.example.demo.Greeter:1.0"), ("traceparent", &tp)])).await.unwrap();
    let mut head = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(u32::from_be_bytes(head[5..9].try_into().unwrap()), 7, "the client's id comes back");
    assert_eq!(u16::from_be_bytes([head[10], head[11]]), 0, "status success");
    let pairs = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv()).await.unwrap().unwrap();
    let spans = collector.trace(TRACE_ID, 2).await;
    let client_span = only(&spans, "SPAN_KIND_CLIENT");
    let server = only(&spans, "SPAN_KIND_SERVER");
    let traceparent = pairs.iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v.clone()).unwrap();
    assert_eq!(parts(&traceparent), (TRACE_ID.to_string(), client_span["span_id"].as_str().unwrap().to_string()));
    assert!(pairs.iter().any(|(k, v)| k == "service" && v == "com.example.demo.Greeter:1.0"), "{pairs:?}");
    assert_eq!(server["parent_span_id"], CALLER_SPAN);
    assert_eq!(server["attributes"]["rpc.system"], "framed");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_stopped_under_load_fails_no_request_and_drops_are_counted() {
    let mut collector = Collector::start("grpc");
    let p = provider("p", Behavior::default()).await;
    let yaml = format!(
        r#"
workers: 2
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    tracing: {{ endpoint: "{}", sample_ratio: 1.0, flush_interval: 20ms, batch_size: 16, max_queue_size: 64, export_timeout: 1s }}
    routes:
      - {{ name: all, route: {{ cluster: c }} }}
clusters:
  - {{ name: c, endpoints: [{{ address: "{{p}}" }}] }}
access_log: {{ enabled: false }}
"#,
        collector.endpoint
    );
    let running = proxy(&yaml, &[&p]).await;
    let admin = running.admin_address().unwrap();
    let endpoint = collector.endpoint.clone();
    let dropped_series = |reason: &str| {
        format!("metaproxy_tracing_spans_dropped_total{{collector=\"{}\",reason=\"{reason}\"}}", endpoint)
    };
    let exported_series = format!("metaproxy_tracing_spans_exported_total{{collector=\"{}\"}}", endpoint);
    let clients = [client(&running).await, client(&running).await, client(&running).await, client(&running).await];
    let mut sent = 0usize;
    let mut failed = Vec::new();
    // Load while the collector is up, until the proxy counts spans it accepted.
    let started = Instant::now();
    loop {
        for m in round(&clients).await {
            sent += 1;
            if status(&m) != "20" {
                failed.push(m);
            }
        }
        let metrics = http_get(admin, "/metrics").await;
        if sample(&metrics, &exported_series).unwrap_or(0) > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no span reached the collector: {metrics}");
    }
    assert!(!lines(&collector.spans).is_empty());
    collector.stop();
    // Load after it stopped, until the dropped spans show in /metrics; then some more.
    let started = Instant::now();
    let mut after = 0;
    loop {
        for m in round(&clients).await {
            sent += 1;
            if status(&m) != "20" {
                failed.push(m);
            }
        }
        let metrics = http_get(admin, "/metrics").await;
        let dropped: u64 =
            ["queue_full", "export_failed"].iter().map(|r| sample(&metrics, &dropped_series(r)).unwrap_or(0)).sum();
        if dropped > 0 {
            after += 1;
            if after == 5 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no dropped span counted: {metrics}");
    }
    assert!(failed.is_empty(), "{} of {sent} requests failed: {:?}", failed.len(), failed.first());
    assert_eq!(p.stats.total(), sent as u64, "every request reached the provider");
    // The exporters stop with the proxy, the collector still down: shutdown does not hang.
    tokio::time::timeout(Duration::from_secs(10), running.shutdown()).await.expect("shutdown hung");
}

/// 100 concurrent calls, 25 on each client.
async fn round(clients: &[metaproxy_demo_peers::client::Client]) -> Vec<metaproxy_demo_peers::client::DubboMessage> {
    let calls = clients.iter().flat_map(|c| (0..25).map(move |_| call(c, "sayHello", &[])));
    futures_util::future::join_all(calls).await
}

#[test]
fn tracing_sections_are_checked_with_file_line_and_field() {
    let registry = metaproxy_runtime::default_registry().unwrap();
    let yaml = |tracing: &str| {
        format!(
            "listeners:\n  - name: in\n    address: 127.0.0.1:0\n    protocol: dubbo\n    tracing: {tracing}\n    routes:\n      - {{ name: all, route: {{ cluster: c }} }}\nclusters:\n  - {{ name: c, endpoints: [{{ address: \"127.0.0.1:1\" }}] }}\n"
        )
    };
    let load = |tracing: &str| metaproxy_runtime::config::load_str(&yaml(tracing), "t.yaml", &registry);
    let err = load("{ sample_ratio: 2 }").unwrap_err().to_string();
    assert!(err.starts_with("t.yaml:5: listeners[0].tracing.sample_ratio:"), "{err}");
    let err = load(r#"{ endpoint: "https://collector:4317" }"#).unwrap_err().to_string();
    assert!(err.contains("listeners[0].tracing.endpoint") && err.contains("TLS"), "{err}");
    let err = load("{ propagation: [jaeger] }").unwrap_err().to_string();
    assert!(err.contains("jaeger"), "{err}");
    // The shape scripts outside the project use, and `enabled: false`.
    let ok =
        load(r#"{ endpoint: "http://127.0.0.1:4317", protocol: grpc, sample_ratio: 1.0, service_name: metaproxy }"#);
    let spec = ok.unwrap().listeners.remove(0).tracing.unwrap();
    assert_eq!(spec.exporter.endpoint, "http://127.0.0.1:4317");
    assert_eq!(spec.sample_ratio, 1.0);
    let http = load(r#"{ endpoint: "http://127.0.0.1:4318", protocol: http, propagation: [w3c, b3] }"#).unwrap();
    assert_eq!(http.listeners[0].tracing.as_ref().unwrap().exporter.endpoint, "http://127.0.0.1:4318/v1/traces");
    assert!(load("{ enabled: false, endpoint: \"http://x:1\" }").unwrap().listeners[0].tracing.is_none());
}
