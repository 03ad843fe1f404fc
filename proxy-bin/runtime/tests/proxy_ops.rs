//! Operating the proxy: the admin endpoint's metrics, ring-hash stickiness, DNS clusters.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;

use common::{call, client, http_get, provider, proxy, status};
use metaproxy_demo_peers::provider::Behavior;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_exports_prometheus_metrics() {
    let p = provider("p", Behavior::default()).await;
    let yaml = r#"
admin: { address: 127.0.0.1:0 }
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: get
        match: [{ key: method, prefix: get }]
        route: { cluster: c }
clusters:
  - { name: c, endpoints: [{ address: "{p}" }] }
access_log: { format: json }
workers: 1
"#;
    let running = proxy(yaml, &[&p]).await;
    let c = client(&running).await;
    for _ in 0..3 {
        assert_eq!(status(&call(&c, "getUser", &[]).await), "20");
    }
    assert_eq!(status(&call(&c, "deleteUser", &[]).await), "60");
    let admin = running.admin_address().unwrap();
    let metrics = http_get(admin, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    for line in [
        "metaproxy_downstream_rq_total{listener=\"in\"} 4",
        "metaproxy_request_outcomes_total{listener=\"in\",outcome=\"response\"} 3",
        "metaproxy_local_replies_total{listener=\"in\",kind=\"route_not_found\"} 1",
        // One worker multiplexes every call on its one connection to the endpoint.
        "metaproxy_upstream_cx_active{cluster=\"c\"} 1",
        "metaproxy_upstream_rq_total{cluster=\"c\"} 3",
        "metaproxy_downstream_connections 1",
        "# TYPE metaproxy_downstream_rq_total counter",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    assert!(http_get(admin, "/ready").await.contains("200 OK"));
    assert!(http_get(admin, "/nope").await.contains("404"));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keeps_each_user_on_one_endpoint() {
    let ps = [
        provider("p1", Behavior::default()).await,
        provider("p2", Behavior::default()).await,
        provider("p3", Behavior::default()).await,
    ];
    let yaml = r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: all
        route: { cluster: c }
        hash_keys: [userId]
clusters:
  - name: c
    lb: ring_hash
    endpoints: [{ address: "{p1}" }, { address: "{p2}" }, { address: "{p3}" }]
access_log: { enabled: false }
"#;
    let running = proxy(yaml, &[&ps[0], &ps[1], &ps[2]]).await;
    let c = client(&running).await;
    let mut served: HashMap<String, Vec<String>> = HashMap::new();
    for u in 0..12 {
        let user = format!("user-{u}");
        for _ in 0..5 {
            let m = call(&c, "sayHello", &[("userId", &user)]).await;
            served.entry(user.clone()).or_default().push(m.metadata.kvs.get_str("served-by").unwrap().to_string());
        }
    }
    for (user, by) in &served {
        assert!(by.iter().all(|p| p == &by[0]), "{user} moved between {by:?}");
    }
    let used: std::collections::HashSet<_> = served.values().map(|v| v[0].clone()).collect();
    assert!(used.len() >= 2, "12 users all hashed to {used:?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_cluster_resolves_its_name() {
    let p = provider("p", Behavior::default()).await;
    // `localhost` may also resolve to ::1, where nothing listens: retries move on to 127.0.0.1.
    let yaml = format!(
        r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: all
        route: {{ cluster: c }}
        retries: {{ count: 2 }}
clusters:
  - name: c
    dns: {{ address: "localhost:{}", refresh: 1s }}
access_log: {{ enabled: false }}
"#,
        p.address.port()
    );
    let running = proxy(&yaml, &[]).await;
    let c = client(&running).await;
    for _ in 0..10 {
        assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    }
    assert_eq!(p.stats.total(), 10);
    running.shutdown().await;
}
