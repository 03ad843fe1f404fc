//! The JSON documents of `/config_dump` (built once, at start) and `/clusters` (built per
//! request from the shared cluster state).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::ProxyConfig;
use crate::plan::Shared;
use crate::upstream::{ClusterSpec, Resource, SharedCluster};

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn optional(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| Value::String(duration(d)))
}

/// A cluster's settings in force, defaults included.
fn cluster_spec(c: &ClusterSpec) -> Value {
    json!({
        "name": &*c.name,
        "lb": c.lb.as_str(),
        "connect_timeout": duration(c.connect_timeout),
        "endpoints": c.endpoints.iter().map(|e| json!({"address": e.address.to_string(), "labels": e.labels})).collect::<Vec<_>>(),
        "dns": c.dns.as_ref().map(|d| json!({"address": d.address, "refresh": duration(d.refresh), "labels": d.labels})),
        "subsets": c.subsets,
        "connections_per_endpoint": c.connections_per_endpoint,
        "circuit_breakers": {
            "max_connections": c.limits.max_connections,
            "max_pending_requests": c.limits.max_pending_requests,
            "max_requests": c.limits.max_requests,
        },
        "health_check": c.health_check.as_ref().map(|h| json!({
            "interval": duration(h.interval),
            "timeout": duration(h.timeout),
            "unhealthy_threshold": h.unhealthy_threshold,
            "healthy_threshold": h.healthy_threshold,
            "kind": h.kind.as_str(),
            "request_bytes": h.request.as_ref().map(|r| r.len()),
        })),
        "outlier_detection": c.outlier_detection.map(|o| json!({
            "consecutive_5xx": o.consecutive_errors,
            "interval": duration(o.interval),
            "base_ejection_time": duration(o.base_ejection_time),
            "max_ejection_percent": o.max_ejection_percent,
        })),
        "healthy_panic_threshold": c.healthy_panic_threshold,
    })
}

/// `/config_dump`: the configuration's version (hash and load time), the file as written
/// (`config`), and the settings in force with every default filled in (`effective`), each
/// listener with the address it is bound to.
pub fn config_dump(config: &ProxyConfig, bound: &[SocketAddr]) -> Value {
    let listeners: Vec<Value> = config
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "name": &*l.name,
                "address": l.address.to_string(),
                "bound": bound.get(i).map(ToString::to_string),
                "protocol": l.protocol.name(),
                "filters": l.filters.len(),
                "routes": l.routes.len(),
                "max_requests_per_connection": l.max_requests_per_connection,
                "idle_timeout": optional(l.idle_timeout),
                "frame_timeout": optional(l.frame_timeout),
                "max_connections": l.max_connections,
                "max_buffered_bytes": l.max_buffered_bytes,
            })
        })
        .collect();
    json!({
        "version": {
            "hash": config.version.hash,
            "loaded_at": config.version.loaded_at_rfc3339(),
        },
        "config": config.source,
        "effective": {
            "admin": config.admin.map(|a| a.to_string()),
            "workers": config.workers,
            "drain_timeout": duration(config.drain_timeout),
            "listeners": listeners,
            "clusters": config.clusters.iter().map(cluster_spec).collect::<Vec<_>>(),
        },
    })
}

/// One cluster's live state.
fn cluster_state(c: &SharedCluster) -> Value {
    let now = c.now_ms();
    let set = c.endpoints();
    let endpoints: Vec<Value> = set
        .endpoints
        .iter()
        .map(|e| {
            let ejected = e.ejected_until(now);
            json!({
                "address": e.address.to_string(),
                "labels": e.labels,
                "health": e.health().as_str(),
                "available": SharedCluster::is_available(e, now),
                "ejected": ejected.is_some(),
                "ejected_for_ms": ejected.map(|until| until - now),
                "ejections": e.ejections(),
                "consecutive_errors": e.consecutive_errors(),
                "open_connections": e.open_connections.load(Ordering::Acquire),
                "requests_in_flight": e.requests_in_flight(),
            })
        })
        .collect();
    json!({
        "name": c.name(),
        "lb": c.spec.lb.as_str(),
        "health_check": c.spec.health_check.is_some(),
        "outlier_detection": c.spec.outlier_detection.is_some(),
        "healthy_panic_threshold": c.spec.healthy_panic_threshold,
        "open_connections": c.open_connections(),
        "requests_in_flight": c.breaker.in_use(Resource::Requests),
        "ejections_active": c.ejected_now(),
        "endpoints": endpoints,
    })
}

/// `/clusters`: every cluster, in configuration order, with its endpoints' state.
pub fn clusters(shared: &Shared) -> Value {
    json!({ "clusters": shared.clusters.iter().map(|c| cluster_state(c)).collect::<Vec<_>>() })
}
