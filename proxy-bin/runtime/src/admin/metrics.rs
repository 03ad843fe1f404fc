//! The Prometheus exposition of the proxy's counters, summed over workers.
//!
//! Every family is written whole (its `# HELP` and `# TYPE` lines, then every sample of it)
//! before the next one starts: the text format requires a family's samples to be contiguous.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use metaprotocol_core::ReplyKind;

use super::AdminState;
use crate::stats::{ClusterStats, Counter, Gauge, ListenerStats};
use crate::upstream::Resource;

/// One family: its name, help, type, and samples as `(labels, value)`.
fn family(out: &mut String, name: &str, help: &str, kind: &str, samples: impl IntoIterator<Item = (String, u64)>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

type ListenerCounter = fn(&ListenerStats) -> &Counter;
type ClusterCounter = fn(&ClusterStats) -> &Counter;

const LISTENER_COUNTERS: [(&str, &str, ListenerCounter); 7] = [
    ("metaproxy_downstream_cx_total", "Downstream connections accepted.", |s| &s.downstream_cx_total),
    ("metaproxy_downstream_rq_total", "Requests decoded from clients (two-way and one-way).", |s| {
        &s.downstream_rq_total
    }),
    ("metaproxy_downstream_malformed_total", "Malformed frames received from clients.", |s| &s.malformed),
    ("metaproxy_downstream_cx_overflow", "Connections closed at once: the listener had max_connections open.", |s| {
        &s.downstream_cx_overflow
    }),
    ("metaproxy_downstream_cx_idle_timeout", "Connections closed by idle_timeout.", |s| &s.downstream_cx_idle_timeout),
    (
        "metaproxy_downstream_cx_frame_timeout",
        "Connections closed because a frame was not whole within frame_timeout.",
        |s| &s.downstream_cx_frame_timeout,
    ),
    (
        "metaproxy_downstream_cx_overload",
        "Connections closed, their incomplete frame refused: read buffers over max_buffered_bytes.",
        |s| &s.downstream_cx_overload,
    ),
];

const CLUSTER_COUNTERS: [(&str, &str, ClusterCounter); 11] = [
    ("metaproxy_upstream_cx_total", "Upstream connections opened.", |s| &s.upstream_cx_total),
    ("metaproxy_upstream_cx_connect_fail", "Upstream connection attempts that failed.", |s| {
        &s.upstream_cx_connect_fail
    }),
    ("metaproxy_upstream_cx_connect_timeout", "Upstream connection attempts that timed out.", |s| {
        &s.upstream_cx_connect_timeout
    }),
    ("metaproxy_upstream_cx_destroy_with_active_rq", "Upstream connections closed with requests in flight.", |s| {
        &s.upstream_cx_destroy_with_active_rq
    }),
    ("metaproxy_upstream_cx_overflow", "Upstream connections refused by max_connections.", |s| &s.upstream_cx_overflow),
    ("metaproxy_upstream_rq_total", "Requests sent upstream (retries and mirrors included).", |s| &s.upstream_rq_total),
    ("metaproxy_upstream_rq_pending_overflow", "Requests refused by max_requests or max_pending_requests.", |s| {
        &s.upstream_rq_pending_overflow
    }),
    ("metaproxy_upstream_rq_timeout", "Requests that timed out.", |s| &s.upstream_rq_timeout),
    ("metaproxy_upstream_rq_per_try_timeout", "Tries that timed out.", |s| &s.upstream_rq_per_try_timeout),
    ("metaproxy_upstream_rq_retry", "Retries.", |s| &s.upstream_rq_retry),
    ("metaproxy_upstream_rq_mirrored", "Mirrored copies sent.", |s| &s.upstream_rq_mirrored),
];

/// The exposition of `state`.
pub fn render(state: &AdminState) -> String {
    let mut out = String::with_capacity(8192);
    let listeners = &state.shared.listener_stats;
    for (name, help, counter) in LISTENER_COUNTERS {
        let samples =
            listeners.iter().map(|(l, s)| (format!("listener=\"{}\"", label(l)), s.sum(|x| counter(x).get())));
        family(&mut out, name, help, "counter", samples);
    }
    let gauge = |g: fn(&ListenerStats) -> &Gauge| {
        listeners
            .iter()
            .map(move |(l, s)| (format!("listener=\"{}\"", label(l)), s.sum(|x| g(x).get())))
            .collect::<Vec<_>>()
    };
    family(
        &mut out,
        "metaproxy_downstream_cx_active",
        "Open client connections.",
        "gauge",
        gauge(|s| &s.downstream_cx_active),
    );
    family(
        &mut out,
        "metaproxy_downstream_rq_active",
        "Requests in flight.",
        "gauge",
        gauge(|s| &s.downstream_rq_active),
    );
    let outcomes = listeners.iter().flat_map(|(l, s)| {
        [
            ("response", s.sum(|x| x.responses.get())),
            ("sent_oneway", s.sum(|x| x.oneway.get())),
            ("dropped", s.sum(|x| x.dropped.get())),
        ]
        .map(|(o, n)| (format!("listener=\"{}\",outcome=\"{o}\"", label(l)), n))
    });
    family(
        &mut out,
        "metaproxy_request_outcomes_total",
        "How requests ended, other than local replies.",
        "counter",
        outcomes,
    );
    let replies = listeners.iter().flat_map(|(l, s)| {
        ReplyKind::ALL.iter().enumerate().map(move |(i, kind)| {
            (
                format!("listener=\"{}\",kind=\"{kind}\"", label(l)),
                s.sum(|x| x.local_replies.get(i).map_or(0, Counter::get)),
            )
        })
    });
    family(&mut out, "metaproxy_local_replies_total", "Error replies made by the proxy, by kind.", "counter", replies);
    let clusters = &state.shared.clusters;
    for (name, help, counter) in CLUSTER_COUNTERS {
        let samples =
            clusters.iter().map(|c| (format!("cluster=\"{}\"", label(c.name())), c.stats.sum(|x| counter(x).get())));
        family(&mut out, name, help, "counter", samples);
    }
    let connections =
        clusters.iter().map(|c| (format!("cluster=\"{}\"", label(c.name())), c.open_connections() as u64));
    family(&mut out, "metaproxy_upstream_cx_active", "Open upstream connections.", "gauge", connections);
    let in_flight = clusters
        .iter()
        .map(|c| (format!("cluster=\"{}\"", label(c.name())), c.breaker.in_use(Resource::Requests) as u64));
    family(&mut out, "metaproxy_upstream_rq_active", "Requests in flight to a cluster.", "gauge", in_flight);
    let open = state.downstream.load(Ordering::Acquire) as u64;
    family(
        &mut out,
        "metaproxy_downstream_connections",
        "Open client connections, all listeners.",
        "gauge",
        [(String::new(), open)],
    );
    let log = &state.access_log;
    let lines = [("written", log.lines_written()), ("dropped", log.lines_dropped())]
        .map(|(r, n)| (format!("result=\"{r}\""), n));
    family(&mut out, "metaproxy_access_log_lines_total", "Access log lines written or dropped.", "counter", lines);
    out
}
