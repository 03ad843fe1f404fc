//! The configuration file's shape (`serde`), exactly as users write it in YAML.
//!
//! ```yaml
//! admin: { address: 127.0.0.1:9901 }            # optional (the address defaults to that)
//! workers: 2                                    # optional, default: number of cores
//! drain_timeout: 10s                            # optional
//! access_log: { path: stderr, format: text }    # or json, text_format, json_format; optional
//! listeners:
//!   - name: dubbo-in
//!     address: 127.0.0.1:20880
//!     protocol: dubbo
//!     codec: {}
//!     filters: []
//!     register: { zookeeper: ["127.0.0.1:2181"], interfaces: [com.example.DemoService] }  # optional
//!     tracing: { endpoint: "http://127.0.0.1:4317", protocol: grpc, sample_ratio: 0.01, service_name: metaproxy }
//!     routes:
//!       - name: batchjob
//!         match: [{ key: batchjob, exact: "true" }]
//!         route: { cluster: provider, subset: batchjob }
//!       - name: default
//!         route: { cluster: provider, subset: user }
//! clusters:
//!   - name: provider
//!     lb: round_robin
//!     connect_timeout: 1s
//!     endpoints:
//!       - { address: 127.0.0.1:20881, labels: { service_group: user } }
//!       - { address: 127.0.0.1:20882, labels: { service_group: batchjob } }
//!     # and/or the providers a ZooKeeper registry lists (Dubbo's layout), labelled by their URLs:
//!     registry: { zookeeper: ["127.0.0.1:2181/backend"], interface: com.example.DemoService }
//!     subsets:
//!       - { name: user, labels: { service_group: user } }
//!       - { name: batchjob, labels: { service_group: batchjob } }
//!     health_check: { interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 1 }
//!     outlier_detection: { consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 10 }
//! ```

use std::collections::BTreeMap;

use metaprotocol_core::route::RouteSpec;
pub use metaproxy_access_log::AccessLogConfig;
pub use metaproxy_tracing::TracingConfig;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub use crate::upstream::LbPolicy;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The admin endpoint (metrics, health).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Worker threads, each an event loop that owns its connections (default: the number of
    /// cores).
    #[serde(default)]
    pub workers: Option<Spanned<usize>>,
    /// How long in-flight requests may take to finish after a shutdown signal (default 10s).
    #[serde(default)]
    pub drain_timeout: Option<Spanned<String>>,
    /// Access log settings.
    #[serde(default)]
    pub access_log: Option<Spanned<AccessLogConfig>>,
    /// Listeners.
    pub listeners: Vec<Spanned<ListenerConfig>>,
    /// Upstream clusters.
    #[serde(default)]
    pub clusters: Vec<Spanned<ClusterConfig>>,
}

/// `admin:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to serve the admin API on (default `127.0.0.1:9901`: loopback only, since some
    /// of its endpoints change what the proxy does).
    #[serde(default)]
    pub address: Option<Spanned<String>>,
}

/// `listeners[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// The listener's name (unique).
    pub name: String,
    /// `host:port` to listen on.
    pub address: Spanned<String>,
    /// A registered codec name.
    pub protocol: Spanned<String>,
    /// Codec options.
    #[serde(default)]
    pub codec: Option<Spanned<serde_json::Value>>,
    /// Filters, run in order before the router.
    #[serde(default)]
    pub filters: Vec<Spanned<FilterConfig>>,
    /// Routes, first match wins.
    #[serde(default)]
    pub routes: Vec<Spanned<RouteSpec>>,
    /// Register the listener in a ZooKeeper registry as a Dubbo provider of these interfaces.
    #[serde(default)]
    pub register: Option<Spanned<RegisterConfig>>,
    /// Most requests in flight on one downstream connection before it stops reading (default 1024).
    #[serde(default)]
    pub max_requests_per_connection: Option<usize>,
    /// A connection with nothing in flight that sends nothing this long is closed (Envoy's
    /// `idle_timeout`; default 1h, `0s` never).
    #[serde(default)]
    pub idle_timeout: Option<Spanned<String>>,
    /// A frame not whole this long after its first byte arrived is refused and its connection
    /// closed (default 30s, `0s` never): a client sending slowly holds no buffer for long.
    #[serde(default)]
    pub frame_timeout: Option<Spanned<String>>,
    /// Most open connections, over every worker; past it new connections are closed at once
    /// (default: no limit).
    #[serde(default)]
    pub max_connections: Option<Spanned<usize>>,
    /// Most bytes the listener's connections may hold in read buffers, over every worker; past it
    /// the connections holding large incomplete frames have them refused (default 128 MiB).
    #[serde(default)]
    pub max_buffered_bytes: Option<Spanned<usize>>,
    /// Distributed tracing: spans of this listener's requests exported over OTLP, and trace
    /// context read from and written to the requests' key/values (off when absent).
    #[serde(default)]
    pub tracing: Option<Spanned<TracingConfig>>,
}

/// `listeners[].filters[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// A registered filter name.
    pub name: String,
    /// Its configuration.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// `clusters[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's name (unique).
    pub name: String,
    /// Load balancing (default round robin).
    #[serde(default)]
    pub lb: LbPolicy,
    /// Time allowed to open an upstream connection (default 1s).
    #[serde(default)]
    pub connect_timeout: Option<Spanned<String>>,
    /// Static endpoints.
    #[serde(default)]
    pub endpoints: Vec<Spanned<EndpointConfig>>,
    /// Endpoints found by resolving a DNS name, re-resolved periodically.
    #[serde(default)]
    pub dns: Option<Spanned<DnsConfig>>,
    /// Endpoints found in a ZooKeeper registry (Dubbo's layout), watched live.
    #[serde(default)]
    pub registry: Option<Spanned<RegistryConfig>>,
    /// Named subsets of endpoints, selected by labels.
    #[serde(default)]
    pub subsets: Vec<Spanned<SubsetConfig>>,
    /// Upstream connections per endpoint in each worker, shared by all its downstream
    /// connections (default 1: every request of a worker to an endpoint is multiplexed on one).
    #[serde(default)]
    pub connections_per_endpoint: Option<usize>,
    /// Limits that turn overload into fast over-limit replies.
    #[serde(default)]
    pub circuit_breakers: CircuitBreakerConfig,
    /// Active health checking of the endpoints, once per process.
    #[serde(default)]
    pub health_check: Option<Spanned<HealthCheckConfig>>,
    /// Passive outlier detection: endpoints that keep failing are ejected for a while.
    #[serde(default)]
    pub outlier_detection: Option<Spanned<OutlierDetectionConfig>>,
    /// Below this percentage of available endpoints, load balancing uses them all (Envoy's
    /// `healthy_panic_threshold`; default 50, 0 turns panic mode off).
    #[serde(default)]
    pub healthy_panic_threshold: Option<Spanned<u32>>,
}

/// `clusters[].health_check` (Envoy's names).
///
/// ```yaml
/// health_check: { interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 1 }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Time between two checks of an endpoint (default 5s).
    #[serde(default)]
    pub interval: Option<String>,
    /// Time allowed to one check (default 1s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Failed checks in a row that take an endpoint out (default 2).
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
    /// Passed checks in a row that bring it back (default 1).
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    /// `heartbeat` (default: the protocol's heartbeat where its codec has one, else a TCP
    /// connect), `tcp`, or `request` (the default when `request` is set).
    #[serde(default)]
    pub kind: Option<crate::upstream::HealthCheckKind>,
    /// For `kind: request`: the request to send, a whole frame of the listener's protocol, whose
    /// answer must be a success.
    #[serde(default)]
    pub request: Option<HealthCheckRequestConfig>,
}

/// `clusters[].health_check.request`: one of `hex` or `file`.
///
/// ```yaml
/// health_check: { interval: 1s, request: { file: probes/echo.bin } }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckRequestConfig {
    /// The frame's bytes in hexadecimal (whitespace ignored).
    #[serde(default)]
    pub hex: Option<String>,
    /// A file holding the frame (relative paths start at the configuration file's directory).
    #[serde(default)]
    pub file: Option<String>,
}

/// `clusters[].outlier_detection` (Envoy's names).
///
/// ```yaml
/// outlier_detection: { consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 10 }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetectionConfig {
    /// Errors in a row that eject an endpoint (default 5). Errors are connect failures, resets,
    /// timeouts and answers the protocol marks as server errors.
    #[serde(default, alias = "consecutive_errors")]
    pub consecutive_5xx: Option<u32>,
    /// Time between sweeps that return ejected endpoints to service (default 10s).
    #[serde(default)]
    pub interval: Option<String>,
    /// Ejection time, multiplied by the number of times the endpoint was ejected (default 30s).
    #[serde(default)]
    pub base_ejection_time: Option<String>,
    /// Most endpoints ejected at once, in percent of the cluster (default 10; one may always be).
    #[serde(default)]
    pub max_ejection_percent: Option<u32>,
}

/// `clusters[].endpoints[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `host:port` (an IP address; use `dns` for names).
    pub address: String,
    /// Labels matched by subsets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `clusters[].dns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `name:port` to resolve.
    pub address: String,
    /// How often to resolve again (default 5s).
    #[serde(default)]
    pub refresh: Option<String>,
    /// Labels given to every resolved endpoint.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `clusters[].registry`: the providers of a Dubbo interface listed in ZooKeeper
/// (`<root>/<interface>/providers/<URL-encoded provider URL>`), each an endpoint labelled with
/// its URL parameters.
///
/// ```yaml
/// registry: { zookeeper: ["127.0.0.1:2181/backend"], interface: com.example.DemoService }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The ensemble, `host:port` each; an entry may end with a chroot (`127.0.0.1:2181/backend`).
    pub zookeeper: Vec<String>,
    /// The Dubbo interface whose providers are the endpoints.
    pub interface: String,
    /// The registry's root node (default `/dubbo`).
    #[serde(default)]
    pub root: Option<String>,
    /// Providers of this protocol are endpoints, others are skipped (default `dubbo`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The ZooKeeper session timeout asked for (default 10s; the server bounds it).
    #[serde(default)]
    pub session_timeout: Option<String>,
    /// How long the start waits for the first list of providers (default 5s; `0s`: not at all).
    #[serde(default)]
    pub initial_fetch_timeout: Option<String>,
    /// When ZooKeeper lists no provider at all, keep the last ones (default true, as Dubbo's
    /// empty protection).
    #[serde(default)]
    pub empty_protection: Option<bool>,
}

/// `listeners[].register`: the listener as a Dubbo provider in ZooKeeper, one ephemeral node per
/// interface, so that clients discovering providers there call the proxy.
///
/// ```yaml
/// register: { zookeeper: ["127.0.0.1:2181"], interfaces: [com.example.DemoService] }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterConfig {
    /// The ensemble, `host:port` each; an entry may end with a chroot (`127.0.0.1:2181/frontend`).
    pub zookeeper: Vec<String>,
    /// The interfaces to register.
    pub interfaces: Vec<String>,
    /// The `methods` parameter (default: the methods the interface's discovered providers list,
    /// else `*`).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// The `version` parameter (default: the one all discovered providers of the interface have,
    /// else none).
    #[serde(default)]
    pub version: Option<String>,
    /// The `group` parameter (default none).
    #[serde(default)]
    pub group: Option<String>,
    /// The `application` parameter (default `metaproxy`).
    #[serde(default)]
    pub application: Option<String>,
    /// The address written, `ip` or `ip:port` (default: the listener's address, or when it is
    /// bound to every interface, the local address toward ZooKeeper).
    #[serde(default)]
    pub advertise_address: Option<String>,
    /// More URL parameters (`weight`, …).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The registry's root node (default `/dubbo`).
    #[serde(default)]
    pub root: Option<String>,
    /// The ZooKeeper session timeout asked for (default 10s; the server bounds it).
    #[serde(default)]
    pub session_timeout: Option<String>,
}

/// `clusters[].subsets[]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetConfig {
    /// The subset's name, used by routes.
    pub name: String,
    /// An endpoint is in the subset when it has all these labels.
    pub labels: BTreeMap<String, String>,
}

/// `clusters[].circuit_breakers` (Envoy's threshold names), over all workers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Most upstream connections open at once, over all endpoints (default 1024).
    #[serde(default)]
    pub max_connections: Option<Spanned<usize>>,
    /// Most requests waiting for an upstream connection to open (default 1024).
    #[serde(default, alias = "max_pending")]
    pub max_pending_requests: Option<Spanned<usize>>,
    /// Most requests in flight to the cluster (default 65536).
    #[serde(default)]
    pub max_requests: Option<Spanned<usize>>,
}
