//! What a configuration becomes before it runs, and the boundary where codec types are erased.
//!
//! The runtime's hot path is generic over the codec (the `worker` module is written for any
//! `C: Codec`), so no message crosses a trait object. The registry erases that type once, when a
//! listener's protocol is configured: the result is an `Arc<dyn `[`Protocol`]`>` (as pingora
//! erases a `ProxyHttp` behind a `Service`), and a worker asks it to [`serve`](Protocol::serve)
//! a listener. This module holds only that trait and the plain data both sides agree on, so the
//! configuration loader, the registry and the workers do not depend on each other in a cycle.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use metaprotocol_core::route::RouteSpec;
use metaprotocol_core::FilterChain;
use metaproxy_access_log::WorkerLog;
use tokio::sync::watch;

use crate::stats::{ListenerStats, PerWorker};
use crate::upstream::health::HealthCheckError;
use crate::upstream::{HealthCheckKind, SharedCluster};
use crate::RuntimeError;

/// A validated listener.
#[derive(Debug)]
pub struct ListenerSpec {
    /// Its name.
    pub name: Arc<str>,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its protocol, configured (the codec type is erased here).
    pub protocol: Arc<dyn Protocol>,
    /// Its filters.
    pub filters: FilterChain,
    /// Its routes (checked; each worker compiles its own table, so workers share no route state).
    pub routes: Vec<RouteSpec>,
    /// In-flight limit per downstream connection: past it the connection stops reading.
    pub max_requests_per_connection: usize,
    /// A connection with nothing in flight that sends nothing this long closes (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// A frame not whole this long after its first byte arrived is refused (`None`: never).
    pub frame_timeout: Option<Duration>,
    /// Most open connections over every worker (`None`: no limit).
    pub max_connections: Option<usize>,
    /// Most bytes held in the read buffers of the listener's connections, over every worker.
    pub max_buffered_bytes: usize,
    /// What the listener's connections use of those budgets now (kept across reloads).
    pub usage: Arc<ListenerUsage>,
    /// Distributed tracing (`None`: off, and a request costs one branch).
    pub tracing: Option<metaproxy_tracing::TracingSpec>,
}

/// A listener's use of its budgets, over every worker: updated when a connection opens or
/// closes, or when a read buffer changes size (not per message).
#[derive(Debug, Default)]
pub struct ListenerUsage {
    /// Open connections.
    pub connections: AtomicUsize,
    /// Bytes of read-buffer capacity.
    pub buffered: AtomicUsize,
}

/// Totals of one inspected capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages decoded.
    pub messages: u64,
    /// Bytes consumed.
    pub bytes: u64,
}

/// A configured protocol with its codec type erased.
pub trait Protocol: Send + Sync + std::fmt::Debug {
    /// The registry name (`dubbo`, `thrift`, …).
    fn name(&self) -> &str;

    /// Listeners whose protocols have equal keys (same codec, same options) share upstream
    /// connection pools in a worker.
    fn pool_key(&self) -> &str;

    /// Starts serving `listener` in the calling worker: spawns its accept loop on the worker's
    /// `LocalSet`. Called on the worker's thread.
    fn serve(&self, worker: &WorkerScope, listener: ListenerRun) -> Result<(), RuntimeError>;

    /// Decodes a capture (`data`, one direction of a TCP stream, named `name` in the output) and
    /// writes one JSON line per message to `out`.
    fn inspect(&self, name: &str, data: &[u8], out: &mut dyn Write) -> Result<Summary, RuntimeError>;

    /// One active health check of the upstream at `address` with this protocol's codec: its
    /// heartbeat for [`HealthCheckKind::Heartbeat`] when it has one, the configured `request` for
    /// [`HealthCheckKind::Request`], else a TCP connect (see
    /// [`crate::upstream::health`]). Runs on the main runtime; the caller bounds it with the
    /// check's timeout. Default: a TCP connect.
    fn health_check(
        &self,
        address: SocketAddr,
        kind: HealthCheckKind,
        request: Option<bytes::Bytes>,
    ) -> BoxFuture<'static, Result<(), HealthCheckError>> {
        let _ = (kind, request);
        Box::pin(crate::upstream::health::check_tcp(address))
    }
}

/// One listener to run in one worker.
#[derive(Debug)]
pub struct ListenerRun {
    /// Its spec.
    pub spec: Arc<ListenerSpec>,
    /// This worker's listening socket (bound with `SO_REUSEPORT`, non-blocking).
    pub socket: std::net::TcpListener,
    /// This worker's counters for the listener.
    pub stats: Arc<ListenerStats>,
}

/// A listener's name and its per-worker counters.
pub type NamedListenerStats = (Arc<str>, Arc<PerWorker<ListenerStats>>);

/// Everything the workers share: the clusters, the access log writer's stats, and the signals.
#[derive(Debug)]
pub struct Shared {
    /// Every cluster, in configuration order.
    pub clusters: Vec<Arc<SharedCluster>>,
    /// Turns true when the proxy drains.
    pub shutdown: watch::Receiver<bool>,
    /// How long in-flight requests may take to finish once draining.
    pub drain_timeout: Duration,
    /// Per-worker listener counters, by listener name (a reload adds and removes listeners).
    pub listener_stats: std::sync::RwLock<Vec<NamedListenerStats>>,
    /// The span exporters of the listeners that trace.
    pub tracing: Arc<crate::trace::Tracers>,
    /// Workers that have not yet applied the last reload sent ([`WorkerReload`]); each counts
    /// itself off and notifies, so that a reload returns once every worker serves the new
    /// configuration.
    pub reload_pending: Arc<ReloadPending>,
}

/// A reload as one worker applies it, in this order: the listeners named in `remove` stop
/// accepting and drain their connections, the others serve their next requests with their spec in
/// `specs`, and the listeners in `add` (this worker's sockets, already bound) start accepting.
#[derive(Debug, Default)]
pub struct WorkerReload {
    /// Every listener's spec after the reload.
    pub specs: Vec<Arc<ListenerSpec>>,
    /// Listeners to stop: removed, or replaced by one in `add` (its address, protocol or tracing
    /// changed).
    pub remove: Vec<Arc<str>>,
    /// Listeners to start.
    pub add: Vec<ListenerRun>,
}

/// See [`Shared::reload_pending`].
#[derive(Debug, Default)]
pub struct ReloadPending {
    /// Workers still to apply.
    pub workers: std::sync::atomic::AtomicUsize,
    /// Notified as each worker is done.
    pub applied: tokio::sync::Notify,
}

/// A worker's own context, handed to [`Protocol::serve`]: not `Send`, it never leaves the thread.
pub struct WorkerScope {
    /// The worker's number (0-based).
    pub id: usize,
    /// What all workers share.
    pub shared: Arc<Shared>,
    /// The worker's access log handle.
    pub access_log: Rc<RefCell<WorkerLog>>,
    /// Per-protocol state, created on first use and shared by the listeners of the same
    /// [`Protocol::pool_key`] (erased; each protocol downcasts its own).
    pub engines: RefCell<Vec<(String, Rc<dyn std::any::Any>)>>,
    /// Open downstream connections of this worker, and what wakes them to drain.
    pub connections: Rc<Connections>,
    /// The requests in flight of each engine, answered when a drain outlives its timeout.
    pub inflight: RefCell<Vec<Rc<dyn InFlight>>>,
    /// The listeners this worker serves, which a reload updates.
    pub listeners: RefCell<Vec<Rc<dyn ListenerSlot>>>,
}

/// A worker's requests in flight for one protocol, as the drain sees them.
pub trait InFlight {
    /// Answers every request still in flight with `reply` (a protocol-native error); returns how
    /// many there were.
    fn answer_all(&self, reply: &metaprotocol_core::LocalReply) -> usize;
}

/// A listener as one worker serves it, as a reload sees it.
pub trait ListenerSlot {
    /// The listener's name.
    fn name(&self) -> Arc<str>;
    /// Serves the next requests (on every connection, old and new) with `spec`: its routes,
    /// filters and budgets. Requests already in flight finish with what they started with.
    fn update(&self, spec: Arc<ListenerSpec>) -> Result<(), RuntimeError>;
    /// Stops accepting (the worker's socket closes) and drains the listener's connections: each
    /// stops reading, answers what is in flight, then closes.
    fn stop(&self);
}

/// A downstream connection as the worker's drain sees it.
pub trait Drainable {
    /// Stop reading, finish what is in flight, then close; wakes the connection.
    fn start_drain(&self);
}

/// The downstream connections a worker has open: counted (for the whole process too) and woken
/// when the proxy drains.
#[derive(Debug)]
pub struct Connections {
    /// Each open connection, with the id of its listener ([`Connections::drain_listener`]).
    open: RefCell<slab::Slab<(u64, std::rc::Weak<dyn Drainable>)>>,
    draining: std::cell::Cell<bool>,
    closed: tokio::sync::Notify,
    /// Open downstream connections over every worker.
    pub process_open: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for dyn Drainable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drainable")
    }
}

impl Connections {
    /// No connection yet; `process_open` counts those of every worker.
    pub fn new(process_open: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        Connections {
            open: RefCell::new(slab::Slab::new()),
            draining: std::cell::Cell::new(false),
            closed: tokio::sync::Notify::new(),
            process_open,
        }
    }

    /// Waits until every connection of this worker is closed.
    pub async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.is_empty() {
                return;
            }
            closed.await;
        }
    }

    /// Counts connection `conn` of listener `listener` as open; returns its key for
    /// [`remove`](Self::remove). A connection opened after the drain started (of the worker, or of
    /// its listener: `listener_stopped`) drains at once.
    pub fn insert(&self, conn: std::rc::Weak<dyn Drainable>, listener: u64, listener_stopped: bool) -> usize {
        self.process_open.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        if self.draining.get() || listener_stopped {
            if let Some(c) = conn.upgrade() {
                c.start_drain();
            }
        }
        self.open.borrow_mut().insert((listener, conn))
    }

    /// Counts connection `key` as closed.
    pub fn remove(&self, key: usize) {
        if self.open.borrow_mut().try_remove(key).is_some() {
            self.process_open.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            self.closed.notify_waiters();
        }
    }

    /// Open connections in this worker.
    pub fn len(&self) -> usize {
        self.open.borrow().len()
    }

    /// True when no connection is open in this worker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once the drain started.
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Starts draining every open connection.
    pub fn drain(&self) {
        self.draining.set(true);
        let conns: Vec<_> = self.open.borrow().iter().filter_map(|(_, (_, c))| c.upgrade()).collect();
        for c in conns {
            c.start_drain();
        }
    }

    /// Starts draining the open connections of listener `listener` (it was removed by a reload).
    pub fn drain_listener(&self, listener: u64) {
        let conns: Vec<_> = self
            .open
            .borrow()
            .iter()
            .filter(|(_, (l, _))| *l == listener)
            .filter_map(|(_, (_, c))| c.upgrade())
            .collect();
        for c in conns {
            c.start_drain();
        }
    }
}

impl std::fmt::Debug for WorkerScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerScope").field("id", &self.id).finish()
    }
}
