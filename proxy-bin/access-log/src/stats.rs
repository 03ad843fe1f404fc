//! [`AccessLogStats`]: the access log's counters, for the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The access log's counters, shared by the workers and the writer thread (relaxed atomics: each
/// is exact on its own, not consistent with the others at one instant).
#[derive(Debug, Default)]
pub struct AccessLogStats {
    lines_written: AtomicU64,
    lines_dropped: AtomicU64,
    write_errors: AtomicU64,
    bytes_written: AtomicU64,
}

impl AccessLogStats {
    /// Lines written to the output.
    pub fn lines_written(&self) -> u64 {
        self.lines_written.load(Relaxed)
    }

    /// Lines lost: formatted while the writer's queue was full (or after it shut down), or in a
    /// buffer whose write failed.
    pub fn lines_dropped(&self) -> u64 {
        self.lines_dropped.load(Relaxed)
    }

    /// Failed writes (or flushes) to the output; each loses at most one buffer of lines.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Relaxed)
    }

    /// Bytes written to the output.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Relaxed)
    }

    pub(crate) fn add_written(&self, lines: u64, bytes: usize) {
        self.lines_written.fetch_add(lines, Relaxed);
        self.bytes_written.fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Relaxed);
    }

    pub(crate) fn add_dropped(&self, lines: u64) {
        if lines > 0 {
            self.lines_dropped.fetch_add(lines, Relaxed);
        }
    }

    pub(crate) fn add_write_error(&self) {
        self.write_errors.fetch_add(1, Relaxed);
    }
}
