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
