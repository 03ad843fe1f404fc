//! The life of one request after decoding: filters, routing, the upstream call with its timeout
//! and retries, then response filters. Runs as a future polled by its downstream connection, so
//! many requests of one connection proceed at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metaprotocol_core::{
    ChainOutcome, LocalReply, Message, MessageType, Metadata, ReplyKind, RequestContext, RouteDecision,
};

use super::ListenerRuntime;
use crate::upstream::{PickError, UpstreamError};

/// Applied when a route sets no timeout (Envoy's default), so that no request waits forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How a request ended.
#[derive(Debug)]
pub enum Outcome {
    /// The upstream answered (with the client's request id restored).
    Response(Message),
    /// The proxy answers instead.
    Local(LocalReply),
    /// A one-way request was forwarded.
    Sent,
    /// A filter asked to drop the request and close the connection.
    Dropped,
}

/// A finished request: its context (for the response mutation, logs and `on_complete`), the
/// outcome, and the upstream it went to.
#[derive(Debug)]
pub struct Finished {
    /// The request's context.
    pub ctx: RequestContext,
    /// How it ended.
    pub outcome: Outcome,
    /// The endpoint that served it, if any.
    pub upstream: Option<SocketAddr>,
}

/// Moves the key/values out of `message` into a context; the message keeps what encoding needs
/// (frame, layout, type, id).
pub fn split(mut message: Message, peer: Option<SocketAddr>) -> (RequestContext, Message) {
    let light = Metadata::new(message.metadata.message_type, message.metadata.request_id);
    let metadata = std::mem::replace(&mut message.metadata, light);
    let mut ctx = RequestContext::new(metadata);
    ctx.downstream_addr = peer;
    (ctx, message)
}

/// Handles one request to its end.
pub async fn handle(listener: Arc<ListenerRuntime>, mut ctx: RequestContext, message: Message) -> Finished {
    let mut upstream = None;
    let outcome = run(&listener, &mut ctx, message, &mut upstream).await;
    let outcome = match outcome {
        Outcome::Response(mut response) if !listener.spec.filters.is_empty() => {
            // Response filters see the response's metadata; the message keeps what encoding needs.
            let light = Metadata::new(response.metadata.message_type, response.metadata.request_id);
            ctx.response = Some(std::mem::replace(&mut response.metadata, light));
            match listener.spec.filters.on_response(&mut ctx).await {
                ChainOutcome::Continue => Outcome::Response(response),
                ChainOutcome::Reply { reply, .. } => Outcome::Local(reply),
                ChainOutcome::Drop { .. } => Outcome::Dropped,
            }
        }
        other => other,
    };
    if let Outcome::Local(reply) = &outcome {
        ctx.local_reply = Some(reply.clone());
    }
    Finished { ctx, outcome, upstream }
}

async fn run(
    listener: &ListenerRuntime,
    ctx: &mut RequestContext,
    message: Message,
    upstream: &mut Option<SocketAddr>,
) -> Outcome {
    match listener.spec.filters.on_request(ctx).await {
        ChainOutcome::Continue => {}
        ChainOutcome::Reply { reply, .. } => return Outcome::Local(reply),
        ChainOutcome::Drop { .. } => return Outcome::Dropped,
    }
    if ctx.route.is_none() {
        let Some(route) = listener.spec.routes.find(&ctx.request) else {
            return Outcome::Local(LocalReply::new(ReplyKind::RouteNotFound, "no route matched the request"));
        };
        let destination = route.pick(fastrand::u64(..)).clone();
        ctx.route = Some(RouteDecision { route: route.clone(), destination });
    }
    let Some(decision) = ctx.route.clone() else {
        return Outcome::Local(LocalReply::new(ReplyKind::RouteNotFound, "no route"));
    };
    let route = &decision.route;
    if !route.request_mutation.is_empty() {
        ctx.request_mutation.extend_from(&route.request_mutation);
    }
    let Some(cluster) = listener.clusters.get(&decision.destination.cluster) else {
        return Outcome::Local(LocalReply::new(
            ReplyKind::ClusterNotFound,
            format!("cluster `{}` does not exist", decision.destination.cluster),
        ));
    };
    let oneway = message.metadata.message_type == MessageType::Oneway;
    if let Some(mirror) = route.mirror_for(fastrand::u64(..)) {
        if let Some(target) = listener.clusters.get(&mirror.cluster).cloned() {
            let (copy, mutation, subset) = (message.clone(), ctx.request_mutation.clone(), mirror.subset.clone());
            tokio::spawn(async move {
                let _guard = target.breaker.request();
                if let Ok(endpoint) = target.pick(subset.as_deref(), None, fastrand::u64(..)) {
                    let _ = tokio::time::timeout(DEFAULT_TIMEOUT, endpoint.pool.send(copy, mutation, !oneway)).await;
                }
            });
        }
    }
    let Some(_in_flight) = cluster.breaker.request() else {
        return Outcome::Local(LocalReply::new(
            ReplyKind::OverLimit,
            format!("cluster `{}`: too many requests in flight", cluster.spec.name),
        ));
    };
    let hash = route.hash(&ctx.request);
    let subset = decision.destination.subset.as_deref();
    let tries = if oneway { 1 } else { 1 + route.retries.count };
    let call = async {
        let mut last = UpstreamError::Reset;
        for attempt in 0..tries {
            let endpoint = match cluster.pick(subset, hash, fastrand::u64(..)) {
                Ok(e) => e,
                Err(PickError::NoEndpoints) => {
                    return Err(LocalReply::new(
                        ReplyKind::NoHealthyUpstream,
                        format!("cluster `{}` has no endpoint for this request", cluster.spec.name),
                    ));
                }
            };
            *upstream = Some(endpoint.address);
            // The message carries no key/values (they are in the context): cloning it copies no
            // bytes and allocates nothing, the frame is shared.
            let msg = message.clone();
            endpoint.inflight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sent = endpoint.pool.send(msg, ctx.request_mutation.clone(), !oneway);
            let result = match route.retries.per_try_timeout {
                Some(t) => tokio::time::timeout(t, sent).await.unwrap_or(Err(UpstreamError::PerTryTimeout)),
                None => sent.await,
            };
            endpoint.inflight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            match result {
                Ok(Some(response)) => return Ok(Outcome::Response(response)),
                Ok(None) => return Ok(Outcome::Sent),
                Err(e) => {
                    if matches!(e, UpstreamError::ConnectFailure(..)) {
                        cluster.eject(&endpoint);
                    }
                    let retry = e.retry_on().is_some_and(|on| route.retries.retries_on(on)) && attempt + 1 < tries;
                    tracing::debug!(error = %e, attempt, retry, "upstream try failed");
                    last = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(LocalReply::new(last.reply_kind(), last.to_string()))
    };
    let timeout = route.timeout.unwrap_or(DEFAULT_TIMEOUT);
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(reply)) => Outcome::Local(reply),
        Err(_) => Outcome::Local(LocalReply::new(ReplyKind::Timeout, format!("no response within {timeout:?}"))),
    }
}
