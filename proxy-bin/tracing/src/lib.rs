//! # metaproxy-tracing
//!
//! Distributed tracing for metaproxy, kept off the request path.
//!
//! * [`context`]: W3C Trace Context (`traceparent`, `tracestate`) and B3, parsed strictly from a
//!   request's key/values (Dubbo attachments, THeader headers, the `framed` codec's keys) and
//!   written for the upstream request.
//! * [`config`]: a listener's `tracing:` section and its validation.
//! * [`WorkerTracer`]: one per worker and listener: the sampling decision (parent-based, else
//!   `sample_ratio`), span ids from the worker's own random generator, and the worker's batch:
//!   each finished [`SpanRecord`] is encoded as OTLP protobuf at once (`otlp`, no allocation per
//!   span) into the worker's buffer, handed over as one `Bytes` with one `try_send` when full or
//!   at each flush tick. A full queue drops the batch and counts it: requests never wait.
//! * [`Exporter`]: one thread per collector that wraps the workers' encoded spans in one
//!   `ExportTraceServiceRequest` per call and sends them, uncopied, over gRPC or HTTP (`hyper`,
//!   `transport`), at a lowered priority, each call bounded by `export_timeout`;
//!   [`ExportStats`] counts what it exported and what was dropped.
//!
//! The proxy records a server span per request (the proxy serving the client) and a client span
//! per upstream try, retries and mirrored copies included, each try's context written into the
//! upstream request so that providers see the proxy as their parent.

#![forbid(unsafe_code)]

pub mod config;
pub mod context;
mod export;
mod otlp;
mod span;
mod stats;
mod transport;
mod worker;

pub use config::{ExporterSpec, OtlpProtocol, Propagation, TracingConfig, TracingConfigError, TracingSpec};
pub use export::{Exporter, TracingError, MAX_EXPORT_BATCH, MAX_EXPORT_BYTES};
pub use span::{AttrValue, Attributes, Clock, SpanKind, SpanRecord, SpanStatus};
pub use stats::ExportStats;
pub use transport::TransportError;
pub use worker::{new_span_id, new_trace_id, Operation, Sampled, WorkerTracer};
