//! Load balancing: which endpoint of a cluster (or of one of its subsets) serves a request.
//!
//! Pure functions over an [`EndpointSet`] and worker-local state (the round-robin position and
//! each endpoint's requests in flight in that worker), as Envoy's per-worker load balancers are.
//! Endpoints that health checks found unhealthy or that outlier detection ejected are passed
//! over, unless fewer than the cluster's `healthy_panic_threshold` percent of the candidates
//! (the subset, or the cluster) are available: then all are candidates again (Envoy's panic
//! mode), since sending to endpoints that may fail beats sending everything to the few left.

use super::cluster::{EndpointSet, SharedCluster};
use super::spec::LbPolicy;

/// What a pick needs besides the endpoint set.
#[derive(Clone, Copy, Debug)]
pub struct PickInput {
    /// The cluster's policy.
    pub policy: LbPolicy,
    /// The subset, as an index into [`EndpointSet::subsets`]; `None` for the whole cluster.
    pub subset: Option<usize>,
    /// The request's hash, for ring hash.
    pub hash: Option<u64>,
    /// A random number.
    pub random: u64,
    /// The ejection clock ([`SharedCluster::now_ms`]).
    pub now_ms: u64,
}

/// Picks an endpoint (an index into `set.endpoints`). `round_robin` is the worker's position for
/// this cluster; `load(i)` is the number of requests endpoint `i` has in flight in this worker.
/// `None` when the subset (or cluster) has no endpoint.
pub fn pick(
    set: &EndpointSet,
    input: PickInput,
    round_robin: &mut usize,
    load: impl Fn(usize) -> usize,
) -> Option<usize> {
    let members: Option<&[usize]> = match input.subset {
        Some(s) => Some(set.subsets.get(s).map(|(_, m)| m.as_slice()).unwrap_or(&[])),
        None => None,
    };
    let count = members.map_or(set.endpoints.len(), <[usize]>::len);
    if count == 0 {
        return None;
    }
    // The i-th member of the subset (or of the cluster), as an index into `set.endpoints`.
    let member = |i: usize| match members {
        Some(m) => m.get(i).copied(),
        None => Some(i),
    };
    let live = |index: usize| set.endpoints.get(index).is_some_and(|e| SharedCluster::is_available(e, input.now_ms));
    let live_count = (0..count).filter_map(member).filter(|&i| live(i)).count();
    let panic = live_count * 100 < usize::from(set.panic_threshold) * count;
    let is_candidate = |index: usize| panic || live(index);
    let n = if panic { count } else { live_count };
    if n == 0 {
        // Panic mode is off (threshold 0) and nothing is available.
        return None;
    }
    let nth = |k: usize| (0..count).filter_map(member).filter(|&i| is_candidate(i)).nth(k % n);
    match (input.policy, input.hash) {
        (LbPolicy::RingHash, Some(h)) => {
            let ring_index = input.subset.map_or(0, |s| s + 1);
            let ring = set.rings.get(ring_index).map(Vec::as_slice).unwrap_or(&[]);
            // The first point at or after the hash whose endpoint is a candidate.
            let start = ring.partition_point(|(p, _)| *p < h);
            (0..ring.len())
                .filter_map(|k| ring.get((start + k) % ring.len()))
                .map(|(_, i)| *i)
                .find(|&i| is_candidate(i))
                .or_else(|| nth(input.random as usize))
        }
        (LbPolicy::RoundRobin, _) => {
            let k = *round_robin;
            *round_robin = round_robin.wrapping_add(1);
            nth(k)
        }
        (LbPolicy::LeastRequest, _) if n > 1 => {
            let (a, b) = (nth(input.random as usize), nth((input.random >> 32) as usize));
            let load_of = |i: Option<usize>| i.map_or(usize::MAX, &load);
            if load_of(b) < load_of(a) {
                b
            } else {
                a
            }
        }
        _ => nth(input.random as usize),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::upstream::spec::{ClusterSpec, EndpointSpec, Limits};

    fn cluster(policy: LbPolicy, n: u16) -> Arc<SharedCluster> {
        let endpoints = (0..n)
            .map(|i| EndpointSpec {
                address: ([127, 0, 0, 1], 1000 + i).into(),
                labels: BTreeMap::from([("group".to_string(), if i == 0 { "a" } else { "b" }.to_string())]),
            })
            .collect();
        SharedCluster::new(ClusterSpec {
            name: Arc::from("c"),
            lb: policy,
            connect_timeout: Duration::from_secs(1),
            endpoints,
            dns: None,
            subsets: BTreeMap::from([("b".to_string(), BTreeMap::from([("group".to_string(), "b".to_string())]))]),
            connections_per_endpoint: 1,
            limits: Limits { max_connections: 10, max_pending_requests: 10, max_requests: 10 },
            health_check: None,
            outlier_detection: None,
            healthy_panic_threshold: 50,
        })
    }

    fn input(policy: LbPolicy, subset: Option<usize>, random: u64) -> PickInput {
        PickInput { policy, subset, hash: None, random, now_ms: 0 }
    }

    #[test]
    fn round_robin_cycles_through_a_subset() {
        let c = cluster(LbPolicy::RoundRobin, 3);
        let set = c.endpoints();
        let mut rr = 0;
        let picks: Vec<_> =
            (0..4).map(|_| pick(&set, input(LbPolicy::RoundRobin, Some(0), 0), &mut rr, |_| 0)).collect();
        assert_eq!(picks, [Some(1), Some(2), Some(1), Some(2)]);
    }

    #[test]
    fn least_request_prefers_the_idler_endpoint() {
        let c = cluster(LbPolicy::LeastRequest, 2);
        let set = c.endpoints();
        let mut rr = 0;
        // Random halves pick 0 and 1; endpoint 0 is busy.
        let got = pick(&set, input(LbPolicy::LeastRequest, None, 1 << 32), &mut rr, |i| if i == 0 { 5 } else { 1 });
        assert_eq!(got, Some(1));
    }

    #[test]
    fn ejected_endpoints_are_skipped_until_all_are() {
        let c = cluster(LbPolicy::RoundRobin, 2);
        let set = c.endpoints();
        c.eject_for(&set.endpoints[0], Duration::from_secs(5));
        let now = c.now_ms();
        let mut rr = 0;
        for _ in 0..4 {
            let i = PickInput { now_ms: now, ..input(LbPolicy::RoundRobin, None, 0) };
            assert_eq!(pick(&set, i, &mut rr, |_| 0), Some(1));
        }
        c.eject_for(&set.endpoints[1], Duration::from_secs(5));
        let i = PickInput { now_ms: now, ..input(LbPolicy::RoundRobin, None, 0) };
        assert!(pick(&set, i, &mut rr, |_| 0).is_some(), "panic mode: all ejected means all candidates");
    }

    #[test]
    fn unhealthy_endpoints_leave_until_the_panic_threshold() {
        use crate::upstream::Health;
        let c = cluster(LbPolicy::RoundRobin, 4);
        let set = c.endpoints();
        set.endpoints[0].set_health(Health::Unhealthy);
        set.endpoints[1].set_health(Health::Unhealthy);
        let mut rr = 0;
        // Two of four available: 50%, not below the default threshold.
        let picks: Vec<_> = (0..4).map(|_| pick(&set, input(LbPolicy::RoundRobin, None, 0), &mut rr, |_| 0)).collect();
        assert_eq!(picks, [Some(2), Some(3), Some(2), Some(3)]);
        // One of four: panic, every endpoint takes traffic again.
        set.endpoints[2].set_health(Health::Unhealthy);
        let picks: std::collections::BTreeSet<_> =
            (0..8).filter_map(|_| pick(&set, input(LbPolicy::RoundRobin, None, 0), &mut rr, |_| 0)).collect();
        assert_eq!(picks.len(), 4, "{picks:?}");
        // With panic mode off, only the healthy one; none when none is.
        let strict = SharedCluster::new(ClusterSpec { healthy_panic_threshold: 0, ..c.spec.clone() });
        let set = strict.endpoints();
        for e in &set.endpoints[..3] {
            e.set_health(Health::Unhealthy);
        }
        assert_eq!(pick(&set, input(LbPolicy::Random, None, 5), &mut rr, |_| 0), Some(3));
        set.endpoints[3].set_health(Health::Unhealthy);
        assert_eq!(pick(&set, input(LbPolicy::Random, None, 5), &mut rr, |_| 0), None);
    }

    #[test]
    fn an_empty_subset_has_no_endpoint() {
        let c = cluster(LbPolicy::Random, 1);
        let set = c.endpoints();
        assert_eq!(pick(&set, input(LbPolicy::Random, Some(0), 7), &mut 0, |_| 0), None);
    }
}
