//! Compiled routes and the ordered table that matches them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::ConfigError;
use crate::metadata::Metadata;
use crate::mutation::Mutation;
use crate::route::config::{DestinationSpec, MirrorSpec, MutationSpec, RetryOn, RouteSpec};
use crate::route::matcher::Matcher;

/// Most retries a route may ask for.
pub const MAX_RETRIES: u32 = 10;

/// A cluster and an optional subset of its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The cluster's name.
    pub cluster: Arc<str>,
    /// The subset's name, if any.
    pub subset: Option<Arc<str>>,
}

impl Destination {
    /// A destination in `cluster`, optionally restricted to `subset`.
    pub fn new(cluster: &str, subset: Option<&str>) -> Self {
        Destination { cluster: Arc::from(cluster), subset: subset.map(Arc::from) }
    }

    fn from_spec(spec: &DestinationSpec) -> Result<Self, ConfigError> {
        non_empty("cluster", &spec.cluster)?;
        Ok(Destination::new(&spec.cluster, spec.subset.as_deref()))
    }
}

/// Where a matching request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAction {
    /// Always this destination.
    Single(Destination),
    /// One of these, chosen at random in proportion to the weights.
    Weighted(WeightedDestinations),
}

/// A non-empty list of destinations with weights whose sum is greater than zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedDestinations {
    // Each entry holds the running total of weights up to and including it.
    first: (Destination, u64),
    rest: Vec<(Destination, u64)>,
    total: u64,
}

impl WeightedDestinations {
    /// The destinations with their own (not cumulative) weights, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = (&Destination, u64)> {
        let mut prev = 0;
        std::iter::once(&self.first).chain(self.rest.iter()).map(move |(d, upto)| {
            let w = upto - prev;
            prev = *upto;
            (d, w)
        })
    }

    /// Sum of the weights.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn pick(&self, random: u64) -> &Destination {
        let point = random % self.total.max(1);
        std::iter::once(&self.first)
            .chain(self.rest.iter())
            .find(|(_, upto)| point < *upto)
            .map_or(&self.first.0, |(d, _)| d)
    }
}

/// Mirroring of a share of traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// Where copies go.
    pub destination: Destination,
    /// Share mirrored, in hundredths of a percent (0 to 10,000).
    pub basis_points: u32,
}

/// When and how often to retry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (0: none).
    pub count: u32,
    /// Failures that trigger one.
    pub on: Vec<RetryOn>,
    /// Time limit per try.
    pub per_try_timeout: Option<Duration>,
}

impl RetryPolicy {
    /// True when `failure` may be retried under this policy.
    pub fn retries_on(&self, failure: RetryOn) -> bool {
        self.count > 0 && self.on.contains(&failure)
    }
}

/// A compiled route.
#[derive(Clone, Debug)]
pub struct Route {
    /// The route's name.
    pub name: Arc<str>,
    /// Conditions that must all hold.
    pub matchers: Vec<Matcher>,
    /// Where matching requests go.
    pub action: RouteAction,
    /// Written into matching requests.
    pub request_mutation: Mutation,
    /// Written into their responses.
    pub response_mutation: Mutation,
    /// Traffic mirroring.
    pub mirror: Option<Mirror>,
    /// Keys hashed for `ring_hash` load balancing.
    pub hash_keys: Vec<Box<str>>,
    /// Whole-request timeout.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retries: RetryPolicy,
}

impl Route {
    /// Compiles one route spec; errors name the offending field within the route.
    pub fn compile(spec: &RouteSpec) -> Result<Self, ConfigError> {
        non_empty("name", &spec.name)?;
        let matchers = spec
            .matchers
            .iter()
            .enumerate()
            .map(|(i, m)| Matcher::compile(m).map_err(|e| e.within(&format!("match[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let action = match (&spec.route, &spec.weighted) {
            (Some(d), None) => RouteAction::Single(Destination::from_spec(d).map_err(|e| e.within("route"))?),
            (None, Some(list)) => compile_weighted(list).map_err(|e| e.within("weighted"))?,
            (Some(_), Some(_)) => return Err(ConfigError::invalid("", "give either `route` or `weighted`, not both")),
            (None, None) => return Err(ConfigError::invalid("", "needs a destination: `route` or `weighted`")),
        };
        let mirror = spec.mirror.as_ref().map(compile_mirror).transpose().map_err(|e| e.within("mirror"))?;
        let retries = match &spec.retries {
            None => RetryPolicy::default(),
            Some(r) if r.count > MAX_RETRIES => {
                return Err(ConfigError::invalid("retries.count", format!("at most {MAX_RETRIES}")))
            }
            Some(r) => RetryPolicy { count: r.count, on: r.on.clone(), per_try_timeout: r.per_try_timeout },
        };
        if spec.timeout == Some(Duration::ZERO) {
            return Err(ConfigError::invalid("timeout", "must be greater than zero"));
        }
        Ok(Route {
            name: Arc::from(spec.name.as_str()),
            matchers,
            action,
            request_mutation: compile_mutation(&spec.request_mutation).map_err(|e| e.within("request_mutation"))?,
            response_mutation: compile_mutation(&spec.response_mutation).map_err(|e| e.within("response_mutation"))?,
            mirror,
            hash_keys: spec.hash_keys.iter().map(|k| k.clone().into_boxed_str()).collect(),
            timeout: spec.timeout,
            retries,
        })
    }

    /// True when every matcher holds (a route without matchers matches everything).
    pub fn matches(&self, metadata: &Metadata) -> bool {
        self.matchers.iter().all(|m| m.matches(metadata))
    }

    /// The destination for a request; `random` is any uniformly distributed number (only weighted
    /// routes use it).
    pub fn pick(&self, random: u64) -> &Destination {
        match &self.action {
            RouteAction::Single(d) => d,
            RouteAction::Weighted(w) => w.pick(random),
        }
    }

    /// The mirror destination when this request falls in the mirrored share; `random` as for
    /// [`pick`](Route::pick).
    pub fn mirror_for(&self, random: u64) -> Option<&Destination> {
        self.mirror.as_ref().filter(|m| (random % 10_000) < u64::from(m.basis_points)).map(|m| &m.destination)
    }

    /// A hash of the request's values for [`hash_keys`](Route::hash_keys) (FNV-1a with a 64-bit
    /// finalizer, so that values differing in one character spread over the whole range; stable
    /// across runs), or `None` when the route has no hash keys.
    pub fn hash(&self, metadata: &Metadata) -> Option<u64> {
        if self.hash_keys.is_empty() {
            return None;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for key in &self.hash_keys {
            let value = metadata.kvs.get(key).unwrap_or(&[]);
            for b in value.iter().chain(std::iter::once(&0xff)) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Some(mix64(h))
    }
}

/// The finalizer of splitmix64: every input bit affects every output bit.
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Routes in order; the first match wins.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Compiles every route. Names must be unique; errors name the route (`routes[2].match[0]`).
    pub fn compile(specs: &[RouteSpec]) -> Result<Self, ConfigError> {
        let mut names = HashSet::new();
        let mut routes = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("routes[{i}]");
            let route = Route::compile(spec).map_err(|e| e.within(&at))?;
            if !names.insert(spec.name.clone()) {
                return Err(ConfigError::invalid(
                    format!("{at}.name"),
                    format!("duplicate route name `{}`", spec.name),
                ));
            }
            routes.push(Arc::new(route));
        }
        Ok(RouteTable { routes })
    }

    /// The first route whose matchers all hold, if any.
    pub fn find(&self, metadata: &Metadata) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(metadata))
    }

    /// The routes in order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// Every destination a route can send to (including mirrors), to check that the clusters and
    /// subsets exist.
    pub fn destinations(&self) -> impl Iterator<Item = (&Route, &Destination)> {
        self.routes.iter().flat_map(|r| {
            let main: Vec<&Destination> = match &r.action {
                RouteAction::Single(d) => vec![d],
                RouteAction::Weighted(w) => w.iter().map(|(d, _)| d).collect(),
            };
            main.into_iter().chain(r.mirror.as_ref().map(|m| &m.destination)).map(move |d| (&**r, d))
        })
    }
}

fn non_empty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::invalid(field, "must not be empty"));
    }
    Ok(())
}

fn compile_weighted(list: &[crate::route::config::WeightedSpec]) -> Result<RouteAction, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError::invalid("", "needs at least one destination"));
    }
    let mut total = 0u64;
    let mut destinations = Vec::with_capacity(list.len());
    for (i, w) in list.iter().enumerate() {
        let d = Destination::from_spec(&DestinationSpec { cluster: w.cluster.clone(), subset: w.subset.clone() })
            .map_err(|e| e.within(&format!("[{i}]")))?;
        total += u64::from(w.weight);
        destinations.push((d, total));
    }
    if total == 0 {
        return Err(ConfigError::invalid("", "weights add up to zero"));
    }
    let mut iter = destinations.into_iter();
    let first = iter.next().ok_or_else(|| ConfigError::invalid("", "needs at least one destination"))?;
    Ok(RouteAction::Weighted(WeightedDestinations { first, rest: iter.collect(), total }))
}

fn compile_mirror(m: &MirrorSpec) -> Result<Mirror, ConfigError> {
    if !(0.0..=100.0).contains(&m.percentage) {
        return Err(ConfigError::invalid("percentage", "must be between 0 and 100"));
    }
    let destination =
        Destination::from_spec(&DestinationSpec { cluster: m.cluster.clone(), subset: m.subset.clone() })?;
    Ok(Mirror { destination, basis_points: (m.percentage * 100.0).round() as u32 })
}

fn compile_mutation(specs: &[MutationSpec]) -> Result<Mutation, ConfigError> {
    let mut mutation = Mutation::new();
    for (i, s) in specs.iter().enumerate() {
        non_empty("key", &s.key).map_err(|e| e.within(&format!("[{i}]")))?;
        let key = Bytes::copy_from_slice(s.key.as_bytes());
        match (&s.value, s.remove) {
            (Some(v), false) => {
                mutation.set(key, Bytes::copy_from_slice(v.as_bytes()));
            }
            (None, true) => {
                mutation.remove(key);
            }
            _ => {
                return Err(ConfigError::invalid(format!("[{i}]"), "give either `value` or `remove: true`"));
            }
        }
    }
    Ok(mutation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MessageType;

    fn table(json: serde_json::Value) -> Result<RouteTable, ConfigError> {
        let specs: Vec<RouteSpec> = serde_json::from_value(json).unwrap();
        RouteTable::compile(&specs)
    }

    fn md(pairs: &[(&'static str, &'static str)]) -> Metadata {
        let mut m = Metadata::new(MessageType::Request, 1);
        for (k, v) in pairs {
            m.kvs.push_bytes(Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes()));
        }
        m
    }

    fn batchjob_table() -> RouteTable {
        table(serde_json::json!([
            {"name": "batchjob", "match": [{"key": "batchjob", "exact": "true"}],
             "route": {"cluster": "provider", "subset": "batchjob"},
             "response_mutation": [{"key": "x-group", "value": "batch"}], "timeout": "3s", "retries": {"count": 2}},
            {"name": "orders", "match": [{"key": "interface", "prefix": "org.demo.Order"}, {"key": "method", "regex": "get.*"}],
             "route": {"cluster": "orders"}, "hash_keys": ["userId"]},
            {"name": "default", "route": {"cluster": "provider", "subset": "user"}}
        ]))
        .unwrap()
    }

    #[test]
    fn first_match_wins() {
        let t = batchjob_table();
        let find = |pairs| t.find(&md(pairs)).map(|r| r.name.to_string());
        assert_eq!(find(&[("BatchJob", "true"), ("interface", "org.demo.OrderService")]).as_deref(), Some("batchjob"));
        assert_eq!(find(&[("interface", "org.demo.OrderService"), ("method", "getOrder")]).as_deref(), Some("orders"));
        assert_eq!(find(&[("interface", "org.demo.OrderService"), ("method", "putOrder")]).as_deref(), Some("default"));
        let r = t.find(&md(&[("batchjob", "true")])).unwrap();
        assert_eq!(r.pick(0), &Destination::new("provider", Some("batchjob")));
        assert_eq!(r.timeout, Some(Duration::from_secs(3)));
        assert!(r.retries.retries_on(RetryOn::Reset));
        assert!(!r.retries.retries_on(RetryOn::PerTryTimeout));
        assert_eq!(r.response_mutation.len(), 1);
        assert_eq!(t.destinations().count(), 3);
    }

    #[test]
    fn no_match_without_catch_all() {
        let t = table(
            serde_json::json!([{"name": "a", "match": [{"key": "k", "present": true}], "route": {"cluster": "c"}}]),
        )
        .unwrap();
        assert!(t.find(&md(&[("other", "1")])).is_none());
    }

    #[test]
    fn weighted_split_follows_weights() {
        let t = table(serde_json::json!([{"name": "w", "weighted": [
            {"cluster": "a", "weight": 90}, {"cluster": "b", "subset": "canary", "weight": 10}, {"cluster": "c", "weight": 0}]}]))
        .unwrap();
        let r = &t.routes()[0];
        let mut counts = std::collections::HashMap::new();
        for i in 0..1000u64 {
            *counts.entry(r.pick(i).cluster.to_string()).or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), Some(&900));
        assert_eq!(counts.get("b"), Some(&100));
        assert_eq!(counts.get("c"), None);
    }

    #[test]
    fn mirror_share_and_hash() {
        let t = table(serde_json::json!([{"name": "m", "route": {"cluster": "a"},
            "mirror": {"cluster": "shadow", "percentage": 25}, "hash_keys": ["user"]}]))
        .unwrap();
        let r = &t.routes()[0];
        let mirrored = (0..10_000u64).filter(|i| r.mirror_for(*i).is_some()).count();
        assert_eq!(mirrored, 2500);
        let h1 = r.hash(&md(&[("user", "alice")]));
        assert_eq!(h1, r.hash(&md(&[("USER", "alice"), ("x", "y")])));
        assert_ne!(h1, r.hash(&md(&[("user", "bob")])));
        assert_eq!(t.destinations().count(), 2);
    }

    #[test]
    fn hashes_of_similar_values_spread_over_the_range() {
        let t = table(serde_json::json!([{"name": "h", "route": {"cluster": "a"}, "hash_keys": ["user"]}])).unwrap();
        let r = &t.routes()[0];
        let users: Vec<String> = (0..64).map(|i| format!("user-{i}")).collect();
        // The top two bits pick a quarter of the range: similar values must reach every quarter.
        let quarters: std::collections::HashSet<u64> = users
            .iter()
            .map(|u| {
                let mut m = Metadata::new(MessageType::Request, 1);
                m.kvs.push_bytes(Bytes::from_static(b"user"), Bytes::copy_from_slice(u.as_bytes()));
                r.hash(&m).unwrap() >> 62
            })
            .collect();
        assert_eq!(quarters.len(), 4);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (serde_json::json!([{"name": "a"}]), "routes[0]: needs a destination"),
            (
                serde_json::json!([{"name": "a", "route": {"cluster": "c"}}, {"name": "a", "route": {"cluster": "c"}}]),
                "routes[1].name: duplicate route name `a`",
            ),
            (
                serde_json::json!([{"name": "a", "match": [{"key": "k", "regex": "("}], "route": {"cluster": "c"}}]),
                "routes[0].match[0].regex: invalid regular expression",
            ),
            (
                serde_json::json!([{"name": "a", "weighted": [{"cluster": "c", "weight": 0}]}]),
                "routes[0].weighted: weights add up to zero",
            ),
            (
                serde_json::json!([{"name": "a", "route": {"cluster": "c"}, "request_mutation": [{"key": "k"}]}]),
                "routes[0].request_mutation[0]: give either",
            ),
            (
                serde_json::json!([{"name": "a", "route": {"cluster": "c"}, "retries": {"count": 11}}]),
                "routes[0].retries.count: at most 10",
            ),
            (
                serde_json::json!([{"name": "a", "route": {"cluster": "c"}, "mirror": {"cluster": "m", "percentage": 101}}]),
                "routes[0].mirror.percentage",
            ),
        ];
        for (json, want) in cases {
            let err = table(json).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err} does not start with {want}");
        }
    }
}
