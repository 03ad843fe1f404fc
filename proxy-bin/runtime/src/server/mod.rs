//! The process around the workers: clusters (with DNS discovery), the access-log writer, the
//! listening sockets, the worker threads, the admin endpoint, and the drain.
//!
//! [`start`] builds what the workers share, binds one `SO_REUSEPORT` socket per worker and
//! listener, starts the workers and waits until each serves; [`Running::shutdown`] drains them.

pub mod file_watch;
mod reload;
mod sockets;
mod workers;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metaproxy_access_log::{AccessLogStats, AccessLogWriter};
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::ProxyConfig;
use crate::plan::{ListenerRun, ListenerSpec, Protocol, Shared};
use crate::stats::{ListenerStats, PerWorker};
use crate::upstream::zookeeper::ZooKeeper;
use crate::upstream::{dns, health, outlier, SharedCluster};
use crate::RuntimeError;

/// A started proxy.
pub struct Running {
    addresses: Vec<(Arc<str>, SocketAddr)>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    /// Stops the admin endpoint, which serves through the drain.
    admin_stop: watch::Sender<bool>,
    workers: Vec<workers::WorkerThread>,
    process_open: Arc<AtomicUsize>,
    admin: Option<SocketAddr>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    access_log: Option<AccessLogWriter>,
    access_log_stats: Arc<AccessLogStats>,
    /// The ZooKeeper registrations, which delete their nodes when the drain starts.
    registrations: Vec<tokio::task::JoinHandle<()>>,
    /// What a reload compares with and replaces.
    reloadable: reload::Reloadable,
}

impl Running {
    /// The address a listener is bound to (useful with port 0).
    pub fn address(&self, listener: &str) -> Option<SocketAddr> {
        self.addresses.iter().find(|(n, _)| &**n == listener).map(|(_, a)| *a)
    }

    /// Open upstream connections to `cluster`, over every worker.
    pub fn upstream_connections(&self, cluster: &str) -> usize {
        self.shared.clusters.iter().filter(|c| c.name() == cluster).map(|c| c.open_connections()).sum()
    }

    /// The admin endpoint's address, when configured.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Open downstream connections, over every worker.
    pub fn downstream_connections(&self) -> usize {
        self.process_open.load(Ordering::Acquire)
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The access log's counters.
    pub fn access_log_stats(&self) -> &AccessLogStats {
        &self.access_log_stats
    }

    /// Stops accepting, lets in-flight requests finish (each worker waits up to the drain
    /// timeout), writes what the access log holds, then returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for w in std::mem::take(&mut self.workers) {
            let _ = w.done.await;
            let _ = tokio::task::spawn_blocking(move || w.thread.join()).await;
        }
        // Deregistered from ZooKeeper (bounded), so clients no longer pick a proxy that is gone.
        for task in std::mem::take(&mut self.registrations) {
            let _ = task.await;
        }
        if let Some(writer) = self.access_log.take() {
            let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
        }
        // The workers' tracers are gone with the workers: the exporters send what is queued.
        let tracers = self.shared.tracing.clone();
        let _ = tokio::task::spawn_blocking(move || tracers.shutdown()).await;
        let _ = self.admin_stop.send(true);
        if let Some(task) = self.admin_task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the workers anyway (their threads end on their own).
        let _ = self.shutdown.send(true);
        let _ = self.admin_stop.send(true);
    }
}

/// Starts serving `config`: must be called inside a tokio runtime (DNS refreshes and the admin
/// endpoint run on it; the workers run on threads of their own).
pub async fn start(mut config: ProxyConfig) -> Result<Running, RuntimeError> {
    tracing::info!(
        version = %config.version.hash,
        loaded_at = %config.version.loaded_at_rfc3339(),
        "configuration loaded"
    );
    let (shutdown, shutdown_rx) = watch::channel(false);
    let checkers = health_check_protocols(&config);
    let restart_keys = reload::RestartKeys::of(&config);
    // What `/config_dump` shows, made before the configuration is taken apart.
    let mut config_dump = admin::dump::config_dump(&config, &[]);
    let mut clusters = Vec::new();
    for spec in std::mem::take(&mut config.clusters) {
        let dns_spec = spec.dns.clone();
        let cluster = SharedCluster::new(spec);
        if let Some(dns_spec) = dns_spec {
            // Resolve once before serving, so the first requests find endpoints.
            dns::resolve(&cluster, &dns_spec).await;
            tokio::spawn(dns::refresh_forever(Arc::downgrade(&cluster), dns_spec, shutdown_rx.clone()));
        }
        // Health checks and outlier sweeps run once per process, here, not per worker.
        if let Some(check) = cluster.spec.health_check.clone() {
            let protocol = checkers.iter().find(|(c, _)| **c == *cluster.spec.name).map(|(_, p)| p.clone());
            tracing::info!(
                cluster = %cluster.name(),
                protocol = protocol.as_ref().map_or("tcp", |p| p.name()),
                kind = check.kind.as_str(),
                interval = ?check.interval,
                "health checking"
            );
            tokio::spawn(health::run(Arc::downgrade(&cluster), check, protocol, shutdown_rx.clone()));
        }
        if let Some(outlier) = cluster.spec.outlier_detection {
            tokio::spawn(outlier::sweep_forever(Arc::downgrade(&cluster), outlier.interval, shutdown_rx.clone()));
        }
        clusters.push(cluster);
    }
    let writer = AccessLogWriter::start(&config.access_log).map_err(RuntimeError::AccessLog)?;
    let access_log_stats = writer.stats();
    // Span exporters start before the workers, which each take a tracer per listener.
    let tracers = Arc::new(crate::trace::Tracers::start(&config.listeners)?);
    let workers = config.workers.max(1);
    let mut runs: Vec<Vec<ListenerRun>> = (0..workers).map(|_| Vec::new()).collect();
    let mut addresses = Vec::new();
    let mut listener_stats = Vec::new();
    for (i, spec) in std::mem::take(&mut config.listeners).into_iter().enumerate() {
        let spec = Arc::new(spec);
        let stats = Arc::new(PerWorker::<ListenerStats>::default());
        let (listener_runs, bound) = bind_listener(&spec, workers, &stats)?;
        if let Some(l) = config_dump.pointer_mut(&format!("/effective/listeners/{i}/bound")) {
            *l = serde_json::Value::String(bound.to_string());
        }
        addresses.push((spec.name.clone(), bound));
        listener_stats.push((spec.name.clone(), stats));
        for (run, worker) in listener_runs.into_iter().zip(runs.iter_mut()) {
            worker.push(run);
        }
    }
    // ZooKeeper discovery starts before the workers, its first lists awaited (as DNS answers are)
    // so the first requests find endpoints; registration waits until the workers serve.
    let zookeeper = ZooKeeper::discover(
        &clusters,
        std::mem::take(&mut config.discovery),
        std::mem::take(&mut config.registrations),
        &addresses,
        shutdown_rx.clone(),
    )
    .await;
    let listener_specs: Vec<Arc<ListenerSpec>> =
        runs.first().map_or_else(Vec::new, |r| r.iter().map(|run| run.spec.clone()).collect());
    let shared = Arc::new(Shared {
        clusters,
        shutdown: shutdown_rx.clone(),
        drain_timeout: config.drain_timeout,
        listener_stats: std::sync::RwLock::new(listener_stats),
        tracing: tracers,
        reload_pending: Arc::default(),
    });
    let process_open = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    let mut reload_senders = Vec::new();
    for (id, worker_runs) in runs.into_iter().enumerate() {
        let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
        reload_senders.push(reload_tx);
        threads.push(workers::spawn(workers::WorkerArgs {
            id,
            shared: shared.clone(),
            runs: worker_runs,
            log: writer.worker(),
            process_open: process_open.clone(),
            ready: ready_tx.clone(),
            reloads,
        })?);
    }
    drop(ready_tx);
    let started = tokio::task::spawn_blocking(move || {
        (0..workers)
            .try_for_each(|_| ready_rx.recv_timeout(Duration::from_secs(30)).unwrap_or(Err(RuntimeError::WorkerStart)))
    })
    .await
    .unwrap_or(Err(RuntimeError::WorkerStart));
    if let Err(e) = started {
        let _ = shutdown.send(true);
        return Err(e);
    }
    let registrations = zookeeper.register();
    let reloadable = reload::Reloadable {
        keys: restart_keys,
        specs: listener_specs,
        workers: reload_senders,
        live: Arc::new(std::sync::RwLock::new(admin::LiveConfig {
            dump: config_dump,
            version: config.version.hash.clone(),
        })),
        stats: Arc::default(),
    };
    let (admin_stop, admin_stop_rx) = watch::channel(false);
    let (admin, admin_task) = match config.admin {
        None => (None, None),
        Some(address) => {
            let state = AdminState {
                shared: shared.clone(),
                downstream: process_open.clone(),
                access_log: access_log_stats.clone(),
                draining: shutdown_rx.clone(),
                live: reloadable.live.clone(),
                reloads: reloadable.stats.clone(),
                failing: AtomicBool::new(false),
            };
            let (bound, task) = admin::start(address, state, admin_stop_rx).await?;
            (Some(bound), Some(task))
        }
    };
    Ok(Running {
        addresses,
        shared,
        shutdown,
        admin_stop,
        workers: threads,
        process_open,
        admin,
        admin_task,
        access_log: Some(writer),
        access_log_stats,
        registrations,
        reloadable,
    })
}

/// Binds `spec`'s sockets, one per worker (`SO_REUSEPORT`), each with its worker's counters from
/// `stats`; returns them and the address they are bound to.
fn bind_listener(
    spec: &Arc<ListenerSpec>,
    workers: usize,
    stats: &PerWorker<ListenerStats>,
) -> Result<(Vec<ListenerRun>, SocketAddr), RuntimeError> {
    let (sockets, bound) = sockets::bind(spec.address, workers)?;
    tracing::info!(listener = %spec.name, address = %bound, protocol = spec.protocol.name(), workers, "listening");
    let runs =
        sockets.into_iter().map(|socket| ListenerRun { spec: spec.clone(), socket, stats: stats.register() }).collect();
    Ok((runs, bound))
}

/// For each cluster some listener routes (or mirrors) to, the protocol of the first such
/// listener: its codec runs the cluster's heartbeat health checks. Clusters no listener uses are
/// checked with a TCP connect.
fn health_check_protocols(config: &ProxyConfig) -> Vec<(Arc<str>, Arc<dyn Protocol>)> {
    let mut found: Vec<(Arc<str>, Arc<dyn Protocol>)> = Vec::new();
    for listener in &config.listeners {
        let Ok(table) = metaprotocol_core::RouteTable::compile(&listener.routes) else { continue };
        for (_, destination) in table.destinations() {
            if !found.iter().any(|(c, _)| **c == *destination.cluster) {
                found.push((Arc::from(&*destination.cluster), listener.protocol.clone()));
            }
        }
    }
    found
}
