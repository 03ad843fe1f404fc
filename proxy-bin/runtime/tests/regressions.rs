//! Bugs found in review of the first runtime, each shown gone through the real proxy: the
//! least-request balancer's in-flight count leaking on timeouts, mirrored copies bypassing the
//! mirror cluster's circuit breaker, and `/metrics` interleaving metric families once there are
//! two listeners or clusters (invalid Prometheus text).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{call, client, http_get, provider, proxy, sample, single_listener, status};
use metaproxy_demo_peers::provider::Behavior;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_releases_the_load_of_timed_out_requests() {
    let slow = provider("slow", Behavior { delay: Duration::from_secs(5), ..Behavior::default() }).await;
    let fast = provider("fast", Behavior::default()).await;
    let yaml = single_listener(
        "workers: 1",
        "        timeout: 20ms",
        "    lb: least_request\n    endpoints: [{ address: \"{slow}\" }, { address: \"{fast}\" }]",
    );
    let running = proxy(&yaml, &[&slow, &fast]).await;
    let c = client(&running).await;
    // One request at a time, so that every pick compares two idle endpoints: the balancer draws
    // two endpoints at random and takes the less loaded, the first on a tie, so the slow endpoint
    // gets half of the requests. If the requests that timed out on it still counted as its load,
    // it would look busier than the fast one from the first timeout on, and would only be chosen
    // when both draws fall on it: a quarter of the requests.
    let n = 200;
    for _ in 0..n {
        let answer = call(&c, "sayHello", &[]).await;
        assert!(["20", "31"].contains(&status(&answer)), "{}", status(&answer));
    }
    let reached = slow.stats.total();
    assert!(reached > n * 3 / 8, "the slow endpoint got {reached} of {n} requests: its load leaked");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_copies_go_through_the_mirror_cluster_s_circuit_breaker() {
    let main = provider("main", Behavior::default()).await;
    let shadow = provider("shadow", Behavior { delay: Duration::from_secs(2), ..Behavior::default() }).await;
    let yaml = r#"
workers: 1
admin: { address: 127.0.0.1:0 }
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: all
        route: { cluster: main }
        mirror: { cluster: shadow }
clusters:
  - { name: main, endpoints: [{ address: "{main}" }] }
  - name: shadow
    endpoints: [{ address: "{shadow}" }]
    circuit_breakers: { max_requests: 1 }
access_log: { enabled: false }
"#;
    let running = proxy(yaml, &[&main, &shadow]).await;
    let c = client(&running).await;
    for _ in 0..10 {
        assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    }
    // The first copy holds the shadow cluster's only request slot for two seconds: the other
    // nine are refused at the proxy, never sent.
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    assert_eq!(sample(&metrics, "metaproxy_upstream_rq_mirrored{cluster=\"shadow\"}"), Some(1), "{metrics}");
    assert_eq!(sample(&metrics, "metaproxy_upstream_rq_active{cluster=\"shadow\"}"), Some(1), "{metrics}");
    assert_eq!(sample(&metrics, "metaproxy_upstream_rq_total{cluster=\"main\"}"), Some(10), "{metrics}");
    running.shutdown().await;
}

/// Checks the Prometheus text format rules a scraper relies on: every sample's family was
/// introduced by `# TYPE`, and a family's samples are contiguous (no family appears twice).
fn assert_valid_exposition(text: &str) {
    let mut seen = HashSet::new();
    let mut current: Option<String> = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap().to_string();
            assert!(seen.insert(name.clone()), "family `{name}` appears twice:\n{text}");
            current = Some(name);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        // A histogram's samples are its `_bucket`, `_sum` and `_count` series.
        let in_family = |family: &str| {
            name == family || ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(family))
        };
        assert!(current.as_deref().is_some_and(in_family), "sample `{line}` outside its family's block:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_keep_each_family_together_with_two_listeners_and_two_clusters() {
    let a = provider("a", Behavior::default()).await;
    let b = provider("b", Behavior::default()).await;
    let yaml = r#"
admin: { address: 127.0.0.1:0 }
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes: [{ name: all, route: { cluster: a } }]
  - name: other
    address: 127.0.0.1:0
    protocol: dubbo
    routes: [{ name: all, route: { cluster: b } }]
clusters:
  - { name: a, endpoints: [{ address: "{a}" }] }
  - { name: b, endpoints: [{ address: "{b}" }] }
access_log: { enabled: false }
"#;
    let running = proxy(yaml, &[&a, &b]).await;
    let c = client(&running).await;
    assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    let body = metrics.split("\r\n\r\n").nth(1).unwrap();
    assert_valid_exposition(body);
    assert_eq!(sample(body, "metaproxy_downstream_rq_total{listener=\"in\"}"), Some(1));
    assert_eq!(sample(body, "metaproxy_downstream_rq_total{listener=\"other\"}"), Some(0));
    assert_eq!(sample(body, "metaproxy_upstream_rq_total{cluster=\"a\"}"), Some(1));
    assert_eq!(sample(body, "metaproxy_upstream_rq_total{cluster=\"b\"}"), Some(0));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_requests_to_an_upstream_that_does_not_read_are_refused_not_buffered() {
    // An upstream that accepts and never reads: whatever is sent to it piles up.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = stuck.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = stuck.accept().await {
            held.push(s);
        }
    });
    let endpoint = format!("    endpoints: [{{ address: \"{address}\" }}]");
    let yaml = single_listener("workers: 1\nadmin: { address: 127.0.0.1:0 }", "", &endpoint);
    let running = proxy(&yaml, &[]).await;
    let c = client(&running).await;
    // 40 MiB of one-way requests: more than the kernel's socket buffers and the proxy's 4 MiB
    // queue per upstream connection together.
    let arg = "x".repeat(64 * 1024);
    for _ in 0..640 {
        c.send_oneway(common::SERVICE, "fireAndForget", &arg, &[]).await.unwrap();
    }
    // A two-way call on the same connection comes after all of them: once it is answered (with
    // an over-limit error, the upstream being backed up), every one-way request was handled.
    let answer = call(&c, "sayHello", &[]).await;
    assert_eq!(status(&answer), "80", "{answer:?}");
    assert!(answer.metadata.kvs.get_str("error_message").unwrap_or("").contains("not reading"), "{answer:?}");
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    let refused = sample(&metrics, "metaproxy_local_replies_total{listener=\"in\",kind=\"over_limit\"}").unwrap();
    assert!(refused > 100, "one-way requests refused: {refused}\n{metrics}");
    assert_eq!(
        sample(&metrics, "metaproxy_upstream_cx_total{cluster=\"c\"}"),
        Some(1),
        "no extra connection is opened past connections_per_endpoint"
    );
    held.abort();
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_keeps_a_position_per_subset() {
    let u1 = provider("u1", Behavior::default()).await;
    let u2 = provider("u2", Behavior::default()).await;
    let b1 = provider("b1", Behavior::default()).await;
    let yaml = r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: batch
        match: [{ key: batchjob, exact: "true" }]
        route: { cluster: c, subset: batch }
      - name: user
        route: { cluster: c, subset: user }
clusters:
  - name: c
    lb: round_robin
    endpoints:
      - { address: "{u1}", labels: { group: user } }
      - { address: "{b1}", labels: { group: batch } }
      - { address: "{u2}", labels: { group: user } }
    subsets:
      - { name: user, labels: { group: user } }
      - { name: batch, labels: { group: batch } }
access_log: { enabled: false }
"#;
    let running = proxy(yaml, &[&u1, &u2, &b1]).await;
    let c = client(&running).await;
    // User and batch calls strictly alternate: with one position shared by both subsets, every
    // user call landed on the same user endpoint.
    for _ in 0..20 {
        assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
        assert_eq!(status(&call(&c, "sayHello", &[("batchjob", "true")]).await), "20");
    }
    assert_eq!((u1.stats.total(), u2.stats.total(), b1.stats.total()), (10, 10, 20));
    running.shutdown().await;
}
