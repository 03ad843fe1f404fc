//! One client connection: a task that reads and decodes requests and starts each at once on the
//! engine, and writes whatever answers the engine put in its buffer ([`DownShared`]). Answers
//! arrive from upstream connections and timers of the same worker, which encode them into the
//! buffer and wake only this connection.
//!
//! The connection stops reading (backpressure) while too many of its requests are in flight or
//! too much output waits; it closes after a malformed frame (answered with the codec's malformed
//! reply when it has one), a filter's drop, the client's end of stream, or a drain, and only once
//! every request it accepted has been answered.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use metaprotocol_core::{Codec, Message, MessageType, Mutation, WireBuf};
use tokio::net::TcpStream;

use super::io::{encode, poll_read, poll_write};
use crate::plan::{Connections, Drainable};
use crate::stats::ListenerStats;

/// What a client connection needs from the listener that accepted it, and reports to it.
pub(crate) trait DownstreamEvents<C: Codec> {
    /// The listener's configured codec (cloned for each connection).
    fn codec(&self) -> &C;
    /// The listener's in-flight limit per connection.
    fn max_requests_per_connection(&self) -> usize;
    /// The listener's counters in this worker.
    fn stats(&self) -> &ListenerStats;
    /// The worker's open connections.
    fn connections(&self) -> &Connections;
    /// A batch of work starts (read the clock once).
    fn tick(&self);
    /// A request (two-way, one-way or stream) was decoded on `down`.
    fn on_request(self: &Rc<Self>, down: &Rc<DownShared<C>>, request: Message<C::Layout>);
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
    waker: Option<Waker>,
}

/// A client connection as the engine sees it.
pub(crate) struct DownShared<C: Codec> {
    /// The mutable part.
    pub inner: RefCell<DownInner<C>>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
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
            waker: None,
        }),
        peer,
    });
    let key = events.connections().insert(Rc::downgrade(&shared) as std::rc::Weak<dyn Drainable>);
    events.stats().downstream_cx_total.inc();
    events.stats().downstream_cx_active.inc();
    let mut conn = Conn { events: events.clone(), shared, stream, decoder: None, inbuf: BytesMut::new(), eof: false };
    std::future::poll_fn(|cx| conn.poll(cx)).await;
    events.stats().downstream_cx_active.dec();
    events.connections().remove(key);
}

struct Conn<C: Codec, E> {
    events: Rc<E>,
    shared: Rc<DownShared<C>>,
    stream: TcpStream,
    /// Made on the first bytes, so an idle connection holds no codec state.
    decoder: Option<C>,
    inbuf: BytesMut,
    eof: bool,
}

impl<C: Codec, E: DownstreamEvents<C>> Conn<C, E> {
    /// True when the connection may start more requests (not closing, under its limits).
    fn can_decode(&self) -> bool {
        let inner = self.shared.inner.borrow();
        inner.closing == Closing::No
            && inner.inflight < self.events.max_requests_per_connection()
            && inner.out.len() < MAX_BUFFERED
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.events.tick();
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
                    _ => self.events.on_request(&self.shared, message),
                },
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(peer = ?self.shared.peer, %error, "malformed frame from a client; closing after the requests in flight");
                    self.events.stats().malformed.inc();
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
