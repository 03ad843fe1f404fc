//! One client connection: a task that reads and decodes requests and starts each at once on the
//! engine, and writes whatever answers the engine put in its buffer ([`DownShared`]). Answers
//! arrive from upstream connections and timers of the same worker, which encode them into the
//! buffer and wake only this connection.
//!
//! The connection stops reading (backpressure) while too many of its requests are in flight or
//! too much output waits; it closes after a malformed frame (answered with the codec's malformed
//! reply when it has one), a filter's drop, the client's end of stream, or a drain, and only once
//! every request it accepted has been answered.
//!
//! The listener's budgets are enforced here: `idle_timeout` (nothing in flight, nothing received),
//! `frame_timeout` (a frame started and not whole), and `max_buffered_bytes` (read buffers over
//! every connection of the listener: past it, a connection holding a large incomplete frame has
//! that frame refused). One timer per connection serves both timeouts; it is re-armed only when it
//! fires, or when a frame starts while it is set later than that frame's deadline.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use metaprotocol_core::{Codec, CodecError, Message, MessageType, Mutation, WireBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::io::{encode, poll_read, poll_write};
use super::listener::ListenerRt;
use crate::plan::Drainable;

/// What a client connection needs from the listener that accepted it, and reports to it.
pub(crate) trait DownstreamEvents<C: Codec> {
    /// The listener's configured codec (cloned for each connection).
    fn codec(&self) -> &C;
    /// The listener as configured now (a reload replaces it): its spec and budgets, this
    /// worker's counters for it, the worker's open connections.
    fn listener(&self) -> Rc<ListenerRt>;
    /// The time of the current batch of work (read by [`tick`](DownstreamEvents::tick)).
    fn now(&self) -> Instant;
    /// A batch of work starts (read the clock once).
    fn tick(&self);
    /// A request (two-way, one-way or stream) was decoded on `down`, under `listener`.
    fn on_request(self: &Rc<Self>, down: &Rc<DownShared<C>>, listener: &Rc<ListenerRt>, request: Message<C::Layout>);
}

/// Stop reading while this much output waits to be written.
const MAX_BUFFERED: usize = 4 << 20;
/// A queue of more chunks than this belongs to a client that is not reading: its answers are
/// slices of upstream read buffers shared with other clients' answers, and would keep those whole
/// buffers alive. They are copied into one buffer of the client's own (rarely: a client that reads
/// has a few chunks queued at a time).
pub(crate) const COMPACT_CHUNKS: usize = 1024;
/// Free space before each read from a client: a client's own pipeline is short, and a busy
/// connection keeps its buffer, so it is kept small (memory per connection stays bounded).
const DOWNSTREAM_READ: usize = 16 * 1024;
/// Reads handled in one poll before yielding to the worker's other tasks.
const READS_PER_POLL: usize = 16;
/// An incomplete frame this large or larger is refused when the listener's read buffers are over
/// budget; smaller ones (any ordinary request split across reads) never are.
const LARGE_PARTIAL: usize = 64 * 1024;

thread_local! {
    /// The next connection id of this worker.
    static NEXT_ID: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Why a connection stops reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Still reading.
    No,
    /// The proxy drains.
    Drain,
    /// A filter dropped a request, or a frame was malformed: answer what is in flight, then close.
    Abort,
}

/// The part of a client connection that the engine writes answers into.
pub(crate) struct DownInner<C: Codec> {
    /// Encodes answers for this client.
    pub encoder: C,
    /// Bytes waiting to be written.
    pub out: WireBuf,
    /// Requests accepted and not yet answered.
    pub inflight: usize,
    /// Whether (and why) the connection stops reading.
    pub closing: Closing,
    /// Parked: a request of this connection was refused because a cluster was at its limit, so
    /// it reads no more until the engine hands it capacity back ([`DownShared::unpark`]).
    pub parked: bool,
    waker: Option<Waker>,
}

/// A client connection as the engine sees it.
pub(crate) struct DownShared<C: Codec> {
    /// The mutable part.
    pub inner: RefCell<DownInner<C>>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// A number that tells this connection from the worker's others.
    pub id: u64,
}

impl<C: Codec> DownShared<C> {
    /// Runs `write` over the encoder and buffer, then wakes the connection to write. A client
    /// that stops reading gets its queue compacted into memory of its own (see
    /// [`COMPACT_CHUNKS`]).
    pub fn deliver(&self, write: impl FnOnce(&mut C, &mut WireBuf)) {
        let mut inner = self.inner.borrow_mut();
        let DownInner { encoder, out, waker, .. } = &mut *inner;
        write(encoder, out);
        if out.chunk_count() > COMPACT_CHUNKS {
            out.compact();
        }
        if let Some(w) = waker {
            w.wake_by_ref();
        }
    }

    /// One request of this connection is over.
    pub fn finish_one(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.inflight = inner.inflight.saturating_sub(1);
        if let Some(w) = &inner.waker {
            w.wake_by_ref();
        }
    }

    /// Stops reading until [`unpark`](DownShared::unpark)ed; returns false when it already was.
    pub fn park(&self) -> bool {
        !std::mem::replace(&mut self.inner.borrow_mut().parked, true)
    }

    /// Reads again (capacity came back): wakes the connection.
    pub fn unpark(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.parked = false;
        if let Some(w) = &inner.waker {
            w.wake_by_ref();
        }
    }

    /// Stops reading and closes once everything in flight is answered.
    pub fn abort(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.closing = Closing::Abort;
        if let Some(w) = &inner.waker {
            w.wake_by_ref();
        }
    }
}

impl<C: Codec> Drainable for DownShared<C> {
    fn start_drain(&self) {
        let mut inner = self.inner.borrow_mut();
        if inner.closing == Closing::No {
            inner.closing = Closing::Drain;
            // Tell the client to send its next requests elsewhere, where the protocol can.
            let DownInner { encoder, out, .. } = &mut *inner;
            if let Some(goaway) = encoder.goaway() {
                let _ = encode(encoder, &goaway, &Mutation::new(), out);
            }
        }
        if let Some(w) = &inner.waker {
            w.wake_by_ref();
        }
    }
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve<C: Codec, E: DownstreamEvents<C>>(
    events: Rc<E>,
    stream: TcpStream,
    peer: Option<SocketAddr>,
) {
    let _ = stream.set_nodelay(true);
    let shared = Rc::new(DownShared {
        inner: RefCell::new(DownInner {
            encoder: events.codec().clone(),
            out: WireBuf::new(),
            inflight: 0,
            closing: Closing::No,
            parked: false,
            waker: None,
        }),
        peer,
        id: NEXT_ID.with(|n| {
            let id = n.get();
            n.set(id.wrapping_add(1));
            id
        }),
    });
    let listener = events.listener();
    let key = listener.connections.insert(
        Rc::downgrade(&shared) as std::rc::Weak<dyn Drainable>,
        listener.id,
        listener.stopped.get(),
    );
    listener.stats.downstream_cx_total.inc();
    listener.stats.downstream_cx_active.inc();
    let now = events.now();
    let mut conn = Conn {
        events: events.clone(),
        listener: listener.clone(),
        shared,
        stream,
        decoder: None,
        inbuf: BytesMut::new(),
        eof: false,
        accounted: 0,
        last_read: now,
        frame_started: None,
        timer: None,
    };
    std::future::poll_fn(|cx| conn.poll(cx)).await;
    conn.account(0);
    listener.stats.downstream_cx_active.dec();
    listener.spec.usage.connections.fetch_sub(1, Ordering::Relaxed);
    listener.connections.remove(key);
}

struct Conn<C: Codec, E> {
    events: Rc<E>,
    /// The listener as configured when this poll started (a reload applies from the next).
    listener: Rc<ListenerRt>,
    shared: Rc<DownShared<C>>,
    stream: TcpStream,
    /// Made on the first bytes, so an idle connection holds no codec state.
    decoder: Option<C>,
    inbuf: BytesMut,
    eof: bool,
    /// The read buffer's capacity as counted in the listener's `usage.buffered`.
    accounted: usize,
    /// When bytes last arrived.
    last_read: Instant,
    /// When the first byte of the incomplete frame in `inbuf` arrived.
    frame_started: Option<Instant>,
    /// Fires at the earlier of the idle and frame deadlines (made on first need).
    timer: Option<Pin<Box<Sleep>>>,
}

/// Why the connection's timer closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expired {
    Idle,
    Frame,
}

impl<C: Codec, E: DownstreamEvents<C>> Conn<C, E> {
    /// True when the connection may start more requests (not closing, under its limits).
    fn can_decode(&self) -> bool {
        let inner = self.shared.inner.borrow();
        inner.closing == Closing::No
            && !inner.parked
            && inner.inflight < self.listener.spec.max_requests_per_connection
            && inner.out.len() < MAX_BUFFERED
    }

    /// Counts the read buffer's capacity as `capacity` in the listener's usage.
    fn account(&mut self, capacity: usize) {
        if capacity == self.accounted {
            return;
        }
        let buffered = &self.listener.spec.usage.buffered;
        if capacity > self.accounted {
            buffered.fetch_add(capacity - self.accounted, Ordering::Relaxed);
        } else {
            buffered.fetch_sub(self.accounted - capacity, Ordering::Relaxed);
        }
        self.accounted = capacity;
    }

    /// After bytes arrived and were decoded: keeps the budget's count, notes when an incomplete
    /// frame started, and refuses a large incomplete frame when the listener is over budget.
    fn after_read(&mut self) {
        let now = self.events.now();
        self.last_read = now;
        if self.inbuf.is_empty() {
            self.frame_started = None;
            if self.inbuf.capacity() > 4 * DOWNSTREAM_READ {
                // A large frame passed through: give its memory back.
                self.inbuf = BytesMut::new();
            }
        } else if self.frame_started.is_none() {
            self.frame_started = Some(now);
            if let (Some(limit), Some(timer)) = (self.listener.spec.frame_timeout, &mut self.timer) {
                let due = tokio::time::Instant::from_std(now + limit);
                if timer.deadline() > due {
                    timer.as_mut().reset(due);
                }
            }
        }
        self.account(self.inbuf.capacity());
        let spec = &self.listener.spec;
        if self.inbuf.len() >= LARGE_PARTIAL && spec.usage.buffered.load(Ordering::Relaxed) > spec.max_buffered_bytes {
            self.listener.stats.downstream_cx_overload.inc();
            let budget = spec.max_buffered_bytes;
            self.refuse_partial(format!("the listener's read buffers are over max_buffered_bytes ({budget} bytes)"));
        }
    }

    /// Answers the incomplete frame in the buffer with the codec's error reply (when its header
    /// names a request), drops it, and closes once what is in flight is answered.
    fn refuse_partial(&mut self, why: String) {
        tracing::debug!(peer = ?self.shared.peer, why, "refusing an incomplete frame; closing");
        let decoder = self.decoder.take().unwrap_or_else(|| self.events.codec().clone());
        let error = decoder.refuse_partial(&self.inbuf, CodecError::Refused(why.into()));
        self.shared.deliver(|encoder, out| {
            if let Some(reply) = encoder.malformed_reply(&error) {
                let _ = encode(encoder, &reply, &Mutation::new(), out);
            }
        });
        self.shared.abort();
        self.inbuf = BytesMut::new();
        self.frame_started = None;
        self.account(0);
    }

    /// The next moment the timer must look at the connection: its idle and frame deadlines.
    fn next_deadline(&self) -> Option<Instant> {
        let spec = &self.listener.spec;
        let idle = spec.idle_timeout.map(|t| self.last_read + t);
        let frame = spec.frame_timeout.and_then(|t| Some(self.frame_started? + t));
        match (idle, frame) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Polls the timer: `Some` when a deadline has passed (and the connection is to close).
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Option<Expired> {
        loop {
            let deadline = self.next_deadline()?;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(deadline))));
            if timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            let now = Instant::now();
            let spec = &self.listener.spec;
            if spec.frame_timeout.is_some_and(|t| self.frame_started.is_some_and(|s| now >= s + t)) {
                if self.can_decode() {
                    return Some(Expired::Frame);
                }
                // The proxy is not reading (backpressure): the client is not the one who is slow.
                self.frame_started = Some(now);
            }
            let idle = self.shared.inner.borrow().inflight == 0;
            if idle && spec.idle_timeout.is_some_and(|t| now >= self.last_read + t) {
                return Some(Expired::Idle);
            }
            // Activity moved the deadlines: wait for the next one (at least a little later, so
            // that requests in flight at the idle deadline do not make this spin).
            let next = self.next_deadline().map_or(now, |d| d.max(now + std::time::Duration::from_millis(10)));
            if let Some(timer) = &mut self.timer {
                timer.as_mut().reset(tokio::time::Instant::from_std(next));
            }
        }
    }

    fn on_expired(&mut self, expired: Expired) {
        match expired {
            Expired::Frame => {
                self.listener.stats.downstream_cx_frame_timeout.inc();
                let limit = self.listener.spec.frame_timeout.unwrap_or_default();
                self.refuse_partial(format!("the frame was not whole within frame_timeout ({limit:?})"));
            }
            Expired::Idle => {
                self.listener.stats.downstream_cx_idle_timeout.inc();
                tracing::debug!(peer = ?self.shared.peer, "idle timeout: closing");
                self.shared.abort();
                self.eof = true;
            }
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.events.tick();
        self.listener = self.events.listener();
        // The timer once per wake-up (its deadlines are far apart from the reads in between).
        if !self.eof {
            if let Some(expired) = self.poll_timer(cx) {
                self.on_expired(expired);
            }
        }
        for _ in 0..READS_PER_POLL {
            let mut progressed = false;
            // Whole frames left undecoded by backpressure go first (even after end of stream).
            if !self.inbuf.is_empty() && self.can_decode() {
                self.decode_all();
            }
            if !self.eof && self.can_decode() {
                match poll_read(&self.stream, &mut self.inbuf, DOWNSTREAM_READ, cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => self.eof = true,
                    Poll::Ready(Ok(_)) => {
                        progressed = true;
                        self.decode_all();
                        self.after_read();
                    }
                    Poll::Pending => {}
                }
            }

            let mut inner = self.shared.inner.borrow_mut();
            if !inner.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                inner.waker = Some(cx.waker().clone());
            }
            let mut written = 0;
            if let Poll::Ready(Err(_)) = poll_write(&self.stream, &mut inner.out, &mut written, cx) {
                // The client is gone: its answers have nowhere to go.
                inner.out.clear();
                self.eof = true;
                inner.closing = Closing::Abort;
            }
            // Closed once nothing is in flight and nothing waits: at end of stream whatever stays
            // in the read buffer is an incomplete frame (whole ones were decoded above).
            let stopped = self.eof || inner.closing != Closing::No;
            if stopped && inner.inflight == 0 && inner.out.is_empty() {
                return Poll::Ready(());
            }
            if !progressed && written == 0 {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn decode_all(&mut self) {
        let mut decoder = self.decoder.take().unwrap_or_else(|| self.events.codec().clone());
        self.decode_with(&mut decoder);
        self.decoder = Some(decoder);
    }

    fn decode_with(&mut self, decoder: &mut C) {
        while self.can_decode() {
            match decoder.decode(&mut self.inbuf) {
                Ok(Some(message)) => match message.metadata.message_type {
                    MessageType::Ping => self.shared.deliver(|encoder, out| {
                        if let Ok(pong) = encoder.heartbeat_reply(&message) {
                            let _ = encode(encoder, &pong, &Mutation::new(), out);
                        }
                    }),
                    MessageType::Pong | MessageType::Response | MessageType::Error => {
                        tracing::debug!(peer = ?self.shared.peer, "a client sent a response; ignored");
                    }
                    _ => self.events.on_request(&self.shared, &self.listener, message),
                },
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(peer = ?self.shared.peer, %error, "malformed frame from a client; closing after the requests in flight");
                    self.listener.stats.malformed.inc();
                    self.shared.deliver(|encoder, out| {
                        if let Some(reply) = encoder.malformed_reply(&error) {
                            let _ = encode(encoder, &reply, &Mutation::new(), out);
                        }
                    });
                    self.shared.abort();
                    self.inbuf.clear();
                    return;
                }
            }
        }
    }
}
