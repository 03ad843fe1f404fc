//! Tracing on the request path: what a sampled request records in its [`Exchange`], and the
//! spans it hands to its worker's tracer.
//!
//! A listener without `tracing` has no tracer, and every hook below is behind one
//! `Option` check at its call site. With a tracer:
//!
//! * **start** (`trace_start`, when a request is decoded): the caller's context is read from the
//!   request's key/values (Dubbo attachments, THeader headers, the `framed` codec's keys) and the
//!   request is sampled (the caller's flag when it sent one, else `sample_ratio`); a sampled
//!   request gets an [`ExchangeTrace`] (boxed: one pointer in an unsampled exchange) holding its
//!   trace id, its server span id and its caller's span.
//! * **each try** (`trace_try_begin`, as the request is encoded upstream, retries, resends and
//!   mirrored copies included): a client span id, and a [`Mutation`] that sets `traceparent`
//!   (and `tracestate`, or B3's keys) to it, so that the provider sees the proxy's client span as
//!   its parent. `trace_try_end` records the try's client span when its answer comes or it fails.
//! * **end** (`trace_finish`, from `finish`): the try still open (a timeout, a one-way request)
//!   and the server span, with listener, operation, route, cluster, subset, upstream, outcome,
//!   status, request id and sizes.
//!
//! Finished spans are encoded into the worker's batch at once ([`WorkerTracer::push`]), borrowing
//! their fields from the exchange: no allocation, no lock, no channel per span, nothing that
//! waits.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use metaprotocol_core::{Codec, LocalReply, Metadata, Mutation, ResponseStatus};
use metaproxy_tracing::{
    context, new_span_id, Attributes, Operation, Propagation, SpanKind, SpanRecord, SpanStatus, WorkerTracer,
};

use super::engine::{Engine, Exchange, Outcome, Sink};
use super::listener::ListenerRt;
use crate::plan::{ListenerSpec, WorkerScope};
use crate::upstream::UpstreamError;

/// A sampled request's trace, kept in its exchange.
#[derive(Debug)]
pub(crate) struct ExchangeTrace {
    trace_id: u128,
    /// The proxy's server span for the request (0 for a mirrored copy, which has none).
    server_span: u64,
    /// The parent of the server span: the caller's span (0: the request started the trace).
    caller_span: u64,
    /// The parent of each try's client span: the server span (for a mirrored copy, the original
    /// request's server span).
    try_parent: u64,
    /// The caller's `tracestate` (valid, so ASCII text), forwarded unchanged.
    tracestate: Option<Bytes>,
    /// The request carries a `tracestate` that does not go with the context the proxy continues
    /// (its `traceparent` was invalid, or the context came in B3): removed from what goes upstream.
    drop_tracestate: bool,
    /// The request carries none of the keys the tracer writes (in any case): each try's context is
    /// added with [`Mutation::append`], which lets a codec add it without reading the request's
    /// key/value block.
    keys_absent: bool,
    /// The operation (`service/method`), the spans' name.
    op: Operation,
    /// The try in flight.
    open_try: Option<OpenTry>,
}

/// A try whose client span is not finished yet.
#[derive(Clone, Copy, Debug)]
struct OpenTry {
    span_id: u64,
    started: Instant,
    attempt: u32,
    upstream: SocketAddr,
}

/// How a try ended.
pub(crate) enum TryEnd<'a> {
    /// The upstream answered.
    Response(&'a Metadata),
    /// It failed (connect, reset, timeout, bad answer, encode).
    Failed(&'a UpstreamError),
    /// A one-way request: over once written.
    Sent,
    /// The request ended without an answer to this try (its timeout, the drain).
    Abandoned(Cow<'static, str>),
}

impl ExchangeTrace {
    /// The trace of a mirrored copy of the request traced by `self`: its tries are children of
    /// the original's server span, and it has no server span of its own.
    pub fn for_mirror(&self) -> Box<ExchangeTrace> {
        Box::new(ExchangeTrace {
            trace_id: self.trace_id,
            server_span: 0,
            caller_span: self.caller_span,
            try_parent: self.server_span,
            tracestate: self.tracestate.clone(),
            drop_tracestate: self.drop_tracestate,
            keys_absent: self.keys_absent,
            op: self.op.clone(),
            open_try: None,
        })
    }
}

/// The worker's tracer for `spec`, with a task that hands its partial batch to the exporter every
/// `flush_interval` (the last batch goes when the tracer is dropped with the worker).
pub(crate) fn worker_tracer(scope: &WorkerScope, spec: &ListenerSpec) -> Option<Rc<WorkerTracer>> {
    let tracer = Rc::new(scope.shared.tracing.for_listener(spec)?);
    let weak = Rc::downgrade(&tracer);
    let every = tracer.flush_interval();
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(tracer) => tracer.flush(),
                None => break,
            }
        }
    });
    Some(tracer)
}

/// The answer's status code, when its protocol has a numeric one (Dubbo's `status`).
fn response_code(response: &Metadata) -> Option<i64> {
    let code = response.kvs.get("status").filter(|c| !c.is_empty() && c.len() <= 18)?;
    code.iter().try_fold(0i64, |n, d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
}

/// A local reply as a span's status: `kind: message`.
fn reply_text(reply: &LocalReply) -> Cow<'static, str> {
    Cow::Owned(format!("{}: {}", reply.kind.as_str(), reply.message))
}

impl<C: Codec> Engine<C> {
    /// A decoded request's trace, when `listener` traces and the request is sampled.
    pub(crate) fn trace_start(&self, listener: &ListenerRt, request: &Metadata) -> Option<Box<ExchangeTrace>> {
        let tracer = listener.tracing.as_deref()?;
        let sampled = tracer.start(|key| request.kvs.get(key))?;
        let tracestate = match sampled.from {
            Some(Propagation::W3c) => request
                .kvs
                .get_shared("tracestate")
                .filter(|ts| !ts.trim_ascii().is_empty() && context::valid_tracestate(ts)),
            _ => None,
        };
        let drop_tracestate = tracestate.is_none()
            && tracer.propagation().contains(&Propagation::W3c)
            && request.kvs.contains("tracestate");
        let keys_absent = tracer.propagation().iter().all(|p| p.keys().iter().all(|k| !request.kvs.contains(k)));
        let server_span = new_span_id();
        Some(Box::new(ExchangeTrace {
            trace_id: sampled.trace_id,
            server_span,
            caller_span: sampled.parent_span_id,
            try_parent: server_span,
            tracestate,
            drop_tracestate,
            keys_absent,
            op: tracer.operation(request.service(), request.method(), &self.protocol),
            open_try: None,
        }))
    }

    /// A try of a traced request is about to be encoded for `upstream`: opens its client span and
    /// returns the mutation to encode it with (the request's own, plus the trace context).
    /// `None` when the request is not traced.
    pub(crate) fn trace_try_begin(&self, ex: &mut Exchange<C>, upstream: SocketAddr) -> Option<Mutation> {
        if ex.trace.as_ref().is_some_and(|t| t.open_try.is_some()) {
            self.trace_try_end(ex, TryEnd::Abandoned(Cow::Borrowed("superseded by another try")));
        }
        let tracer = ex.listener.tracing.as_deref()?;
        let trace = ex.trace.as_deref_mut()?;
        let span_id = new_span_id();
        let mut mutation = ex.ctx.request_mutation.clone();
        // After the request's own mutation, which may add or remove keys, an append could
        // duplicate a key: only an otherwise untouched request gets the codecs' append path.
        let append = trace.keys_absent && mutation.is_empty();
        tracer.inject(trace.trace_id, span_id, trace.try_parent, trace.tracestate.as_ref(), |key, value| {
            let key = Bytes::from_static(key.as_bytes());
            if append {
                mutation.append(key, value);
            } else {
                mutation.set(key, value);
            }
        });
        if trace.drop_tracestate {
            mutation.remove(Bytes::from_static(b"tracestate"));
        }
        trace.open_try = Some(OpenTry { span_id, started: self.now(), attempt: ex.attempts, upstream });
        Some(mutation)
    }

    /// The try in flight of a traced request ended: records its client span.
    pub(crate) fn trace_try_end(&self, ex: &mut Exchange<C>, end: TryEnd<'_>) {
        let Some(open) = ex.trace.as_mut().and_then(|t| t.open_try.take()) else { return };
        self.record_try(ex, open, end);
    }

    /// A traced request ends: records the try still open, if any, and the server span (a
    /// mirrored copy has none).
    pub(crate) fn trace_finish(&self, ex: &Exchange<C>, outcome: Outcome, response: Option<&Metadata>) {
        let (Some(trace), Some(tracer)) = (ex.trace.as_deref(), ex.listener.tracing.as_deref()) else { return };
        let response = response.or(ex.ctx.response.as_deref());
        if let Some(open) = trace.open_try {
            let end = match (outcome, response, &ex.ctx.local_reply) {
                (Outcome::Response, Some(r), _) => TryEnd::Response(r),
                (Outcome::Sent, ..) => TryEnd::Sent,
                (_, _, Some(reply)) => TryEnd::Abandoned(reply_text(reply)),
                _ => TryEnd::Abandoned(Cow::Borrowed(outcome.as_str())),
            };
            self.record_try(ex, open, end);
        }
        if trace.server_span == 0 || !tracer.admit() {
            return;
        }
        let (status, code) = match outcome {
            Outcome::Response => {
                let status = response.map_or(ResponseStatus::Ok, |r| r.response_status);
                (status.as_str(), status == ResponseStatus::Error)
            }
            Outcome::Local => (ex.ctx.local_reply.as_ref().map_or("local_reply", |r| r.kind.as_str()), true),
            Outcome::Sent => ("sent", false),
            Outcome::Dropped => ("dropped", true),
        };
        let decision = ex.ctx.route.as_ref();
        let peer = match &ex.sink {
            Sink::Client(down) => down.peer,
            Sink::Mirror => None,
        };
        let op = &trace.op;
        let attributes = Attributes {
            rpc_system: Some(&self.protocol),
            service: op.service.clone().and_then(|r| op.name.get(r)),
            method: op.method.clone().and_then(|r| op.name.get(r)),
            listener: Some(&ex.listener.spec.name),
            route: decision.map(|d| &*d.route.name),
            cluster: decision.map(|d| &*d.destination.cluster),
            subset: decision.and_then(|d| d.destination.subset.as_deref()),
            peer,
            upstream: ex.upstream,
            outcome: Some(outcome.as_str()),
            status: Some(status),
            response_code: response.and_then(response_code),
            request_id: Some(ex.original_id),
            request_size: Some(ex.request.len() as u64),
            response_size: response.map(Metadata::frame_size),
            attempts: Some(ex.attempts),
            mirror: false,
            extra: &[],
        };
        let error = if !code {
            None
        } else if let Some(reply) = &ex.ctx.local_reply {
            Some(reply_text(reply))
        } else if outcome == Outcome::Dropped {
            Some(Cow::Borrowed("dropped by a filter"))
        } else {
            Some(Cow::Borrowed("the upstream answered with an error"))
        };
        tracer.push(&SpanRecord {
            trace_id: trace.trace_id,
            span_id: trace.server_span,
            parent_span_id: trace.caller_span,
            parent_is_remote: trace.caller_span != 0,
            kind: SpanKind::Server,
            name: &op.name,
            start: ex.started,
            end: self.now(),
            status: error.as_deref().map_or(SpanStatus::Unset, SpanStatus::Error),
            attributes,
            trace_state: trace.tracestate.as_deref().and_then(|ts| std::str::from_utf8(ts).ok()),
        });
    }

    /// Records the client span of try `open` of `ex`.
    fn record_try(&self, ex: &Exchange<C>, open: OpenTry, end: TryEnd<'_>) {
        let (Some(trace), Some(tracer)) = (ex.trace.as_deref(), ex.listener.tracing.as_deref()) else { return };
        if !tracer.admit() {
            return;
        }
        let mut attributes = Attributes {
            rpc_system: Some(&self.protocol),
            cluster: ex.ctx.route.as_ref().map(|d| &*d.destination.cluster),
            peer: Some(open.upstream),
            attempts: Some(open.attempt),
            mirror: trace.server_span == 0,
            ..Attributes::default()
        };
        let error: Option<Cow<'_, str>> = match end {
            TryEnd::Response(response) => {
                attributes.status = Some(response.response_status.as_str());
                attributes.response_code = response_code(response);
                attributes.response_size = Some(response.frame_size());
                match response.response_status {
                    ResponseStatus::Error => Some(Cow::Borrowed("the upstream answered with an error")),
                    _ => None,
                }
            }
            TryEnd::Failed(error) => {
                attributes.status = Some("failed");
                Some(Cow::Owned(error.to_string()))
            }
            TryEnd::Sent => {
                attributes.status = Some("sent");
                None
            }
            TryEnd::Abandoned(reason) => {
                attributes.status = Some("unanswered");
                Some(reason)
            }
        };
        tracer.push(&SpanRecord {
            trace_id: trace.trace_id,
            span_id: open.span_id,
            parent_span_id: trace.try_parent,
            parent_is_remote: false,
            kind: SpanKind::Client,
            name: &trace.op.name,
            start: open.started,
            end: self.now(),
            status: error.as_deref().map_or(SpanStatus::Unset, SpanStatus::Error),
            attributes,
            trace_state: trace.tracestate.as_deref().and_then(|ts| std::str::from_utf8(ts).ok()),
        });
    }
}
