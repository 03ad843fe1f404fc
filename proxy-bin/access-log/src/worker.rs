//! [`WorkerLog`]: one worker thread's handle, formatting into its own buffer and handing full or
//! due buffers to the writer without ever waiting for it.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::render::CompiledFormat;
use crate::stats::AccessLogStats;
use crate::timestamp::TimeCache;
use crate::writer::{Batch, Msg};
use crate::Entry;

/// Room past `buffer_size` so the line that fills a buffer does not make it grow.
const LINE_HEADROOM: usize = 4 * 1024;

/// How many emptied buffers the writer may hand back to one worker ahead of need.
const SPARE_BUFFERS: usize = 4;

/// One worker's access log: formats entries into its own buffer and hands the buffer to the
/// writer thread when it reaches `buffer_size` or when [`flush_if_due`](Self::flush_if_due)
/// finds it due. Never blocks: when the writer's queue is full, the buffer's lines are dropped
/// and counted. Dropping it hands over what it holds.
///
/// `Send`, to be moved to its worker thread at start-up, but not `Sync`:
///
/// ```compile_fail
/// fn shared<T: Sync>() {}
/// shared::<metaproxy_access_log::WorkerLog>();
/// ```
#[derive(Debug)]
pub struct WorkerLog {
    active: Option<Active>,
    _not_sync: PhantomData<Cell<()>>,
}

#[derive(Debug)]
struct Active {
    format: Arc<CompiledFormat>,
    /// Whole lines not yet handed over.
    buf: Vec<u8>,
    /// How many lines `buf` holds.
    lines: u64,
    /// The last `%START_TIME%` second formatted.
    clock: TimeCache,
    buffer_size: usize,
    flush_interval: Duration,
    last_flush: Instant,
    tx: SyncSender<Msg>,
    /// Where the writer sends this worker's emptied buffers...
    home: SyncSender<Vec<u8>>,
    /// ...and where this worker takes them from.
    spares: Receiver<Vec<u8>>,
    stats: Arc<AccessLogStats>,
}

impl WorkerLog {
    pub(crate) fn new(
        tx: SyncSender<Msg>,
        format: Arc<CompiledFormat>,
        stats: Arc<AccessLogStats>,
        buffer_size: usize,
        flush_interval: Duration,
    ) -> WorkerLog {
        let (home, spares) = mpsc::sync_channel(SPARE_BUFFERS);
        let active = Active {
            format,
            buf: Vec::with_capacity(WorkerLog::capacity_for(buffer_size)),
            lines: 0,
            clock: TimeCache::default(),
            buffer_size,
            flush_interval,
            last_flush: Instant::now(),
            tx,
            home,
            spares,
            stats,
        };
        WorkerLog { active: Some(active), _not_sync: PhantomData }
    }

    /// The capacity a worker gives a buffer of `buffer_size`.
    pub(crate) fn capacity_for(buffer_size: usize) -> usize {
        buffer_size.saturating_add(LINE_HEADROOM)
    }

    /// A log that does nothing, as [`AccessLogWriter::worker`](crate::AccessLogWriter::worker)
    /// hands out when the access log is disabled.
    pub fn disabled() -> WorkerLog {
        WorkerLog { active: None, _not_sync: PhantomData }
    }

    /// Whether lines are logged at all: when false the runtime can skip building [`Entry`]s.
    pub fn enabled(&self) -> bool {
        self.active.is_some()
    }

    /// How often the runtime should call [`flush_if_due`](Self::flush_if_due) (`None` when
    /// disabled).
    pub fn flush_interval(&self) -> Option<Duration> {
        self.active.as_ref().map(|a| a.flush_interval)
    }

    /// Formats `entry` into the buffer, and hands the buffer over if it is full. Allocates
    /// nothing in steady state; a no-op when disabled.
    pub fn log(&mut self, entry: &Entry<'_>) {
        if let Some(active) = &mut self.active {
            active.format.write_with(entry, &mut active.buf, &mut active.clock);
            active.lines += 1;
            if active.buf.len() >= active.buffer_size {
                active.hand_off();
            }
        }
    }

    /// Hands over what the buffer holds now, if anything.
    pub fn flush(&mut self) {
        if let Some(active) = &mut self.active {
            if !active.buf.is_empty() {
                active.hand_off();
            }
        }
    }

    /// Hands over a non-empty buffer if `flush_interval` has passed since the last time this was
    /// due: the runtime calls it from a timer so that lines wait at most about that long.
    pub fn flush_if_due(&mut self, now: Instant) {
        if let Some(active) = &mut self.active {
            if now.saturating_duration_since(active.last_flush) >= active.flush_interval {
                active.last_flush = now;
                if !active.buf.is_empty() {
                    active.hand_off();
                }
            }
        }
    }
}

impl Drop for WorkerLog {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Active {
    /// Sends the buffer to the writer and continues with a spare one, or, when the writer's queue
    /// is full (or the writer is gone), counts the buffer's lines as dropped and reuses it.
    fn hand_off(&mut self) {
        // The spare is taken before the batch goes: the writer may hand this very buffer back at
        // once, and it is then the spare of the next hand-off (taken after, it would come back as
        // the buffer just sent, and the one spare would wait unused).
        let capacity = WorkerLog::capacity_for(self.buffer_size);
        let next = self.spares.try_recv().unwrap_or_else(|_| Vec::with_capacity(capacity));
        let batch = Batch {
            buf: std::mem::replace(&mut self.buf, next),
            lines: std::mem::take(&mut self.lines),
            home: self.home.clone(),
            stats: Arc::clone(&self.stats),
        };
        if let Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) = self.tx.try_send(Msg::Batch(batch)) {
            if let Msg::Batch(mut batch) = msg {
                self.stats.add_dropped(std::mem::take(&mut batch.lines));
                let mut kept = std::mem::take(&mut batch.buf);
                kept.clear();
                // Keep the buffer that was full; the spare goes back.
                let spare = std::mem::replace(&mut self.buf, kept);
                let _ = self.home.try_send(spare);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::{AccessLogConfig, AccessLogWriter};

    fn writer(buffer_size: usize) -> AccessLogWriter {
        let config = AccessLogConfig {
            buffer_size: Some(buffer_size),
            text_format: Some("%LISTENER% %OPERATION%".to_owned()),
            ..AccessLogConfig::default()
        };
        AccessLogWriter::start_with_output(&config, io::sink()).unwrap()
    }

    fn entry() -> Entry<'static> {
        Entry { listener: "in", method: Some(b"m"), ..Entry::default() }
    }

    #[test]
    fn a_disabled_log_does_nothing() {
        let mut log = WorkerLog::disabled();
        assert!(!log.enabled());
        assert_eq!(log.flush_interval(), None);
        log.log(&entry());
        log.flush();
        log.flush_if_due(Instant::now());
        let config = AccessLogConfig { enabled: false, ..AccessLogConfig::default() };
        let writer = AccessLogWriter::start(&config).unwrap();
        assert!(!writer.enabled());
        assert!(!writer.worker().enabled());
        writer.shutdown().unwrap();
    }

    #[test]
    fn a_buffer_is_handed_over_when_full() {
        let writer = writer(100);
        let mut log = writer.worker();
        log.log(&entry());
        let active = log.active.as_ref().unwrap();
        let line_len = active.buf.len();
        assert_eq!(line_len, "in m\n".len());
        let per_buffer = 100usize.div_ceil(line_len);
        for _ in 1..per_buffer {
            log.log(&entry());
        }
        // The line that reached 100 bytes sent the buffer.
        assert!(log.active.as_ref().unwrap().buf.is_empty());
        assert_eq!(log.active.as_ref().unwrap().lines, 0);
        drop(log);
        let stats = writer.stats();
        writer.shutdown().unwrap();
        assert_eq!(stats.lines_written(), per_buffer as u64);
        assert_eq!(stats.bytes_written(), (per_buffer * line_len) as u64);
        assert_eq!(stats.lines_dropped(), 0);
    }

    #[test]
    fn flush_if_due_waits_for_the_interval() {
        let writer = writer(1 << 20);
        let mut log = writer.worker();
        let start = log.active.as_ref().unwrap().last_flush;
        let interval = log.flush_interval().unwrap();
        assert_eq!(interval, Duration::from_millis(100));
        log.log(&entry());
        log.flush_if_due(start + interval / 2);
        assert!(!log.active.as_ref().unwrap().buf.is_empty());
        log.flush_if_due(start + interval);
        assert!(log.active.as_ref().unwrap().buf.is_empty());
        log.log(&entry());
        log.flush_if_due(start + interval + interval / 2);
        assert!(!log.active.as_ref().unwrap().buf.is_empty());
        // A clock that goes backwards is not due.
        log.flush_if_due(start);
        assert!(!log.active.as_ref().unwrap().buf.is_empty());
        log.flush_if_due(start + 2 * interval);
        assert!(log.active.as_ref().unwrap().buf.is_empty());
        drop(log);
        let stats = writer.stats();
        writer.shutdown().unwrap();
        assert_eq!(stats.lines_written(), 2);
    }

    /// Waits for the writer to return this worker's last buffer and puts it back as a spare.
    fn recycle(log: &WorkerLog) {
        let active = log.active.as_ref().unwrap();
        // Bounded: a buffer the writer failed to return fails the test instead of hanging it.
        let buf = active.spares.recv_timeout(Duration::from_secs(10)).expect("the writer returned the buffer");
        active.home.try_send(buf).unwrap();
    }

    #[test]
    fn handing_over_reuses_returned_buffers_without_allocating() {
        let writer = writer(1);
        let mut log = writer.worker();
        // Warm-up: the first hand-off allocates the second buffer; the thread's channel context
        // is set up by its first blocking receive.
        log.log(&entry());
        recycle(&log);
        log.log(&entry());
        recycle(&log);
        let allocations = allocation_counter::measure(|| {
            for _ in 0..100 {
                // buffer_size 1: every line is handed over.
                log.log(&entry());
                recycle(&log);
            }
        })
        .count_total;
        assert_eq!(allocations, 0);
        drop(log);
        let stats = writer.stats();
        writer.shutdown().unwrap();
        assert_eq!(stats.lines_written(), 102);
    }

    #[test]
    fn lines_handed_over_after_shutdown_are_dropped_and_counted() {
        let writer = writer(1 << 20);
        let stats = writer.stats();
        let mut log = writer.worker();
        writer.shutdown().unwrap();
        log.log(&entry());
        log.log(&entry());
        log.flush();
        assert_eq!(stats.lines_dropped(), 2);
        assert_eq!(stats.lines_written(), 0);
    }
}
