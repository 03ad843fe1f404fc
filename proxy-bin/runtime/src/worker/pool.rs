//! A worker's own upstream pools: for each cluster, its view of the endpoint set and, per
//! endpoint, the few connections this worker multiplexes its requests over.
//!
//! Nothing here is shared with another worker. The view is refreshed when the cluster's
//! generation changes (a DNS answer changed): endpoints that stay keep their connections.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use metaprotocol_core::{Codec, ResponseStatus};

use super::connection::{self, ConnectionCtx, ConnectionTicket, UpShared, UpstreamEvents};
use crate::stats::{ClusterStats, Gauge};
use crate::upstream::{EndpointSet, SharedCluster, SharedEndpoint};

/// One endpoint in one worker: its connections and its requests in flight (for least request).
pub(crate) struct EndpointPool<C: Codec> {
    /// The endpoint as every worker shares it.
    pub shared: Arc<SharedEndpoint>,
    /// Open and opening connections.
    pub conns: RefCell<Vec<Rc<UpShared<C>>>>,
    next: Cell<usize>,
    /// Requests in flight to this endpoint from this worker.
    pub active: Cell<usize>,
    /// The same count as the admin endpoint reads it (this worker's gauge in the endpoint's set).
    in_flight: Arc<Gauge>,
}

impl<C: Codec> EndpointPool<C> {
    fn new(shared: Arc<SharedEndpoint>) -> Self {
        let in_flight = shared.in_flight.register();
        EndpointPool { shared, conns: RefCell::new(Vec::new()), next: Cell::new(0), active: Cell::new(0), in_flight }
    }

    /// The connection to use next for a request in wire variant `variant`: round robin over the
    /// usable ones that carry that variant; a new one when fewer than `size` such are live
    /// (retired ones do not count); none when all `size` are backed up.
    pub fn choose(&self, size: usize, variant: u8) -> Choice<C> {
        let conns = self.conns.borrow();
        if conns.iter().filter(|c| c.variant == variant && c.live()).count() < size {
            return Choice::Open;
        }
        let n = conns.len();
        let start = self.next.get();
        self.next.set(start.wrapping_add(1));
        match (0..n).filter_map(|k| conns.get((start + k) % n)).find(|c| c.variant == variant && c.usable()) {
            Some(conn) => Choice::Use(conn.clone()),
            None => Choice::Full,
        }
    }

    /// Adds a connection being opened.
    pub fn add(&self, conn: Rc<UpShared<C>>) {
        self.conns.borrow_mut().push(conn);
    }

    /// Forgets a connection that closed.
    pub fn remove(&self, conn: &Rc<UpShared<C>>) {
        self.conns.borrow_mut().retain(|c| !Rc::ptr_eq(c, conn));
    }
}

/// Which connection a request goes on.
pub(crate) enum Choice<C: Codec> {
    /// This one.
    Use(Rc<UpShared<C>>),
    /// A new one, to be opened.
    Open,
    /// None: every connection is backed up (the upstream is not reading).
    Full,
}

/// Counts a request in flight to an endpoint until dropped: the least-request balancer's load,
/// released on every path that ends a try (answer, reset, timeout, cancellation). It also
/// remembers when the try was sent, for the upstream request time.
pub(crate) struct LoadGuard<C: Codec> {
    pool: Rc<EndpointPool<C>>,
    sent_at: Instant,
}

impl<C: Codec> LoadGuard<C> {
    /// Counts one more request on `pool`, sent at `sent_at`.
    pub fn new(pool: Rc<EndpointPool<C>>, sent_at: Instant) -> Self {
        pool.active.set(pool.active.get() + 1);
        pool.in_flight.inc();
        LoadGuard { pool, sent_at }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Arc<SharedEndpoint> {
        &self.pool.shared
    }

    /// The try's answer arrived at `now`, reporting `status`: records the upstream request time
    /// and tells outlier detection (an error status counts as an error of the endpoint).
    pub fn answered(&self, cluster: &ClusterPools<C>, now: Instant, status: ResponseStatus) {
        cluster.stats.upstream_rq_time.record(now.saturating_duration_since(self.sent_at));
        if status == ResponseStatus::Error {
            cluster.shared.outlier_error(&self.pool.shared);
        } else {
            cluster.shared.outlier_success(&self.pool.shared);
        }
    }
}

impl<C: Codec> Drop for LoadGuard<C> {
    fn drop(&mut self) {
        self.pool.active.set(self.pool.active.get().saturating_sub(1));
        self.pool.in_flight.dec();
    }
}

/// The endpoints of a cluster as this worker sees them.
pub(crate) struct View<C: Codec> {
    /// The cluster generation this view was built from.
    pub generation: u64,
    /// The endpoint set.
    pub set: Arc<EndpointSet>,
    /// One pool per endpoint, in the set's order.
    pub pools: Vec<Rc<EndpointPool<C>>>,
}

/// A cluster in one worker.
pub(crate) struct ClusterPools<C: Codec> {
    /// The cluster as every worker shares it.
    pub shared: Arc<SharedCluster>,
    /// This worker's counters for it.
    pub stats: Arc<ClusterStats>,
    view: RefCell<Rc<View<C>>>,
    /// The round-robin positions: the whole cluster's first, then each subset's (a position
    /// shared by subsets would let traffic alternating between two subsets land on the same
    /// endpoint of each every time).
    pub round_robin: RefCell<Vec<usize>>,
}

impl<C: Codec> ClusterPools<C> {
    /// This worker's pools for `shared`.
    pub fn new(shared: Arc<SharedCluster>) -> Self {
        let stats = shared.stats.register();
        let set = shared.endpoints();
        let pools = set.endpoints.iter().map(|e| Rc::new(EndpointPool::new(e.clone()))).collect();
        let view = View { generation: shared.generation(), set, pools };
        ClusterPools { shared, stats, view: RefCell::new(Rc::new(view)), round_robin: RefCell::new(Vec::new()) }
    }

    /// The current view, rebuilt first when the cluster's endpoints changed.
    pub fn view(&self) -> Rc<View<C>> {
        let generation = self.shared.generation();
        if self.view.borrow().generation != generation {
            let set = self.shared.endpoints();
            let old = self.view.borrow().clone();
            let pools: Vec<Rc<EndpointPool<C>>> = set
                .endpoints
                .iter()
                .map(|e| {
                    old.pools
                        .iter()
                        .find(|p| Arc::ptr_eq(&p.shared, e))
                        .cloned()
                        .unwrap_or_else(|| Rc::new(EndpointPool::new(e.clone())))
                })
                .collect();
            // Endpoints that left: their connections finish what they carry, then close.
            for gone in old.pools.iter().filter(|o| !pools.iter().any(|p| Rc::ptr_eq(p, o))) {
                for conn in gone.conns.borrow().iter() {
                    conn.retire();
                }
            }
            *self.view.borrow_mut() = Rc::new(View { generation, set, pools });
        }
        self.view.borrow().clone()
    }
}

/// Opens a new connection to `endpoint` of `cluster` for requests in wire variant `variant` and
/// starts its task; `None` when the cluster's `max_connections` is reached. When the connection
/// ends it leaves the pool, then `events` learns which requests were on it.
pub(crate) fn open<C: Codec, E: UpstreamEvents<C> + 'static>(
    events: &Rc<E>,
    codec: &C,
    cluster: &Rc<ClusterPools<C>>,
    endpoint: &Rc<EndpointPool<C>>,
    variant: u8,
) -> Option<Rc<UpShared<C>>> {
    let Some(ticket) = ConnectionTicket::acquire(&cluster.shared) else {
        cluster.stats.upstream_cx_overflow.inc();
        return None;
    };
    let conn = UpShared::new(codec.clone(), endpoint.shared.address, variant);
    endpoint.add(conn.clone());
    let ctx = ConnectionCtx {
        cluster: cluster.shared.clone(),
        stats: cluster.stats.clone(),
        endpoint: endpoint.shared.clone(),
        ticket,
    };
    let (events, codec, conn2, endpoint) = (events.clone(), codec.clone(), conn.clone(), endpoint.clone());
    tokio::task::spawn_local(async move {
        let (error, stranded) = connection::run(events.clone(), codec, conn2.clone(), ctx).await;
        endpoint.remove(&conn2);
        events.tick();
        events.on_connection_lost(&conn2, stranded, &error);
    });
    Some(conn)
}
