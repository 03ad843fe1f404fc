//! [`SharedCluster`]: a cluster as every worker sees it. Defined once per configuration and shared
//! by every listener and worker that routes to it: its spec, its circuit breaker, and its current
//! [`EndpointSet`] (replaced as a whole when DNS answers change, with a generation number that
//! workers check to refresh their own pools). Connections are not here: each worker owns its own.
//!
//! Each [`SharedEndpoint`] carries what every worker's load balancer reads before picking it: its
//! health as the active health checker last found it, and until when outlier detection ejected
//! it. Both are atomics written rarely (a check's verdict changes, an ejection) and only loaded
//! on the request path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::breaker::Breaker;
use super::spec::{ClusterSpec, EndpointSpec, LbPolicy};
use crate::stats::{ClusterStats, Gauge, PerWorker};

/// Virtual nodes per endpoint on the hash ring.
const RING_REPLICAS: u64 = 100;
/// An endpoint's weight when its labels give none: Dubbo's default provider weight.
pub const DEFAULT_WEIGHT: u32 = 100;

/// An endpoint's health as active health checking sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not checked (the cluster has no `health_check`, or no check has ended yet): healthy.
    Unchecked,
    /// The last checks passed.
    Healthy,
    /// `unhealthy_threshold` checks in a row failed: out of load balancing until
    /// `healthy_threshold` pass.
    Unhealthy,
}

impl Health {
    /// A stable lower-case name, for `/clusters` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unchecked => "unchecked",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Unchecked,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Health::Unchecked => 0,
            Health::Healthy => 1,
            Health::Unhealthy => 2,
        }
    }
}

/// One upstream address, shared by every worker.
#[derive(Debug)]
pub struct SharedEndpoint {
    /// Its address.
    pub address: SocketAddr,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Open connections to it, over all workers.
    pub open_connections: AtomicUsize,
    /// Requests in flight to it: one gauge per worker pool, each written by its worker only.
    pub in_flight: PerWorker<Gauge>,
    /// Its load-balancing weight: its `weight` label (Dubbo's provider parameter) when that is a
    /// number, else 100 (Dubbo's default). Shares of traffic follow the weights.
    pub weight: u32,
    health: AtomicU8,
    // Milliseconds since the cluster's epoch until which the endpoint is ejected (0: never was).
    pub(super) ejected_until: AtomicU64,
    // Times it was ejected, less one per outlier sweep it spent in service: the multiplier of
    // its next ejection time.
    pub(super) ejections: AtomicU32,
    // Errors in a row (outlier detection).
    pub(super) consecutive_errors: AtomicU32,
}

impl SharedEndpoint {
    fn new(spec: &EndpointSpec) -> Self {
        SharedEndpoint {
            address: spec.address,
            labels: spec.labels.clone(),
            open_connections: AtomicUsize::new(0),
            in_flight: PerWorker::default(),
            weight: spec.labels.get("weight").and_then(|w| w.trim().parse().ok()).unwrap_or(DEFAULT_WEIGHT),
            health: AtomicU8::new(Health::Unchecked.to_u8()),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            consecutive_errors: AtomicU32::new(0),
        }
    }

    /// Its health as the health checker last found it.
    pub fn health(&self) -> Health {
        Health::from_u8(self.health.load(Ordering::Acquire))
    }

    /// Records the health checker's verdict.
    pub(crate) fn set_health(&self, health: Health) {
        self.health.store(health.to_u8(), Ordering::Release);
    }

    /// Until when (on the cluster's ejection clock, [`SharedCluster::now_ms`]) it is ejected, if
    /// it is at `now_ms`.
    pub fn ejected_until(&self, now_ms: u64) -> Option<u64> {
        let until = self.ejected_until.load(Ordering::Acquire);
        (until > now_ms).then_some(until)
    }

    /// The multiplier of its next ejection time (times ejected, decayed by the outlier sweeps).
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Acquire)
    }

    /// Errors in a row, as outlier detection counts them.
    pub fn consecutive_errors(&self) -> u32 {
        self.consecutive_errors.load(Ordering::Acquire)
    }

    /// Requests in flight to it over every worker.
    pub fn requests_in_flight(&self) -> u64 {
        self.in_flight.sum(Gauge::get)
    }
}

/// The endpoints of a cluster at one moment, with subsets and hash rings precomputed.
#[derive(Debug, Default)]
pub struct EndpointSet {
    /// All endpoints.
    pub endpoints: Vec<Arc<SharedEndpoint>>,
    /// Members of each subset, as indexes into `endpoints`, in the order of the spec's subsets.
    pub subsets: Vec<(Arc<str>, Vec<usize>)>,
    /// Hash rings (point, index into `endpoints`), for the whole cluster and per subset (same
    /// order as `subsets`), when the policy is ring hash.
    pub rings: Vec<Vec<(u64, usize)>>,
    /// The cluster's `healthy_panic_threshold` (percent).
    pub panic_threshold: u8,
    /// True when the endpoints' weights differ: load balancing then follows them.
    pub weighted: bool,
}

impl EndpointSet {
    /// The position of subset `name` in [`subsets`](Self::subsets).
    pub fn subset_index(&self, name: &str) -> Option<usize> {
        self.subsets.iter().position(|(n, _)| &**n == name)
    }
}

/// A cluster shared by all workers.
#[derive(Debug)]
pub struct SharedCluster {
    /// The validated configuration.
    pub spec: ClusterSpec,
    /// Limits over every worker.
    pub breaker: Breaker,
    /// Every worker's counters.
    pub stats: PerWorker<ClusterStats>,
    /// Health checks and ejections, counted as they happen (rare events: not per request).
    pub events: ClusterEvents,
    set: RwLock<Arc<EndpointSet>>,
    /// The subsets in force: the spec's, until a reload replaces them.
    subsets: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    generation: AtomicU64,
    epoch: Instant,
    /// Held while deciding an ejection (only when an endpoint reaches its error threshold), so
    /// that `max_ejection_percent` holds when workers decide at once.
    pub(super) eject_lock: Mutex<()>,
}

/// What health checking and outlier detection did to a cluster, over the process.
#[derive(Debug, Default)]
pub struct ClusterEvents {
    /// Ejections enforced (Envoy's `outlier_detection.ejections_enforced_total`).
    pub ejections_enforced: AtomicU64,
    /// Ejections not enforced because `max_ejection_percent` endpoints were ejected already
    /// (`outlier_detection.ejections_overflow`).
    pub ejections_overflow: AtomicU64,
    /// Health checks passed (`health_check.success`).
    pub health_check_success: AtomicU64,
    /// Health checks failed (`health_check.failure`).
    pub health_check_failure: AtomicU64,
}

/// A ring point: FNV-1a of the address, seeded by the replica number, finalized like request hashes.
fn ring_point(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    metaprotocol_core::route::mix64(h)
}

impl SharedCluster {
    /// A cluster with `spec`'s static endpoints.
    pub fn new(spec: ClusterSpec) -> Arc<Self> {
        let statics = spec.endpoints.clone();
        let cluster = Arc::new(SharedCluster {
            breaker: Breaker::new(spec.limits),
            stats: PerWorker::default(),
            set: RwLock::new(Arc::new(EndpointSet::default())),
            subsets: RwLock::new(spec.subsets.clone()),
            generation: AtomicU64::new(0),
            epoch: Instant::now(),
            events: ClusterEvents::default(),
            eject_lock: Mutex::new(()),
            spec,
        });
        cluster.set_endpoints(&statics);
        cluster
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Replaces the endpoint list (DNS refresh). Endpoints whose address and labels are unchanged
    /// keep their shared state, and workers keep their connections to them.
    pub fn set_endpoints(&self, specs: &[EndpointSpec]) {
        let old = self.endpoints();
        let endpoints: Vec<Arc<SharedEndpoint>> = specs
            .iter()
            .map(|e| {
                old.endpoints
                    .iter()
                    .find(|o| o.address == e.address && o.labels == e.labels)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(SharedEndpoint::new(e)))
            })
            .collect();
        let definitions = self.subsets.read().map(|s| s.clone()).unwrap_or_default();
        let subsets: Vec<(Arc<str>, Vec<usize>)> = definitions
            .iter()
            .map(|(name, labels)| {
                let members = endpoints
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
                    .map(|(i, _)| i)
                    .collect();
                (Arc::from(name.as_str()), members)
            })
            .collect();
        let mut rings = Vec::new();
        if self.spec.lb == LbPolicy::RingHash {
            let whole: Vec<usize> = (0..endpoints.len()).collect();
            for members in std::iter::once(&whole).chain(subsets.iter().map(|(_, m)| m)) {
                let mut ring: Vec<(u64, usize)> = members
                    .iter()
                    .flat_map(|&i| {
                        let addr = endpoints.get(i).map(|e| e.address.to_string()).unwrap_or_default();
                        (0..RING_REPLICAS).map(move |r| (ring_point(addr.as_bytes(), r), i))
                    })
                    .collect();
                ring.sort_unstable();
                rings.push(ring);
            }
        }
        let weighted = endpoints.first().is_some_and(|f| endpoints.iter().any(|e| e.weight != f.weight));
        let set = Arc::new(EndpointSet {
            endpoints,
            subsets,
            rings,
            panic_threshold: self.spec.healthy_panic_threshold,
            weighted,
        });
        if let Ok(mut slot) = self.set.write() {
            *slot = set;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Replaces the subset definitions and the endpoint list (a reload): as
    /// [`set_endpoints`](Self::set_endpoints), endpoints that stay keep their state and
    /// connections.
    pub fn reconfigure(&self, subsets: &BTreeMap<String, BTreeMap<String, String>>, endpoints: &[EndpointSpec]) {
        if let Ok(mut s) = self.subsets.write() {
            s.clone_from(subsets);
        }
        self.set_endpoints(endpoints);
    }

    /// Replaces the subset definitions, keeping the endpoints (a reload of a cluster whose
    /// endpoints come from DNS).
    pub fn set_subsets(&self, subsets: &BTreeMap<String, BTreeMap<String, String>>) {
        let endpoints: Vec<EndpointSpec> = self
            .endpoints()
            .endpoints
            .iter()
            .map(|e| EndpointSpec { address: e.address, labels: e.labels.clone() })
            .collect();
        self.reconfigure(subsets, &endpoints);
    }

    /// The current endpoint set.
    pub fn endpoints(&self) -> Arc<EndpointSet> {
        self.set.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Changes every time the endpoint set is replaced: workers compare it, per request, with the
    /// generation of their own view (one relaxed atomic load).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Milliseconds since the cluster was made, the clock of ejections.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A connection to `endpoint` could not be opened (refused or timed out): one error for
    /// outlier detection, which ejects the endpoint once it has `consecutive_errors` in a row (and
    /// does nothing when the cluster has no `outlier_detection`).
    pub fn connect_failed(&self, endpoint: &SharedEndpoint) {
        self.outlier_error(endpoint);
    }

    /// Ejects `endpoint` from load balancing for `duration` from now.
    pub(crate) fn eject_for(&self, endpoint: &SharedEndpoint, duration: Duration) {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1);
        endpoint.ejected_until.store(self.now_ms().saturating_add(ms), Ordering::Release);
    }

    /// True when load balancing may pick `endpoint` at `now_ms`: not found unhealthy by health
    /// checks and not ejected by outlier detection.
    pub fn is_available(endpoint: &SharedEndpoint, now_ms: u64) -> bool {
        endpoint.health.load(Ordering::Relaxed) != Health::Unhealthy.to_u8()
            && endpoint.ejected_until.load(Ordering::Relaxed) <= now_ms
    }

    /// Open connections over all endpoints and workers.
    pub fn open_connections(&self) -> usize {
        self.endpoints().endpoints.iter().map(|e| e.open_connections.load(Ordering::Acquire)).sum()
    }
}
