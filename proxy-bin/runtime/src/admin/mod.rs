//! The admin endpoint: `GET /metrics` (Prometheus text format, see [`metrics`]) and `GET /ready`
//! (200 while serving, 503 once draining). A deliberately small HTTP/1.1 responder on its own
//! task: one request per connection, no keep-alive. It serves through the drain (so that a load
//! balancer sees `/ready` turn 503) and stops only when the process is done.

pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use metaproxy_access_log::AccessLogStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::plan::Shared;
use crate::RuntimeError;

/// How long an accept loop waits after an accept error (out of descriptors, usually).
pub(crate) const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// What the admin endpoint reports on.
pub struct AdminState {
    /// Clusters and per-worker listener counters.
    pub shared: Arc<Shared>,
    /// Open downstream connections.
    pub downstream: Arc<AtomicUsize>,
    /// The access log's counters.
    pub access_log: Arc<AccessLogStats>,
    /// True once draining.
    pub draining: watch::Receiver<bool>,
}

/// Binds `address` and serves the endpoint until `stop` turns true (after the drain); returns the
/// bound address and the serving task, which ends (closing the socket) once stopped.
pub async fn start(
    address: SocketAddr,
    state: AdminState,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), RuntimeError> {
    let socket = TcpListener::bind(address).await.map_err(|source| RuntimeError::Bind { address, source })?;
    let bound = socket.local_addr().map_err(|source| RuntimeError::Bind { address, source })?;
    let task = tokio::spawn(serve(socket, Arc::new(state), stop));
    tracing::info!(address = %bound, "admin endpoint: /metrics, /ready");
    Ok((bound, task))
}

async fn serve(socket: TcpListener, state: Arc<AdminState>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            _ = stop.wait_for(|d| *d) => return,
        };
        let mut stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, usually: the pending connection stays pending, so retrying
                // at once would spin. Back off, as the listeners do.
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            // Read the request head (at most 4 KiB); only its first line matters.
            let mut buf = Vec::with_capacity(4096);
            while buf.len() < 4096 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
            let head = String::from_utf8_lossy(&buf);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics::render(&state)),
                "/ready" if *state.draining.borrow() => ("503 Service Unavailable", "draining\n".to_string()),
                "/ready" => ("200 OK", "ready\n".to_string()),
                _ => ("404 Not Found", "not found: try /metrics or /ready\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
