//! A pipelining Dubbo client for the demo and tests: many calls in flight on one connection,
//! matched to their responses by request id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{Codec, Message};
use metaprotocol_dubbo::{build, DubboCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// A decoded Dubbo message.
pub type DubboMessage = Message<<DubboCodec as Codec>::Layout>;

type Waiter = oneshot::Sender<DubboMessage>;

/// A client connection.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::Sender<(u64, Bytes, Option<Waiter>)>,
    next_id: Arc<AtomicU64>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connection closed before the answer.
    #[error("connection closed")]
    Closed,
    /// The request could not be built.
    #[error("cannot build the request: {0}")]
    Build(#[source] metaprotocol_dubbo::hessian::HessianError),
}

impl Client {
    /// Connects to `address`.
    pub async fn connect(address: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(address).await?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<(u64, Bytes, Option<Waiter>)>(1024);
        let waiting: Arc<std::sync::Mutex<HashMap<u64, Waiter>>> = Arc::default();
        let w = waiting.clone();
        tokio::spawn(async move {
            while let Some((id, frame, waiter)) = rx.recv().await {
                if let (Some(waiter), Ok(mut map)) = (waiter, w.lock()) {
                    map.insert(id, waiter);
                }
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut codec = DubboCodec::default();
            let mut buf = BytesMut::with_capacity(16 * 1024);
            while let Ok(n) = rd.read_buf(&mut buf).await {
                if n == 0 {
                    break;
                }
                while let Ok(Some(m)) = codec.decode(&mut buf) {
                    let waiter = waiting.lock().ok().and_then(|mut map| map.remove(&m.metadata.request_id));
                    if let Some(w) = waiter {
                        let _ = w.send(m);
                    }
                }
            }
            // Dropping the waiters tells every pending call the connection closed.
            if let Ok(mut map) = waiting.lock() {
                map.clear();
            }
        });
        Ok(Client { tx, next_id: Arc::new(AtomicU64::new(1)) })
    }

    /// Calls `service.method(arg)` with `attachments`; resolves to the response (or error reply).
    pub async fn call(
        &self,
        service: &str,
        method: &str,
        arg: &str,
        attachments: &[(&str, &str)],
    ) -> Result<DubboMessage, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let req = build::Request { id, two_way: true, service, version: "1.0.0", method, args: &[arg], attachments };
        let frame = req.to_frame().map_err(CallError::Build)?;
        let (tx, rx) = oneshot::channel();
        self.tx.send((id, frame, Some(tx))).await.map_err(|_| CallError::Closed)?;
        rx.await.map_err(|_| CallError::Closed)
    }

    /// Sends a one-way request.
    pub async fn send_oneway(
        &self,
        service: &str,
        method: &str,
        arg: &str,
        attachments: &[(&str, &str)],
    ) -> Result<(), CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let req = build::Request { id, two_way: false, service, version: "1.0.0", method, args: &[arg], attachments };
        let frame = req.to_frame().map_err(CallError::Build)?;
        self.tx.send((id, frame, None)).await.map_err(|_| CallError::Closed)
    }
}
