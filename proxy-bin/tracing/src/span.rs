//! A finished span as a worker records it: plain, typed data borrowed from the request it
//! describes. [`WorkerTracer::push`](crate::WorkerTracer::push) encodes it as OTLP protobuf at
//! once, into the worker's own buffer, so a span costs no allocation, no reference count and no
//! copy into an intermediate structure.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Which side of an RPC a span describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// The proxy serving a client's request.
    Server,
    /// One try (or mirrored copy) sent to an upstream.
    Client,
}

/// How a span ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanStatus<'a> {
    /// Nothing went wrong (OpenTelemetry leaves a success unset).
    #[default]
    Unset,
    /// It failed, for this reason.
    Error(&'a str),
}

/// An attribute's value, for [`Attributes::extra`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttrValue<'a> {
    /// A string.
    Str(&'a str),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// An IP address, written as text.
    Ip(IpAddr),
    /// An address, written `ip:port`.
    Address(SocketAddr),
}

/// What the proxy knows about a request (server span) or a try (client span), as typed fields,
/// written as attributes named after OpenTelemetry's RPC and network conventions where there is
/// one, else `metaproxy.*`; unset fields are left out.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Attributes<'a> {
    /// `rpc.system`: the protocol (`dubbo`, `thrift`, `framed`, ...).
    pub rpc_system: Option<&'a str>,
    /// `rpc.service`.
    pub service: Option<&'a str>,
    /// `rpc.method`.
    pub method: Option<&'a str>,
    /// `metaproxy.listener`.
    pub listener: Option<&'a str>,
    /// `metaproxy.route`.
    pub route: Option<&'a str>,
    /// `metaproxy.cluster`.
    pub cluster: Option<&'a str>,
    /// `metaproxy.subset`.
    pub subset: Option<&'a str>,
    /// The other end: the client (`client.address`, `client.port`) of a server span, the
    /// upstream (`server.address`, `server.port`) of a client span.
    pub peer: Option<SocketAddr>,
    /// `metaproxy.upstream` (`ip:port`): the endpoint of a request's last try.
    pub upstream: Option<SocketAddr>,
    /// `metaproxy.outcome`: how the request ended (`response`, `local_reply`, `sent_oneway`,
    /// `dropped`).
    pub outcome: Option<&'static str>,
    /// `metaproxy.status`: what the answer reported (`ok`, `error`, `business_exception`), the
    /// local reply's kind, or what became of a try (`failed`, `sent`, `unanswered`).
    pub status: Option<&'static str>,
    /// `metaproxy.response.code`: the protocol's status code, when the answer has a numeric one
    /// (Dubbo's `20`).
    pub response_code: Option<i64>,
    /// `metaproxy.request_id`: the client's request id.
    pub request_id: Option<u64>,
    /// `metaproxy.request.size`: the request frame's bytes.
    pub request_size: Option<u64>,
    /// `metaproxy.response.size`: the answer frame's bytes.
    pub response_size: Option<u64>,
    /// Tries made (`metaproxy.attempts`, server span), or this try's number (`metaproxy.attempt`,
    /// client span).
    pub attempts: Option<u32>,
    /// `metaproxy.mirror`: a mirrored copy's try.
    pub mirror: bool,
    /// Anything else.
    pub extra: &'a [(&'a str, AttrValue<'a>)],
}

/// A finished span.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpanRecord<'a> {
    /// The trace's id.
    pub trace_id: u128,
    /// This span's id.
    pub span_id: u64,
    /// The parent span's id (0: a root span).
    pub parent_span_id: u64,
    /// Whether the parent span is in another process (the client's span, for a server span).
    pub parent_is_remote: bool,
    /// Server or client.
    pub kind: SpanKind,
    /// The operation, `service/method`.
    pub name: &'a str,
    /// When it started (turned into wall-clock time against the worker's clock anchor: the
    /// worker reads no wall clock per span).
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
    /// Success or failure.
    pub status: SpanStatus<'a>,
    /// What the proxy knows about it.
    pub attributes: Attributes<'a>,
    /// The `tracestate` the request carried, forwarded as it was.
    pub trace_state: Option<&'a str>,
}

/// One moment read on both clocks: turns the monotonic instants spans are timed with into
/// wall-clock time (Unix nanoseconds), with integer arithmetic only. A worker keeps one and
/// renews it at each flush, so the two clocks cannot drift apart between renewals by more
/// than the wall clock's own adjustments over a flush interval.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    instant: Instant,
    unix_nanos: u64,
}

impl Clock {
    /// The clocks now.
    pub fn now() -> Clock {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Clock { instant: Instant::now(), unix_nanos: u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX) }
    }

    /// The wall-clock time of `at`, in nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.unix_nanos.saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX)),
            None => self
                .unix_nanos
                .saturating_sub(u64::try_from(self.instant.duration_since(at).as_nanos()).unwrap_or(u64::MAX)),
        }
    }
}
