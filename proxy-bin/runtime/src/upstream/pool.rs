//! [`Pool`]: a few connections to one endpoint, shared by every downstream connection, each
//! multiplexing many requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metaprotocol_core::{Message, Mutation, NewCodec};
use tokio::sync::{mpsc, oneshot};

use super::breaker::Breaker;
use super::connection::{self, Outbound};
use super::error::UpstreamError;

/// The answer to one request.
pub type Reply = Result<Message, UpstreamError>;

/// A live connection: where to send requests, and whether its task still runs.
#[derive(Clone, Debug)]
struct Handle {
    tx: mpsc::Sender<Outbound>,
}

#[derive(Debug, Default)]
struct Slot {
    live: RwLock<Option<Handle>>,
    connecting: tokio::sync::Mutex<()>,
}

/// Connections to one endpoint.
pub struct Pool {
    address: SocketAddr,
    slots: Vec<Slot>,
    next: AtomicUsize,
    connect_timeout: Duration,
    new_codec: Arc<dyn NewCodec>,
    breaker: Arc<Breaker>,
}

impl Pool {
    /// A pool of up to `size` connections to `address`, opened on first use.
    pub fn new(
        address: SocketAddr,
        size: usize,
        connect_timeout: Duration,
        new_codec: Arc<dyn NewCodec>,
        breaker: Arc<Breaker>,
    ) -> Self {
        Pool {
            address,
            slots: (0..size.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            connect_timeout,
            new_codec,
            breaker,
        }
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.live.read().ok().and_then(|l| l.as_ref().map(|h| !h.tx.is_closed())).unwrap_or(false))
            .count()
    }

    /// A live connection of the next slot, or `None` when it must be opened first.
    fn live(&self, slot: &Slot) -> Option<Handle> {
        slot.live.read().ok().and_then(|l| l.clone()).filter(|h| !h.tx.is_closed())
    }

    async fn handle(&self) -> Result<Handle, UpstreamError> {
        let slot =
            self.slots.get(self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()).ok_or(UpstreamError::Reset)?;
        match self.live(slot) {
            Some(h) => Ok(h),
            // The connect path is boxed: it is rare, and inlined it would make every request's
            // future (moved into its task) several times larger.
            None => Box::pin(self.open(slot)).await,
        }
    }

    async fn open(&self, slot: &Slot) -> Result<Handle, UpstreamError> {
        let _pending = self.breaker.pending().ok_or(UpstreamError::Overflow("max_pending"))?;
        let _connecting = slot.connecting.lock().await;
        if let Some(h) = self.live(slot) {
            return Ok(h);
        }
        let guard = self.breaker.connection().ok_or(UpstreamError::Overflow("max_connections"))?;
        let stream =
            match tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(self.address)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(UpstreamError::ConnectFailure(self.address, e.to_string())),
                Err(_) => {
                    return Err(UpstreamError::ConnectFailure(
                        self.address,
                        format!("timed out after {:?}", self.connect_timeout),
                    ))
                }
            };
        let _ = stream.set_nodelay(true);
        let tx = connection::spawn(stream, self.new_codec.new_codec(), guard);
        let handle = Handle { tx };
        if let Ok(mut live) = slot.live.write() {
            *live = Some(handle.clone());
        }
        Ok(handle)
    }

    /// Sends a request; resolves to its response. For a one-way request it resolves to `None` once
    /// the request is queued on a connection.
    pub async fn send(
        &self,
        message: Message,
        mutation: Mutation,
        expect_reply: bool,
    ) -> Result<Option<Message>, UpstreamError> {
        let handle = self.handle().await?;
        let (reply, rx) = if expect_reply {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        handle.tx.send(Outbound { message, mutation, reply }).await.map_err(|_| UpstreamError::Reset)?;
        match rx {
            None => Ok(None),
            Some(rx) => rx.await.map_err(|_| UpstreamError::Reset)?.map(Some),
        }
    }
}
