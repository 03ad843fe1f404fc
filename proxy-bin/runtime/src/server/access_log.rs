//! The access log: one line per finished request, as `key=value` text or JSON, through `tracing`
//! (target `metaproxy::access`).

use std::fmt::Write as _;

use serde::Serialize;

use super::request::{Finished, Outcome};
use crate::config::model::{AccessLogConfig, AccessLogFormat};

#[derive(Serialize)]
struct Line<'a> {
    listener: &'a str,
    downstream: Option<String>,
    operation: String,
    request_id: u64,
    message_type: &'static str,
    route: Option<&'a str>,
    cluster: Option<&'a str>,
    subset: Option<&'a str>,
    upstream: Option<String>,
    outcome: &'static str,
    reply: Option<&'a str>,
    duration_us: u128,
}

/// Writes the access log line of `finished`, if enabled.
pub fn log(config: &AccessLogConfig, listener: &str, finished: &Finished) {
    if !config.enabled || !tracing::enabled!(target: "metaproxy::access", tracing::Level::INFO) {
        return;
    }
    let ctx = &finished.ctx;
    let decision = ctx.route.as_ref();
    let line = Line {
        listener,
        downstream: ctx.downstream_addr.map(|a| a.to_string()),
        operation: ctx.request.operation().to_string(),
        request_id: ctx.request.request_id,
        message_type: ctx.request.message_type.as_str(),
        route: decision.map(|d| &*d.route.name),
        cluster: decision.map(|d| &*d.destination.cluster),
        subset: decision.and_then(|d| d.destination.subset.as_deref()),
        upstream: finished.upstream.map(|a| a.to_string()),
        outcome: match &finished.outcome {
            Outcome::Response(_) => "response",
            Outcome::Local(_) => "local_reply",
            Outcome::Sent => "sent_oneway",
            Outcome::Dropped => "dropped",
        },
        reply: ctx.local_reply.as_ref().map(|r| r.kind.as_str()),
        duration_us: ctx.started_at.elapsed().as_micros(),
    };
    let text = match config.format {
        AccessLogFormat::Json => serde_json::to_string(&line).unwrap_or_default(),
        AccessLogFormat::Text => {
            let mut s = String::with_capacity(160);
            let _ = write!(s, "listener={} downstream={} op={} id={} type={} route={} cluster={} subset={} upstream={} outcome={} reply={} duration_us={}",
                line.listener, line.downstream.as_deref().unwrap_or("-"), line.operation, line.request_id, line.message_type,
                line.route.unwrap_or("-"), line.cluster.unwrap_or("-"), line.subset.unwrap_or("-"),
                line.upstream.as_deref().unwrap_or("-"), line.outcome, line.reply.unwrap_or("-"), line.duration_us);
            s
        }
    };
    tracing::info!(target: "metaproxy::access", "{text}");
}
