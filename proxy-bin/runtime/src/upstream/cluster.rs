//! A cluster as one listener uses it: its endpoints (each with a connection pool speaking the
//! listener's protocol), its subsets, load balancing and circuit breaker.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use metaprotocol_core::NewCodec;

use super::breaker::Breaker;
use super::pool::Pool;
use crate::config::model::LbPolicy;
use crate::config::{ClusterSpec, EndpointSpec};

/// Virtual nodes per endpoint on the hash ring.
const RING_REPLICAS: u64 = 100;
/// How long an endpoint that refused a connection is passed over.
const EJECT_FOR: Duration = Duration::from_secs(5);

/// One upstream address.
pub struct Endpoint {
    /// Its address.
    pub address: SocketAddr,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its connection pool.
    pub pool: Pool,
    /// Requests in flight to it.
    pub inflight: AtomicUsize,
    // Milliseconds since the cluster's epoch until which the endpoint is passed over.
    ejected_until: AtomicU64,
}

/// The endpoints of a cluster at one moment, with subsets and hash rings precomputed.
#[derive(Default)]
pub struct EndpointSet {
    /// All endpoints.
    pub all: Vec<Arc<Endpoint>>,
    /// Indexes into `all` per subset.
    subsets: HashMap<String, Vec<usize>>,
    /// Hash rings (point, index into `all`) per subset, and for the whole cluster under "".
    rings: HashMap<String, Vec<(u64, usize)>>,
}

/// Why no endpoint was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickError {
    /// The subset (or cluster) has no endpoints.
    NoEndpoints,
}

/// A cluster as used by one listener.
pub struct Cluster {
    /// The validated configuration.
    pub spec: ClusterSpec,
    /// Shared limits.
    pub breaker: Arc<Breaker>,
    endpoints: RwLock<Arc<EndpointSet>>,
    next: AtomicUsize,
    epoch: Instant,
    new_codec: Arc<dyn NewCodec>,
}

/// A ring point: FNV-1a of the address, seeded by the replica number, finalized like request hashes.
fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    metaprotocol_core::route::mix64(h)
}

impl Cluster {
    /// A cluster whose pools speak the protocol of `new_codec`, with `spec`'s static endpoints.
    pub fn new(spec: ClusterSpec, breaker: Arc<Breaker>, new_codec: Arc<dyn NewCodec>) -> Arc<Self> {
        let cluster = Arc::new(Cluster {
            breaker,
            endpoints: RwLock::new(Arc::new(EndpointSet::default())),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            new_codec,
            spec,
        });
        let statics = cluster.spec.endpoints.clone();
        cluster.set_endpoints(&statics);
        cluster
    }

    /// Replaces the endpoint list (DNS refresh), keeping the pools of addresses still present.
    pub fn set_endpoints(&self, specs: &[EndpointSpec]) {
        let old = self.endpoints();
        let all: Vec<Arc<Endpoint>> = specs
            .iter()
            .map(|e| {
                old.all.iter().find(|o| o.address == e.address && o.labels == e.labels).cloned().unwrap_or_else(|| {
                    Arc::new(Endpoint {
                        address: e.address,
                        labels: e.labels.clone(),
                        pool: Pool::new(
                            e.address,
                            self.spec.connections_per_endpoint,
                            self.spec.connect_timeout,
                            self.new_codec.clone(),
                            self.breaker.clone(),
                        ),
                        inflight: AtomicUsize::new(0),
                        ejected_until: AtomicU64::new(0),
                    })
                })
            })
            .collect();
        let mut subsets = HashMap::new();
        for (name, labels) in &self.spec.subsets {
            let members = all
                .iter()
                .enumerate()
                .filter(|(_, e)| labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
                .map(|(i, _)| i)
                .collect();
            subsets.insert(name.clone(), members);
        }
        let mut rings = HashMap::new();
        if self.spec.lb == LbPolicy::RingHash {
            let whole: Vec<usize> = (0..all.len()).collect();
            for (name, members) in subsets.iter().map(|(n, m)| (n.as_str(), m)).chain(std::iter::once(("", &whole))) {
                let mut ring: Vec<(u64, usize)> = members
                    .iter()
                    .flat_map(|&i| {
                        let addr = all.get(i).map(|e| e.address.to_string()).unwrap_or_default();
                        (0..RING_REPLICAS).map(move |r| (fnv(addr.as_bytes(), r), i))
                    })
                    .collect();
                ring.sort_unstable();
                rings.insert(name.to_string(), ring);
            }
        }
        let set = Arc::new(EndpointSet { all, subsets, rings });
        if let Ok(mut slot) = self.endpoints.write() {
            *slot = set;
        }
    }

    /// The current endpoint set.
    pub fn endpoints(&self) -> Arc<EndpointSet> {
        self.endpoints.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Passes over `endpoint` for a while after it refused a connection.
    pub fn eject(&self, endpoint: &Endpoint) {
        endpoint.ejected_until.store(self.now_ms() + EJECT_FOR.as_millis() as u64, Ordering::Release);
    }

    /// Picks an endpoint of `subset` (or the whole cluster) by the cluster's policy; `hash` feeds
    /// ring hash, `random` the random choices. Ejected endpoints are skipped unless all are
    /// ejected (then all are candidates again, as Envoy's panic mode).
    pub fn pick(&self, subset: Option<&str>, hash: Option<u64>, random: u64) -> Result<Arc<Endpoint>, PickError> {
        let set = self.endpoints();
        let members: &[usize] = match subset {
            Some(name) => set.subsets.get(name).map(Vec::as_slice).unwrap_or(&[]),
            None => &[],
        };
        let count = if subset.is_some() { members.len() } else { set.all.len() };
        if count == 0 {
            return Err(PickError::NoEndpoints);
        }
        // The i-th member of the subset (or of the cluster), as an index into `set.all`.
        let member = |i: usize| if subset.is_some() { members.get(i).copied() } else { Some(i) };
        let now = self.now_ms();
        let live = |index: usize| set.all.get(index).is_some_and(|e| e.ejected_until.load(Ordering::Acquire) <= now);
        let live_count = (0..count).filter_map(member).filter(|&i| live(i)).count();
        // Candidates: the live members, or all members when none is live (panic mode).
        let is_candidate = |index: usize| live_count == 0 || live(index);
        let n = if live_count == 0 { count } else { live_count };
        let nth = |k: usize| (0..count).filter_map(member).filter(|&i| is_candidate(i)).nth(k % n);
        let index = match (self.spec.lb, hash) {
            (LbPolicy::RingHash, Some(h)) => {
                let ring = set.rings.get(subset.unwrap_or("")).map(Vec::as_slice).unwrap_or(&[]);
                // The first point at or after the hash whose endpoint is a candidate.
                let start = ring.partition_point(|(p, _)| *p < h);
                (0..ring.len())
                    .filter_map(|k| ring.get((start + k) % ring.len()))
                    .map(|(_, i)| *i)
                    .find(|&i| is_candidate(i))
                    .or_else(|| nth(random as usize))
            }
            (LbPolicy::RoundRobin, _) => nth(self.next.fetch_add(1, Ordering::Relaxed)),
            (LbPolicy::LeastRequest, _) if n > 1 => {
                let (a, b) = (nth(random as usize), nth((random >> 32) as usize));
                let load = |i: Option<usize>| {
                    i.and_then(|i| set.all.get(i)).map_or(usize::MAX, |e| e.inflight.load(Ordering::Relaxed))
                };
                if load(b) < load(a) {
                    b
                } else {
                    a
                }
            }
            _ => nth(random as usize),
        };
        index.and_then(|i| set.all.get(i)).cloned().ok_or(PickError::NoEndpoints)
    }
}
