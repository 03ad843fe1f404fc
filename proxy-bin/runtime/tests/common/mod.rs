//! Starting a proxy and providers for end-to-end tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod peers;

use std::net::SocketAddr;
use std::time::Duration;

use metaproxy_demo_peers::client::{Client, DubboMessage};
use metaproxy_demo_peers::provider::{self, Behavior, Provider};
use metaproxy_runtime::server::Running;

pub const SERVICE: &str = "org.apache.dubbo.demo.DemoService";

pub async fn provider(name: &str, behavior: Behavior) -> Provider {
    provider::spawn(([127, 0, 0, 1], 0).into(), name, behavior).await.unwrap()
}

/// Starts a proxy from `yaml`, where `{name}` placeholders are replaced by provider addresses.
pub async fn proxy(yaml: &str, providers: &[&Provider]) -> Running {
    proxy_with(yaml, providers, metaproxy_runtime::default_registry().unwrap()).await
}

/// [`proxy`] with plugins of the test's own.
pub async fn proxy_with(yaml: &str, providers: &[&Provider], registry: metaproxy_runtime::Registry) -> Running {
    let mut text = yaml.to_string();
    for p in providers {
        text = text.replace(&format!("{{{}}}", p.name), &p.address.to_string());
    }
    let cfg =
        metaproxy_runtime::config::load_str(&text, "test.yaml", &registry).unwrap_or_else(|e| panic!("{e}\n{text}"));
    metaproxy_runtime::server::start(cfg).await.unwrap()
}

pub async fn client(running: &Running) -> Client {
    Client::connect(running.address("in").unwrap()).await.unwrap()
}

/// A call that must complete within 10 s (no request may hang).
pub async fn call(c: &Client, method: &str, attachments: &[(&str, &str)]) -> DubboMessage {
    tokio::time::timeout(Duration::from_secs(10), c.call(SERVICE, method, "hi", attachments))
        .await
        .expect("the call hung")
        .expect("connection closed")
}

pub fn status(m: &DubboMessage) -> &str {
    m.metadata.kvs.get_str("status").unwrap_or("?")
}

/// An address nothing listens on.
pub fn dead_address() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `GET path` on the admin endpoint; the whole response, head and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The value of the sample `name{labels}` (the exact text before the value) in a scrape.
pub fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A configuration with one Dubbo listener `in` whose route `all` sends everything to cluster `c`:
/// `top` holds top-level settings (the access log is off unless `top` sets it), `route_extra`
/// lines are added to the route, `cluster_extra` lines to the cluster.
pub fn single_listener(top: &str, route_extra: &str, cluster_extra: &str) -> String {
    let access_log = if top.contains("access_log") { "" } else { "access_log: { enabled: false }\n" };
    format!(
        r#"{top}
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: all
        route: {{ cluster: c }}
{route_extra}
clusters:
  - name: c
{cluster_extra}
{access_log}"#
    )
}
