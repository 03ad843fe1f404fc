//! Counters of a listener, exported by the admin endpoint in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use metaprotocol_core::ReplyKind;

/// What a listener has done.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Requests decoded (two-way and one-way).
    pub requests: AtomicU64,
    /// Upstream responses written to clients.
    pub responses: AtomicU64,
    /// One-way requests forwarded.
    pub oneway: AtomicU64,
    /// Requests dropped by a filter.
    pub dropped: AtomicU64,
    /// Local replies, by kind (indexed like [`ReplyKind::ALL`]).
    pub local_replies: [AtomicU64; ReplyKind::ALL.len()],
}

impl ListenerStats {
    /// Counts a local reply of `kind`.
    pub fn local_reply(&self, kind: ReplyKind) {
        if let Some(i) = ReplyKind::ALL.iter().position(|k| *k == kind) {
            if let Some(c) = self.local_replies.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Appends one listener's series to a Prometheus exposition.
pub fn render(out: &mut String, listener: &str, s: &ListenerStats) {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(out, "metaproxy_requests_total{{listener=\"{listener}\"}} {}", get(&s.requests));
    for (outcome, n) in [("response", get(&s.responses)), ("sent_oneway", get(&s.oneway)), ("dropped", get(&s.dropped))]
    {
        let _ = writeln!(out, "metaproxy_request_outcomes_total{{listener=\"{listener}\",outcome=\"{outcome}\"}} {n}");
    }
    for (kind, n) in ReplyKind::ALL.iter().zip(s.local_replies.iter()) {
        let _ = writeln!(out, "metaproxy_local_replies_total{{listener=\"{listener}\",kind=\"{kind}\"}} {}", get(n));
    }
}
