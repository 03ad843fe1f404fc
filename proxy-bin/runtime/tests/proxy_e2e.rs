//! The proxy end to end, driven as users drive it: a YAML configuration, Dubbo providers and a
//! pipelining Dubbo client on loopback.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{call, client, dead_address, provider, proxy, status, SERVICE};
use metaprotocol_core::MessageType;
use metaproxy_demo_peers::client::Client;
use metaproxy_demo_peers::provider::Behavior;

const SUBSETS: &str = r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: batchjob
        match: [{ key: batchjob, exact: "true" }]
        route: { cluster: provider, subset: batchjob }
      - name: default
        route: { cluster: provider, subset: user }
clusters:
  - name: provider
    endpoints:
      - { address: "{user}", labels: { service_group: user } }
      - { address: "{batch}", labels: { service_group: batchjob } }
    subsets:
      - { name: user, labels: { service_group: user } }
      - { name: batchjob, labels: { service_group: batchjob } }
access_log: { enabled: false }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_attachment_to_subsets() {
    let (user, batch) = (provider("user", Behavior::default()).await, provider("batch", Behavior::default()).await);
    let running = proxy(SUBSETS, &[&user, &batch]).await;
    let c = client(&running).await;
    for i in 0..60 {
        let attachments: &[(&str, &str)] = if i % 3 == 0 { &[("batchjob", "true")] } else { &[("batchjob", "false")] };
        let m = call(&c, "sayHello", attachments).await;
        let want = if i % 3 == 0 { "batch" } else { "user" };
        assert_eq!(m.metadata.kvs.get_str("served-by"), Some(want));
    }
    assert_eq!((user.stats.user.load(Ordering::Relaxed), user.stats.batch.load(Ordering::Relaxed)), (40, 0));
    assert_eq!((batch.stats.user.load(Ordering::Relaxed), batch.stats.batch.load(Ordering::Relaxed)), (0, 20));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_within_tolerance() {
    let (a, b) = (provider("a", Behavior::default()).await, provider("b", Behavior::default()).await);
    let yaml = r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: split
        weighted: [{ cluster: ca, weight: 80 }, { cluster: cb, weight: 20 }]
clusters:
  - { name: ca, endpoints: [{ address: "{a}" }] }
  - { name: cb, endpoints: [{ address: "{b}" }] }
access_log: { enabled: false }
"#;
    let running = proxy(yaml, &[&a, &b]).await;
    let c = client(&running).await;
    let calls: Vec<_> = (0..1000).map(|_| call(&c, "sayHello", &[])).collect();
    futures_util::future::join_all(calls).await;
    let (na, nb) = (a.stats.total(), b.stats.total());
    assert_eq!(na + nb, 1000);
    // 80% of 1000 with a binomial standard deviation of about 13: allow 6 deviations.
    assert!((720..=880).contains(&na), "a got {na}, b got {nb}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_mutation_reaches_the_upstream_and_response_mutation_the_client() {
    let p = provider("p", Behavior::default()).await;
    let yaml = r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: all
        route: { cluster: c }
        request_mutation: [{ key: x-routed-by, value: metaproxy }, { key: secret, remove: true }]
        response_mutation: [{ key: x-served-via, value: proxy }, { key: served-by, remove: true }]
clusters:
  - { name: c, endpoints: [{ address: "{p}" }] }
access_log: { enabled: false }
"#;
    let running = proxy(yaml, &[&p]).await;
    let c = client(&running).await;
    let m = call(&c, "sayHello", &[("secret", "s3cr3t"), ("trace", "t1")]).await;
    let seen = p.stats.last_attachments.lock().unwrap().clone();
    assert!(seen.contains(&("x-routed-by".into(), "metaproxy".into())), "{seen:?}");
    assert!(seen.contains(&("trace".into(), "t1".into())), "{seen:?}");
    assert!(!seen.iter().any(|(k, _)| k == "secret"), "{seen:?}");
    // The provider echoes x- attachments: the client sees the request mutation come back...
    assert_eq!(m.metadata.kvs.get_str("x-routed-by"), Some("metaproxy"));
    // ...and the response mutation.
    assert_eq!(m.metadata.kvs.get_str("x-served-via"), Some("proxy"));
    assert_eq!(m.metadata.kvs.get_str("served-by"), None);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_gets_a_service_not_found_reply() {
    let p = provider("p", Behavior::default()).await;
    let yaml = r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: only-get
        match: [{ key: method, prefix: get }]
        route: { cluster: c }
clusters:
  - { name: c, endpoints: [{ address: "{p}" }] }
access_log: { enabled: false }
"#;
    let running = proxy(yaml, &[&p]).await;
    let c = client(&running).await;
    assert_eq!(status(&call(&c, "getUser", &[]).await), "20");
    let m = call(&c, "deleteUser", &[]).await;
    assert_eq!(m.metadata.message_type, MessageType::Error);
    assert_eq!(status(&m), "60");
    assert!(m.metadata.kvs.get_str("error_message").unwrap().contains("route_not_found"));
    assert_eq!(p.stats.total(), 1);
    running.shutdown().await;
}

fn single(route_extra: &str, cluster_extra: &str) -> String {
    common::single_listener("", route_extra, cluster_extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_mid_flight_answers_every_request_with_an_error() {
    // The provider holds answers for 300 ms and drops its connection at the 5th request.
    let p = provider("p", Behavior { delay: Duration::from_millis(300), close_after: Some(5), ..Behavior::default() })
        .await;
    let yaml = single("", "    connections_per_endpoint: 1\n    endpoints: [{ address: \"{p}\" }]");
    let running = proxy(&yaml, &[&p]).await;
    let c = client(&running).await;
    let calls: Vec<_> = (0..20).map(|_| call(&c, "sayHello", &[])).collect();
    let started = Instant::now();
    let results = futures_util::future::join_all(calls).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        results.iter().all(|m| m.metadata.message_type == MessageType::Error && status(m) == "80"),
        "{:?}",
        results.iter().map(status).collect::<Vec<_>>()
    );
    assert!(results[0].metadata.kvs.get_str("error_message").unwrap().contains("closed"));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_gets_a_server_timeout_reply() {
    let p = provider("p", Behavior { delay: Duration::from_secs(2), ..Behavior::default() }).await;
    let yaml = single("        timeout: 200ms", "    endpoints: [{ address: \"{p}\" }]");
    let running = proxy(&yaml, &[&p]).await;
    let c = client(&running).await;
    let started = Instant::now();
    let m = call(&c, "sayHello", &[]).await;
    let took = started.elapsed();
    assert_eq!(status(&m), "31", "{m:?}");
    assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(1500), "{took:?}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_move_past_an_endpoint_that_refuses_connections() {
    let p = provider("p", Behavior::default()).await;
    let dead = dead_address();
    let endpoints =
        format!("    lb: round_robin\n    endpoints: [{{ address: \"{dead}\" }}, {{ address: \"{{p}}\" }}]");
    let with_retries = proxy(&single("        retries: { count: 1 }", &endpoints), &[&p]).await;
    let c = client(&with_retries).await;
    for _ in 0..10 {
        assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    }
    with_retries.shutdown().await;
    // Without retries the first request to the dead endpoint fails (with an error reply).
    let without = proxy(&single("", &endpoints), &[&p]).await;
    let c = client(&without).await;
    let statuses: Vec<String> = futures_util::future::join_all((0..2).map(|_| call(&c, "sayHello", &[])))
        .await
        .iter()
        .map(|m| status(m).to_string())
        .collect();
    assert!(statuses.contains(&"80".to_string()), "{statuses:?}");
    without.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_turns_overload_into_over_limit_replies() {
    let p = provider("p", Behavior { delay: Duration::from_millis(300), ..Behavior::default() }).await;
    let yaml = single("", "    circuit_breakers: { max_requests: 2 }\n    endpoints: [{ address: \"{p}\" }]");
    let running = proxy(&yaml, &[&p]).await;
    let c = client(&running).await;
    let results = futures_util::future::join_all((0..10).map(|_| call(&c, "sayHello", &[]))).await;
    let ok = results.iter().filter(|m| status(m) == "20").count();
    // Over-limit replies are Dubbo server errors (status 80) whose text names the kind.
    let over = results
        .iter()
        .filter(|m| status(m) == "80" && m.metadata.kvs.get_str("error_message").unwrap_or("").contains("over_limit"))
        .count();
    assert_eq!((ok, over), (2, 8), "{:?}", results.iter().map(status).collect::<Vec<_>>());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_requests_are_forwarded_without_a_reply() {
    let p = provider("p", Behavior::default()).await;
    // One upstream connection, so the call below travels behind the one-way requests.
    let running =
        proxy(&single("", "    connections_per_endpoint: 1\n    endpoints: [{ address: \"{p}\" }]"), &[&p]).await;
    let c = client(&running).await;
    for _ in 0..5 {
        c.send_oneway(SERVICE, "log", "line", &[]).await.unwrap();
    }
    // A two-way call after them: when it is answered, the one-way requests have been delivered.
    assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    assert_eq!(p.stats.total(), 6);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pipelining_connections_share_one_upstream_connection_per_worker() {
    let _ = rlimit::increase_nofile_limit(8192);
    let p = provider("p", Behavior::default()).await;
    let yaml = common::single_listener("workers: 2", "", "    endpoints: [{ address: \"{p}\" }]");
    let running = proxy(&yaml, &[&p]).await;
    let mut clients = Vec::new();
    for _ in 0..1000 {
        clients.push(Client::connect(running.address("in").unwrap()).await.unwrap());
    }
    // One call first on every client, so that each worker's upstream connection is open: 4,000
    // requests arriving while it opens would exceed max_pending_requests (1,024, as Envoy) and
    // rightly get over-limit replies, which is not what this test is about.
    let warm = futures_util::future::join_all(clients.iter().map(|c| call(c, "sayHello", &[]))).await;
    assert!(warm.iter().all(|m| status(m) == "20" || status(m) == "80"));
    let before = p.stats.total();
    let calls = clients.iter().flat_map(|c| (0..4).map(move |_| call(c, "sayHello", &[])));
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(results.len(), 4000);
    assert!(results.iter().all(|m| status(m) == "20"));
    assert_eq!(p.stats.total() - before, 4000);
    assert!(running.downstream_connections() >= 1000);
    assert!(running.upstream_connections("c") <= 2, "{}", running.upstream_connections("c"));
    assert!(p.stats.connections.load(Ordering::Relaxed) <= 2);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_gets_a_bad_request_reply_then_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = provider("p", Behavior::default()).await;
    let running = proxy(&single("", "    endpoints: [{ address: \"{p}\" }]"), &[&p]).await;
    // A two-way Hessian 2 request, id 77, whose body is not a Dubbo request body.
    let body = b"\x052.0.2\x01S\x00\x01m\x04Lbad";
    let mut frame = vec![0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 77];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    let mut raw = tokio::net::TcpStream::connect(running.address("in").unwrap()).await.unwrap();
    raw.write_all(&frame).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer))
        .await
        .expect("the connection closes")
        .unwrap();
    let mut buf = bytes::BytesMut::from(&answer[..]);
    let reply =
        metaprotocol_core::Codec::decode(&mut metaprotocol_dubbo::DubboCodec::default(), &mut buf).unwrap().unwrap();
    assert_eq!(reply.metadata.request_id, 77);
    assert_eq!(status(&reply), "40");
    assert!(reply.metadata.kvs.get_str("error_message").unwrap().contains("parameter type descriptor"));
    // Other connections carry on.
    let c = client(&running).await;
    assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_breaker_refuses_a_connection_over_the_limit() {
    let (p1, p2) = (provider("p1", Behavior::default()).await, provider("p2", Behavior::default()).await);
    // Round robin over two endpoints with room for one upstream connection in the whole cluster.
    let cluster = "    lb: round_robin\n    connections_per_endpoint: 1\n    circuit_breakers: { max_connections: 1 }\n    endpoints: [{ address: \"{p1}\" }, { address: \"{p2}\" }]";
    let running = proxy(&single("", cluster), &[&p1, &p2]).await;
    let c = client(&running).await;
    let first = call(&c, "sayHello", &[]).await;
    let second = call(&c, "sayHello", &[]).await;
    assert_eq!(status(&first), "20");
    assert_eq!(status(&second), "80", "{second:?}");
    assert!(second.metadata.kvs.get_str("error_message").unwrap().contains("max_connections"));
    // The open connection keeps serving its endpoint.
    assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    assert_eq!(p1.stats.total() + p2.stats.total(), 2);
    running.shutdown().await;
}
