//! Reloading a running proxy's configuration without losing a request.
//!
//! A new configuration is validated completely before this module sees it (the loader's
//! `file:line: field: message` errors), and everything that can fail here (binding the sockets
//! of new listeners, starting a new span exporter) happens before anything changes. What it
//! changes live:
//!
//! * a listener's routes, filters and budgets: each worker swaps its compiled copy
//!   ([`ListenerSlot::update`](crate::plan::ListenerSlot)), so the next request on any
//!   connection uses them and requests in flight finish with what they started with;
//! * listeners added: their sockets are bound here and handed to every worker, which starts
//!   accepting on its own;
//! * listeners removed: every worker stops accepting on them and drains their connections (each
//!   stops reading, answers what is in flight, then closes; a Dubbo client gets the readonly
//!   event first); other listeners' connections are untouched;
//! * a listener whose address, protocol, codec options or tracing changed is replaced, as Envoy
//!   replaces a listener whose filter chain changed: the new one starts, then the old one stops
//!   and drains;
//! * a cluster's endpoints and subsets: the endpoint set is replaced as a DNS refresh replaces
//!   it, so endpoints that stay keep their upstream connections and those that leave drain.
//!
//! What it cannot (a cluster added or removed, or any cluster setting but endpoints and subsets,
//! the workers, the admin address, the access log, the drain timeout, ZooKeeper discovery and
//! registration, and replacing a listener that registers in ZooKeeper) is refused with an error
//! naming the setting, and the running configuration keeps serving: those need a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::Running;
use crate::admin::{self, LiveConfig, ReloadStats};
use crate::config::ProxyConfig;
use crate::plan::{ListenerSpec, WorkerReload};
use crate::stats::{ListenerStats, PerWorker};
use crate::upstream::ClusterSpec;
use crate::RuntimeError;

/// What tells a listener that can be updated in place from one that must be replaced: its name,
/// configured address, codec and options, and tracing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListenerKey {
    name: String,
    address: SocketAddr,
    codec: String,
    tracing: String,
}

impl ListenerKey {
    fn of(spec: &ListenerSpec) -> Self {
        ListenerKey {
            name: spec.name.to_string(),
            address: spec.address,
            codec: spec.protocol.pool_key().to_string(),
            tracing: format!("{:?}", spec.tracing),
        }
    }
}

/// The settings that a reload must leave as they are, in a form that compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RestartKeys {
    workers: usize,
    admin: Option<SocketAddr>,
    drain_timeout: Duration,
    access_log: String,
    /// Name, then every setting but the endpoints and subsets.
    clusters: Vec<(String, String)>,
    /// ZooKeeper discovery and registrations.
    zookeeper: String,
    /// The listeners that register in ZooKeeper.
    registered: Vec<String>,
}

impl RestartKeys {
    /// The keys of `config` (before it is taken apart).
    pub(super) fn of(config: &ProxyConfig) -> Self {
        RestartKeys {
            workers: config.workers,
            admin: config.admin,
            drain_timeout: config.drain_timeout,
            access_log: format!("{:?}", config.access_log),
            clusters: config.clusters.iter().map(|c| (c.name.to_string(), cluster_key(c))).collect(),
            zookeeper: format!("{:?} {:?}", config.discovery, config.registrations),
            registered: config.registrations.iter().map(|r| r.listener.to_string()).collect(),
        }
    }

    /// `Err` naming the first setting that differs from `next` and needs a restart.
    fn compatible(&self, next: &RestartKeys) -> Result<(), String> {
        let differs = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            Err(format!("{what} changed ({a:?} to {b:?})"))
        };
        if self.workers != next.workers {
            return differs("workers", &self.workers, &next.workers);
        }
        if self.admin != next.admin {
            return differs("admin.address", &self.admin, &next.admin);
        }
        if self.drain_timeout != next.drain_timeout {
            return differs("drain_timeout", &self.drain_timeout, &next.drain_timeout);
        }
        if self.access_log != next.access_log {
            return Err("access_log changed".to_string());
        }
        let names = |v: &[(String, String)]| v.iter().map(|c| c.0.clone()).collect::<Vec<_>>();
        if names(&self.clusters) != names(&next.clusters) {
            return differs("the clusters", &names(&self.clusters), &names(&next.clusters));
        }
        for (a, b) in self.clusters.iter().zip(&next.clusters) {
            if a.1 != b.1 {
                return Err(format!("cluster `{}`: a setting other than endpoints and subsets changed", a.0));
            }
        }
        if self.zookeeper != next.zookeeper {
            return Err("a ZooKeeper registry or registration changed".to_string());
        }
        Ok(())
    }
}

/// A cluster's settings but its endpoints and subsets (which a reload may change), compared
/// through their `Debug` form: every field, nested ones included.
fn cluster_key(spec: &ClusterSpec) -> String {
    let mut rest = spec.clone();
    rest.endpoints.clear();
    rest.subsets = BTreeMap::new();
    format!("{rest:?}")
}

/// How long a reload waits for the workers to apply it (they do at their next turn).
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a running proxy keeps to reload.
pub(super) struct Reloadable {
    /// The settings a reload must not change.
    pub keys: RestartKeys,
    /// The listeners in force.
    pub specs: Vec<Arc<ListenerSpec>>,
    /// Sends each worker its part of a reload.
    pub workers: Vec<UnboundedSender<WorkerReload>>,
    /// What the admin API shows of the configuration in force.
    pub live: Arc<RwLock<LiveConfig>>,
    /// Reloads applied and rejected.
    pub stats: Arc<ReloadStats>,
}

impl Running {
    /// Applies `config` (validated by the loader) to the running proxy: routes, filters and
    /// listener budgets apply to the next request, endpoint and subset changes to the next pick,
    /// added listeners start accepting and removed ones stop and drain (see the module's
    /// documentation). A configuration that changes anything else is refused
    /// ([`RuntimeError::ReloadNeedsRestart`]), as is one whose new listeners cannot bind, and the
    /// running one keeps serving. Returns once every worker serves the new configuration.
    pub async fn reload(&mut self, mut config: ProxyConfig) -> Result<(), RuntimeError> {
        let keys = RestartKeys::of(&config);
        if let Err(what) = self.reloadable.keys.compatible(&keys) {
            self.reload_rejected();
            return Err(RuntimeError::ReloadNeedsRestart { what });
        }
        let mut dump = admin::dump::config_dump(&config, &[]);
        // Which listeners stay (updated in place), which go, which start.
        let old = self.reloadable.specs.clone();
        let kept = |spec: &ListenerSpec| old.iter().find(|o| ListenerKey::of(o) == ListenerKey::of(spec));
        let remove: Vec<Arc<str>> = old
            .iter()
            .filter(|o| !config.listeners.iter().any(|n| kept(n).is_some_and(|k| k.name == o.name)))
            .map(|o| o.name.clone())
            .collect();
        if let Some(name) = remove.iter().find(|name| keys.registered.iter().any(|r| **r == ***name)) {
            self.reload_rejected();
            return Err(RuntimeError::ReloadNeedsRestart {
                what: format!("listener `{name}` registers in ZooKeeper: changing or removing it"),
            });
        }
        let specs: Vec<Arc<ListenerSpec>> = std::mem::take(&mut config.listeners)
            .into_iter()
            .map(|mut spec| {
                // Connections and buffers are counted against the listener, whatever its spec.
                if let Some(o) = kept(&spec) {
                    spec.usage = o.usage.clone();
                }
                Arc::new(spec)
            })
            .collect();
        let added: Vec<Arc<ListenerSpec>> = specs.iter().filter(|s| kept(s).is_none()).cloned().collect();
        // Everything that can fail, before anything changes: exporters, then sockets.
        if let Err(e) = self.shared.tracing.add(added.iter().map(|s| &**s)) {
            self.reload_rejected();
            return Err(e);
        }
        let workers = self.reloadable.workers.len();
        let mut adds: Vec<WorkerReload> = (0..workers).map(|_| WorkerReload::default()).collect();
        let mut new_addresses = Vec::new();
        let mut new_stats = Vec::new();
        for spec in &added {
            let stats = self.listener_stats(&spec.name).unwrap_or_default();
            match super::bind_listener(spec, workers, &stats) {
                Ok((runs, bound)) => {
                    for (run, reload) in runs.into_iter().zip(adds.iter_mut()) {
                        reload.add.push(run);
                    }
                    new_addresses.push((spec.name.clone(), bound));
                    new_stats.push((spec.name.clone(), stats));
                }
                Err(e) => {
                    self.reload_rejected();
                    return Err(e);
                }
            }
        }
        for spec in &config.clusters {
            if let Some(cluster) = self.shared.clusters.iter().find(|c| c.name() == &*spec.name) {
                // Endpoints found by DNS or ZooKeeper stay; only the subsets change.
                let discovered = config.discovery.iter().any(|d| d.cluster == spec.name);
                if spec.dns.is_some() || discovered {
                    cluster.set_subsets(&spec.subsets);
                } else {
                    cluster.reconfigure(&spec.subsets, &spec.endpoints);
                }
            }
        }
        // The addresses and counters of the listeners as they are after the reload.
        self.addresses
            .retain(|(name, _)| specs.iter().any(|s| s.name == *name) && !new_addresses.iter().any(|(n, _)| n == name));
        self.addresses.extend(new_addresses);
        self.addresses.sort_by_key(|(name, _)| specs.iter().position(|s| s.name == *name));
        if let Ok(mut stats) = self.shared.listener_stats.write() {
            stats
                .retain(|(name, _)| specs.iter().any(|s| s.name == *name) && !new_stats.iter().any(|(n, _)| n == name));
            stats.extend(new_stats);
            stats.sort_by_key(|(name, _)| specs.iter().position(|s| s.name == *name));
        }
        for (i, spec) in specs.iter().enumerate() {
            if let (Some(bound), Some(l)) =
                (self.address(&spec.name), dump.pointer_mut(&format!("/effective/listeners/{i}/bound")))
            {
                *l = serde_json::Value::String(bound.to_string());
            }
        }
        for name in &remove {
            tracing::info!(listener = %name, "listener removed or replaced: it stops accepting and drains");
        }
        let pending = self.shared.reload_pending.clone();
        pending.workers.store(workers, Ordering::Release);
        for (sender, mut reload) in self.reloadable.workers.iter().zip(adds) {
            reload.specs = specs.clone();
            reload.remove = remove.clone();
            if sender.send(reload).is_err() {
                pending.workers.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.reloadable.specs = specs;
        let applied = async {
            loop {
                let notified = pending.applied.notified();
                if pending.workers.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(APPLY_TIMEOUT, applied).await.is_err() {
            tracing::warn!("a worker has not applied the reloaded listeners yet");
        }
        if let Ok(mut live) = self.reloadable.live.write() {
            *live = LiveConfig { dump, version: config.version.hash.clone() };
        }
        self.reloadable.stats.success.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            version = %config.version.hash,
            loaded_at = %config.version.loaded_at_rfc3339(),
            "configuration reloaded"
        );
        Ok(())
    }

    /// The counters of listener `name`, when it runs (a replaced listener keeps its series).
    fn listener_stats(&self, name: &str) -> Option<Arc<PerWorker<ListenerStats>>> {
        let stats = self.shared.listener_stats.read().ok()?;
        stats.iter().find(|(n, _)| &**n == name).map(|(_, s)| s.clone())
    }

    /// Counts a configuration that was not applied (it did not load, or needs a restart).
    pub fn reload_rejected(&self) {
        self.reloadable.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The version (hash) of the configuration in force.
    pub fn config_version(&self) -> String {
        self.reloadable.live.read().map(|l| l.version.clone()).unwrap_or_default()
    }
}
