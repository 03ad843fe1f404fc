//! The routing dry run: where the proxy would send each request of a capture, with nothing sent.
//!
//! The configuration is loaded and checked by [`crate::config::load_file`], as `run` and `check`
//! do, and each listener's routes are compiled with [`RouteTable::compile`] and matched with
//! [`RouteTable::find`] on the decoded metadata, as the workers do. So the dry run and the proxy
//! cannot disagree about which route a request takes.
//!
//! A connection belongs to a listener when its server port is the listener's port (or to the
//! listener named with `--listener`). A connection to a cluster's endpoint is an upstream leg (the
//! proxy's own traffic): its requests are not routed again, but the report names the cluster, the
//! endpoint and the subsets the endpoint is in.
//!
//! Not modelled: filters (they may answer locally or change key/values; the report lists those
//! that would run first), the random pick of a weighted route (all its destinations are shown),
//! load balancing and circuit breakers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use metaprotocol_core::route::{Route, RouteAction};
use metaprotocol_core::{MessageType, Metadata, Mutation, MutationOp, RouteTable};
use serde::Serialize;

use crate::config::ProxyConfig;
use crate::plan::Protocol;
use crate::registry::Registry;
use crate::RuntimeError;

/// What a connection is, as the configuration sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leg {
    /// Client to proxy: to listener `index` (in the configuration's order).
    Listener(usize),
    /// Proxy to upstream: to an endpoint of cluster `cluster`.
    Upstream {
        /// The cluster's index.
        cluster: usize,
        /// The endpoint.
        endpoint: SocketAddr,
    },
    /// Neither.
    Unknown,
}

/// The dry run's view of one upstream leg, for reports.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UpstreamView {
    /// The cluster.
    pub cluster: String,
    /// The endpoint the connection goes to.
    pub endpoint: String,
    /// The subsets the endpoint is in.
    pub subsets: Vec<String>,
}

/// One routing decision, as reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Decision {
    /// The listener.
    pub listener: String,
    /// The matching route (`None`: no route matches, the proxy answers `route_not_found`).
    pub route: Option<String>,
    /// The destination cluster (single-destination routes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The destination subset, if the route names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The destinations of a weighted route, with their weights.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weighted: Vec<(String, u64)>,
    /// Key/value changes written into the request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_mutation: Vec<String>,
    /// Key/value changes written into its response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_mutation: Vec<String>,
    /// Where a copy would be mirrored, and the share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// The reply the proxy sends itself, when it does not forward.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<&'static str>,
    /// Filters that run before routing and are not evaluated by the dry run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters_not_run: Vec<String>,
}

impl Decision {
    /// `cluster/subset` (or the weighted destinations), for tables and summaries.
    pub fn destination(&self) -> String {
        match (&self.cluster, &self.subset) {
            (Some(c), Some(s)) => format!("{c}/{s}"),
            (Some(c), None) => c.clone(),
            _ if !self.weighted.is_empty() => {
                self.weighted.iter().map(|(d, w)| format!("{d}:{w}")).collect::<Vec<_>>().join(",")
            }
            _ => "-".to_string(),
        }
    }
}

/// Counts over the capture.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct DryRunSummary {
    /// The configuration file.
    pub config: String,
    /// Requests routed (on connections to a listener).
    pub requests: u64,
    /// Per listener.
    pub listeners: BTreeMap<String, u64>,
    /// Per route.
    pub routes: BTreeMap<String, u64>,
    /// Per destination (`cluster/subset`).
    pub destinations: BTreeMap<String, u64>,
    /// Requests no route matches.
    pub unmatched: u64,
    /// Requests on connections that are not to a listener (upstream legs, other traffic).
    pub not_on_a_listener: u64,
}

/// A loaded configuration with each listener's compiled route table.
#[derive(Debug)]
pub struct DryRun {
    config: ProxyConfig,
    tables: Vec<RouteTable>,
    forced: Option<usize>,
    summary: DryRunSummary,
}

/// True for the messages the workers route (everything but heartbeats and answers).
pub fn is_routed(t: MessageType) -> bool {
    !matches!(t, MessageType::Ping | MessageType::Pong | MessageType::Response | MessageType::Error)
}

fn mutation_text(m: &Mutation) -> Vec<String> {
    m.ops()
        .iter()
        .map(|op| match op {
            MutationOp::Set { key, value } => {
                format!("set {}={}", String::from_utf8_lossy(key), String::from_utf8_lossy(value))
            }
            MutationOp::Remove { key } => format!("remove {}", String::from_utf8_lossy(key)),
        })
        .collect()
}

impl DryRun {
    /// Loads the configuration at `path`; `listener` names the listener every request goes to
    /// (else each connection's server port picks it).
    pub fn load(path: &Path, registry: &Registry, listener: Option<&str>) -> Result<DryRun, RuntimeError> {
        let config = crate::config::load_file(path, registry)?;
        let mut tables = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let table = RouteTable::compile(&l.routes)
                .map_err(|source| RuntimeError::Routes { listener: l.name.to_string(), source })?;
            tables.push(table);
        }
        let forced = match listener {
            None => None,
            Some(name) => Some(config.listeners.iter().position(|l| &*l.name == name).ok_or_else(|| {
                RuntimeError::UnknownListener {
                    name: name.to_string(),
                    known: config.listeners.iter().map(|l| l.name.to_string()).collect::<Vec<_>>().join(", "),
                }
            })?),
        };
        let summary = DryRunSummary { config: path.display().to_string(), ..DryRunSummary::default() };
        Ok(DryRun { config, tables, forced, summary })
    }

    /// The listener every request goes to without a connection to tell: `--listener`, or the
    /// only one.
    pub fn default_listener(&self) -> Option<usize> {
        self.forced.or_else(|| (self.config.listeners.len() == 1).then_some(0))
    }

    /// What a connection to `server` is.
    pub fn leg(&self, server: SocketAddr) -> Leg {
        if let Some(i) = self.forced {
            return Leg::Listener(i);
        }
        if let Some(i) = self.config.listeners.iter().position(|l| l.address.port() == server.port()) {
            return Leg::Listener(i);
        }
        for (i, c) in self.config.clusters.iter().enumerate() {
            if c.endpoints.iter().any(|e| e.address == server) {
                return Leg::Upstream { cluster: i, endpoint: server };
            }
        }
        Leg::Unknown
    }

    /// The configured protocol of listener `index`.
    pub fn listener_protocol(&self, index: usize) -> Option<&Arc<dyn Protocol>> {
        self.config.listeners.get(index).map(|l| &l.protocol)
    }

    /// The protocol spoken to cluster `index`: that of the first listener routing to it.
    pub fn cluster_protocol(&self, index: usize) -> Option<&Arc<dyn Protocol>> {
        let name = &self.config.clusters.get(index)?.name;
        let at = self.tables.iter().position(|t| t.destinations().any(|(_, d)| d.cluster == *name))?;
        self.listener_protocol(at)
    }

    /// The report's view of an upstream leg.
    pub fn upstream_view(&self, cluster: usize, endpoint: SocketAddr) -> Option<UpstreamView> {
        let c = self.config.clusters.get(cluster)?;
        let labels = &c.endpoints.iter().find(|e| e.address == endpoint)?.labels;
        let subsets = c
            .subsets
            .iter()
            .filter(|(_, want)| want.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map(|(name, _)| name.clone())
            .collect();
        Some(UpstreamView { cluster: c.name.to_string(), endpoint: endpoint.to_string(), subsets })
    }

    /// Counts a request on a connection that is not to a listener.
    pub fn not_on_a_listener(&mut self) {
        self.summary.not_on_a_listener += 1;
    }

    /// Routes a request decoded on a connection to listener `index`, as a worker would.
    pub fn route(&mut self, index: usize, metadata: &Metadata) -> Option<Decision> {
        let listener = self.config.listeners.get(index)?;
        let table = self.tables.get(index)?;
        let name = listener.name.to_string();
        let s = &mut self.summary;
        s.requests += 1;
        *s.listeners.entry(name.clone()).or_default() += 1;
        let filters_not_run = listener.filters.filters().iter().map(|f| f.name().to_string()).collect();
        let Some(route) = table.find(metadata) else {
            s.unmatched += 1;
            return Some(Decision {
                listener: name,
                route: None,
                cluster: None,
                subset: None,
                weighted: Vec::new(),
                request_mutation: Vec::new(),
                response_mutation: Vec::new(),
                mirror: None,
                reply: Some("route_not_found"),
                filters_not_run,
            });
        };
        let decision = decide(name, route, filters_not_run);
        *s.routes.entry(route.name.to_string()).or_default() += 1;
        *s.destinations.entry(decision.destination()).or_default() += 1;
        Some(decision)
    }

    /// The counts so far.
    pub fn summary(&self) -> &DryRunSummary {
        &self.summary
    }
}

fn decide(listener: String, route: &Route, filters_not_run: Vec<String>) -> Decision {
    let (cluster, subset, weighted) = match &route.action {
        RouteAction::Single(d) => (Some(d.cluster.to_string()), d.subset.as_deref().map(str::to_string), Vec::new()),
        RouteAction::Weighted(w) => {
            let list = w
                .iter()
                .map(|(d, weight)| match &d.subset {
                    Some(s) => (format!("{}/{s}", d.cluster), weight),
                    None => (d.cluster.to_string(), weight),
                })
                .collect();
            (None, None, list)
        }
    };
    let mirror = route.mirror.as_ref().map(|m| {
        let to = match &m.destination.subset {
            Some(s) => format!("{}/{s}", m.destination.cluster),
            None => m.destination.cluster.to_string(),
        };
        format!("{to} ({}%)", f64::from(m.basis_points) / 100.0)
    });
    Decision {
        listener,
        route: Some(route.name.to_string()),
        cluster,
        subset,
        weighted,
        request_mutation: mutation_text(&route.request_mutation),
        response_mutation: mutation_text(&route.response_mutation),
        mirror,
        reply: None,
        filters_not_run,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use bytes::Bytes;

    use super::*;

    fn batchjob() -> DryRun {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/configs/batchjob.yaml"));
        DryRun::load(path, &crate::default_registry().unwrap(), None).unwrap()
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> Metadata {
        let mut m = Metadata::new(MessageType::Request, 1);
        for (k, v) in pairs {
            m.kvs.push_bytes(Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes()));
        }
        m
    }

    #[test]
    fn routes_as_the_batchjob_example_says() {
        let mut d = batchjob();
        assert_eq!(d.leg("127.0.0.1:20880".parse().unwrap()), Leg::Listener(0));
        let up = "127.0.0.1:20882".parse().unwrap();
        assert_eq!(d.leg(up), Leg::Upstream { cluster: 0, endpoint: up });
        assert_eq!(d.upstream_view(0, up).unwrap().subsets, ["batchjob"]);
        assert_eq!(d.leg("127.0.0.1:1".parse().unwrap()), Leg::Unknown);
        let batch = d.route(0, &request(&[("batchjob", "true")])).unwrap();
        assert_eq!((batch.route.as_deref(), batch.destination()), (Some("batchjob"), "provider/batchjob".into()));
        let plain = d.route(0, &request(&[("batchjob", "false")])).unwrap();
        assert_eq!(plain.destination(), "provider/user");
        let s = d.summary();
        assert_eq!((s.requests, s.unmatched), (2, 0));
        assert_eq!(s.destinations.get("provider/batchjob"), Some(&1));
    }

    #[test]
    fn an_unknown_listener_lists_the_known_ones() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/configs/batchjob.yaml"));
        let e = DryRun::load(path, &crate::default_registry().unwrap(), Some("nope")).unwrap_err();
        assert_eq!(e.to_string(), "--listener: no listener `nope` in the configuration (listeners: dubbo-in)");
    }
}
