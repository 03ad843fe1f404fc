//! Reloading a running proxy's configuration without losing a request.
//!
//! A new configuration is validated completely before this module sees it (the loader's
//! `file:line: field: message` errors). What it can change live:
//!
//! * a listener's routes, filters and budgets: each worker swaps its compiled copy
//!   ([`ListenerSlot::update`](crate::plan::ListenerSlot)), so the next request on any
//!   connection uses them and requests in flight finish with what they started with;
//! * a cluster's endpoints and subsets: the endpoint set is replaced as a DNS refresh replaces
//!   it, so endpoints that stay keep their upstream connections and those that leave drain.
//!
//! What it cannot (a listener added, removed or moved, a codec or its options, a cluster added or
//! removed, or any other cluster setting, a listener's tracing, the workers, the admin address,
//! the access log, the drain timeout) is refused with an error naming the setting, and the running configuration
//! keeps serving: those need a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::Running;
use crate::admin::{self, LiveConfig, ReloadStats};
use crate::config::ProxyConfig;
use crate::plan::ListenerSpec;
use crate::upstream::ClusterSpec;
use crate::RuntimeError;

/// The settings that a reload must leave as they are, in a form that compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RestartKeys {
    workers: usize,
    admin: Option<SocketAddr>,
    drain_timeout: Duration,
    access_log: String,
    /// Name, configured address, codec and options, tracing.
    listeners: Vec<(String, SocketAddr, String, String)>,
    /// Name, then every setting but the endpoints and subsets.
    clusters: Vec<(String, String)>,
    /// ZooKeeper discovery and registrations.
    zookeeper: String,
}

impl RestartKeys {
    /// The keys of `config` (before it is taken apart).
    pub(super) fn of(config: &ProxyConfig) -> Self {
        RestartKeys {
            workers: config.workers,
            admin: config.admin,
            drain_timeout: config.drain_timeout,
            access_log: format!("{:?}", config.access_log),
            listeners: config
                .listeners
                .iter()
                .map(|l| (l.name.to_string(), l.address, l.protocol.pool_key().to_string(), format!("{:?}", l.tracing)))
                .collect(),
            clusters: config.clusters.iter().map(|c| (c.name.to_string(), cluster_key(c))).collect(),
            zookeeper: format!("{:?} {:?}", config.discovery, config.registrations),
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
        let names = |v: &[(String, SocketAddr, String, String)]| v.iter().map(|l| l.0.clone()).collect::<Vec<_>>();
        if names(&self.listeners) != names(&next.listeners) {
            return differs("the listeners", &names(&self.listeners), &names(&next.listeners));
        }
        for (a, b) in self.listeners.iter().zip(&next.listeners) {
            if a.1 != b.1 {
                return differs(&format!("listener `{}`: address", a.0), &a.1, &b.1);
            }
            if a.2 != b.2 {
                return Err(format!("listener `{}`: protocol or codec options changed", a.0));
            }
            if a.3 != b.3 {
                return Err(format!("listener `{}`: tracing changed", a.0));
            }
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
    /// Sends the listeners' specs to the workers.
    pub specs: watch::Sender<Vec<Arc<ListenerSpec>>>,
    /// What the admin API shows of the configuration in force.
    pub live: Arc<RwLock<LiveConfig>>,
    /// Reloads applied and rejected.
    pub stats: Arc<ReloadStats>,
}

impl Running {
    /// Applies `config` (validated by the loader) to the running proxy: routes, filters and
    /// listener budgets apply to the next request, endpoint and subset changes to the next pick.
    /// A configuration that changes anything else is refused
    /// ([`RuntimeError::ReloadNeedsRestart`]) and the running one keeps serving. Returns once
    /// every worker serves the new configuration.
    pub async fn reload(&mut self, mut config: ProxyConfig) -> Result<(), RuntimeError> {
        let keys = RestartKeys::of(&config);
        if let Err(what) = self.reloadable.keys.compatible(&keys) {
            self.reload_rejected();
            return Err(RuntimeError::ReloadNeedsRestart { what });
        }
        let mut dump = admin::dump::config_dump(&config, &[]);
        for (i, spec) in config.listeners.iter().enumerate() {
            if let (Some(bound), Some(l)) =
                (self.address(&spec.name), dump.pointer_mut(&format!("/effective/listeners/{i}/bound")))
            {
                *l = serde_json::Value::String(bound.to_string());
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
        let old = self.reloadable.specs.borrow().clone();
        let specs: Vec<Arc<ListenerSpec>> = std::mem::take(&mut config.listeners)
            .into_iter()
            .map(|mut spec| {
                // Connections and buffers are counted against the listener, whatever its spec.
                if let Some(o) = old.iter().find(|o| o.name == spec.name) {
                    spec.usage = o.usage.clone();
                }
                Arc::new(spec)
            })
            .collect();
        let pending = self.shared.reload_pending.clone();
        pending.workers.store(self.workers.len(), Ordering::Release);
        self.reloadable.specs.send_replace(specs);
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

    /// Counts a configuration that was not applied (it did not load, or needs a restart).
    pub fn reload_rejected(&self) {
        self.reloadable.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The version (hash) of the configuration in force.
    pub fn config_version(&self) -> String {
        self.reloadable.live.read().map(|l| l.version.clone()).unwrap_or_default()
    }
}
