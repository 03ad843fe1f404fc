//! The admin endpoint: `GET /metrics` (Prometheus text format) and `GET /ready` (200 while
//! serving, 503 once draining). A deliberately small HTTP/1.1 responder: one request per
//! connection, no keep-alive.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::{stats, ListenerRuntime};

/// What the admin endpoint reports on.
pub struct AdminState {
    /// The listeners.
    pub listeners: Vec<Arc<ListenerRuntime>>,
    /// Open downstream connections.
    pub downstream: Arc<dyn Fn() -> usize + Send + Sync>,
}

/// The Prometheus exposition of `state`.
pub fn metrics(state: &AdminState) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str(
        "# HELP metaproxy_requests_total Requests decoded from clients.\n# TYPE metaproxy_requests_total counter\n",
    );
    out.push_str("# HELP metaproxy_request_outcomes_total How requests ended, other than local replies.\n# TYPE metaproxy_request_outcomes_total counter\n");
    out.push_str("# HELP metaproxy_local_replies_total Error replies made by the proxy, by kind.\n# TYPE metaproxy_local_replies_total counter\n");
    for l in &state.listeners {
        stats::render(&mut out, &l.spec.name, &l.stats);
    }
    out.push_str("# HELP metaproxy_downstream_connections Open client connections.\n# TYPE metaproxy_downstream_connections gauge\n");
    let _ = writeln!(out, "metaproxy_downstream_connections {}", (state.downstream)());
    out.push_str("# HELP metaproxy_upstream_connections Open upstream connections.\n# TYPE metaproxy_upstream_connections gauge\n");
    out.push_str("# HELP metaproxy_upstream_requests_in_flight Requests in flight to a cluster.\n# TYPE metaproxy_upstream_requests_in_flight gauge\n");
    for l in &state.listeners {
        let mut names: Vec<_> = l.clusters.keys().collect();
        names.sort();
        for name in names {
            let Some(c) = l.clusters.get(name) else { continue };
            let open: usize = c.endpoints().all.iter().map(|e| e.pool.open_connections()).sum();
            let _ = writeln!(
                out,
                "metaproxy_upstream_connections{{listener=\"{}\",cluster=\"{name}\"}} {open}",
                l.spec.name
            );
            let _ = writeln!(
                out,
                "metaproxy_upstream_requests_in_flight{{listener=\"{}\",cluster=\"{name}\"}} {}",
                l.spec.name,
                c.breaker.requests()
            );
        }
    }
    out
}

/// Serves the admin endpoint on `socket` until shutdown.
pub async fn serve(socket: TcpListener, state: Arc<AdminState>, mut shutdown: watch::Receiver<bool>) {
    let draining = shutdown.clone();
    loop {
        let (mut stream, _) = tokio::select! {
            a = socket.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let (state, draining) = (state.clone(), draining.clone());
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
                "/metrics" => ("200 OK", metrics(&state)),
                "/ready" if *draining.borrow() => ("503 Service Unavailable", "draining\n".to_string()),
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

/// Binds the admin endpoint.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
