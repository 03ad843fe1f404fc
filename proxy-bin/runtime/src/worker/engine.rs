//! [`Engine`]: one worker's state for one protocol — its cluster pools, the table of requests in
//! flight, and the timers of those requests — and [`Exchange`], one request's state from decode
//! to answer.
//!
//! A request in flight lives in the engine's slab under a key that never changes, whatever
//! connection (retries) it is sent on; upstream connections map their request ids to that key,
//! and the timer wheel refers to it. Nothing here is shared with another thread.

use std::cell::Cell;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use metaprotocol_core::{Codec, Message, RequestContext};
use metaproxy_access_log::WorkerLog;
use tokio_util::time::{delay_queue, DelayQueue};

use super::connection::UpShared;
use super::downstream::DownShared;
use super::listener::ListenerRt;
use super::pool::{ClusterPools, LoadGuard};
use super::table::Table;
use crate::upstream::{Resource, SharedCluster};

/// Applied when a route sets no timeout (Envoy's default), so that no request waits forever; also
/// bounds how long a filter may keep a request parked.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// How often a worker with parked connections lets one read again even if none of its own
/// requests ended.
pub(crate) const PARK_TICK: Duration = Duration::from_millis(5);

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The upstream answered.
    Response,
    /// The proxy answered.
    Local,
    /// A one-way request was forwarded.
    Sent,
    /// A filter dropped it (the connection closes).
    Dropped,
}

impl Outcome {
    /// The access log's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Response => "response",
            Outcome::Local => "local_reply",
            Outcome::Sent => "sent_oneway",
            Outcome::Dropped => "dropped",
        }
    }
}

/// Where a request's answer goes.
pub(crate) enum Sink<C: Codec> {
    /// Back to the client that sent it.
    Client(Rc<DownShared<C>>),
    /// Nowhere: a mirrored copy, whose answer is discarded.
    Mirror,
}

/// Holds one unit of a cluster's `max_requests` until dropped.
pub(crate) struct RequestTicket(Arc<SharedCluster>);

impl RequestTicket {
    /// One more request in flight to `cluster`, if under its limit.
    pub fn acquire(cluster: &Arc<SharedCluster>) -> Option<Self> {
        cluster.breaker.try_acquire(Resource::Requests).then(|| RequestTicket(cluster.clone()))
    }
}

impl Drop for RequestTicket {
    fn drop(&mut self) {
        self.0.breaker.release(Resource::Requests);
    }
}

/// The try in flight: the connection, the id the request has there, and the endpoint's load.
pub(crate) struct Sent<C: Codec> {
    /// The connection.
    pub conn: Rc<UpShared<C>>,
    /// The request's id on that connection.
    pub id: u64,
    /// Counts the request on its endpoint while the try lasts.
    pub _load: LoadGuard<C>,
}

/// One request, from decode to answer.
pub(crate) struct Exchange<C: Codec> {
    /// Tells this exchange from a later one that reused its slab key.
    pub seq: u64,
    /// Where the answer goes.
    pub sink: Sink<C>,
    /// The listener that received it.
    pub listener: Rc<ListenerRt>,
    /// What filters, routing and the access log see.
    pub ctx: RequestContext,
    /// The request as it goes on the wire (its key/values moved into `ctx`).
    pub request: Message<C::Layout>,
    /// The client's request id.
    pub original_id: u64,
    /// The cluster, once routed.
    pub cluster: Option<Rc<ClusterPools<C>>>,
    /// The request's hash, for ring hash.
    pub hash: Option<u64>,
    /// The cluster's `max_requests` unit.
    pub ticket: Option<RequestTicket>,
    /// Tries made.
    pub attempts: u32,
    /// Tries allowed.
    pub max_tries: u32,
    /// Whether the free retry after a reset of a shared connection was used.
    pub reset_retried: bool,
    /// The try in flight.
    pub sent: Option<Sent<C>>,
    /// The whole request's deadline.
    pub request_timer: Option<delay_queue::Key>,
    /// The try's deadline.
    pub try_timer: Option<delay_queue::Key>,
    /// The endpoint of the last try.
    pub upstream: Option<SocketAddr>,
    /// When it was decoded.
    pub started: Instant,
    /// Its trace, when sampled (`worker::trace`): boxed, so an untraced request carries a null
    /// pointer.
    pub trace: Option<Box<super::trace::ExchangeTrace>>,
}

impl<C: Codec> Exchange<C> {
    /// A request decoded at `started`, before routing: no cluster, no try yet.
    pub fn new(
        seq: u64,
        sink: Sink<C>,
        listener: Rc<ListenerRt>,
        ctx: RequestContext,
        request: Message<C::Layout>,
        original_id: u64,
        started: Instant,
    ) -> Self {
        Exchange {
            seq,
            sink,
            listener,
            ctx,
            request,
            original_id,
            cluster: None,
            hash: None,
            ticket: None,
            attempts: 0,
            max_tries: 1,
            reset_retried: false,
            sent: None,
            request_timer: None,
            try_timer: None,
            upstream: None,
            started,
            trace: None,
        }
    }
}

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The route's timeout, over every try.
    Request,
    /// The retry policy's per-try timeout.
    Try,
}

/// A timer entry: the exchange it belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timer {
    pub key: usize,
    pub seq: u64,
    pub kind: TimerKind,
}

/// The mutable part of an engine.
pub(crate) struct EngineState<C: Codec> {
    /// Requests in flight (two-way, sent or waiting for a connection).
    pub inflight: Table<Exchange<C>>,
    /// Their deadlines: one timing wheel per engine, polled by one task.
    pub timers: DelayQueue<Timer>,
    /// The last sequence number given.
    pub next_seq: u64,
}

impl<C: Codec> EngineState<C> {
    /// Cancels a timer, if it is still pending.
    pub fn cancel(&mut self, timer: &mut Option<delay_queue::Key>) {
        if let Some(key) = timer.take() {
            let _ = self.timers.try_remove(&key);
        }
    }
}

/// One worker's state for one protocol (one codec configuration).
pub(crate) struct Engine<C: Codec> {
    /// The configured codec: cloned for each connection, and used for replies.
    pub codec: C,
    /// The protocol's name, for logs.
    pub protocol: Arc<str>,
    /// This worker's pools, one per cluster, in configuration order.
    pub clusters: Vec<Rc<ClusterPools<C>>>,
    /// Requests in flight and their timers.
    pub state: RefCell<EngineState<C>>,
    /// The worker's access log.
    pub access_log: Rc<RefCell<WorkerLog>>,
    /// Client connections parked because a request of theirs was refused at a cluster's limit,
    /// in the order they were parked: each request that ends hands its capacity to the first.
    pub parked: RefCell<std::collections::VecDeque<Rc<DownShared<C>>>>,
    /// Whether a fallback unpark is scheduled (capacity can come back from another worker, whose
    /// requests end without telling this one).
    park_tick: Cell<bool>,
    /// The time, read once per batch of work rather than once per request.
    clock: Cell<Instant>,
    /// The wall clock at one moment of `clock`, read again once a second: the access log's start
    /// times are derived from it without reading the clock per request.
    wall: Cell<(Instant, SystemTime)>,
}

impl<C: Codec> Engine<C> {
    /// An engine for `codec` over `clusters`.
    pub fn new(
        codec: C,
        protocol: Arc<str>,
        clusters: &[Arc<SharedCluster>],
        access_log: Rc<RefCell<WorkerLog>>,
    ) -> Rc<Self> {
        let engine = Rc::new(Engine {
            codec,
            protocol,
            clusters: clusters.iter().map(|c| Rc::new(ClusterPools::new(c.clone()))).collect(),
            state: RefCell::new(EngineState { inflight: Table::default(), timers: DelayQueue::new(), next_seq: 0 }),
            access_log,
            parked: RefCell::default(),
            park_tick: Cell::new(false),
            clock: Cell::new(Instant::now()),
            wall: Cell::new((Instant::now(), SystemTime::now())),
        });
        tokio::task::spawn_local(run_timers(engine.clone()));
        engine
    }

    /// Reads the clock: called once at the start of each batch of work (a connection's poll).
    pub fn tick(&self) {
        let now = Instant::now();
        self.clock.set(now);
        if now.saturating_duration_since(self.wall.get().0) >= Duration::from_secs(1) {
            self.wall.set((now, SystemTime::now()));
        }
    }

    /// The wall-clock time of `at` (an instant of this engine's clock).
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        let (base, wall) = self.wall.get();
        match at.checked_duration_since(base) {
            Some(after) => wall + after,
            None => wall.checked_sub(base.duration_since(at)).unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }

    /// The time of the current batch of work.
    pub fn now(&self) -> Instant {
        self.clock.get()
    }

    /// Parks `down` (its request was refused at a cluster's limit): it reads no more until a
    /// request of this worker ends, or [`PARK_TICK`] passes, so that an overloaded worker spends
    /// its time on the requests it admitted rather than on refusing floods, and clients wait
    /// their turn in order instead of timing out behind the flood.
    pub fn park(self: &Rc<Self>, down: &Rc<DownShared<C>>) {
        if !down.park() {
            return;
        }
        self.parked.borrow_mut().push_back(down.clone());
        if !self.park_tick.replace(true) {
            let engine = self.clone();
            tokio::task::spawn_local(async move {
                loop {
                    tokio::time::sleep(PARK_TICK).await;
                    // Capacity that came back elsewhere (another worker): one connection per tick
                    // tries again.
                    if !engine.unpark_one() {
                        break;
                    }
                }
                engine.park_tick.set(false);
            });
        }
    }

    /// Hands capacity to the connection parked first; false when none is.
    pub fn unpark_one(&self) -> bool {
        let next = self.parked.borrow_mut().pop_front();
        match next {
            Some(down) => {
                down.unpark();
                true
            }
            None => false,
        }
    }

    /// The pools of cluster `name`.
    pub fn cluster(&self, name: &str) -> Option<&Rc<ClusterPools<C>>> {
        self.clusters.iter().find(|c| c.shared.name() == name)
    }

    fn poll_timer(&self, cx: &mut Context<'_>) -> Poll<Option<Timer>> {
        let mut state = self.state.borrow_mut();
        match state.timers.poll_expired(cx) {
            Poll::Ready(Some(expired)) => Poll::Ready(Some(expired.into_inner())),
            // An empty queue: wait for the next insert, which wakes this task.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// An engine as the drain sees it (a separate type, so that the engine's `self: &Rc<Self>`
/// methods can be called).
pub(crate) struct DrainHandle<C: Codec>(pub Rc<Engine<C>>);

impl<C: Codec> crate::plan::InFlight for DrainHandle<C> {
    fn answer_all(&self, reply: &metaprotocol_core::LocalReply) -> usize {
        self.0.tick();
        let keys = self.0.state.borrow().inflight.keys();
        for &key in &keys {
            self.0.reply_by_key(key, reply.clone());
        }
        keys.len()
    }
}

/// The engine's timer task: fires deadlines as they pass, for as long as the worker runs.
async fn run_timers<C: Codec>(engine: Rc<Engine<C>>) {
    let mut fired = 0u32;
    loop {
        if let Some(timer) = std::future::poll_fn(|cx| engine.poll_timer(cx)).await {
            engine.tick();
            engine.on_timer(timer);
            fired = fired.wrapping_add(1);
            if fired % 64 == 0 {
                // Thousands of deadlines passing at once must not hold the worker's other
                // connections up.
                tokio::task::yield_now().await;
            }
        }
    }
}
