//! OTLP's protobuf encoding (`opentelemetry/proto/collector/trace/v1/trace_service.proto`),
//! written with `prost`'s wire primitives, in two halves:
//!
//! * [`SpanWriter`], on the worker: each finished span becomes one `ScopeSpans.spans` field,
//!   appended to the worker's batch buffer the moment the span ends. Because protobuf's repeated
//!   fields are concatenations, batches from every worker can be sent one after another without
//!   being read again.
//! * [`Envelope`], on the exporter thread: the few bytes that go before a run of encoded spans to
//!   make one `ExportTraceServiceRequest` (`ResourceSpans`, the resource, `ScopeSpans`, the
//!   scope), written per export call, not per span.
//!
//! Why not the SDK: turning a span into the SDK's `SpanData` and letting `opentelemetry-otlp`
//! convert that into `opentelemetry-proto`'s message structs allocates for every attribute's key
//! and value, twice; measured it cost 2.2 µs per span at 100% sampling and 5.3 µs at 1%, more than
//! the whole request it describes (BENCHMARKS.md, "Tracing cost"). Here a span costs no
//! allocation. The resource is the SDK's `Resource` (so `OTEL_RESOURCE_ATTRIBUTES` and the
//! `telemetry.sdk.*` attributes are as the SDK makes them), encoded once. The unit tests decode
//! the output with `opentelemetry-proto`'s own types.

use std::io::Write as _;
use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use opentelemetry_sdk::Resource;
use prost::encoding::{encoded_len_varint, key_len, WireType};

use crate::span::{AttrValue, Attributes, Clock, SpanKind, SpanRecord, SpanStatus};
use wire::{
    clip, encode_key, encode_varint, field_len, put_attribute, put_bytes, put_fixed64, put_span_attribute, put_str, Any,
};

#[cfg(test)]
mod tests;
mod wire;

/// `Span.flags`: the W3C trace flags (sampled) and whether the parent is known to be remote.
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// The most bytes of one string attribute (or name, or `tracestate`) written; longer values are
/// cut at a character boundary, so a peer's long service name cannot make spans large.
pub(crate) const MAX_STRING: usize = 1024;

/// `Span` field tags, and the `KeyValue` and `AnyValue` ones.
pub(crate) const SPAN_ATTRIBUTES: u32 = 9;
const SCOPE_SPANS_SPANS: u32 = 2;

/// Encodes finished spans into a worker's batch; keeps the text of addresses between spans.
#[derive(Debug, Default)]
pub(crate) struct SpanWriter {
    /// Addresses as text (`ip`, `ip:port`): clients and upstreams repeat.
    texts: AddressTexts,
}

impl SpanWriter {
    /// Appends `r` to `out` as a `ScopeSpans.spans` field, its times read against `clock`.
    ///
    /// The span is written in place, after two bytes kept for its length: the length of nearly
    /// every span is a two-byte varint (128 to 16383 bytes). A span of another size moves by a
    /// byte once written, so the length is always encoded as protobuf's own encoders do.
    pub(crate) fn write(&mut self, out: &mut BytesMut, r: &SpanRecord<'_>, clock: &Clock) {
        out.reserve(1024);
        encode_key(SCOPE_SPANS_SPANS, WireType::LengthDelimited, out);
        let at = out.len();
        out.put_u16(0);
        write_span(out, r, clock, &mut self.texts);
        let len = out.len() - at - 2;
        match len {
            0..=0x7f => {
                out.copy_within(at + 2.., at + 1);
                out.truncate(out.len() - 1);
            }
            0x80..=0x3fff => {}
            _ => {
                let end = out.len();
                out.put_u8(0);
                out.copy_within(at + 2..end, at + 3);
            }
        }
        let mut varint = [0u8; 10];
        let mut cursor = &mut varint[..];
        prost::encoding::encode_varint(len as u64, &mut cursor);
        let n = encoded_len_varint(len as u64);
        if let (Some(slot), Some(value)) = (out.get_mut(at..at + n), varint.get(..n)) {
            slot.copy_from_slice(value);
        }
    }
}

/// What goes around encoded spans to make an `ExportTraceServiceRequest`: the resource and the
/// instrumentation scope, encoded once per exporter.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// `ResourceSpans.resource` (a `Resource` message), encoded.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url`.
    schema_url: String,
    /// `ScopeSpans.scope` (an `InstrumentationScope` message), encoded.
    scope: Vec<u8>,
}

impl Envelope {
    /// The envelope of spans of `service_name`: the SDK's resource with `service.name` set.
    pub(crate) fn new(service_name: &str) -> Self {
        let resource = Resource::builder().with_service_name(service_name.to_string()).build();
        let mut attributes = Vec::new();
        for (key, value) in resource.iter() {
            put_attribute(&mut attributes, 1, key.as_str(), value);
        }
        let mut scope = Vec::new();
        put_str(&mut scope, 1, "metaproxy");
        put_str(&mut scope, 2, env!("CARGO_PKG_VERSION"));
        Envelope { resource: attributes, schema_url: resource.schema_url().unwrap_or_default().to_string(), scope }
    }

    /// The bytes that, followed by `spans_len` bytes of spans written by [`SpanWriter`], make one
    /// `ExportTraceServiceRequest`; `prefix` bytes go first (gRPC's message header, say).
    pub(crate) fn header(&self, spans_len: usize, prefix: impl FnOnce(usize, &mut BytesMut)) -> Bytes {
        let scope_spans = field_len(1, self.scope.len()) + spans_len;
        let resource_spans = field_len(1, self.resource.len())
            + field_len(2, scope_spans)
            + if self.schema_url.is_empty() { 0 } else { field_len(3, self.schema_url.len()) };
        let request = field_len(1, resource_spans);
        let mut out = BytesMut::with_capacity(64 + self.resource.len() + self.scope.len() + self.schema_url.len());
        prefix(request, &mut out);
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(resource_spans as u64, &mut out);
        put_bytes(&mut out, 1, &self.resource);
        if !self.schema_url.is_empty() {
            put_str(&mut out, 3, &self.schema_url);
        }
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(scope_spans as u64, &mut out);
        put_bytes(&mut out, 1, &self.scope);
        out.freeze()
    }
}

/// The text of recently seen addresses, in a small table indexed by a hash of the address:
/// formatting one costs more than the rest of its span, and a lookup here costs a multiply.
#[derive(Debug)]
struct AddressTexts {
    slots: Vec<Option<(SocketAddr, AddressText)>>,
}

/// An address's IP, and the address as `ip:port`.
type AddressText = (Box<str>, Box<str>);

impl Default for AddressTexts {
    fn default() -> Self {
        AddressTexts { slots: vec![None; AddressTexts::SLOTS] }
    }
}

impl AddressTexts {
    /// Addresses kept: a new address takes its slot from the one there.
    const SLOTS: usize = 256;

    /// `address`'s IP and `ip:port`, as text.
    fn get(&mut self, address: SocketAddr) -> (&str, &str) {
        let bits = match address.ip() {
            std::net::IpAddr::V4(v4) => u64::from(v4.to_bits()),
            std::net::IpAddr::V6(v6) => {
                let b = v6.to_bits();
                (b as u64) ^ ((b >> 64) as u64)
            }
        };
        let hash = (bits ^ u64::from(address.port()) << 32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let index = (hash >> 56) as usize % Self::SLOTS;
        let Some(slot) = self.slots.get_mut(index) else { return ("", "") };
        if slot.as_ref().is_none_or(|(a, _)| *a != address) {
            *slot = Some((address, (address.ip().to_string().into(), address.to_string().into())));
        }
        match slot {
            Some((_, (ip, full))) => (ip, full),
            None => ("", ""),
        }
    }
}

/// Formats `value` into `scratch` (no allocation); the text written.
fn on_stack(scratch: &mut [u8; 64], value: impl std::fmt::Display) -> &str {
    let mut cursor = std::io::Cursor::new(&mut scratch[..]);
    let _ = write!(cursor, "{value}");
    let end = usize::try_from(cursor.position()).unwrap_or(0);
    scratch.get(..end).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default()
}

/// One `Span` message.
fn write_span(buf: &mut BytesMut, r: &SpanRecord<'_>, clock: &Clock, texts: &mut AddressTexts) {
    put_bytes(buf, 1, &r.trace_id.to_be_bytes());
    put_bytes(buf, 2, &r.span_id.to_be_bytes());
    if let Some(ts) = r.trace_state.filter(|ts| !ts.is_empty()) {
        put_str(buf, 3, clip(ts));
    }
    if r.parent_span_id != 0 {
        put_bytes(buf, 4, &r.parent_span_id.to_be_bytes());
    }
    put_str(buf, 5, clip(r.name));
    encode_key(6, WireType::Varint, buf);
    encode_varint(
        match r.kind {
            SpanKind::Server => 2,
            SpanKind::Client => 3,
        },
        buf,
    );
    put_fixed64(buf, 7, clock.unix_nanos(r.start));
    put_fixed64(buf, 8, clock.unix_nanos(r.end));
    write_attributes(buf, r.kind, &r.attributes, texts);
    if let SpanStatus::Error(message) = r.status {
        // Status { message = 2; code = 3 (STATUS_CODE_ERROR = 2) }.
        let message = clip(message);
        let len = field_len(2, message.len()) + key_len(3) + 1;
        encode_key(15, WireType::LengthDelimited, buf);
        encode_varint(len as u64, buf);
        put_str(buf, 2, message);
        encode_key(3, WireType::Varint, buf);
        encode_varint(2, buf);
    }
    let remote = if r.parent_is_remote { FLAG_IS_REMOTE } else { 0 };
    encode_key(16, WireType::ThirtyTwoBit, buf);
    buf.put_u32_le(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE | remote);
}

/// A record's typed fields as attributes, named as the module `span` documents.
fn write_attributes(buf: &mut BytesMut, kind: SpanKind, a: &Attributes<'_>, texts: &mut AddressTexts) {
    let mut put = |key: &str, v: Any<'_>| put_span_attribute(&mut *buf, key, v);
    for (key, v) in [
        ("rpc.system", a.rpc_system),
        ("rpc.service", a.service),
        ("rpc.method", a.method),
        ("metaproxy.listener", a.listener),
        ("metaproxy.route", a.route),
        ("metaproxy.cluster", a.cluster),
        ("metaproxy.subset", a.subset),
    ] {
        if let Some(v) = v {
            put(key, Any::Str(v));
        }
    }
    if let Some(peer) = a.peer {
        let (address, port) = match kind {
            SpanKind::Server => ("client.address", "client.port"),
            SpanKind::Client => ("server.address", "server.port"),
        };
        put(address, Any::Str(texts.get(peer).0));
        put(port, Any::Int(i64::from(peer.port())));
    }
    if let Some(upstream) = a.upstream {
        put("metaproxy.upstream", Any::Str(texts.get(upstream).1));
    }
    for (key, v) in [("metaproxy.outcome", a.outcome), ("metaproxy.status", a.status)] {
        if let Some(v) = v {
            put(key, Any::Str(v));
        }
    }
    if let Some(code) = a.response_code {
        put("metaproxy.response.code", Any::Int(code));
    }
    for (key, v) in [
        ("metaproxy.request_id", a.request_id),
        ("metaproxy.request.size", a.request_size),
        ("metaproxy.response.size", a.response_size),
    ] {
        if let Some(v) = v {
            put(key, Any::Int(i64::try_from(v).unwrap_or(i64::MAX)));
        }
    }
    if let Some(n) = a.attempts {
        let key = match kind {
            SpanKind::Server => "metaproxy.attempts",
            SpanKind::Client => "metaproxy.attempt",
        };
        put(key, Any::Int(i64::from(n)));
    }
    if a.mirror {
        put("metaproxy.mirror", Any::Bool(true));
    }
    let mut scratch = [0u8; 64];
    for (key, v) in a.extra {
        match *v {
            AttrValue::Str(s) => put(key, Any::Str(s)),
            AttrValue::Int(i) => put(key, Any::Int(i)),
            AttrValue::Bool(b) => put(key, Any::Bool(b)),
            AttrValue::Ip(ip) => put(key, Any::Str(on_stack(&mut scratch, ip))),
            AttrValue::Address(a) => put(key, Any::Str(on_stack(&mut scratch, a))),
        }
    }
}
