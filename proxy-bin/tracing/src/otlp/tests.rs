//! Decoding what the encoder writes with `opentelemetry-proto`'s generated types.

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
