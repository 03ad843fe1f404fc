//! Reloading under load: routes, subsets and endpoints rewritten twenty times while a client
//! keeps requests in flight, with no request lost, each change visible in `/config_dump` and in
//! where traffic goes, and upstream connections to endpoints that stay kept; and configurations
//! that a reload cannot apply refused while the running one keeps serving.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::{call, client, http_get, provider, proxy, sample, SERVICE};
use metaproxy_demo_peers::provider::{Behavior, Provider};

/// A configuration whose route sends `batchjob=true` to subset `batch` of cluster `main` and
/// everything else to `target` (cluster `main` or `other`); `main` has `endpoints` (provider
/// names) and labels each `group: <name>`, and its subset `batch` selects `batch_group`.
fn config(target: &str, endpoints: &[&str], batch_group: &str, providers: &[&Provider]) -> String {
    let address = |name: &str| providers.iter().find(|p| p.name == name).unwrap().address;
    let endpoints: Vec<String> =
        endpoints.iter().map(|n| format!("{{ address: \"{}\", labels: {{ group: {n} }} }}", address(n))).collect();
    format!(
        r#"
workers: 1
admin: {{ address: 127.0.0.1:0 }}
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: batch
        match: [{{ key: batchjob, exact: "true" }}]
        route: {{ cluster: main, subset: batch }}
      - name: rest
        route: {{ cluster: {target} }}
clusters:
  - name: main
    endpoints: [{}]
    subsets: [{{ name: batch, labels: {{ group: {batch_group} }} }}]
  - name: other
    endpoints: [{{ address: "{}", labels: {{ group: b }} }}]
access_log: {{ enabled: false }}
"#,
        endpoints.join(", "),
        address("b"),
    )
}

fn served_by(m: &metaproxy_demo_peers::client::DubboMessage) -> String {
    m.metadata.kvs.get_str("served-by").unwrap_or("?").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rewrites_under_load_lose_no_request() {
    let a1 = provider("a1", Behavior::default()).await;
    let a2 = provider("a2", Behavior::default()).await;
    let b = provider("b", Behavior::default()).await;
    let all = [&a1, &a2, &b];
    let registry = metaproxy_runtime::default_registry().unwrap();
    let mut running = proxy(&config("main", &["a1"], "a1", &all), &all).await;
    let admin = running.admin_address().unwrap();
    // The load: a client keeping 16 requests in flight, a third of them batch jobs.
    let load = client(&running).await;
    let (stop, sent, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let generator = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let calls = (0..16).map(|i| {
                    let attachments: &[(&str, &str)] = if i % 3 == 0 { &[("batchjob", "true")] } else { &[] };
                    load.call(SERVICE, "sayHello", "x", attachments)
                });
                for answer in futures_util::future::join_all(calls).await {
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !answer.as_ref().is_ok_and(|m| m.metadata.kvs.get_str("status") == Some("20")) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let probe = client(&running).await;
    let mut versions = vec![running.config_version()];
    for round in 1..=20 {
        // Odd rounds: everything but batch jobs to `other`, and a2 joins `main`; even rounds: back
        // to `main` with a1 alone. The batch subset alternates between a1 and a2 where a2 is in.
        let odd = round % 2 == 1;
        let (target, endpoints, batch_group) =
            if odd { ("other", vec!["a1", "a2"], "a2") } else { ("main", vec!["a1"], "a1") };
        let yaml = config(target, &endpoints, batch_group, &all);
        let cfg = metaproxy_runtime::config::load_str(&yaml, "reload.yaml", &registry).unwrap();
        running.reload(cfg).await.unwrap();
        let version = running.config_version();
        let dump = http_get(admin, "/config_dump").await;
        assert!(dump.contains(&version), "round {round}: /config_dump does not show version {version}");
        versions.push(version);
        // Where traffic goes follows the change.
        let plain = served_by(&call(&probe, "sayHello", &[]).await);
        assert_eq!(plain, if odd { "b" } else { "a1" }, "round {round}");
        let batch = served_by(&call(&probe, "sayHello", &[("batchjob", "true")]).await);
        assert_eq!(batch, batch_group, "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    generator.await.unwrap();
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "only {sent} requests were sent during the reloads");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed during the reloads");
    // Every rewrite is a new version (the texts alternate, so versions alternate too).
    assert!(versions.windows(2).all(|w| w[0] != w[1]), "{versions:?}");
    // a1 stayed an endpoint of `main` throughout: its connection was kept, never reopened.
    assert_eq!(a1.stats.connections.load(Ordering::Relaxed), 1, "a1 was reconnected");
    let metrics = http_get(admin, "/metrics").await;
    assert_eq!(sample(&metrics, "metaproxy_config_reloads_total{result=\"success\"}"), Some(20), "{metrics}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_needs_a_restart_is_refused_and_the_running_one_serves_on() {
    let a1 = provider("a1", Behavior::default()).await;
    let a2 = provider("a2", Behavior::default()).await;
    let b = provider("b", Behavior::default()).await;
    let all = [&a1, &a2, &b];
    let registry = metaproxy_runtime::default_registry().unwrap();
    let mut running = proxy(&config("main", &["a1"], "a1", &all), &all).await;
    let before = running.config_version();
    let c = client(&running).await;
    // A new cluster, another drain timeout, more workers: each needs a restart.
    let base = config("other", &["a1"], "a1", &all);
    let changes = [
        base.replace(
            "access_log: { enabled: false }",
            "  - { name: third, endpoints: [{ address: \"127.0.0.1:9\" }] }\naccess_log: { enabled: false }",
        ),
        base.replace("workers: 1", "workers: 1\ndrain_timeout: 3s"),
        base.replace("workers: 1", "workers: 2"),
    ];
    for (i, yaml) in changes.iter().enumerate() {
        let cfg = metaproxy_runtime::config::load_str(yaml, "restart.yaml", &registry).unwrap();
        let err = running.reload(cfg).await.unwrap_err();
        assert!(err.to_string().contains("restart is needed"), "change {i}: {err}");
        assert_eq!(running.config_version(), before);
        // Still the running configuration: plain requests go to `main` (a1), not `other` (b).
        assert_eq!(served_by(&call(&c, "sayHello", &[]).await), "a1");
    }
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    assert_eq!(sample(&metrics, "metaproxy_config_reloads_total{result=\"rejected\"}"), Some(3), "{metrics}");
    running.shutdown().await;
}

/// [`config`] with a second listener `extra` whose every request goes to cluster `other`, at
/// `address`, with `codec_extra` lines (codec options) when given; without listener `in` when
/// `with_in` is false.
fn with_extra(base: &str, address: &str, codec_extra: &str, with_in: bool) -> String {
    let extra = format!(
        "  - name: extra\n    address: {address}\n    protocol: dubbo\n{codec_extra}    routes: [{{ name: all, route: {{ cluster: other }} }}]\nclusters:\n"
    );
    let mut yaml = base.replacen("clusters:\n", &extra, 1);
    if !with_in {
        let start = yaml.find("  - name: in\n").unwrap();
        let end = yaml.find("  - name: extra\n").unwrap();
        yaml.replace_range(start..end, "");
    }
    yaml
}

/// A client keeping 8 requests in flight on `address` until stopped or its connection closes;
/// returns (answered with status 20, answered with anything else, calls that got no answer
/// because the connection closed).
fn keep_busy(address: std::net::SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, u64, u64)> {
    tokio::spawn(async move {
        let c = metaproxy_demo_peers::client::Client::connect(address).await.unwrap();
        let (mut ok, mut bad, mut closed) = (0, 0, 0);
        while !stop.load(Ordering::Relaxed) && closed == 0 {
            let calls = (0..8).map(|_| {
                tokio::time::timeout(std::time::Duration::from_secs(10), c.call(SERVICE, "sayHello", "x", &[]))
            });
            for answer in futures_util::future::join_all(calls).await {
                match answer.expect("a call hung") {
                    Ok(m) if m.metadata.kvs.get_str("status") == Some("20") => ok += 1,
                    Ok(_) => bad += 1,
                    Err(_) => closed += 1,
                }
            }
        }
        (ok, bad, closed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_added_start_and_removed_or_replaced_ones_drain_under_load() {
    let a1 = provider("a1", Behavior::default()).await;
    let b = provider("b", Behavior::default()).await;
    let all = [&a1, &b];
    let registry = metaproxy_runtime::default_registry().unwrap();
    let base = config("main", &["a1"], "a1", &all);
    let mut running = proxy(&base, &all).await;
    let admin = running.admin_address().unwrap();
    let old_in = running.address("in").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let on_in = keep_busy(old_in, stop.clone());

    // Added: `extra` starts accepting; `in` and its connections carry on.
    let port = common::dead_address().port();
    let yaml = with_extra(&base, &format!("127.0.0.1:{port}"), "", true);
    running.reload(metaproxy_runtime::config::load_str(&yaml, "add.yaml", &registry).unwrap()).await.unwrap();
    let extra = running.address("extra").unwrap();
    assert_eq!(extra.port(), port);
    let c = metaproxy_demo_peers::client::Client::connect(extra).await.unwrap();
    let m = c.call(SERVICE, "sayHello", "x", &[]).await.unwrap();
    assert_eq!(served_by(&m), "b");
    let dump = http_get(admin, "/config_dump").await;
    assert!(dump.contains(&format!("\"bound\":\"{extra}\"")), "{dump}");
    let on_extra = keep_busy(extra, stop.clone());

    // Removed: `in` stops accepting and its connection drains (what was in flight is answered,
    // then it closes); `extra` is untouched.
    let yaml = with_extra(&base, &format!("127.0.0.1:{port}"), "", false);
    running.reload(metaproxy_runtime::config::load_str(&yaml, "remove.yaml", &registry).unwrap()).await.unwrap();
    assert_eq!(running.address("in"), None);
    let (ok, bad, closed) = tokio::time::timeout(std::time::Duration::from_secs(10), on_in).await.unwrap().unwrap();
    assert!(ok > 0 && closed > 0, "the removed listener's connection was not drained: {ok} ok, {closed} unanswered");
    assert_eq!(bad, 0, "{bad} requests on the removed listener got an error answer");
    assert!(tokio::net::TcpStream::connect(old_in).await.is_err(), "the removed listener still accepts");

    // Replaced (another codec option, same address): new connections reach the new listener, the
    // old one's connection drains, and a client that reconnects carries on.
    let yaml = with_extra(&base, &format!("127.0.0.1:{port}"), "    codec: { max_depth: 32 }\n", false);
    running.reload(metaproxy_runtime::config::load_str(&yaml, "replace.yaml", &registry).unwrap()).await.unwrap();
    let (ok, bad, _) = tokio::time::timeout(std::time::Duration::from_secs(10), on_extra).await.unwrap().unwrap();
    assert!(ok > 0 && bad == 0, "{ok} ok, {bad} errors on the replaced listener");
    let c = metaproxy_demo_peers::client::Client::connect(extra).await.unwrap();
    for _ in 0..10 {
        assert_eq!(served_by(&c.call(SERVICE, "sayHello", "x", &[]).await.unwrap()), "b");
    }
    assert_eq!(running.address("extra"), Some(extra));
    stop.store(true, Ordering::Relaxed);
    let metrics = http_get(admin, "/metrics").await;
    assert_eq!(sample(&metrics, "metaproxy_config_reloads_total{result=\"success\"}"), Some(3), "{metrics}");
    assert!(!metrics.contains("listener=\"in\""), "the removed listener's series are still there");
    running.shutdown().await;
}
