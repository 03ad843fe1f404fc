//! The validated shape of a cluster, as the configuration loader builds it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Load-balancing policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// The endpoint with fewer requests in flight, of two picked at random (Envoy's default
    /// `LEAST_REQUEST` with two choices).
    LeastRequest,
    /// Consistent hashing on the route's `hash_keys`.
    RingHash,
}

impl LbPolicy {
    /// The configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LbPolicy::RoundRobin => "round_robin",
            LbPolicy::Random => "random",
            LbPolicy::LeastRequest => "least_request",
            LbPolicy::RingHash => "ring_hash",
        }
    }
}

impl HealthCheckKind {
    /// The configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckKind::Heartbeat => "heartbeat",
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Request => "request",
        }
    }
}

/// A validated cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Its name.
    pub name: Arc<str>,
    /// Load balancing.
    pub lb: LbPolicy,
    /// Time allowed to open an upstream connection.
    pub connect_timeout: Duration,
    /// Static endpoints.
    pub endpoints: Vec<EndpointSpec>,
    /// DNS discovery, if configured.
    pub dns: Option<DnsSpec>,
    /// Subsets by name: an endpoint belongs when it has all the labels.
    pub subsets: BTreeMap<String, BTreeMap<String, String>>,
    /// Upstream connections per endpoint in each worker.
    pub connections_per_endpoint: usize,
    /// Circuit breaker limits.
    pub limits: Limits,
    /// Active health checking, if configured.
    pub health_check: Option<HealthCheckSpec>,
    /// Outlier detection, if configured.
    pub outlier_detection: Option<OutlierSpec>,
    /// Below this share of available endpoints (percent, 0 to 100) load balancing ignores health
    /// and ejections and uses every endpoint (Envoy's `healthy_panic_threshold`, default 50; 0
    /// turns panic mode off).
    pub healthy_panic_threshold: u8,
}

/// What an active health check sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// The protocol's own heartbeat when its codec has one (Dubbo's heartbeat event, whose
    /// answer must be a pong), else a TCP connect.
    #[default]
    Heartbeat,
    /// A TCP connect only: the endpoint is healthy when it accepts a connection.
    Tcp,
    /// A configured request ([`HealthCheckSpec::request`]), sent with a fresh request id, whose
    /// answer must be a success (not an error status, not an exception).
    Request,
}

/// Active health checking of a cluster's endpoints (Envoy's `health_checks`), run once per
/// process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// Time between two checks of an endpoint.
    pub interval: Duration,
    /// Time allowed to one check (connect, send, answer).
    pub timeout: Duration,
    /// Failed checks in a row that make a healthy endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that make an unhealthy endpoint healthy.
    pub healthy_threshold: u32,
    /// What a check sends.
    pub kind: HealthCheckKind,
    /// For [`HealthCheckKind::Request`]: the request frame, as configured.
    pub request: Option<bytes::Bytes>,
}

/// Outlier detection (Envoy's `outlier_detection`): passive, from the answers requests get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierSpec {
    /// Errors in a row (connect failures, resets, timeouts, server-error answers) that eject an
    /// endpoint (`consecutive_5xx`, alias `consecutive_errors`; default 5).
    pub consecutive_errors: u32,
    /// Time between two sweeps that return ejected endpoints to service and forget old
    /// ejections (default 10s).
    pub interval: Duration,
    /// An endpoint is ejected for this long times the number of times it was ejected (default
    /// 30s).
    pub base_ejection_time: Duration,
    /// Most endpoints ejected at once, as a percentage of the cluster (default 10); one endpoint
    /// may always be ejected, whatever the percentage.
    pub max_ejection_percent: u8,
}

/// One endpoint: an address and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Its address.
    pub address: SocketAddr,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// DNS discovery settings.
#[derive(Clone, Debug)]
pub struct DnsSpec {
    /// `name:port`.
    pub address: String,
    /// Re-resolution interval.
    pub refresh: Duration,
    /// Labels given to every resolved endpoint.
    pub labels: BTreeMap<String, String>,
}

/// Circuit breaker limits of a cluster (Envoy's `circuit_breakers.thresholds`), over all workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Upstream connections open at once.
    pub max_connections: usize,
    /// Requests waiting for an upstream connection to open.
    pub max_pending_requests: usize,
    /// Requests in flight.
    pub max_requests: usize,
}
