//! The exporter: one thread per collector, fed batches of finished spans by the workers through a
//! bounded channel, exporting them with `opentelemetry-otlp`'s `SpanExporter` (gRPC or HTTP).
//!
//! The thread runs its own current-thread tokio runtime (the gRPC and HTTP clients need one) and
//! lowers its own scheduling priority (`exporter_nice`, default 10), so that on a busy machine the
//! workers' request path gets the CPU first: when the exporter cannot keep up, its queue fills
//! and the workers drop and count spans rather than slow requests down. Each export call is bounded by `export_timeout` and is
//! not retried; the spans of a failed call are dropped and counted.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use opentelemetry_sdk::Resource;
use tokio::sync::mpsc;

use crate::config::{ExporterSpec, OtlpProtocol, TracingSpec};
use crate::span::{AttrValue, Attributes, SpanKind, SpanRecord, SpanStatus};
use crate::stats::ExportStats;
use crate::worker::WorkerTracer;

/// Most spans sent in one export call: the exporter takes what is queued, up to this.
pub const MAX_EXPORT_BATCH: usize = 2048;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The exporter thread could not be started.
    #[error("cannot start the span exporter thread")]
    Thread(#[source] std::io::Error),
    /// Its runtime could not be built.
    #[error("cannot build the span exporter's runtime")]
    Runtime(#[source] std::io::Error),
    /// The OTLP exporter refused its configuration.
    #[error("cannot build the OTLP exporter for {endpoint}")]
    Build {
        /// The collector.
        endpoint: String,
        /// What the exporter said.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// The thread ended before saying whether it started.
    #[error("the span exporter thread ended while starting")]
    Gone,
}

/// One exporter thread and its queue.
#[derive(Debug)]
pub struct Exporter {
    spec: ExporterSpec,
    /// Taken at shutdown: once every worker's copy is dropped too, the thread drains the queue
    /// and ends.
    sender: Mutex<Option<mpsc::Sender<Vec<SpanRecord>>>>,
    stats: Arc<ExportStats>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Exporter {
    /// Starts the exporter for `spec`: an OTLP exporter over gRPC or HTTP, as configured.
    pub fn start(spec: &ExporterSpec) -> Result<Arc<Exporter>, TracingError> {
        let config = spec.clone();
        Self::start_with(spec, move || otlp_exporter(&config))
    }

    /// Starts an exporter thread that exports with what `make` builds (on that thread, inside its
    /// runtime). Tests pass exporters of their own.
    pub fn start_with<E, F>(spec: &ExporterSpec, make: F) -> Result<Arc<Exporter>, TracingError>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, TracingError> + Send + 'static,
    {
        let batches = (spec.max_queue_size / spec.batch_size.max(1)).max(1);
        let (sender, receiver) = mpsc::channel(batches);
        let stats = Arc::new(ExportStats::default());
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let nice = i32::from(spec.nice);
        let run = Run {
            receiver,
            stats: stats.clone(),
            timeout: spec.export_timeout,
            service_name: spec.service_name.clone(),
        };
        std::thread::Builder::new()
            .name("metaproxy-tracing".into())
            .spawn(move || {
                lower_priority(nice);
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = started_tx.send(Err(TracingError::Runtime(e)));
                        return;
                    }
                };
                let exporter = {
                    let _entered = runtime.enter();
                    make()
                };
                match exporter {
                    Ok(exporter) => {
                        let _ = started_tx.send(Ok(()));
                        runtime.block_on(run.run(exporter));
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
                let _ = done_tx.send(());
            })
            .map_err(TracingError::Thread)?;
        started_rx.recv().map_err(|_| TracingError::Gone)??;
        tracing::info!(
            endpoint = %spec.endpoint,
            protocol = spec.protocol.as_str(),
            service_name = %spec.service_name,
            "exporting spans"
        );
        Ok(Arc::new(Exporter {
            spec: spec.clone(),
            sender: Mutex::new(Some(sender)),
            stats,
            done: Mutex::new(Some(done_rx)),
        }))
    }

    /// A tracer for one worker and one listener with `spec` (whose exporter part is this
    /// exporter's); `None` once the exporter is shut down.
    pub fn worker(&self, spec: &TracingSpec) -> Option<WorkerTracer> {
        let sender = self.sender.lock().ok()?.clone()?;
        Some(WorkerTracer::new(spec, sender, self.stats.clone()))
    }

    /// What it exports to.
    pub fn spec(&self) -> &ExporterSpec {
        &self.spec
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<ExportStats> {
        &self.stats
    }

    /// Stops taking spans and waits up to `timeout` for the thread to export what is queued
    /// (the workers' tracers must be dropped first: each holds the queue open). True when it
    /// finished in time.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        match done {
            Some(done) => done.recv_timeout(timeout).is_ok(),
            None => true,
        }
    }
}

/// Lowers the calling thread's priority by `nice` (Linux: `nice` applies to the thread; the
/// result is at most 19). Best effort.
fn lower_priority(nice: i32) {
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::nice(nice) {
        tracing::debug!(error = %e, "cannot lower the span exporter's priority");
    }
}

/// The OTLP exporter for `spec`: no retries (a failed call's spans are dropped and counted) and
/// the timeout of one call. (The exporter thread sets the resource.)
fn otlp_exporter(spec: &ExporterSpec) -> Result<opentelemetry_otlp::SpanExporter, TracingError> {
    let built = match spec.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(spec.endpoint.clone())
            .with_timeout(spec.export_timeout)
            .with_retry_policy(RetryPolicy::disabled())
            .build(),
        OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(spec.endpoint.clone())
            .with_timeout(spec.export_timeout)
            .with_retry_policy(RetryPolicy::disabled())
            .build(),
    };
    built.map_err(|source| TracingError::Build { endpoint: spec.endpoint.clone(), source })
}

/// The spans' resource: the SDK's defaults (`telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`) with
/// `service.name` set.
fn resource(service_name: &str) -> Resource {
    Resource::builder().with_service_name(service_name.to_string()).build()
}

/// The exporter thread's loop.
struct Run {
    receiver: mpsc::Receiver<Vec<SpanRecord>>,
    stats: Arc<ExportStats>,
    timeout: Duration,
    service_name: String,
}

impl Run {
    async fn run<E: SpanExporter>(mut self, mut exporter: E) {
        exporter.set_resource(&resource(&self.service_name));
        let scope = InstrumentationScope::builder("metaproxy").with_version(env!("CARGO_PKG_VERSION")).build();
        let mut last_warning: Option<Instant> = None;
        let mut failed_since_warning = 0u64;
        while let Some(first) = self.receiver.recv().await {
            let mut records = first;
            while records.len() < MAX_EXPORT_BATCH {
                match self.receiver.try_recv() {
                    Ok(mut more) => records.append(&mut more),
                    Err(_) => break,
                }
            }
            let n = records.len() as u64;
            let clock = Clock::now();
            let batch: Vec<SpanData> = records.into_iter().map(|r| span_data(r, &scope, clock)).collect();
            let result = tokio::time::timeout(self.timeout, exporter.export(batch)).await;
            let error = match result {
                Ok(Ok(())) => {
                    self.stats.exported.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.timeout),
            };
            self.stats.dropped_export_failed.fetch_add(n, Ordering::Relaxed);
            self.stats.export_failures.fetch_add(1, Ordering::Relaxed);
            failed_since_warning += n;
            // One warning per 10 s at most: a collector that is down must not flood the log.
            if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(%error, dropped = failed_since_warning, "span export failed; spans dropped");
                last_warning = Some(Instant::now());
                failed_since_warning = 0;
            }
        }
        let _ = exporter.shutdown_with_timeout(Duration::from_secs(1));
    }
}

fn value(v: AttrValue) -> Value {
    match v {
        AttrValue::Static(s) => Value::from(s),
        AttrValue::Shared(s) => Value::from(s),
        AttrValue::Owned(s) => Value::from(s),
        AttrValue::Int(i) => Value::I64(i),
        AttrValue::Bool(b) => Value::Bool(b),
        AttrValue::Ip(ip) => Value::from(ip.to_string()),
        AttrValue::Address(a) => Value::from(a.to_string()),
    }
}

fn int(n: u64) -> Value {
    Value::I64(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A record's typed fields as OpenTelemetry attributes.
fn attributes(kind: SpanKind, name: &str, a: Attributes) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(20 + a.extra.len());
    let mut put = |key: &'static str, v: Value| out.push(KeyValue::new(Key::from_static_str(key), v));
    if let Some(s) = a.rpc_system {
        put("rpc.system", Value::from(s));
    }
    for (key, range) in [("rpc.service", a.service), ("rpc.method", a.method)] {
        if let Some(part) = range.and_then(|r| name.get(r)) {
            put(key, Value::from(part.to_string()));
        }
    }
    for (key, v) in [
        ("metaproxy.listener", a.listener),
        ("metaproxy.route", a.route),
        ("metaproxy.cluster", a.cluster),
        ("metaproxy.subset", a.subset),
    ] {
        if let Some(v) = v {
            put(key, Value::from(v));
        }
    }
    if let Some(peer) = a.peer {
        let (address, port) = match kind {
            SpanKind::Server => ("client.address", "client.port"),
            SpanKind::Client => ("server.address", "server.port"),
        };
        put(address, Value::from(peer.ip().to_string()));
        put(port, Value::I64(i64::from(peer.port())));
    }
    if let Some(upstream) = a.upstream {
        put("metaproxy.upstream", Value::from(upstream.to_string()));
    }
    for (key, v) in [("metaproxy.outcome", a.outcome), ("metaproxy.status", a.status)] {
        if let Some(v) = v {
            put(key, Value::from(v));
        }
    }
    if let Some(code) = a.response_code {
        put("metaproxy.response.code", Value::I64(code));
    }
    for (key, v) in [
        ("metaproxy.request_id", a.request_id),
        ("metaproxy.request.size", a.request_size),
        ("metaproxy.response.size", a.response_size),
    ] {
        if let Some(v) = v {
            put(key, int(v));
        }
    }
    if let Some(n) = a.attempts {
        let key = match kind {
            SpanKind::Server => "metaproxy.attempts",
            SpanKind::Client => "metaproxy.attempt",
        };
        put(key, Value::I64(i64::from(n)));
    }
    if a.mirror {
        put("metaproxy.mirror", Value::Bool(true));
    }
    for (key, v) in a.extra {
        put(key, value(v));
    }
    out
}

/// One moment of both clocks: turns the records' instants into wall-clock times.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    /// The clocks now.
    pub fn now() -> Clock {
        Clock { instant: Instant::now(), wall: SystemTime::now() }
    }

    /// The wall-clock time of `at`.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.wall + after,
            None => self.wall.checked_sub(self.instant.duration_since(at)).unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }
}

/// A record as the SDK's exporters take it, its times read against `clock`.
pub fn span_data(r: SpanRecord, scope: &InstrumentationScope, clock: Clock) -> SpanData {
    let trace_state = r.trace_state.as_deref().and_then(|ts| ts.parse::<TraceState>().ok()).unwrap_or_default();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(r.trace_id),
            SpanId::from(r.span_id),
            TraceFlags::SAMPLED,
            false,
            trace_state,
        ),
        parent_span_id: if r.parent_span_id == 0 { SpanId::INVALID } else { SpanId::from(r.parent_span_id) },
        parent_span_is_remote: r.parent_is_remote,
        span_kind: match r.kind {
            SpanKind::Server => opentelemetry::trace::SpanKind::Server,
            SpanKind::Client => opentelemetry::trace::SpanKind::Client,
        },
        attributes: attributes(r.kind, &r.name, r.attributes),
        name: Cow::Owned(r.name.to_string()),
        start_time: clock.wall(r.start),
        end_time: clock.wall(r.end),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match r.status {
            SpanStatus::Unset => opentelemetry::trace::Status::Unset,
            SpanStatus::Error(description) => opentelemetry::trace::Status::error(description),
        },
        instrumentation_scope: scope.clone(),
    }
}
