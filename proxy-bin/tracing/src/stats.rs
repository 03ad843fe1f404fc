//! What an exporter has done with the spans handed to it, read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one exporter (shared by the workers that feed it and its thread).
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped because the exporter's queue was full (the collector slow or down): counted
    /// by the workers, which drop a whole batch at once.
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because their export call failed or timed out.
    pub dropped_export_failed: AtomicU64,
    /// Export calls that failed or timed out.
    pub export_failures: AtomicU64,
}

impl ExportStats {
    /// Every span dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full.load(Ordering::Relaxed) + self.dropped_export_failed.load(Ordering::Relaxed)
    }

    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// The dropped spans by reason, as `/metrics` labels them.
    pub fn dropped_by_reason(&self) -> [(&'static str, u64); 2] {
        [
            ("queue_full", self.dropped_queue_full.load(Ordering::Relaxed)),
            ("export_failed", self.dropped_export_failed.load(Ordering::Relaxed)),
        ]
    }
}
