//! The exporter: one thread per collector, fed batches of spans the workers have already encoded
//! as OTLP ([`crate::otlp`]) through a bounded channel, sending them over gRPC or HTTP
//! ([`crate::transport`]) inside one envelope per call, without reading or copying them.
//!
//! The thread runs its own current-thread tokio runtime (the gRPC and HTTP clients need one) and
//! lowers its own scheduling priority (`exporter_nice`, default 10), so that on a busy machine the
//! workers' request path gets the CPU first: when the exporter cannot keep up, its queue fills
//! and the workers drop and count spans rather than slow requests down. Each export call is bounded by `export_timeout` and is
//! not retried; the spans of a failed call are dropped and counted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::{ExporterSpec, TracingSpec};
use crate::otlp::Envelope;
use crate::stats::ExportStats;
use crate::transport::{Transport, TransportError};
use crate::worker::{EncodedSpans, WorkerTracer};

/// Most spans sent in one export call: the exporter takes what is queued, up to this.
pub const MAX_EXPORT_BATCH: usize = 2048;

/// Most span bytes sent in one export call (collectors refuse gRPC messages over 4 MiB by
/// default; a worker's batch is at most 256 KiB and one span).
pub const MAX_EXPORT_BYTES: usize = 3 << 20;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The exporter thread could not be started.
    #[error("cannot start the span exporter thread")]
    Thread(#[source] std::io::Error),
    /// Its runtime could not be built.
    #[error("cannot build the span exporter's runtime")]
    Runtime(#[source] std::io::Error),
    /// The collector's address is not usable.
    #[error("cannot export spans to {endpoint}")]
    Build {
        /// The collector.
        endpoint: String,
        /// Why.
        #[source]
        source: TransportError,
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
    sender: Mutex<Option<mpsc::Sender<EncodedSpans>>>,
    stats: Arc<ExportStats>,
    done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Exporter {
    /// Starts the exporter for `spec`: OTLP over gRPC or HTTP, as configured.
    pub fn start(spec: &ExporterSpec) -> Result<Arc<Exporter>, TracingError> {
        let batches = (spec.max_queue_size / spec.batch_size.max(1)).max(1);
        let (sender, receiver) = mpsc::channel(batches);
        let stats = Arc::new(ExportStats::default());
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let nice = i32::from(spec.nice);
        let config = spec.clone();
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
                let transport = {
                    let _entered = runtime.enter();
                    Transport::new(&config)
                        .map_err(|source| TracingError::Build { endpoint: config.endpoint.clone(), source })
                };
                match transport {
                    Ok(transport) => {
                        let _ = started_tx.send(Ok(()));
                        runtime.block_on(run.run(transport));
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

/// The exporter thread's loop.
struct Run {
    receiver: mpsc::Receiver<EncodedSpans>,
    stats: Arc<ExportStats>,
    timeout: Duration,
    service_name: String,
}

impl Run {
    async fn run(mut self, transport: Transport) {
        let envelope = Envelope::new(&self.service_name);
        let mut last_warning: Option<Instant> = None;
        let mut failed_since_warning = 0u64;
        while let Some(first) = self.receiver.recv().await {
            let (mut n, mut len) = (first.count as u64, first.bytes.len());
            let mut spans: Vec<Bytes> = vec![first.bytes];
            while n < MAX_EXPORT_BATCH as u64 && len < MAX_EXPORT_BYTES {
                match self.receiver.try_recv() {
                    Ok(more) => {
                        n += more.count as u64;
                        len += more.bytes.len();
                        spans.push(more.bytes);
                    }
                    Err(_) => break,
                }
            }
            let result = tokio::time::timeout(self.timeout, transport.send(&envelope, spans, len)).await;
            let error = match result {
                Ok(Ok(())) => {
                    self.stats.exported.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => error_chain(&e),
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
    }
}

/// An error and its sources, for the log.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
