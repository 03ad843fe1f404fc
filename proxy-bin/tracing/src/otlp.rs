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
use opentelemetry::Value;
use opentelemetry_sdk::Resource;
use prost::encoding::{encoded_len_varint, key_len, WireType};

use crate::span::{AttrValue, Attributes, Clock, SpanKind, SpanRecord, SpanStatus};

/// `Span.flags`: the W3C trace flags (sampled) and whether the parent is known to be remote.
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// The most bytes of one string attribute (or name, or `tracestate`) written; longer values are
/// cut at a character boundary, so a peer's long service name cannot make spans large.
pub(crate) const MAX_STRING: usize = 1024;

/// `Span` field tags, and the `KeyValue` and `AnyValue` ones.
const SPAN_ATTRIBUTES: u32 = 9;
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

/// A varint: one byte below 128 (every key and nearly every length here), else `prost`'s.
#[inline]
fn encode_varint(v: u64, buf: &mut impl BufMut) {
    match u8::try_from(v) {
        Ok(b) if b < 0x80 => buf.put_u8(b),
        _ => prost::encoding::encode_varint(v, buf),
    }
}

/// A field's key (tag and wire type).
#[inline]
fn encode_key(tag: u32, wire_type: WireType, buf: &mut impl BufMut) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// The bytes a length-delimited field of `len` bytes takes with its key and length.
#[inline]
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

#[inline]
fn put_bytes(buf: &mut impl BufMut, tag: u32, data: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(data.len() as u64, buf);
    buf.put_slice(data);
}

#[inline]
fn put_str(buf: &mut impl BufMut, tag: u32, text: &str) {
    put_bytes(buf, tag, text.as_bytes());
}

#[inline]
fn put_fixed64(buf: &mut impl BufMut, tag: u32, v: u64) {
    encode_key(tag, WireType::SixtyFourBit, buf);
    buf.put_u64_le(v);
}

/// `text`, cut to at most [`MAX_STRING`] bytes at a character boundary.
fn clip(text: &str) -> &str {
    if text.len() <= MAX_STRING {
        return text;
    }
    let mut end = MAX_STRING;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// An `AnyValue`'s one field: what a `KeyValue` holds.
#[derive(Clone, Copy)]
enum Any<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
}

impl Any<'_> {
    /// The `AnyValue` message's length.
    #[inline]
    fn len(self) -> usize {
        match self {
            Any::Str(s) => field_len(1, s.len()),
            Any::Bool(_) => key_len(2) + 1,
            Any::Int(i) => key_len(3) + encoded_len_varint(i as u64),
            Any::Double(_) => key_len(4) + 8,
        }
    }

    #[inline]
    fn write(self, buf: &mut impl BufMut) {
        match self {
            Any::Str(s) => put_str(buf, 1, s),
            Any::Bool(b) => {
                encode_key(2, WireType::Varint, buf);
                encode_varint(u64::from(b), buf);
            }
            Any::Int(i) => {
                encode_key(3, WireType::Varint, buf);
                encode_varint(i as u64, buf);
            }
            Any::Double(d) => put_fixed64(buf, 4, d.to_bits()),
        }
    }
}

/// A `KeyValue` as field `tag` (`Span.attributes` is 9, `Resource.attributes` 1).
#[inline]
fn put_kv(buf: &mut impl BufMut, tag: u32, key: &str, value: Any<'_>) {
    let value = match value {
        Any::Str(s) => Any::Str(clip(s)),
        other => other,
    };
    let any = value.len();
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint((field_len(1, key.len()) + field_len(2, any)) as u64, buf);
    put_str(buf, 1, key);
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(any as u64, buf);
    value.write(buf);
}

/// A span's attribute (`Span.attributes`). The common case, a key and a value short enough for
/// every length to take one byte, is written with four copies; anything longer as `put_kv` does.
#[inline]
fn put_span_attribute(buf: &mut BytesMut, key: &str, value: Any<'_>) {
    let value = match value {
        Any::Str(s) => Any::Str(clip(s)),
        other => other,
    };
    let any = value.len();
    let kv = 2 + key.len() + 2 + any;
    let (Ok(kv_len), Ok(key_len), Ok(any_len)) = (u8::try_from(kv), u8::try_from(key.len()), u8::try_from(any)) else {
        return put_kv(buf, SPAN_ATTRIBUTES, key, value);
    };
    if kv_len >= 0x80 {
        return put_kv(buf, SPAN_ATTRIBUTES, key, value);
    }
    buf.reserve(kv + 2);
    // KeyValue (field 9) { key (1): key, value (2): AnyValue { one field } }.
    buf.extend_from_slice(&[(SPAN_ATTRIBUTES << 3 | 2) as u8, kv_len, 0x0a, key_len]);
    buf.extend_from_slice(key.as_bytes());
    match value {
        // AnyValue.string_value (1): every length fits one byte, as `kv` does.
        Any::Str(s) => {
            buf.extend_from_slice(&[0x12, any_len, 0x0a, s.len() as u8]);
            buf.extend_from_slice(s.as_bytes());
        }
        other => {
            buf.extend_from_slice(&[0x12, any_len]);
            other.write(buf);
        }
    }
}

/// An SDK attribute (the resource's).
fn put_attribute(buf: &mut Vec<u8>, tag: u32, key: &str, value: &Value) {
    match value {
        Value::Bool(b) => put_kv(buf, tag, key, Any::Bool(*b)),
        Value::I64(i) => put_kv(buf, tag, key, Any::Int(*i)),
        Value::F64(d) => put_kv(buf, tag, key, Any::Double(*d)),
        Value::String(s) => put_kv(buf, tag, key, Any::Str(s.as_str())),
        other => put_kv(buf, tag, key, Any::Str(&other.to_string())),
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

#[cfg(test)]
mod tests {
    // Tests panic on purpose when an expectation fails.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::time::{Duration, Instant};

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use prost::Message;

    use super::*;

    const EXTRA: &[(&str, AttrValue<'static>)] = &[
        ("x.int", AttrValue::Int(-3)),
        ("x.ip", AttrValue::Ip(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)))),
    ];

    fn record(kind: SpanKind, parent: u64, status: SpanStatus<'static>, start: Instant) -> SpanRecord<'static> {
        SpanRecord {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
            parent_span_id: parent,
            parent_is_remote: kind == SpanKind::Server && parent != 0,
            kind,
            name: "org.apache.dubbo.demo.DemoService/sayHello",
            start,
            end: start + Duration::from_micros(1500),
            status,
            attributes: Attributes {
                rpc_system: Some("dubbo"),
                service: Some("org.apache.dubbo.demo.DemoService"),
                method: Some("sayHello"),
                listener: Some("in"),
                route: Some("default"),
                cluster: Some("echo"),
                subset: None,
                peer: Some("[::1]:40000".parse().unwrap()),
                upstream: Some("127.0.0.1:20880".parse().unwrap()),
                outcome: Some("response"),
                status: Some("ok"),
                response_code: Some(20),
                request_id: Some(u64::MAX),
                request_size: Some(1200),
                response_size: None,
                attempts: Some(2),
                mirror: true,
                extra: EXTRA,
            },
            trace_state: Some("congo=t61rcWkgMzE"),
        }
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Any> {
        attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    fn text(s: &str) -> Option<Any> {
        Some(Any::StringValue(s.to_string()))
    }

    /// One request from the envelope and the spans' bytes, as the exporter sends it.
    fn export_request(envelope: &Envelope, spans: &[u8]) -> Bytes {
        let mut body = BytesMut::from(&envelope.header(spans.len(), |_, _| {})[..]);
        body.extend_from_slice(spans);
        body.freeze()
    }

    #[test]
    fn a_batch_decodes_with_the_official_types_as_written() {
        let envelope = Envelope::new("edge");
        let mut writer = SpanWriter::default();
        let clock = Clock::now();
        let start = Instant::now();
        let records = [
            record(SpanKind::Server, 0x1122_3344_5566_7788, SpanStatus::Unset, start),
            record(SpanKind::Client, 0x0102_0304_0506_0708, SpanStatus::Error("upstream reset"), start),
        ];
        let mut spans = BytesMut::new();
        for r in &records {
            writer.write(&mut spans, r, &clock);
        }
        let body = export_request(&envelope, &spans);
        let request = ExportTraceServiceRequest::decode(body.clone()).unwrap();
        assert_eq!(request.resource_spans.len(), 1);
        let rs = &request.resource_spans[0];
        let resource = rs.resource.as_ref().unwrap();
        assert_eq!(attr(&resource.attributes, "service.name").cloned(), text("edge"));
        assert_eq!(attr(&resource.attributes, "telemetry.sdk.language").cloned(), text("rust"));
        let scope_spans = &rs.scope_spans[0];
        assert_eq!(scope_spans.scope.as_ref().unwrap().name, "metaproxy");
        assert_eq!(scope_spans.spans.len(), 2);
        let (server, client) = (&scope_spans.spans[0], &scope_spans.spans[1]);
        assert_eq!(hex(&server.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&server.span_id), "00f067aa0ba902b7");
        assert_eq!(hex(&server.parent_span_id), "1122334455667788");
        assert_eq!(server.trace_state, "congo=t61rcWkgMzE");
        assert_eq!(server.name, "org.apache.dubbo.demo.DemoService/sayHello");
        assert_eq!((server.kind, client.kind), (2, 3));
        assert_eq!(server.end_time_unix_nano - server.start_time_unix_nano, 1_500_000);
        assert_eq!(server.start_time_unix_nano, clock.unix_nanos(start));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(now.abs_diff(server.start_time_unix_nano) < 10_000_000_000, "wall-clock time");
        assert_eq!((server.flags, client.flags), (0x301, 0x101));
        assert_eq!(server.status, None);
        let status = client.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "upstream reset"));
        let a = &server.attributes;
        assert_eq!(attr(a, "rpc.system").cloned(), text("dubbo"));
        assert_eq!(attr(a, "rpc.service").cloned(), text("org.apache.dubbo.demo.DemoService"));
        assert_eq!(attr(a, "rpc.method").cloned(), text("sayHello"));
        assert_eq!(attr(a, "client.address").cloned(), text("::1"));
        assert_eq!(attr(a, "client.port").cloned(), Some(Any::IntValue(40000)));
        assert_eq!(attr(a, "metaproxy.upstream").cloned(), text("127.0.0.1:20880"));
        assert_eq!(attr(a, "metaproxy.response.code").cloned(), Some(Any::IntValue(20)));
        assert_eq!(attr(a, "metaproxy.request_id").cloned(), Some(Any::IntValue(i64::MAX)));
        assert_eq!(attr(a, "metaproxy.attempts").cloned(), Some(Any::IntValue(2)));
        assert_eq!(attr(a, "metaproxy.mirror").cloned(), Some(Any::BoolValue(true)));
        assert_eq!(attr(a, "x.int").cloned(), Some(Any::IntValue(-3)));
        assert_eq!(attr(a, "x.ip").cloned(), text("10.0.0.1"));
        assert_eq!(attr(a, "metaproxy.subset"), None);
        assert_eq!(attr(&client.attributes, "server.address").cloned(), text("::1"));
        assert_eq!(attr(&client.attributes, "metaproxy.attempt").cloned(), Some(Any::IntValue(2)));
        // The official types write the same bytes back: every length and tag is as they expect.
        assert_eq!(request.encode_to_vec().len(), body.len());
        // Spans written at different times, by different writers, concatenate.
        let mut more = BytesMut::new();
        SpanWriter::default().write(&mut more, &records[0], &clock);
        spans.extend_from_slice(&more);
        let three = ExportTraceServiceRequest::decode(export_request(&envelope, &spans)).unwrap();
        assert_eq!(three.resource_spans[0].scope_spans[0].spans.len(), 3);
    }

    #[test]
    fn long_peer_strings_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_STRING); // 2 bytes each
        let mut r = record(SpanKind::Server, 0, SpanStatus::Unset, Instant::now());
        r.name = &long;
        r.attributes.service = Some(&long);
        let mut spans = BytesMut::new();
        SpanWriter::default().write(&mut spans, &r, &Clock::now());
        let request = ExportTraceServiceRequest::decode(export_request(&Envelope::new("x"), &spans)).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name.len(), MAX_STRING);
        assert_eq!(attr(&span.attributes, "rpc.service").cloned(), text(&"é".repeat(MAX_STRING / 2)));
    }

    #[test]
    fn spans_of_every_size_have_canonical_lengths() {
        let long = "x".repeat(MAX_STRING);
        let extra: Vec<(&str, AttrValue<'_>)> = (0..20).map(|_| ("x.long", AttrValue::Str(&long))).collect();
        let mut big = record(SpanKind::Server, 0, SpanStatus::Unset, Instant::now());
        big.attributes.extra = &extra;
        let small = SpanRecord {
            name: "m",
            attributes: Attributes::default(),
            trace_state: None,
            ..record(SpanKind::Client, 0, SpanStatus::Unset, Instant::now())
        };
        let typical = record(SpanKind::Client, 1, SpanStatus::Unset, Instant::now());
        let mut spans = BytesMut::new();
        let mut writer = SpanWriter::default();
        let clock = Clock::now();
        for r in [&small, &big, &typical, &small] {
            writer.write(&mut spans, r, &clock);
        }
        let body = export_request(&Envelope::new("x"), &spans);
        let request = ExportTraceServiceRequest::decode(body.clone()).unwrap();
        let decoded = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(decoded.len(), 4);
        assert_eq!(decoded[0].name, "m");
        assert!(decoded[0].encoded_len() < 128 && decoded[1].encoded_len() > 16384, "both rare sizes are covered");
        assert_eq!(decoded[1].attributes.iter().filter(|kv| kv.key == "x.long").count(), 20);
        assert_eq!(decoded[2].name, typical.name);
        assert_eq!(decoded[3], decoded[0]);
        assert_eq!(request.encode_to_vec(), body, "byte for byte what the official types write");
    }

    /// The bytes a typical traced Dubbo request ships (BENCHMARKS.md, "Tracing cost"): at full
    /// sampling, sending them is the largest part of tracing's cost, so they are held to a budget.
    #[test]
    fn a_typical_request_s_spans_stay_within_their_byte_budget() {
        let start = Instant::now();
        let name = "org.apache.dubbo.demo.DemoService/sayHello";
        let server = SpanRecord {
            trace_id: u128::MAX,
            span_id: u64::MAX,
            parent_span_id: 0,
            parent_is_remote: false,
            kind: SpanKind::Server,
            name,
            start,
            end: start,
            status: SpanStatus::Unset,
            attributes: Attributes {
                rpc_system: Some("dubbo"),
                service: name.get(..33),
                method: name.get(34..),
                listener: Some("in"),
                route: Some("default"),
                cluster: Some("echo"),
                subset: None,
                peer: Some("127.0.0.1:40000".parse().unwrap()),
                upstream: Some("127.0.0.1:20880".parse().unwrap()),
                outcome: Some("response"),
                status: Some("ok"),
                response_code: Some(20),
                request_id: Some(123_456),
                request_size: Some(1200),
                response_size: Some(1100),
                attempts: Some(1),
                mirror: false,
                extra: &[],
            },
            trace_state: None,
        };
        let client = SpanRecord {
            kind: SpanKind::Client,
            parent_span_id: u64::MAX,
            attributes: Attributes {
                rpc_system: Some("dubbo"),
                cluster: Some("echo"),
                peer: Some("127.0.0.1:20880".parse().unwrap()),
                status: Some("ok"),
                response_code: Some(20),
                response_size: Some(1100),
                attempts: Some(1),
                ..Attributes::default()
            },
            ..server
        };
        let mut writer = SpanWriter::default();
        let clock = Clock::now();
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        writer.write(&mut a, &server, &clock);
        writer.write(&mut b, &client, &clock);
        assert_eq!((a.len(), b.len()), (591, 329), "server and client span bytes, field header included");
    }

    #[test]
    fn address_texts_follow_their_slot() {
        let mut texts = AddressTexts::default();
        for port in 1..2000u16 {
            let a = SocketAddr::from(([10, 0, (port >> 8) as u8, port as u8], port));
            let (ip, full) = texts.get(a);
            assert_eq!((ip.to_string(), full.to_string()), (a.ip().to_string(), a.to_string()));
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
