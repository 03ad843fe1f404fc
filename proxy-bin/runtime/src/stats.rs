//! Counters the proxy keeps, named as Envoy names them where Envoy has the statistic.
//!
//! Each worker owns its own set of counters per listener and per cluster and is the only thread
//! that writes them: an increment is a plain load and store, not a locked read-modify-write, so
//! counting costs nothing measurable and no cache line moves between cores. The admin endpoint
//! sums the sets of every worker when it is scraped.
//!
//! Latencies go into [`Histogram`]s of the same kind: fixed buckets of single-writer counters per
//! worker, merged bucket by bucket at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metaprotocol_core::{ReplyKind, ResponseStatus};

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

/// Upper bounds of the latency histograms' buckets, in microseconds: Envoy's default bounds
/// (0.5 ms to 1 h), the last bucket (`+Inf`) implied.
pub const LATENCY_BOUNDS_US: [u64; 19] = [
    500,
    1_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
    600_000_000,
    1_800_000_000,
    3_600_000_000,
];

/// A latency histogram written by one thread and read by any: a count per bucket of
/// [`LATENCY_BOUNDS_US`] (the last one past every bound) and the sum, each a single-writer
/// counter. Recording is a binary search over 19 bounds and two load-and-store pairs.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; LATENCY_BOUNDS_US.len() + 1],
    sum_us: Counter,
}

impl Histogram {
    /// Records `elapsed`. Only the owning worker calls this.
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US.partition_point(|bound| *bound < us);
        if let Some(b) = self.buckets.get(bucket) {
            b.inc();
        }
        self.sum_us.add(us);
    }

    /// Adds this histogram's current counts into `into`.
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        for (total, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *total += b.get();
        }
        into.sum_us += self.sum_us.get();
    }
}

/// Histograms of several workers added up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Count per bucket (not cumulative), the last one past every bound.
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    /// Sum of the recorded values, in microseconds.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    /// Values recorded: the sum of the buckets (so that it always equals the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The classes of answers a listener sends, by what the answer reports (Aeraki's
/// `response_success`, `response_error`, `response_business_exception`).
pub const RESPONSE_CLASSES: [&str; 3] = ["success", "error", "business_exception"];

/// The index in [`RESPONSE_CLASSES`] of an answer with `status`.
pub fn response_class(status: ResponseStatus) -> usize {
    match status {
        ResponseStatus::Ok => 0,
        ResponseStatus::Error => 1,
        ResponseStatus::BusinessException => 2,
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
    /// Answers sent to clients, upstream answers and local replies, by class (indexed like
    /// [`RESPONSE_CLASSES`]; a local reply is an error).
    pub responses_by_class: [Counter; RESPONSE_CLASSES.len()],
    /// Time from a request's decode to its end (answer encoded for the client, one-way request
    /// forwarded, local reply), Envoy's `downstream_rq_time`.
    pub downstream_rq_time: Histogram,
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
    /// Time from a try's encode into the upstream connection to its answer (`upstream_rq_time`).
    pub upstream_rq_time: Histogram,
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

    /// The histogram `read` takes from each worker's set, added up.
    pub fn histogram(&self, read: impl Fn(&T) -> &Histogram) -> HistogramSnapshot {
        let mut total = HistogramSnapshot::default();
        if let Ok(sets) = self.sets.lock() {
            for s in sets.iter() {
                read(s).add_to(&mut total);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_by_upper_bound_and_merge_over_workers() {
        let workers: PerWorker<ClusterStats> = PerWorker::default();
        let (a, b) = (workers.register(), workers.register());
        a.upstream_rq_time.record(Duration::from_micros(500));
        a.upstream_rq_time.record(Duration::from_micros(501));
        b.upstream_rq_time.record(Duration::from_secs(2 * 3600));
        b.upstream_rq_time.record(Duration::ZERO);
        let h = workers.histogram(|s| &s.upstream_rq_time);
        assert_eq!(h.count(), 4);
        assert_eq!(h.buckets[0], 2, "a value equal to a bound is in its bucket");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[LATENCY_BOUNDS_US.len()], 1, "past every bound");
        assert_eq!(h.sum_us, 500 + 501 + 7_200_000_000);
    }
}
