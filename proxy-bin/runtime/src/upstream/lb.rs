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
    // Endpoints of unequal weights (Dubbo's `weight`): shares follow the weights.
    if set.weighted && input.policy != LbPolicy::RingHash {
        let candidates = (0..count).filter_map(member).filter(|&i| is_candidate(i));
        if let Some(i) = weighted(set, input, round_robin, &load, candidates) {
            return Some(i);
        }
    }
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

/// The weighted pick among `candidates` (indexes into `set.endpoints`), Envoy-style: random is
/// drawn along the candidates' total weight; round robin takes the k-th point of a
/// low-discrepancy sequence (`frac(k·φ)`) along it, so each endpoint's share follows its weight,
/// spread evenly, with no per-endpoint state; least request draws two candidates by weight and
/// keeps the one with fewer requests in flight per unit of weight. `None` when every candidate
/// weighs 0 (the caller then picks as if unweighted).
fn weighted(
    set: &EndpointSet,
    input: PickInput,
    round_robin: &mut usize,
    load: &impl Fn(usize) -> usize,
    candidates: impl Iterator<Item = usize> + Clone,
) -> Option<usize> {
    let weight = |i: usize| set.endpoints.get(i).map_or(0, |e| u64::from(e.weight));
    let total: u64 = candidates.clone().map(weight).sum();
    if total == 0 {
        return None;
    }
    // The candidate at `point` (below `total`) along the weights laid end to end.
    let at = |point: u64| {
        let mut end = 0;
        candidates.clone().find(|&i| {
            end += weight(i);
            point < end
        })
    };
    // `x` scaled from [0, 2^64) to [0, total).
    let scaled = |x: u64| ((u128::from(x) * u128::from(total)) >> 64) as u64;
    match input.policy {
        LbPolicy::RoundRobin => {
            let k = *round_robin as u64;
            *round_robin = round_robin.wrapping_add(1);
            at(scaled(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        }
        LbPolicy::LeastRequest => {
            let a = at(scaled(input.random))?;
            let b = at(scaled(metaprotocol_core::route::mix64(input.random)))?;
            // load(b) / weight(b) < load(a) / weight(a), counting the request about to go.
            let cost = |i: usize, other: usize| (load(i) as u128 + 1) * u128::from(weight(other));
            Some(if cost(b, a) < cost(a, b) { b } else { a })
        }
        _ => at(scaled(input.random)),
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

    /// A cluster like [`cluster`]'s whose endpoints have these `weight` labels (`None`: no label).
    fn weighted_cluster(policy: LbPolicy, weights: &[Option<&str>]) -> Arc<SharedCluster> {
        let base = cluster(policy, 1);
        let endpoints = weights
            .iter()
            .zip(1u16..)
            .map(|(w, i)| EndpointSpec {
                address: ([127, 0, 0, 1], 2000 + i).into(),
                labels: w.map(|w| BTreeMap::from([("weight".to_string(), w.to_string())])).unwrap_or_default(),
            })
            .collect();
        SharedCluster::new(ClusterSpec { endpoints, ..base.spec.clone() })
    }

    fn counts(picks: impl Iterator<Item = Option<usize>>, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for p in picks {
            c[p.expect("a pick")] += 1;
        }
        c
    }

    #[test]
    fn weights_are_read_from_labels() {
        let c = weighted_cluster(LbPolicy::RoundRobin, &[Some("300"), None, Some("junk"), Some(" 7 ")]);
        let set = c.endpoints();
        let w: Vec<u32> = set.endpoints.iter().map(|e| e.weight).collect();
        assert_eq!(w, [300, 100, 100, 7]);
        assert!(set.weighted);
        assert!(!weighted_cluster(LbPolicy::RoundRobin, &[Some("100"), None]).endpoints().weighted);
    }

    #[test]
    fn weighted_round_robin_follows_weights_evenly() {
        let c = weighted_cluster(LbPolicy::RoundRobin, &[Some("100"), Some("300")]);
        let set = c.endpoints();
        let mut rr = 0;
        let picks: Vec<usize> =
            (0..4000).map(|_| pick(&set, input(LbPolicy::RoundRobin, None, 0), &mut rr, |_| 0).unwrap()).collect();
        let c = counts(picks.iter().map(|p| Some(*p)), 2);
        assert!(c[0].abs_diff(1000) <= 5 && c[1].abs_diff(3000) <= 5, "{c:?}");
        // Spread, not in bursts: the light endpoint never twice in a row, the heavy one at most
        // five times in a row.
        let mut run = 0;
        for w in picks.windows(2) {
            assert!(!(w[0] == 0 && w[1] == 0), "two picks of the light endpoint in a row");
            run = if w[1] == 1 { run + 1 } else { 0 };
            assert!(run <= 5, "a run of {run}");
        }
    }

    #[test]
    fn weighted_random_follows_weights() {
        let c = weighted_cluster(LbPolicy::Random, &[Some("100"), Some("300")]);
        let set = c.endpoints();
        let mut rng = fastrand::Rng::with_seed(11);
        let c = counts((0..40_000).map(|_| pick(&set, input(LbPolicy::Random, None, rng.u64(..)), &mut 0, |_| 0)), 2);
        assert!(c[0].abs_diff(10_000) < 600, "{c:?}");
    }

    #[test]
    fn weighted_least_request_weighs_load_by_weight() {
        let c = weighted_cluster(LbPolicy::LeastRequest, &[Some("100"), Some("300")]);
        let set = c.endpoints();
        let mut rng = fastrand::Rng::with_seed(5);
        let mut share = |busy_heavy: usize| {
            let c = counts(
                (0..20_000).map(|_| {
                    let load = |i: usize| if i == 1 { busy_heavy } else { 0 };
                    pick(&set, input(LbPolicy::LeastRequest, None, rng.u64(..)), &mut 0, load)
                }),
                2,
            );
            c[1] as f64 / 20_000.0
        };
        // Idle: the heavy one wins whenever it is drawn (1 - 0.25²).
        let idle = share(0);
        assert!((idle - 0.9375).abs() < 0.02, "{idle}");
        // Ten in flight on the heavy one: (10+1)/300 > 1/100, the light one wins when drawn.
        let busy = share(10);
        assert!((busy - 0.5625).abs() < 0.02, "{busy}");
    }

    #[test]
    fn zero_weights_subsets_and_ejections() {
        // Weight 0 takes nothing while another weighs more; all 0 is as if unweighted.
        let c = weighted_cluster(LbPolicy::Random, &[Some("0"), Some("100")]);
        let set = c.endpoints();
        assert!((0..200).all(|r| pick(&set, input(LbPolicy::Random, None, r * 7919), &mut 0, |_| 0) == Some(1)));
        let c = weighted_cluster(LbPolicy::RoundRobin, &[Some("0"), Some("0")]);
        let set = c.endpoints();
        let mut rr = 0;
        let c2 = counts((0..10).map(|_| pick(&set, input(LbPolicy::RoundRobin, None, 0), &mut rr, |_| 0)), 2);
        assert_eq!(c2, [5, 5]);
        // An ejected heavy endpoint leaves its share to the others.
        let c = weighted_cluster(LbPolicy::RoundRobin, &[Some("100"), Some("900"), Some("100")]);
        let set = c.endpoints();
        c.eject_for(&set.endpoints[1], Duration::from_secs(5));
        let now = c.now_ms();
        let mut rr = 0;
        let got = counts(
            (0..100)
                .map(|_| pick(&set, PickInput { now_ms: now, ..input(LbPolicy::RoundRobin, None, 0) }, &mut rr, |_| 0)),
            3,
        );
        assert_eq!(got[1], 0, "{got:?}");
        assert!(got[0].abs_diff(50) <= 2, "{got:?}");
    }
}
