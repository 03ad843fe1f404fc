//! One upstream connection of one worker: [`UpShared`], where the worker's requests are encoded
//! straight into the write buffer, and the task that connects, writes that buffer, reads and
//! decodes responses, and hands each on the spot to whoever listens ([`UpstreamEvents`]: the
//! engine). The connection knows neither the engine nor the pool it belongs to.
//!
//! A connection being opened takes requests already: they wait in its buffer (counted against
//! the cluster's `max_pending_requests`) and go out when it connects. When the connection ends,
//! every request still on it is retried or answered with an error by the engine; none hangs.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use metaprotocol_core::{Codec, Message, MessageType, Mutation, WireBuf};
use tokio::net::TcpStream;

use super::ids::IdMap;
use super::io::{encode, poll_read, poll_write};
use crate::stats::ClusterStats;
use crate::upstream::{Resource, SharedCluster, SharedEndpoint, UpstreamError};

/// What an upstream connection reports.
pub(crate) trait UpstreamEvents<C: Codec> {
    /// A batch of work starts (read the clock once).
    fn tick(&self);
    /// A response (or error answer) arrived on `conn`.
    fn on_response(self: &Rc<Self>, conn: &Rc<UpShared<C>>, response: Message<C::Layout>);
    /// `conn` ended (or never opened) with the requests `stranded` on it.
    fn on_connection_lost(self: &Rc<Self>, conn: &Rc<UpShared<C>>, stranded: Vec<u32>, error: &UpstreamError);
}

/// Stop choosing a connection while this much output waits to be written on it.
const MAX_BUFFERED: usize = 4 << 20;
/// Retire a connection on which this many requests were abandoned (timed out, never answered):
/// the upstream has stopped answering some of them, and their ids stay taken until it does.
const ABANDONED_LIMIT: usize = 1024;
/// Free space before each read from an upstream: one connection carries the answers of many
/// clients, and 64 KiB reads take a whole burst of them in one system call (measured: about 9%
/// more throughput than 16 KiB under 8 clients x 16 in flight).
const UPSTREAM_READ: usize = 64 * 1024;
/// Reads handled in one poll before yielding to the worker's other tasks.
const READS_PER_POLL: usize = 16;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Opening; requests queue in the buffer.
    Connecting,
    /// Open.
    Open,
    /// Closed; takes nothing more.
    Closed,
}

/// The part of a connection that request paths write into.
pub(crate) struct UpInner<C: Codec> {
    /// Encodes requests for this connection.
    pub encoder: C,
    /// Bytes waiting to be written.
    pub out: WireBuf,
    /// Request ids in flight, mapped to the engine's keys.
    pub ids: IdMap,
    /// Units of `max_pending_requests` held by requests queued while connecting.
    pub pending: usize,
    /// Its state.
    pub state: ConnState,
    /// Takes no new request; closes once those on it are answered (too many abandoned, or its
    /// endpoint left the cluster).
    pub retired: bool,
    waker: Option<Waker>,
}

/// An upstream connection as the worker's request paths see it.
pub(crate) struct UpShared<C: Codec> {
    /// The mutable part.
    pub inner: RefCell<UpInner<C>>,
    /// The endpoint.
    pub address: SocketAddr,
    /// The wire variant of every request this connection carries ([`Codec::wire_variant`]).
    pub variant: u8,
}

impl<C: Codec> UpShared<C> {
    /// A connection to `address` about to be opened, encoding with `codec`, for requests in wire
    /// variant `variant`.
    pub fn new(codec: C, address: SocketAddr, variant: u8) -> Rc<Self> {
        let ids = IdMap::new(codec.request_id_limit());
        Rc::new(UpShared {
            inner: RefCell::new(UpInner {
                encoder: codec,
                out: WireBuf::new(),
                ids,
                pending: 0,
                state: ConnState::Connecting,
                retired: false,
                waker: None,
            }),
            address,
            variant,
        })
    }

    /// True when the connection may take requests at all (not closed, not retired).
    pub fn live(&self) -> bool {
        let inner = self.inner.borrow();
        inner.state != ConnState::Closed && !inner.retired
    }

    /// True when the connection takes a request now (live, and not backed up).
    pub fn usable(&self) -> bool {
        self.live() && self.inner.borrow().out.len() < MAX_BUFFERED
    }

    /// The request sent with `id` gave up (timed out): a late answer will be dropped. Too many
    /// such requests retire the connection.
    pub fn abandon(&self, id: u64) {
        let mut inner = self.inner.borrow_mut();
        inner.ids.abandon(id);
        if inner.ids.abandoned() > ABANDONED_LIMIT && !inner.retired {
            tracing::warn!(address = %self.address, "retiring an upstream connection: too many requests on it timed out");
            inner.retired = true;
            Self::wake(&mut inner);
        }
    }

    /// Takes no new request and closes once the requests on it are answered.
    pub fn retire(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.retired = true;
        Self::wake(&mut inner);
    }

    /// Wakes the connection's task (bytes to write).
    pub fn wake(inner: &mut UpInner<C>) {
        if let Some(w) = &inner.waker {
            w.wake_by_ref();
        }
    }
}

/// Holds one unit of a cluster's `max_connections` for as long as a connection lives.
pub(crate) struct ConnectionTicket(Arc<SharedCluster>);

impl ConnectionTicket {
    /// One more connection to `cluster`, if under its limit.
    pub fn acquire(cluster: &Arc<SharedCluster>) -> Option<Self> {
        cluster.breaker.try_acquire(Resource::Connections).then(|| ConnectionTicket(cluster.clone()))
    }
}

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        self.0.breaker.release(Resource::Connections);
    }
}

/// Where a connection goes and what it counts against.
pub(crate) struct ConnectionCtx {
    /// The cluster (connect timeout, breaker, outlier detection).
    pub cluster: Arc<SharedCluster>,
    /// This worker's counters for it.
    pub stats: Arc<ClusterStats>,
    /// The endpoint.
    pub endpoint: Arc<SharedEndpoint>,
    /// Its `max_connections` unit.
    pub ticket: ConnectionTicket,
}

/// Connects `conn` and runs it until it closes; returns why, and the keys of the requests that
/// were still on it (the caller retries or answers them).
pub(crate) async fn run<C: Codec, E: UpstreamEvents<C>>(
    events: Rc<E>,
    codec: C,
    conn: Rc<UpShared<C>>,
    ctx: ConnectionCtx,
) -> (UpstreamError, Vec<u32>) {
    let ConnectionCtx { cluster, stats, endpoint, ticket } = ctx;
    let address = conn.address;
    let connected = tokio::time::timeout(cluster.spec.connect_timeout, TcpStream::connect(address)).await;
    let error = match connected {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            {
                let mut inner = conn.inner.borrow_mut();
                inner.state = ConnState::Open;
                for _ in 0..std::mem::take(&mut inner.pending) {
                    cluster.breaker.release(Resource::Pending);
                }
            }
            stats.upstream_cx_total.inc();
            stats.upstream_cx_active.inc();
            endpoint.open_connections.fetch_add(1, Ordering::AcqRel);
            let mut decoder = codec;
            let mut inbuf = BytesMut::new();
            let error =
                std::future::poll_fn(|cx| poll_conn(&events, &conn, &stream, &mut decoder, &mut inbuf, cx)).await;
            endpoint.open_connections.fetch_sub(1, Ordering::AcqRel);
            stats.upstream_cx_active.dec();
            tracing::debug!(%address, %error, "upstream connection closed");
            error
        }
        Ok(Err(source)) => {
            stats.upstream_cx_connect_fail.inc();
            cluster.connect_failed(&endpoint);
            UpstreamError::ConnectFailure { address, source: Arc::new(source) }
        }
        Err(_) => {
            stats.upstream_cx_connect_fail.inc();
            stats.upstream_cx_connect_timeout.inc();
            cluster.connect_failed(&endpoint);
            UpstreamError::ConnectTimeout { address }
        }
    };
    let stranded = {
        let mut inner = conn.inner.borrow_mut();
        inner.state = ConnState::Closed;
        inner.out.clear();
        for _ in 0..std::mem::take(&mut inner.pending) {
            cluster.breaker.release(Resource::Pending);
        }
        inner.ids.drain()
    };
    drop(ticket);
    if !stranded.is_empty() && matches!(error, UpstreamError::Reset { .. } | UpstreamError::BadResponse { .. }) {
        stats.upstream_cx_destroy_with_active_rq.inc();
    }
    (error, stranded)
}

/// Reads, decodes and hands over responses; writes what waits. Ends with why the connection
/// closed.
fn poll_conn<C: Codec, E: UpstreamEvents<C>>(
    events: &Rc<E>,
    conn: &Rc<UpShared<C>>,
    stream: &TcpStream,
    decoder: &mut C,
    inbuf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<UpstreamError> {
    let address = conn.address;
    events.tick();
    for _ in 0..READS_PER_POLL {
        let mut progressed = false;
        match poll_read(stream, inbuf, UPSTREAM_READ, cx) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(UpstreamError::Reset { address }),
            Poll::Ready(Ok(_)) => {
                progressed = true;
                loop {
                    match decoder.decode(inbuf) {
                        Ok(Some(message)) => match message.metadata.message_type {
                            MessageType::Ping => {
                                let mut inner = conn.inner.borrow_mut();
                                let UpInner { encoder, out, .. } = &mut *inner;
                                if let Ok(pong) = encoder.heartbeat_reply(&message) {
                                    let _ = encode(encoder, &pong, &Mutation::new(), out);
                                }
                            }
                            MessageType::Pong => {}
                            _ => events.on_response(conn, message),
                        },
                        Ok(None) => break,
                        Err(source) => return Poll::Ready(UpstreamError::BadResponse { address, source }),
                    }
                }
            }
            Poll::Pending => {}
        }
        let mut inner = conn.inner.borrow_mut();
        if !inner.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            inner.waker = Some(cx.waker().clone());
        }
        let mut written = 0;
        if let Poll::Ready(Err(_)) = poll_write(stream, &mut inner.out, &mut written, cx) {
            return Poll::Ready(UpstreamError::Reset { address });
        }
        if inner.retired && inner.ids.waiting() == 0 && inner.out.is_empty() {
            return Poll::Ready(UpstreamError::Retired { address });
        }
        if !progressed && written == 0 {
            return Poll::Pending;
        }
    }
    // Yield to the worker's other connections; come back at once.
    cx.waker().wake_by_ref();
    Poll::Pending
}
