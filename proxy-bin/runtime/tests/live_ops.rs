//! Operating the proxy live, through the real proxy: the admin API (hyper and axum), `/metrics`
//! parsed under load by the reference Prometheus parser (the Python client's, installed by
//! `scripts/test.sh`), active health checks moving traffic off a killed provider and back, and
//! outlier detection ejecting a provider that answers server errors.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{call, client, dead_address, provider, proxy, status};
use metaproxy_demo_peers::provider::{self as demo, Behavior};
use serde_json::Value;

/// `METHOD path` on the admin API: the status code and the body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.expect("admin hung").unwrap();
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (code, body)
}

async fn json(addr: SocketAddr, path: &str) -> Value {
    let (code, body) = http(addr, "GET", path).await;
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The endpoint of cluster `cluster` at `address` in `/clusters`.
async fn endpoint(admin: SocketAddr, cluster: &str, address: SocketAddr) -> Value {
    let clusters = json(admin, "/clusters").await;
    let c = clusters["clusters"].as_array().unwrap().iter().find(|c| c["name"] == cluster).unwrap().clone();
    c["endpoints"].as_array().unwrap().iter().find(|e| e["address"] == address.to_string()).unwrap().clone()
}

/// Polls `/clusters` until the endpoint's `field` is `want`; returns when it was seen.
async fn wait_for(admin: SocketAddr, address: SocketAddr, field: &str, want: Value, within: Duration) -> Instant {
    let started = Instant::now();
    loop {
        let e = endpoint(admin, "c", address).await;
        if e[field] == want {
            return Instant::now();
        }
        assert!(started.elapsed() < within, "{address} {field} is not {want} after {within:?}: {e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `/metrics` parsed by `prometheus_client.parser.text_string_to_metric_families`.
fn parse_metrics(text: &str) -> Vec<Value> {
    let script = common::peers::root().join("proxy-bin/runtime/tests/scripts/parse_metrics.py");
    let mut child = Command::new(common::peers::python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// The value of sample `name` with exactly `labels`, in parsed families.
fn value(families: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    families.iter().flat_map(|f| f["samples"].as_array().unwrap()).find_map(|s| {
        let got: BTreeMap<String, String> = serde_json::from_value(s[1].clone()).unwrap();
        (s[0] == name && got == want).then(|| s[2].as_f64().unwrap())
    })
}

/// A histogram series: its buckets (upper bound, cumulative count) and its `_count`.
type Series = (Vec<(f64, f64)>, Option<f64>);

/// Every histogram is consistent: per series, cumulative buckets never decrease and the `+Inf`
/// bucket equals `_count`. Returns how many series were checked.
fn check_histograms(families: &[Value]) -> usize {
    let mut checked = 0;
    for f in families.iter().filter(|f| f["type"] == "histogram") {
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for s in f["samples"].as_array().unwrap() {
            let mut labels: BTreeMap<String, String> = serde_json::from_value(s[1].clone()).unwrap();
            let le = labels.remove("le");
            let entry = series.entry(format!("{labels:?}")).or_default();
            let (name, v) = (s[0].as_str().unwrap(), s[2].as_f64().unwrap());
            match le {
                Some(le) if name.ends_with("_bucket") => {
                    entry.0.push((if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, v))
                }
                _ if name.ends_with("_count") => entry.1 = Some(v),
                _ => {}
            }
        }
        for (labels, (mut buckets, count)) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{} {labels}: {buckets:?}", f["name"]);
            assert_eq!(buckets.last().map(|b| (b.0, b.1)), count.map(|c| (f64::INFINITY, c)), "{} {labels}", f["name"]);
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_reports_state_and_takes_the_instance_out_of_a_load_balancer() {
    let p = provider("p", Behavior::default()).await;
    let dead = dead_address();
    let yaml = format!(
        r#"
admin: {{ address: 127.0.0.1:0 }}
workers: 2
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: all
        route: {{ cluster: c }}
        retries: {{ count: 1 }}
clusters:
  - name: c
    endpoints: [{{ address: "{{p}}", labels: {{ group: a }} }}, {{ address: "{dead}", labels: {{ group: b }} }}]
    health_check: {{ interval: 100ms, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 1 }}
access_log: {{ enabled: false }}
"#
    );
    let running = proxy(&yaml, &[&p]).await;
    let admin = running.admin_address().unwrap();

    // /ready, and Envoy's way to take the instance out: POST only.
    assert_eq!(http(admin, "GET", "/ready").await.0, 200);
    assert_eq!(http(admin, "GET", "/healthcheck/fail").await.0, 405);
    assert_eq!(http(admin, "POST", "/ready").await.0, 405);
    assert_eq!(http(admin, "POST", "/healthcheck/fail").await.0, 200);
    assert_eq!(http(admin, "GET", "/ready").await.0, 503);
    assert_eq!(http(admin, "POST", "/healthcheck/ok").await.0, 200);
    assert_eq!(http(admin, "GET", "/ready").await.0, 200);
    assert_eq!(http(admin, "GET", "/nope").await.0, 404);

    // The heartbeat check finds the provider healthy and the dead address unhealthy.
    wait_for(admin, p.address, "health", "healthy".into(), Duration::from_secs(5)).await;
    wait_for(admin, dead, "health", "unhealthy".into(), Duration::from_secs(5)).await;
    let c = client(&running).await;
    for _ in 0..10 {
        assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    }
    let live = endpoint(admin, "c", p.address).await;
    assert_eq!(live["labels"], serde_json::json!({"group": "a"}));
    assert_eq!((live["ejected"].clone(), live["available"].clone()), (false.into(), true.into()), "{live}");
    assert!(live["open_connections"].as_u64().unwrap() >= 1, "{live}");
    assert_eq!(live["requests_in_flight"], 0, "{live}");
    assert_eq!(endpoint(admin, "c", dead).await["available"], false);

    // /config_dump: the file as written, the values in force, and the version.
    let dump = json(admin, "/config_dump").await;
    let hash = dump["version"]["hash"].as_str().unwrap().to_string();
    assert!(hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
    assert!(dump["version"]["loaded_at"].as_str().unwrap().ends_with('Z'), "{dump}");
    assert_eq!(dump["config"]["listeners"][0]["name"], "in");
    let cluster = &dump["effective"]["clusters"][0];
    assert_eq!(cluster["health_check"]["interval"], "100ms", "{cluster}");
    assert_eq!(cluster["health_check"]["kind"], "heartbeat");
    assert_eq!(cluster["healthy_panic_threshold"], 50);
    assert_eq!(cluster["circuit_breakers"]["max_requests"], 65536);
    assert_eq!(dump["effective"]["listeners"][0]["bound"], running.address("in").unwrap().to_string());
    let (code, metrics) = http(admin, "GET", "/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains(&format!("metaproxy_config_info{{version=\"{hash}\"}} 1")), "{metrics}");
    let families = parse_metrics(&metrics);
    assert!(value(&families, "metaproxy_health_check_failure_total", &[("cluster", "c")]).unwrap() >= 2.0);
    assert_eq!(value(&families, "metaproxy_membership_healthy", &[("cluster", "c")]), Some(1.0));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_under_load_and_the_histograms_count_every_request() {
    const CLIENTS: usize = 4;
    const BATCHES: usize = 10;
    const IN_FLIGHT: usize = 25;
    let p = provider("p", Behavior { delay: Duration::from_millis(2), ..Behavior::default() }).await;
    let yaml = common::single_listener(
        "admin: { address: 127.0.0.1:0 }\nworkers: 2",
        "",
        "    endpoints: [{ address: \"{p}\" }]",
    );
    let running = proxy(&yaml, &[&p]).await;
    let admin = running.admin_address().unwrap();
    let mut load = Vec::new();
    for _ in 0..CLIENTS {
        let c = client(&running).await;
        load.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..BATCHES {
                let answers = futures_util::future::join_all((0..IN_FLIGHT).map(|_| call(&c, "sayHello", &[]))).await;
                ok += answers.iter().filter(|m| status(m) == "20").count();
            }
            ok
        }));
    }
    // Scrape and parse while the load runs.
    let mut scrapes = 0;
    let mut histograms = 0;
    while scrapes < 2 || !load.iter().all(|l| l.is_finished()) {
        let (code, text) = http(admin, "GET", "/metrics").await;
        assert_eq!(code, 200);
        let families = tokio::task::spawn_blocking(move || parse_metrics(&text)).await.unwrap();
        histograms = check_histograms(&families);
        scrapes += 1;
    }
    let mut ok = 0;
    for l in load {
        ok += l.await.unwrap();
    }
    let sent = CLIENTS * BATCHES * IN_FLIGHT;
    assert_eq!(ok, sent);
    assert_eq!(histograms, 2, "one downstream and one upstream series");

    let (_, text) = http(admin, "GET", "/metrics").await;
    let families = parse_metrics(&text);
    assert_eq!(check_histograms(&families), 2);
    let n = sent as f64;
    let listener = [("listener", "in")];
    let cluster = [("cluster", "c")];
    assert_eq!(value(&families, "metaproxy_downstream_rq_time_count", &listener), Some(n));
    assert_eq!(value(&families, "metaproxy_upstream_rq_time_count", &cluster), Some(n));
    assert_eq!(value(&families, "metaproxy_downstream_rq_total", &listener), Some(n));
    assert_eq!(value(&families, "metaproxy_upstream_rq_total", &cluster), Some(n));
    let success = [("listener", "in"), ("class", "success")];
    assert_eq!(value(&families, "metaproxy_downstream_rq_responses_total", &success), Some(n));
    // Each answer waited at least the provider's 2 ms: no request is in the 0.5 ms and 1 ms buckets.
    let fast = [("listener", "in"), ("le", "1")];
    assert_eq!(value(&families, "metaproxy_downstream_rq_time_bucket", &fast), Some(0.0));
    assert!(value(&families, "metaproxy_upstream_rq_time_sum", &cluster).unwrap() >= 2.0 * n);
    // Counters that had no `_total` suffix are there under both names.
    assert_eq!(value(&families, "metaproxy_upstream_rq_retry_total", &cluster), Some(0.0));
    assert_eq!(value(&families, "metaproxy_upstream_rq_retry", &cluster), Some(0.0));
    assert!(text.contains("# TYPE metaproxy_downstream_rq_total counter\n"), "{text}");
    running.shutdown().await;
}

/// What the load of the health-check test saw: when each call started, its status, who served it.
type Seen = Arc<Mutex<Vec<(Instant, String, String)>>>;

fn load(running: &metaproxy_runtime::server::Running, stop: Arc<AtomicBool>) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let address = running.address("in").unwrap();
    let task = tokio::spawn({
        let seen = seen.clone();
        async move {
            let c = metaproxy_demo_peers::client::Client::connect(address).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answers = futures_util::future::join_all((0..4).map(|_| call(&c, "sayHello", &[]))).await;
                {
                    let mut seen = seen.lock().unwrap();
                    for m in answers {
                        let by = m.metadata.kvs.get_str("served-by").unwrap_or("-").to_string();
                        seen.push((started, status(&m).to_string(), by));
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    (seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_move_traffic_off_a_killed_provider_and_back_when_it_returns() {
    const INTERVAL: Duration = Duration::from_millis(300);
    let p1 = provider("p1", Behavior::default()).await;
    let p2 = provider("p2", Behavior::default()).await;
    let yaml = common::single_listener(
        "admin: { address: 127.0.0.1:0 }\nworkers: 2",
        "",
        "    endpoints: [{ address: \"{p1}\" }, { address: \"{p2}\" }]\n    health_check: { interval: 300ms, timeout: 200ms, unhealthy_threshold: 2, healthy_threshold: 1 }",
    );
    let running = proxy(&yaml, &[&p1, &p2]).await;
    let admin = running.admin_address().unwrap();
    wait_for(admin, p1.address, "health", "healthy".into(), Duration::from_secs(5)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, task) = load(&running, stop.clone());
    while p1.stats.total() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Kill p1: within two check intervals it is out, and from then on every call succeeds on p2.
    let killed = Instant::now();
    p1.stop().await;
    let out = wait_for(admin, p1.address, "health", "unhealthy".into(), Duration::from_secs(5)).await;
    let detection = out - killed;
    assert!(detection <= 2 * INTERVAL + Duration::from_millis(400), "detected after {detection:?}");
    tokio::time::sleep(2 * INTERVAL).await;

    // Bring it back on the same port: one passed check and it takes traffic again.
    let back = demo::spawn(p1.address, "p1", Behavior::default()).await.unwrap();
    let restarted = Instant::now();
    let rejoined = wait_for(admin, p1.address, "health", "healthy".into(), Duration::from_secs(5)).await;
    assert!(rejoined - restarted <= INTERVAL + Duration::from_millis(400), "rejoined after {:?}", rejoined - restarted);
    let until = Instant::now() + Duration::from_secs(5);
    while back.stats.total() < 20 {
        assert!(Instant::now() < until, "p1 took no traffic after it came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let failed_while_detecting = seen.iter().filter(|(at, s, _)| *at < out && *at >= killed && s != "20").count();
    let after: Vec<_> = seen.iter().filter(|(at, _, _)| *at >= out).collect();
    let errors: Vec<_> = after.iter().filter(|(_, s, _)| s != "20").collect();
    assert!(
        errors.is_empty(),
        "{} of {} calls failed after p1 was marked unhealthy: {errors:?}",
        errors.len(),
        after.len()
    );
    let on_p2_while_out = after.iter().filter(|(at, _, by)| *at < restarted && by == "p2").count();
    let on_p1_while_out = after.iter().filter(|(at, _, by)| *at < restarted && by == "p1").count();
    assert!(on_p2_while_out > 0 && on_p1_while_out == 0, "p2 {on_p2_while_out}, p1 {on_p1_while_out}");
    println!(
        "detected in {detection:?}; {failed_while_detecting} calls failed before; {} after, none failed; rejoined in {:?}",
        after.len(),
        rejoined - restarted
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_provider_that_answers_server_errors() {
    let bad = provider("bad", Behavior { server_error: true, ..Behavior::default() }).await;
    let good = provider("good", Behavior::default()).await;
    let yaml = common::single_listener(
        "admin: { address: 127.0.0.1:0 }\nworkers: 2",
        "",
        "    endpoints: [{ address: \"{bad}\" }, { address: \"{good}\" }]\n    outlier_detection: { consecutive_5xx: 3, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 50 }",
    );
    let running = proxy(&yaml, &[&bad, &good]).await;
    let admin = running.admin_address().unwrap();
    let c = client(&running).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(status(&call(&c, "sayHello", &[]).await).to_string());
    }
    // Its three errors in a row eject it; everything after goes to the good one.
    assert_eq!(statuses.iter().filter(|s| *s == "80").count(), 3, "{statuses:?}");
    assert_eq!(bad.stats.total(), 3);
    assert!(statuses[6..].iter().all(|s| s == "20"), "{statuses:?}");
    let ejected = endpoint(admin, "c", bad.address).await;
    assert_eq!((ejected["ejected"].clone(), ejected["ejections"].clone()), (true.into(), 1.into()), "{ejected}");
    assert!(ejected["ejected_for_ms"].as_u64().unwrap() > 25_000, "{ejected}");
    assert_eq!(endpoint(admin, "c", good.address).await["ejected"], false);
    let (_, text) = http(admin, "GET", "/metrics").await;
    let families = parse_metrics(&text);
    let cluster = [("cluster", "c")];
    assert_eq!(value(&families, "metaproxy_outlier_detection_ejections_enforced_total", &cluster), Some(1.0));
    assert_eq!(value(&families, "metaproxy_outlier_detection_ejections_active", &cluster), Some(1.0));
    let errors = [("listener", "in"), ("class", "error")];
    assert_eq!(value(&families, "metaproxy_downstream_rq_responses_total", &errors), Some(3.0));
    running.shutdown().await;
}

/// The first frame of a real client's capture: python3-dubbo calling `DemoService.sayHello`.
fn captured_request() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../codecs/dubbo/fixtures/peers/python3-dubbo.requests.bin");
    let data = std::fs::read(path).unwrap();
    let body = u32::from_be_bytes(data[12..16].try_into().unwrap()) as usize;
    data[..16 + body].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_request_check_takes_out_a_provider_whose_heartbeat_still_answers() {
    // `broken` answers heartbeats but fails every call: a heartbeat check keeps it in, the
    // configured request (a real client's `sayHello`, sent with the check's own id) takes it out.
    let broken = provider("broken", Behavior { server_error: true, ..Behavior::default() }).await;
    let good = provider("good", Behavior::default()).await;
    let hex: String = captured_request().iter().map(|b| format!("{b:02x}")).collect();
    let yaml = format!(
        r#"
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes: [{{ name: all, route: {{ cluster: c }} }}]
clusters:
  - name: c
    endpoints: [{{ address: "{{good}}" }}, {{ address: "{{broken}}" }}]
    health_check: {{ interval: 100ms, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 1, request: {{ hex: "{hex}" }} }}
access_log: {{ enabled: false }}
"#
    );
    let running = proxy(&yaml, &[&good, &broken]).await;
    let admin = running.admin_address().unwrap();
    wait_for(admin, broken.address, "health", "unhealthy".into(), Duration::from_secs(5)).await;
    wait_for(admin, good.address, "health", "healthy".into(), Duration::from_secs(5)).await;
    let c = client(&running).await;
    for _ in 0..20 {
        let answer = call(&c, "sayHello", &[]).await;
        assert_eq!((status(&answer), answer.metadata.kvs.get_str("served-by")), ("20", Some("good")));
    }
    let dump = json(admin, "/config_dump").await;
    let check = &dump["effective"]["clusters"][0]["health_check"];
    assert_eq!(
        (check["kind"].as_str(), check["request_bytes"].as_u64()),
        (Some("request"), Some(hex.len() as u64 / 2))
    );
    // The check's request went to both providers, each check on a connection of its own.
    assert!(broken.stats.connections.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    running.shutdown().await;
}

#[test]
fn health_check_and_outlier_settings_are_checked_where_they_are_written() {
    let registry = metaproxy_runtime::default_registry().unwrap();
    let load = |cluster_extra: &str| {
        let yaml = common::single_listener(
            "",
            "",
            &format!("    endpoints: [{{ address: \"127.0.0.1:1\" }}]\n{cluster_extra}"),
        );
        metaproxy_runtime::config::load_str(&yaml, "t.yaml", &registry)
    };
    let cfg = load("    health_check: { interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 1 }")
        .unwrap();
    let check = cfg.clusters[0].health_check.clone().unwrap();
    assert_eq!((check.interval, check.timeout), (Duration::from_secs(1), Duration::from_millis(500)));
    assert_eq!(check.kind, metaproxy_runtime::upstream::HealthCheckKind::Heartbeat);
    let cfg = load("    outlier_detection: { consecutive_errors: 7 }\n    healthy_panic_threshold: 0").unwrap();
    let o = cfg.clusters[0].outlier_detection.unwrap();
    assert_eq!((o.consecutive_errors, o.max_ejection_percent, o.base_ejection_time), (7, 10, Duration::from_secs(30)));
    assert_eq!(cfg.clusters[0].healthy_panic_threshold, 0);
    for (extra, field) in [
        ("    health_check: { interval: 0s }", "clusters[0].health_check.interval"),
        ("    health_check: { unhealthy_threshold: 0 }", "clusters[0].health_check.unhealthy_threshold"),
        ("    health_check: { kind: grpc }", ""),
        ("    health_check: { kind: request }", "clusters[0].health_check.request"),
        ("    health_check: { kind: tcp, request: { hex: \"dabb\" } }", "clusters[0].health_check.request"),
        ("    health_check: { request: { hex: \"dab\" } }", "clusters[0].health_check.request.hex"),
        ("    health_check: { request: { hex: \"dabb\", file: x.bin } }", "clusters[0].health_check.request"),
        ("    health_check: { request: { file: no-such-file.bin } }", "clusters[0].health_check.request.file"),
        ("    outlier_detection: { max_ejection_percent: 101 }", "clusters[0].outlier_detection.max_ejection_percent"),
        ("    healthy_panic_threshold: 101", "clusters[0].healthy_panic_threshold"),
    ] {
        let e = load(extra).unwrap_err();
        assert!(e.field == field, "{extra}: {e}");
    }
    let cfg = load("    health_check: { request: { hex: \"da bb c2\" } }").unwrap();
    let check = cfg.clusters[0].health_check.clone().unwrap();
    assert_eq!(check.kind, metaproxy_runtime::upstream::HealthCheckKind::Request);
    assert_eq!(check.request.as_deref(), Some(&[0xda, 0xbb, 0xc2][..]));
    // Equal texts, equal versions; another text, another version.
    let (a, b) = (load("").unwrap(), load("").unwrap());
    assert_eq!(a.version.hash, b.version.hash);
    assert_ne!(a.version.hash, load("    lb: random").unwrap().version.hash);
}
