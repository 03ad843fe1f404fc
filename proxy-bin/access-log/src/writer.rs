//! [`AccessLogWriter`]: the one background thread that writes the workers' full buffers to the
//! output, and hands the emptied buffers back to the workers that filled them.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{AccessLogConfig, CompiledAccessLog, Output};
use crate::error::AccessLogError;
use crate::render::CompiledFormat;
use crate::stats::AccessLogStats;
use crate::worker::WorkerLog;

/// How often at most the writer thread warns about failed writes, and about dropped lines.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What goes to the writer thread.
pub(crate) enum Msg {
    /// A worker's buffer of whole lines.
    Batch(Batch),
    /// Write what is queued, then stop.
    Shutdown,
}

/// A worker's full buffer on its way to the output. Lines of a batch that is dropped unwritten
/// (the writer gone with it still queued) are counted as dropped.
pub(crate) struct Batch {
    pub(crate) buf: Vec<u8>,
    /// How many lines `buf` holds; zero once they are written or counted.
    pub(crate) lines: u64,
    /// Where the emptied buffer goes back to.
    pub(crate) home: SyncSender<Vec<u8>>,
    pub(crate) stats: Arc<AccessLogStats>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.stats.add_dropped(self.lines);
    }
}

/// The background writer: owns the output and its thread. [`shutdown`](Self::shutdown) (or
/// dropping it) writes everything queued, then joins the thread.
///
/// Shutting down waits for the output to take what is queued: an output that blocks forever
/// (a FIFO nobody reads) blocks the shutdown as long.
pub struct AccessLogWriter {
    running: Option<Running>,
    stats: Arc<AccessLogStats>,
}

struct Running {
    tx: SyncSender<Msg>,
    thread: JoinHandle<()>,
    format: Arc<CompiledFormat>,
    buffer_size: usize,
    flush_interval: Duration,
}

impl AccessLogWriter {
    /// Compiles `config`, opens its output (a file is created if missing and appended to) and
    /// starts the writer thread; when the log is disabled, starts nothing and hands out no-op
    /// [`WorkerLog`]s.
    pub fn start(config: &AccessLogConfig) -> Result<AccessLogWriter, AccessLogError> {
        AccessLogWriter::start_compiled(config.compile()?)
    }

    /// [`start`](Self::start) with a configuration already compiled.
    pub fn start_compiled(config: CompiledAccessLog) -> Result<AccessLogWriter, AccessLogError> {
        if !config.enabled {
            return Ok(AccessLogWriter::disabled());
        }
        let output: Box<dyn Write + Send> = match &config.output {
            Output::Stdout => Box::new(io::stdout()),
            Output::Stderr => Box::new(io::stderr()),
            Output::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError::Open { path: path.clone(), source })?,
            ),
        };
        AccessLogWriter::spawn(config, output)
    }

    /// [`start`](Self::start) writing to `output` instead of `config.path` (which is still
    /// checked): for tests, or an output the runtime opened itself.
    pub fn start_with_output<W: Write + Send + 'static>(
        config: &AccessLogConfig,
        output: W,
    ) -> Result<AccessLogWriter, AccessLogError> {
        let config = config.compile()?;
        if config.enabled {
            AccessLogWriter::spawn(config, Box::new(output))
        } else {
            Ok(AccessLogWriter::disabled())
        }
    }

    /// A writer for a disabled access log: no thread, and [`worker`](Self::worker) hands out
    /// no-op logs.
    pub fn disabled() -> AccessLogWriter {
        AccessLogWriter { running: None, stats: Arc::default() }
    }

    fn spawn(config: CompiledAccessLog, output: Box<dyn Write + Send>) -> Result<AccessLogWriter, AccessLogError> {
        let (tx, rx) = mpsc::sync_channel(config.max_pending_buffers.get());
        let stats = Arc::new(AccessLogStats::default());
        let buffer_size = config.buffer_size.get();
        // Buffers that grew far past their size for a huge line are freed rather than reused.
        let keep_capacity = 2 * WorkerLog::capacity_for(buffer_size);
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || run(rx, output, &thread_stats, keep_capacity))
            .map_err(AccessLogError::Spawn)?;
        let format = Arc::new(config.format);
        let running = Running { tx, thread, format, buffer_size, flush_interval: config.flush_interval };
        Ok(AccessLogWriter { running: Some(running), stats })
    }

    /// Whether the access log is on (false when disabled, or after shutdown).
    pub fn enabled(&self) -> bool {
        self.running.is_some()
    }

    /// A new worker's log, to move to the worker thread. A no-op log when the access log is
    /// disabled.
    pub fn worker(&self) -> WorkerLog {
        match &self.running {
            Some(r) => WorkerLog::new(
                r.tx.clone(),
                Arc::clone(&r.format),
                Arc::clone(&self.stats),
                r.buffer_size,
                r.flush_interval,
            ),
            None => WorkerLog::disabled(),
        }
    }

    /// The counters, for the metrics endpoint.
    pub fn stats(&self) -> Arc<AccessLogStats> {
        Arc::clone(&self.stats)
    }

    /// Writes everything queued, flushes the output and joins the writer thread. Buffers that
    /// workers hand over afterwards are dropped and counted, so drop (or
    /// [`flush`](WorkerLog::flush)) the workers' logs first.
    pub fn shutdown(mut self) -> Result<(), AccessLogError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), AccessLogError> {
        let Some(running) = self.running.take() else { return Ok(()) };
        // Fails only if the thread is gone already, which join reports.
        let _ = running.tx.send(Msg::Shutdown);
        drop(running.tx);
        running.thread.join().map_err(|_| AccessLogError::WriterPanicked)
    }
}

impl Drop for AccessLogWriter {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            tracing::warn!(target: "metaproxy::access_log", %err, "access log shutdown");
        }
    }
}

impl std::fmt::Debug for AccessLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogWriter").field("enabled", &self.enabled()).field("stats", &self.stats).finish()
    }
}

/// The writer thread: takes what is queued, writes it, flushes, until told to stop.
fn run(rx: Receiver<Msg>, mut output: Box<dyn Write + Send>, stats: &AccessLogStats, keep_capacity: usize) {
    let mut warnings = Warnings::default();
    let mut open = true;
    while open {
        let Ok(first) = rx.recv() else { break };
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Batch(batch) => write_batch(&mut output, batch, stats, &mut warnings, keep_capacity),
                Msg::Shutdown => open = false,
            }
            next = rx.try_recv().ok();
        }
        if let Err(err) = output.flush() {
            stats.add_write_error();
            warnings.write_failed(&err);
        }
        warnings.dropped(stats, false);
    }
    warnings.dropped(stats, true);
}

fn write_batch(
    output: &mut dyn Write,
    mut batch: Batch,
    stats: &AccessLogStats,
    warnings: &mut Warnings,
    keep_capacity: usize,
) {
    let lines = std::mem::take(&mut batch.lines);
    match output.write_all(&batch.buf) {
        Ok(()) => stats.add_written(lines, batch.buf.len()),
        Err(err) => {
            stats.add_write_error();
            stats.add_dropped(lines);
            warnings.write_failed(&err);
        }
    }
    let mut buf = std::mem::take(&mut batch.buf);
    if buf.capacity() <= keep_capacity {
        buf.clear();
        // A worker that is gone, or that has spares enough, does without it.
        let _ = batch.home.try_send(buf);
    }
}

/// Rate-limited warnings of the writer thread.
#[derive(Default)]
struct Warnings {
    last_write_warning: Option<Instant>,
    failures_since: u64,
    last_drop_warning: Option<Instant>,
    dropped_reported: u64,
}

impl Warnings {
    fn write_failed(&mut self, err: &io::Error) {
        self.failures_since += 1;
        let now = Instant::now();
        if self.last_write_warning.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
            tracing::warn!(
                target: "metaproxy::access_log",
                %err,
                failures = self.failures_since,
                "access log write failed; the lines of each failed write are dropped"
            );
            self.last_write_warning = Some(now);
            self.failures_since = 0;
        }
    }

    /// Warns about lines dropped since the last warning: at most every [`WARN_EVERY`], or now for
    /// the `final_report` at shutdown.
    fn dropped(&mut self, stats: &AccessLogStats, final_report: bool) {
        let dropped = stats.lines_dropped();
        if dropped <= self.dropped_reported {
            return;
        }
        let now = Instant::now();
        if final_report || self.last_drop_warning.is_none_or(|last| now.duration_since(last) >= WARN_EVERY) {
            tracing::warn!(
                target: "metaproxy::access_log",
                dropped = dropped - self.dropped_reported,
                total = dropped,
                "access log lines dropped: the writer cannot keep up with the workers"
            );
            self.last_drop_warning = Some(now);
            self.dropped_reported = dropped;
        }
    }
}
