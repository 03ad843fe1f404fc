//! Counters the proxy keeps, named as Envoy names them where Envoy has the statistic.
//!
//! Each worker owns its own set of counters per listener and per cluster and is the only thread
//! that writes them: an increment is a plain load and store, not a locked read-modify-write, so
//! counting costs nothing measurable and no cache line moves between cores. The admin endpoint
//! sums the sets of every worker when it is scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metaprotocol_core::ReplyKind;

/// A counter written by one thread and read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the owning worker calls this (single writer: a load and a store).
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge written by one thread and read by any.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// Subtracts one (never below zero).
    pub fn dec(&self) {
        self.0.store(self.0.load(Ordering::Relaxed).saturating_sub(1), Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one worker's copy of a listener has done.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Downstream connections accepted (`downstream_cx_total`).
    pub downstream_cx_total: Counter,
    /// Downstream connections open (`downstream_cx_active`).
    pub downstream_cx_active: Gauge,
    /// Requests decoded, two-way and one-way (`downstream_rq_total`).
    pub downstream_rq_total: Counter,
    /// Requests in flight (`downstream_rq_active`).
    pub downstream_rq_active: Gauge,
    /// Upstream responses written to clients.
    pub responses: Counter,
    /// One-way requests forwarded.
    pub oneway: Counter,
    /// Requests dropped by a filter (their connection closed).
    pub dropped: Counter,
    /// Malformed frames received (`downstream_rq_rx_reset`-like: the connection closed).
    pub malformed: Counter,
    /// Local replies, by kind (indexed like [`ReplyKind::ALL`]).
    pub local_replies: [Counter; ReplyKind::ALL.len()],
    /// Connections closed at once because the listener had `max_connections` open
    /// (`downstream_cx_overflow`).
    pub downstream_cx_overflow: Counter,
    /// Connections closed by `idle_timeout` (`downstream_cx_idle_timeout`).
    pub downstream_cx_idle_timeout: Counter,
    /// Frames refused (and their connections closed) by `frame_timeout`.
    pub downstream_cx_frame_timeout: Counter,
    /// Frames refused (and their connections closed) because the listener's read buffers were
    /// over `max_buffered_bytes` (`downstream_cx_overload`).
    pub downstream_cx_overload: Counter,
}

impl ListenerStats {
    /// Counts a local reply of `kind`.
    pub fn local_reply(&self, kind: ReplyKind) {
        if let Some(c) = ReplyKind::ALL.iter().position(|k| *k == kind).and_then(|i| self.local_replies.get(i)) {
            c.inc();
        }
    }
}

/// What one worker's copy of a cluster has done.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Connections opened (`upstream_cx_total`).
    pub upstream_cx_total: Counter,
    /// Connections open (`upstream_cx_active`).
    pub upstream_cx_active: Gauge,
    /// Connection attempts that failed (`upstream_cx_connect_fail`).
    pub upstream_cx_connect_fail: Counter,
    /// Connection attempts over the connect timeout (`upstream_cx_connect_timeout`).
    pub upstream_cx_connect_timeout: Counter,
    /// Connections that closed with requests in flight (`upstream_cx_destroy_with_active_rq`).
    pub upstream_cx_destroy_with_active_rq: Counter,
    /// Connections refused by `max_connections` (`upstream_cx_overflow`).
    pub upstream_cx_overflow: Counter,
    /// Requests sent, retries and mirrors included (`upstream_rq_total`).
    pub upstream_rq_total: Counter,
    /// Requests refused by `max_requests` or `max_pending_requests` (`upstream_rq_pending_overflow`).
    pub upstream_rq_pending_overflow: Counter,
    /// Requests that timed out (`upstream_rq_timeout`).
    pub upstream_rq_timeout: Counter,
    /// Tries that timed out (`upstream_rq_per_try_timeout`).
    pub upstream_rq_per_try_timeout: Counter,
    /// Retries (`upstream_rq_retry`).
    pub upstream_rq_retry: Counter,
    /// Mirrored copies sent (`upstream_rq_mirrored`, not an Envoy name).
    pub upstream_rq_mirrored: Counter,
    /// Mirrored copies not sent because a breaker was open.
    pub upstream_rq_mirror_overflow: Counter,
}

/// The per-worker sets of one listener or cluster, registered as workers start.
#[derive(Debug)]
pub struct PerWorker<T> {
    sets: Mutex<Vec<Arc<T>>>,
}

impl<T> Default for PerWorker<T> {
    fn default() -> Self {
        PerWorker { sets: Mutex::new(Vec::new()) }
    }
}

impl<T: Default> PerWorker<T> {
    /// A new set for one worker (called once per worker, at startup).
    pub fn register(&self) -> Arc<T> {
        let set = Arc::new(T::default());
        if let Ok(mut sets) = self.sets.lock() {
            sets.push(set.clone());
        }
        set
    }

    /// The sum over every worker of what `read` takes from a set.
    pub fn sum(&self, read: impl Fn(&T) -> u64) -> u64 {
        self.sets.lock().map(|sets| sets.iter().map(|s| read(s)).sum()).unwrap_or(0)
    }
}
