//! The proxy server: listeners accept connections, each served by [`downstream`]; requests run
//! through [`request`]; clusters come from [`crate::upstream`].

mod access_log;
mod downstream;
pub mod request;
pub mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::config::model::AccessLogConfig;
use crate::config::{EndpointSpec, ListenerSpec, ProxyConfig};
use crate::upstream::{Breaker, Cluster};
use crate::RuntimeError;

/// A listener with its clusters (pools speak the listener's protocol).
pub struct ListenerRuntime {
    /// The validated listener.
    pub spec: ListenerSpec,
    /// Its clusters by name.
    pub clusters: HashMap<Arc<str>, Arc<Cluster>>,
    /// Access log settings.
    pub access_log: AccessLogConfig,
    /// Counters.
    pub stats: stats::ListenerStats,
}

/// Counts open downstream connections, to wait for them on shutdown.
#[derive(Default)]
struct Connections {
    open: AtomicUsize,
    closed: Notify,
}

/// A started proxy.
pub struct Running {
    addresses: Vec<(Arc<str>, SocketAddr)>,
    listeners: Vec<Arc<ListenerRuntime>>,
    shutdown: watch::Sender<bool>,
    connections: Arc<Connections>,
    drain_timeout: Duration,
    admin: Option<SocketAddr>,
}

impl Running {
    /// The address a listener is bound to (useful with port 0).
    pub fn address(&self, listener: &str) -> Option<SocketAddr> {
        self.addresses.iter().find(|(n, _)| &**n == listener).map(|(_, a)| *a)
    }

    /// Open upstream connections of `cluster` as used by `listener`.
    pub fn upstream_connections(&self, listener: &str, cluster: &str) -> usize {
        self.listeners
            .iter()
            .filter(|l| &*l.spec.name == listener)
            .filter_map(|l| l.clusters.get(cluster))
            .map(|c| c.endpoints().all.iter().map(|e| e.pool.open_connections()).sum::<usize>())
            .sum()
    }

    /// The admin endpoint's address, when configured.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Open downstream connections.
    pub fn downstream_connections(&self) -> usize {
        self.connections.open.load(Ordering::Acquire)
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let wait = async {
            while self.connections.open.load(Ordering::Acquire) > 0 {
                let notified = self.connections.closed.notified();
                if self.connections.open.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(self.drain_timeout, wait).await.is_err() {
            tracing::warn!(
                open = self.connections.open.load(Ordering::Acquire),
                "drain timeout: closing remaining connections"
            );
        }
    }
}

/// Binds every listener and starts serving `config`.
pub async fn start(config: ProxyConfig) -> Result<Running, RuntimeError> {
    let breakers: HashMap<Arc<str>, Arc<Breaker>> =
        config.clusters.iter().map(|(n, c)| (n.clone(), Breaker::new(c.limits))).collect();
    let (shutdown, watch_rx) = watch::channel(false);
    let connections = Arc::new(Connections::default());
    let mut addresses = Vec::new();
    let mut runtimes = Vec::new();
    for spec in config.listeners {
        let socket = TcpListener::bind(spec.address)
            .await
            .map_err(|e| RuntimeError::Usage(format!("listener `{}`: cannot bind {}: {e}", spec.name, spec.address)))?;
        let address = socket.local_addr().map_err(|e| RuntimeError::Usage(e.to_string()))?;
        let mut clusters = HashMap::new();
        for (name, cluster) in &config.clusters {
            let breaker = breakers.get(name).cloned().unwrap_or_else(|| Breaker::new(cluster.limits));
            let c = Cluster::new(cluster.clone(), breaker, spec.new_codec.clone());
            if let Some(dns) = &cluster.dns {
                // Resolve once before serving, so the first requests find endpoints.
                resolve(&c, dns).await;
                tokio::spawn(resolve_forever(Arc::downgrade(&c), dns.clone(), watch_rx.clone()));
            }
            clusters.insert(name.clone(), c);
        }
        tracing::info!(listener = %spec.name, %address, protocol = %spec.protocol, "listening");
        addresses.push((spec.name.clone(), address));
        let runtime = Arc::new(ListenerRuntime {
            spec,
            clusters,
            access_log: config.access_log.clone(),
            stats: Default::default(),
        });
        runtimes.push(runtime.clone());
        tokio::spawn(accept(socket, runtime, watch_rx.clone(), connections.clone()));
    }
    let admin = match config.admin {
        None => None,
        Some(address) => {
            let socket = crate::admin::bind(address)
                .await
                .map_err(|e| RuntimeError::Usage(format!("admin: cannot bind {address}: {e}")))?;
            let bound = socket.local_addr().map_err(|e| RuntimeError::Usage(e.to_string()))?;
            let open = connections.clone();
            let state = crate::admin::AdminState {
                listeners: runtimes.clone(),
                downstream: Arc::new(move || open.open.load(Ordering::Acquire)),
            };
            tokio::spawn(crate::admin::serve(socket, Arc::new(state), watch_rx.clone()));
            tracing::info!(address = %bound, "admin endpoint: /metrics, /ready");
            Some(bound)
        }
    };
    Ok(Running { addresses, listeners: runtimes, shutdown, connections, drain_timeout: config.drain_timeout, admin })
}

async fn accept(
    socket: TcpListener,
    listener: Arc<ListenerRuntime>,
    mut shutdown: watch::Receiver<bool>,
    connections: Arc<Connections>,
) {
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.open.fetch_add(1, Ordering::AcqRel);
                    let (l, s, c) = (listener.clone(), shutdown.clone(), connections.clone());
                    tokio::spawn(async move {
                        downstream::serve(l, stream, Some(peer), s).await;
                        c.open.fetch_sub(1, Ordering::AcqRel);
                        c.closed.notify_waiters();
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// Resolves a DNS cluster's name once and installs the endpoints (static ones stay).
async fn resolve(c: &Cluster, dns: &crate::config::DnsSpec) {
    match tokio::net::lookup_host(&dns.address).await {
        Ok(addrs) => {
            let mut eps: Vec<EndpointSpec> =
                addrs.map(|address| EndpointSpec { address, labels: dns.labels.clone() }).collect();
            eps.sort_by_key(|e| e.address);
            eps.dedup();
            let mut all = c.spec.endpoints.clone();
            all.extend(eps);
            c.set_endpoints(&all);
        }
        Err(e) => {
            tracing::warn!(cluster = %c.spec.name, error = %e, "DNS resolution failed; keeping the last endpoints")
        }
    }
}

/// Re-resolves a DNS cluster's name every `refresh`, while the cluster lives.
async fn resolve_forever(
    cluster: std::sync::Weak<Cluster>,
    dns: crate::config::DnsSpec,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(dns.refresh) => {}
            _ = shutdown.changed() => return,
        }
        let Some(c) = cluster.upgrade() else { return };
        resolve(&c, &dns).await;
    }
}
