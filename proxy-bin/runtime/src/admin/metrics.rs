//! `/metrics`: the Prometheus text exposition (format 0.0.4), written by the `prometheus-client`
//! crate from one custom [`Collector`] that reads the proxy's own counters at scrape time.
//!
//! The request path keeps its per-worker single-writer counters and histograms
//! ([`crate::stats`]); the collector sums every worker's set for each series when scraped, and
//! merges the histograms bucket by bucket. Nothing on the request path knows about Prometheus.
//!
//! Names are those the proxy always exported. `prometheus-client` gives every counter a `_total`
//! suffix: a counter that always had one is exported byte for byte as before (family
//! `metaproxy_upstream_rq` gives `metaproxy_upstream_rq_total`); one that had none (such as
//! `metaproxy_upstream_rq_retry`) is exported twice, as the counter `..._total` and, under its
//! old name, as an untyped series with the same value, so that dashboards and scripts written
//! against the old names keep working. `docs/METRICS.md` lists every family and its Envoy and
//! Aeraki equivalents.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use metaprotocol_core::ReplyKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::AdminState;
use crate::stats::{
    ClusterStats, Counter, Gauge, HistogramSnapshot, ListenerStats, LATENCY_BOUNDS_US, RESPONSE_CLASSES,
};
use crate::upstream::{Resource, SharedCluster};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Renders the exposition of an [`AdminState`].
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    /// An exporter of `state`'s counters.
    pub fn new(state: Arc<AdminState>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProxyCollector(state)));
        Exporter { registry }
    }

    /// The exposition now.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Reads the proxy's counters at scrape time.
#[derive(Debug)]
struct ProxyCollector(Arc<AdminState>);

/// A series' labels.
type Labels = Vec<(&'static str, String)>;

/// One family: the descriptor, then every sample.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let mut series = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => series.encode_counter::<NoLabelSet, u64, u64>(&value, None)?,
            _ => series.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// A counter under its old name: as the typed counter `{name}_total`, and when the old name had
/// no `_total` suffix, also as the old untyped series.
fn counter(enc: &mut DescriptorEncoder<'_>, old_name: &str, help: &str, samples: Vec<(Labels, u64)>) -> fmt::Result {
    match old_name.strip_suffix("_total") {
        Some(base) => family(enc, base, help, MetricType::Counter, samples),
        None => {
            family(enc, old_name, help, MetricType::Counter, samples.clone())?;
            let legacy = format!("{help} (The old name of {old_name}_total, untyped.)");
            family(enc, old_name, &legacy, MetricType::Unknown, samples)
        }
    }
}

/// A latency histogram per label set, in milliseconds.
fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, HistogramSnapshot)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in samples {
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_US
            .iter()
            .map(|us| *us as f64 / 1000.0)
            .chain(std::iter::once(f64::INFINITY))
            .zip(h.buckets.iter().copied())
            .collect();
        metric.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            h.sum_us as f64 / 1000.0,
            h.count(),
            &buckets,
            None,
        )?;
    }
    Ok(())
}

type ListenerCounter = fn(&ListenerStats) -> &Counter;
type ListenerGauge = fn(&ListenerStats) -> &Gauge;
type ClusterCounter = fn(&ClusterStats) -> &Counter;
type ClusterEvent = fn(&SharedCluster) -> u64;

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

const CLUSTER_COUNTERS: [(&str, &str, ClusterCounter); 12] = [
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
    ("metaproxy_upstream_rq_mirror_overflow_total", "Mirrored copies not sent: a circuit breaker was open.", |s| {
        &s.upstream_rq_mirror_overflow
    }),
];

const CLUSTER_EVENTS: [(&str, &str, ClusterEvent); 4] = [
    ("metaproxy_outlier_detection_ejections_enforced", "Endpoints ejected by outlier detection.", |c| {
        c.events.ejections_enforced.load(Ordering::Relaxed)
    }),
    (
        "metaproxy_outlier_detection_ejections_overflow",
        "Ejections not enforced: max_ejection_percent of the cluster was ejected already.",
        |c| c.events.ejections_overflow.load(Ordering::Relaxed),
    ),
    ("metaproxy_health_check_success", "Active health checks passed.", |c| {
        c.events.health_check_success.load(Ordering::Relaxed)
    }),
    ("metaproxy_health_check_failure", "Active health checks failed.", |c| {
        c.events.health_check_failure.load(Ordering::Relaxed)
    }),
];

impl Collector for ProxyCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let state = &self.0;
        let listeners = state.shared.listener_stats.read().map(|l| l.clone()).unwrap_or_default();
        let by_listener = |l: &str| vec![("listener", l.to_string())];
        for (name, help, read) in LISTENER_COUNTERS {
            let samples = listeners.iter().map(|(l, s)| (by_listener(l), s.sum(|x| read(x).get()))).collect();
            counter(&mut enc, name, help, samples)?;
        }
        let gauges: [(&str, &str, ListenerGauge); 2] = [
            ("metaproxy_downstream_cx_active", "Open client connections.", |s| &s.downstream_cx_active),
            ("metaproxy_downstream_rq_active", "Requests in flight.", |s| &s.downstream_rq_active),
        ];
        for (name, help, read) in gauges {
            let samples = listeners.iter().map(|(l, s)| (by_listener(l), s.sum(|x| read(x).get())));
            family(&mut enc, name, help, MetricType::Gauge, samples)?;
        }
        let outcomes = listeners.iter().flat_map(|(l, s)| {
            [
                ("response", s.sum(|x| x.responses.get())),
                ("sent_oneway", s.sum(|x| x.oneway.get())),
                ("dropped", s.sum(|x| x.dropped.get())),
            ]
            .map(|(o, n)| (vec![("listener", l.to_string()), ("outcome", o.to_string())], n))
        });
        counter(
            &mut enc,
            "metaproxy_request_outcomes_total",
            "How requests ended, other than local replies.",
            outcomes.collect(),
        )?;
        let replies = listeners.iter().flat_map(|(l, s)| {
            ReplyKind::ALL.iter().enumerate().map(move |(i, kind)| {
                (
                    vec![("listener", l.to_string()), ("kind", kind.to_string())],
                    s.sum(|x| x.local_replies.get(i).map_or(0, Counter::get)),
                )
            })
        });
        counter(
            &mut enc,
            "metaproxy_local_replies_total",
            "Error replies made by the proxy, by kind.",
            replies.collect(),
        )?;
        let classes = listeners.iter().flat_map(|(l, s)| {
            RESPONSE_CLASSES.iter().enumerate().map(move |(i, class)| {
                (
                    vec![("listener", l.to_string()), ("class", class.to_string())],
                    s.sum(|x| x.responses_by_class.get(i).map_or(0, Counter::get)),
                )
            })
        });
        counter(
            &mut enc,
            "metaproxy_downstream_rq_responses_total",
            "Answers sent to clients (upstream answers and local replies), by what they report.",
            classes.collect(),
        )?;
        histogram(
            &mut enc,
            "metaproxy_downstream_rq_time",
            "Time from a request's decode to its end, in milliseconds.",
            listeners.iter().map(|(l, s)| (by_listener(l), s.histogram(|x| &x.downstream_rq_time))),
        )?;

        let clusters = &state.shared.clusters;
        let by_cluster = |c: &SharedCluster| vec![("cluster", c.name().to_string())];
        for (name, help, read) in CLUSTER_COUNTERS {
            let samples = clusters.iter().map(|c| (by_cluster(c), c.stats.sum(|x| read(x).get()))).collect();
            counter(&mut enc, name, help, samples)?;
        }
        let connections = clusters.iter().map(|c| (by_cluster(c), c.open_connections() as u64));
        family(&mut enc, "metaproxy_upstream_cx_active", "Open upstream connections.", MetricType::Gauge, connections)?;
        let in_flight = clusters.iter().map(|c| (by_cluster(c), c.breaker.in_use(Resource::Requests) as u64));
        family(
            &mut enc,
            "metaproxy_upstream_rq_active",
            "Requests in flight to a cluster.",
            MetricType::Gauge,
            in_flight,
        )?;
        histogram(
            &mut enc,
            "metaproxy_upstream_rq_time",
            "Time from a try's send to its answer, in milliseconds.",
            clusters.iter().map(|c| (by_cluster(c), c.stats.histogram(|x| &x.upstream_rq_time))),
        )?;
        for (name, help, read) in CLUSTER_EVENTS {
            family(&mut enc, name, help, MetricType::Counter, clusters.iter().map(|c| (by_cluster(c), read(c))))?;
        }
        let ejected = clusters.iter().map(|c| (by_cluster(c), c.ejected_now() as u64));
        family(
            &mut enc,
            "metaproxy_outlier_detection_ejections_active",
            "Endpoints ejected now.",
            MetricType::Gauge,
            ejected,
        )?;
        let available = clusters.iter().map(|c| {
            let now = c.now_ms();
            let n = c.endpoints().endpoints.iter().filter(|e| SharedCluster::is_available(e, now)).count();
            (by_cluster(c), n as u64)
        });
        family(
            &mut enc,
            "metaproxy_membership_healthy",
            "Endpoints load balancing may pick: not unhealthy, not ejected.",
            MetricType::Gauge,
            available,
        )?;
        let members = clusters.iter().map(|c| (by_cluster(c), c.endpoints().endpoints.len() as u64));
        family(&mut enc, "metaproxy_membership_total", "Endpoints of the cluster.", MetricType::Gauge, members)?;

        let open = state.downstream.load(Ordering::Acquire) as u64;
        family(
            &mut enc,
            "metaproxy_downstream_connections",
            "Open client connections, all listeners.",
            MetricType::Gauge,
            [(Labels::new(), open)],
        )?;
        let log = &state.access_log;
        let lines = [("written", log.lines_written()), ("dropped", log.lines_dropped())]
            .map(|(r, n)| (vec![("result", r.to_string())], n));
        counter(&mut enc, "metaproxy_access_log_lines_total", "Access log lines written or dropped.", lines.to_vec())?;
        let mut info = enc.encode_descriptor(
            "metaproxy_config",
            "The running configuration: its version, a hash of the file's text.",
            None,
            MetricType::Info,
        )?;
        let version = state.live.read().map(|l| l.version.clone()).unwrap_or_default();
        info.encode_info(&[("version", version.as_str())])?;
        let reloads = [("success", &state.reloads.success), ("rejected", &state.reloads.rejected)]
            .map(|(r, n)| (vec![("result", r.to_string())], n.load(Ordering::Relaxed)));
        counter(
            &mut enc,
            "metaproxy_config_reloads_total",
            "Configuration reloads applied (success) or rejected, the running one kept (rejected).",
            reloads.to_vec(),
        )?;
        state.shared.tracing.encode_metrics(&mut enc)?;
        Ok(())
    }
}
