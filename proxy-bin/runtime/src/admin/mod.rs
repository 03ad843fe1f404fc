//! The admin API, on hyper (HTTP/1.1) with axum's router:
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /ready` | 200 while serving; 503 once draining, or after `POST /healthcheck/fail` |
//! | `GET /metrics` | the Prometheus text exposition ([`metrics`]) |
//! | `GET /config_dump` | the running configuration as JSON, with its version ([`dump`]) |
//! | `GET /clusters` | every cluster's endpoints: labels, health, ejection, connections, requests in flight |
//! | `POST /healthcheck/fail` | `/ready` answers 503 from now on (Envoy's way to take an instance out of a load balancer) |
//! | `POST /healthcheck/ok` | `/ready` answers 200 again |
//!
//! What changes state answers only `POST` (405 otherwise). The API binds loopback unless
//! `admin.address` says otherwise. It runs on its own task with an accept loop of its own, so that
//! an accept error (out of descriptors) backs off instead of spinning; it serves through the drain
//! (so that a load balancer sees `/ready` turn 503) and stops only when the process is done, its
//! open connections closed with it.

pub mod dump;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metaproxy_access_log::AccessLogStats;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::plan::Shared;
use crate::RuntimeError;

/// How long an accept loop waits after an accept error (out of descriptors, usually).
pub(crate) const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// How long an admin client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin API reports on and acts on.
pub struct AdminState {
    /// Clusters and per-worker listener counters.
    pub shared: Arc<Shared>,
    /// Open downstream connections.
    pub downstream: Arc<AtomicUsize>,
    /// The access log's counters.
    pub access_log: Arc<AccessLogStats>,
    /// True once draining.
    pub draining: watch::Receiver<bool>,
    /// The running configuration and its version, replaced by each reload.
    pub live: Arc<std::sync::RwLock<LiveConfig>>,
    /// Reloads applied and rejected.
    pub reloads: Arc<ReloadStats>,
    /// Set by `POST /healthcheck/fail`, cleared by `POST /healthcheck/ok`.
    pub failing: AtomicBool,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

/// The configuration in force, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// As `/config_dump` shows it (see [`dump::config_dump`]).
    pub dump: serde_json::Value,
    /// Its version (a hash of the file's text), for `metaproxy_config_info`.
    pub version: String,
}

/// What reloads did (Envoy's `listener_manager.lds.update_success` / `update_rejected`).
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Configurations applied.
    pub success: std::sync::atomic::AtomicU64,
    /// Configurations rejected (invalid, or needing a restart); the running one kept serving.
    pub rejected: std::sync::atomic::AtomicU64,
}

/// What the handlers share.
#[derive(Clone)]
struct App {
    state: Arc<AdminState>,
    metrics: Arc<metrics::Exporter>,
}

/// Binds `address` and serves the API until `stop` turns true (after the drain); returns the
/// bound address and the serving task, which ends (closing the socket and the API's open
/// connections) once stopped.
pub async fn start(
    address: SocketAddr,
    state: AdminState,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), RuntimeError> {
    let socket = TcpListener::bind(address).await.map_err(|source| RuntimeError::Bind { address, source })?;
    let bound = socket.local_addr().map_err(|source| RuntimeError::Bind { address, source })?;
    let state = Arc::new(state);
    let app = App { metrics: Arc::new(metrics::Exporter::new(state.clone())), state };
    let task = tokio::spawn(serve(socket, router(app), stop));
    if !bound.ip().is_loopback() {
        tracing::warn!(address = %bound, "the admin API is reachable from other hosts, POST /healthcheck/fail included");
    }
    tracing::info!(address = %bound, "admin API: /ready /metrics /config_dump /clusters, POST /healthcheck/fail|ok");
    Ok((bound, task))
}

fn router(app: App) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/config_dump", get(config_dump))
        .route("/clusters", get(clusters))
        .route("/healthcheck/fail", post(healthcheck_fail))
        .route("/healthcheck/ok", post(healthcheck_ok))
        .fallback(not_found)
        .with_state(app)
}

/// The accept loop: one hyper HTTP/1.1 connection task per client, all aborted when stopped.
async fn serve(socket: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stop.wait_for(|d| *d) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, usually: the pending connection stays pending, so retrying
                // at once would spin. Back off, as the listeners do.
                tracing::warn!(%error, "admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            // One request per connection, as scrapers and probes use it: nothing stays open.
            let served = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
    connections.abort_all();
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn ready(State(app): State<App>) -> Response {
    if *app.state.draining.borrow() {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if app.state.failing.load(Ordering::Acquire) {
        text(StatusCode::SERVICE_UNAVAILABLE, "failing health checks (POST /healthcheck/ok to undo)\n")
    } else {
        text(StatusCode::OK, "ready\n")
    }
}

async fn metrics(State(app): State<App>) -> Response {
    match app.metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(error) => {
            tracing::warn!(%error, "cannot render the metrics");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render the metrics\n")
        }
    }
}

async fn config_dump(State(app): State<App>) -> Json<serde_json::Value> {
    Json(app.state.live.read().map(|l| l.dump.clone()).unwrap_or_default())
}

async fn clusters(State(app): State<App>) -> Json<serde_json::Value> {
    Json(dump::clusters(&app.state.shared))
}

async fn healthcheck_fail(State(app): State<App>) -> Response {
    app.state.failing.store(true, Ordering::Release);
    tracing::warn!("admin: POST /healthcheck/fail, /ready answers 503");
    text(StatusCode::OK, "OK\n")
}

async fn healthcheck_ok(State(app): State<App>) -> Response {
    app.state.failing.store(false, Ordering::Release);
    tracing::info!("admin: POST /healthcheck/ok, /ready answers 200");
    text(StatusCode::OK, "OK\n")
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found: try /ready, /metrics, /config_dump or /clusters\n")
}
