//! [`SharedCluster`]: a cluster as every worker sees it. Defined once per configuration and shared
//! by every listener and worker that routes to it: its spec, its circuit breaker, and its current
//! [`EndpointSet`] (replaced as a whole when DNS answers change, with a generation number that
//! workers check to refresh their own pools). Connections are not here: each worker owns its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::breaker::Breaker;
use super::spec::{ClusterSpec, EndpointSpec, LbPolicy};
use crate::stats::{ClusterStats, PerWorker};

/// Virtual nodes per endpoint on the hash ring.
const RING_REPLICAS: u64 = 100;
/// How long an endpoint that refused a connection is passed over.
pub const EJECT_FOR: Duration = Duration::from_secs(5);

/// One upstream address, shared by every worker.
#[derive(Debug)]
pub struct SharedEndpoint {
    /// Its address.
    pub address: SocketAddr,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Open connections to it, over all workers.
    pub open_connections: AtomicUsize,
    // Milliseconds since the cluster's epoch until which the endpoint is passed over.
    ejected_until: AtomicU64,
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
    set: RwLock<Arc<EndpointSet>>,
    generation: AtomicU64,
    epoch: Instant,
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
            generation: AtomicU64::new(0),
            epoch: Instant::now(),
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
                old.endpoints.iter().find(|o| o.address == e.address && o.labels == e.labels).cloned().unwrap_or_else(
                    || {
                        Arc::new(SharedEndpoint {
                            address: e.address,
                            labels: e.labels.clone(),
                            open_connections: AtomicUsize::new(0),
                            ejected_until: AtomicU64::new(0),
                        })
                    },
                )
            })
            .collect();
        let subsets: Vec<(Arc<str>, Vec<usize>)> = self
            .spec
            .subsets
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
        let set = Arc::new(EndpointSet { endpoints, subsets, rings });
        if let Ok(mut slot) = self.set.write() {
            *slot = set;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
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

    /// Passes over `endpoint` for [`EJECT_FOR`] after it refused a connection.
    pub fn eject(&self, endpoint: &SharedEndpoint) {
        let until = self.now_ms().saturating_add(EJECT_FOR.as_millis() as u64);
        endpoint.ejected_until.store(until, Ordering::Release);
    }

    /// True when `endpoint` is not ejected at `now_ms`.
    pub fn is_live(endpoint: &SharedEndpoint, now_ms: u64) -> bool {
        endpoint.ejected_until.load(Ordering::Acquire) <= now_ms
    }

    /// Open connections over all endpoints and workers.
    pub fn open_connections(&self) -> usize {
        self.endpoints().endpoints.iter().map(|e| e.open_connections.load(Ordering::Acquire)).sum()
    }
}
