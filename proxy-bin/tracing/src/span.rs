//! A finished span as a worker records it: plain, typed data, built on the worker without
//! allocating (names are shared, numbers and addresses are copied) and handed to the exporter
//! thread, which turns it into the OpenTelemetry SDK's `SpanData` and its attributes.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SpanStatus {
    /// Nothing went wrong (OpenTelemetry leaves a success unset).
    #[default]
    Unset,
    /// It failed, for this reason.
    Error(Cow<'static, str>),
}

/// An attribute's value, for [`Attributes::extra`].
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    /// A fixed string.
    Static(&'static str),
    /// A shared string (a reference count, no copy).
    Shared(Arc<str>),
    /// A string made for this span.
    Owned(String),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// An IP address, written as text by the exporter thread.
    Ip(IpAddr),
    /// An address, written `ip:port` by the exporter thread.
    Address(SocketAddr),
}

/// What the proxy knows about a request (server span) or a try (client span), as typed fields.
/// The exporter thread turns them into attributes named after OpenTelemetry's RPC and network
/// conventions where there is one, else `metaproxy.*`; unset fields are left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    /// `rpc.system`: the protocol (`dubbo`, `thrift`, `framed`, ...).
    pub rpc_system: Option<Arc<str>>,
    /// `rpc.service`: where the service lies in the span's name.
    pub service: Option<Range<usize>>,
    /// `rpc.method`: where the method lies in the span's name.
    pub method: Option<Range<usize>>,
    /// `metaproxy.listener`.
    pub listener: Option<Arc<str>>,
    /// `metaproxy.route`.
    pub route: Option<Arc<str>>,
    /// `metaproxy.cluster`.
    pub cluster: Option<Arc<str>>,
    /// `metaproxy.subset`.
    pub subset: Option<Arc<str>>,
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
    /// Anything else (empty: no allocation).
    pub extra: Vec<(&'static str, AttrValue)>,
}

/// A finished span.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
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
    pub name: Arc<str>,
    /// When it started (the exporter thread turns it into wall-clock time: the worker reads no
    /// wall clock per span).
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
    /// Success or failure.
    pub status: SpanStatus,
    /// What the proxy knows about it.
    pub attributes: Attributes,
    /// The `tracestate` the request carried, forwarded as it was.
    pub trace_state: Option<Arc<str>>,
}
