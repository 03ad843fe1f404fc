//! OTLP's protobuf encoding of a batch of [`SpanRecord`]s: one `ExportTraceServiceRequest`
//! (`opentelemetry/proto/collector/trace/v1/trace_service.proto`), written straight from the
//! records with `prost`'s wire primitives.
//!
//! Why not the SDK: turning a record into the SDK's `SpanData` and letting `opentelemetry-otlp`
//! convert that into `opentelemetry-proto`'s message structs allocates for every attribute's key
//! and value, twice; measured on the exporter thread it cost 2.2 µs per span at 100% sampling and
//! 5.3 µs at 1%, more than the whole request it describes (BENCHMARKS.md, "Tracing cost"). Here a
//! span costs no allocation: its fields are written into a reused buffer, the addresses formatted
//! on the stack. The resource (the SDK's `Resource`, so `OTEL_RESOURCE_ATTRIBUTES` and the
//! `telemetry.sdk.*` attributes are as the SDK makes them) and the instrumentation scope are
//! encoded once. The unit tests decode the output with `opentelemetry-proto`'s own types.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use opentelemetry::Value;
use opentelemetry_sdk::Resource;
use prost::encoding::{encoded_len_varint, key_len, WireType};

use crate::export::Clock;
use crate::span::{AttrValue, Attributes, SpanKind, SpanRecord, SpanStatus};

/// `Span.flags`: the W3C trace flags (sampled) and whether the parent is known to be remote.
const FLAG_SAMPLED: u32 = 0x01;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// Encodes batches of spans for one collector; keeps its buffers between batches.
#[derive(Debug)]
pub(crate) struct OtlpEncoder {
    /// `ResourceSpans.resource` (a `Resource` message), encoded.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url`.
    schema_url: String,
    /// `ScopeSpans.scope` (an `InstrumentationScope` message), encoded.
    scope: Vec<u8>,
    /// The batch's `ScopeSpans.spans` fields.
    spans: Vec<u8>,
    /// One span's message, before its length is known.
    span: Vec<u8>,
    /// Addresses as text (`ip`, `ip:port`), kept across batches: clients and upstreams repeat.
    texts: AddressTexts,
}

/// The text of recently seen addresses: formatting one costs more than the rest of its span.
#[derive(Debug, Default)]
struct AddressTexts {
    known: std::collections::HashMap<SocketAddr, AddressText>,
}

/// An address's IP, and the address as `ip:port`.
type AddressText = (Box<[u8]>, Box<[u8]>);

impl AddressTexts {
    /// Most addresses kept; past it the table starts over.
    const MAX: usize = 4096;

    /// `address`'s IP and `ip:port`, as text.
    fn get(&mut self, address: SocketAddr) -> (&[u8], &[u8]) {
        if self.known.len() >= Self::MAX && !self.known.contains_key(&address) {
            self.known.clear();
        }
        let (ip, full) = self.known.entry(address).or_insert_with(|| {
            let mut scratch = [0u8; 64];
            let ip = on_stack(&mut scratch, address.ip()).into();
            let full = on_stack(&mut scratch, address).into();
            (ip, full)
        });
        (ip, full)
    }
}

impl OtlpEncoder {
    /// An encoder for spans of `service_name`: the SDK's resource with `service.name` set.
    pub(crate) fn new(service_name: &str) -> Self {
        let resource = Resource::builder().with_service_name(service_name.to_string()).build();
        let mut attributes = Vec::new();
        for (key, value) in resource.iter() {
            put_attribute(&mut attributes, 1, key.as_str(), value);
        }
        let mut scope = Vec::new();
        put_str(&mut scope, 1, "metaproxy");
        put_str(&mut scope, 2, env!("CARGO_PKG_VERSION"));
        OtlpEncoder {
            resource: attributes,
            schema_url: resource.schema_url().unwrap_or_default().to_string(),
            scope,
            spans: Vec::with_capacity(64 << 10),
            span: Vec::with_capacity(1024),
            texts: AddressTexts::default(),
        }
    }

    /// The request exporting `records`, their times read against `clock`.
    pub(crate) fn encode(&mut self, records: &[SpanRecord], clock: Clock) -> Bytes {
        self.spans.clear();
        for r in records {
            self.span.clear();
            write_span(&mut self.span, r, clock, &mut self.texts);
            put_bytes(&mut self.spans, 2, &self.span);
        }
        let scope_spans = field_len(1, self.scope.len()) + self.spans.len();
        let resource_spans = field_len(1, self.resource.len())
            + field_len(2, scope_spans)
            + if self.schema_url.is_empty() { 0 } else { field_len(3, self.schema_url.len()) };
        let mut out = BytesMut::with_capacity(field_len(1, resource_spans));
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(resource_spans as u64, &mut out);
        put_bytes(&mut out, 1, &self.resource);
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(scope_spans as u64, &mut out);
        put_bytes(&mut out, 1, &self.scope);
        out.put_slice(&self.spans);
        if !self.schema_url.is_empty() {
            put_str(&mut out, 3, &self.schema_url);
        }
        out.freeze()
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
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn put_bytes(buf: &mut impl BufMut, tag: u32, data: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(data.len() as u64, buf);
    buf.put_slice(data);
}

fn put_str(buf: &mut impl BufMut, tag: u32, text: &str) {
    put_bytes(buf, tag, text.as_bytes());
}

fn put_fixed64(buf: &mut impl BufMut, tag: u32, v: u64) {
    encode_key(tag, WireType::SixtyFourBit, buf);
    buf.put_u64_le(v);
}

/// An `AnyValue`'s one field: what a `KeyValue` holds.
#[derive(Clone, Copy)]
enum Any<'a> {
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
}

impl Any<'_> {
    /// The `AnyValue` message's length.
    fn len(self) -> usize {
        match self {
            Any::Str(s) => field_len(1, s.len()),
            Any::Bool(_) => key_len(2) + 1,
            Any::Int(i) => key_len(3) + encoded_len_varint(i as u64),
            Any::Double(_) => key_len(4) + 8,
        }
    }

    fn write(self, buf: &mut impl BufMut) {
        match self {
            Any::Str(s) => put_bytes(buf, 1, s),
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
fn put_kv(buf: &mut impl BufMut, tag: u32, key: &str, value: Any<'_>) {
    let any = value.len();
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint((field_len(1, key.len()) + field_len(2, any)) as u64, buf);
    put_str(buf, 1, key);
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(any as u64, buf);
    value.write(buf);
}

/// An SDK attribute (the resource's).
fn put_attribute(buf: &mut Vec<u8>, tag: u32, key: &str, value: &Value) {
    match value {
        Value::Bool(b) => put_kv(buf, tag, key, Any::Bool(*b)),
        Value::I64(i) => put_kv(buf, tag, key, Any::Int(*i)),
        Value::F64(d) => put_kv(buf, tag, key, Any::Double(*d)),
        Value::String(s) => put_kv(buf, tag, key, Any::Str(s.as_str().as_bytes())),
        other => put_kv(buf, tag, key, Any::Str(other.to_string().as_bytes())),
    }
}

/// Formats `value` into `scratch` (no allocation); the text written.
fn on_stack(scratch: &mut [u8; 64], value: impl std::fmt::Display) -> &[u8] {
    let mut cursor = std::io::Cursor::new(&mut scratch[..]);
    let _ = write!(cursor, "{value}");
    let end = usize::try_from(cursor.position()).unwrap_or(0);
    scratch.get(..end).unwrap_or_default()
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One `Span` message.
fn write_span(buf: &mut Vec<u8>, r: &SpanRecord, clock: Clock, texts: &mut AddressTexts) {
    put_bytes(buf, 1, &r.trace_id.to_be_bytes());
    put_bytes(buf, 2, &r.span_id.to_be_bytes());
    if let Some(ts) = r.trace_state.as_deref().filter(|ts| !ts.is_empty()) {
        put_str(buf, 3, ts);
    }
    if r.parent_span_id != 0 {
        put_bytes(buf, 4, &r.parent_span_id.to_be_bytes());
    }
    put_str(buf, 5, &r.name);
    encode_key(6, WireType::Varint, buf);
    encode_varint(
        match r.kind {
            SpanKind::Server => 2,
            SpanKind::Client => 3,
        },
        buf,
    );
    put_fixed64(buf, 7, unix_nanos(clock.wall(r.start)));
    put_fixed64(buf, 8, unix_nanos(clock.wall(r.end)));
    write_attributes(buf, r.kind, &r.name, &r.attributes, texts);
    if let SpanStatus::Error(message) = &r.status {
        // Status { message = 2; code = 3 (STATUS_CODE_ERROR = 2) }.
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
fn write_attributes(buf: &mut Vec<u8>, kind: SpanKind, name: &str, a: &Attributes, texts: &mut AddressTexts) {
    let mut put = |key: &str, v: Any<'_>| put_kv(&mut *buf, 9, key, v);
    if let Some(s) = &a.rpc_system {
        put("rpc.system", Any::Str(s.as_bytes()));
    }
    for (key, range) in [("rpc.service", &a.service), ("rpc.method", &a.method)] {
        if let Some(part) = range.clone().and_then(|r| name.get(r)) {
            put(key, Any::Str(part.as_bytes()));
        }
    }
    for (key, v) in [
        ("metaproxy.listener", &a.listener),
        ("metaproxy.route", &a.route),
        ("metaproxy.cluster", &a.cluster),
        ("metaproxy.subset", &a.subset),
    ] {
        if let Some(v) = v {
            put(key, Any::Str(v.as_bytes()));
        }
    }
    let mut scratch = [0u8; 64];
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
            put(key, Any::Str(v.as_bytes()));
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
    for (key, v) in &a.extra {
        match v {
            AttrValue::Static(s) => put(key, Any::Str(s.as_bytes())),
            AttrValue::Shared(s) => put(key, Any::Str(s.as_bytes())),
            AttrValue::Owned(s) => put(key, Any::Str(s.as_bytes())),
            AttrValue::Int(i) => put(key, Any::Int(*i)),
            AttrValue::Bool(b) => put(key, Any::Bool(*b)),
            AttrValue::Ip(ip) => put(key, Any::Str(on_stack(&mut scratch, ip))),
            AttrValue::Address(a) => put(key, Any::Str(on_stack(&mut scratch, a))),
        }
    }
}

#[cfg(test)]
mod tests {
    // Tests panic on purpose when an expectation fails.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use prost::Message;

    use super::*;

    fn record(kind: SpanKind, parent: u64, status: SpanStatus) -> SpanRecord {
        let start = Instant::now();
        SpanRecord {
            trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            span_id: 0x00f0_67aa_0ba9_02b7,
            parent_span_id: parent,
            parent_is_remote: kind == SpanKind::Server && parent != 0,
            kind,
            name: Arc::from("org.apache.dubbo.demo.DemoService/sayHello"),
            start,
            end: start + Duration::from_micros(1500),
            status,
            attributes: Attributes {
                rpc_system: Some(Arc::from("dubbo")),
                service: Some(0..33),
                method: Some(34..42),
                listener: Some(Arc::from("in")),
                route: Some(Arc::from("default")),
                cluster: Some(Arc::from("echo")),
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
                extra: vec![("x.int", AttrValue::Int(-3)), ("x.ip", AttrValue::Ip("10.0.0.1".parse().unwrap()))],
            },
            trace_state: Some(Arc::from("congo=t61rcWkgMzE")),
        }
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Any> {
        attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    fn text(s: &str) -> Option<Any> {
        Some(Any::StringValue(s.to_string()))
    }

    #[test]
    fn a_batch_decodes_with_the_official_types_as_written() {
        let mut encoder = OtlpEncoder::new("edge");
        let clock = Clock::now();
        let records = [
            record(SpanKind::Server, 0x1122_3344_5566_7788, SpanStatus::Unset),
            record(SpanKind::Client, 0x0102_0304_0506_0708, SpanStatus::Error("upstream reset".into())),
        ];
        let body = encoder.encode(&records, clock);
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
        let wall = unix_nanos(clock.wall(records[0].start));
        assert_eq!(server.start_time_unix_nano, wall);
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
        // The buffers are reused: a second batch is encoded alone.
        let again = ExportTraceServiceRequest::decode(encoder.encode(&records[..1], clock)).unwrap();
        assert_eq!(again.resource_spans[0].scope_spans[0].spans.len(), 1);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
