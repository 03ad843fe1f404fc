//! The request path's share of tracing: a traced request's two spans (its server span and its
//! try's client span) encoded into the worker's batch, its `traceparent` made, and what every
//! request pays at 1% sampling (its context looked for among its key/values, the sampling draw).
//! The exporter behind the tracer points at a port nobody listens on: its queue fills and batches
//! are dropped, which is the cheapest thing a flush can do, so the figure is the encoding.

// criterion_group! generates an undocumented public function; setup failures may panic.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use metaproxy_tracing::{Attributes, Exporter, SpanKind, SpanRecord, SpanStatus, TracingConfig};

fn spans(c: &mut Criterion) {
    let config: TracingConfig = serde_json::from_str(r#"{"endpoint": "http://127.0.0.1:9"}"#).unwrap();
    let spec = config.validate().unwrap().unwrap();
    let exporter = Exporter::start(&spec.exporter).unwrap();
    let tracer = exporter.worker(&spec).unwrap();
    let start = Instant::now();
    let name = "org.apache.dubbo.demo.DemoService/sayHello";
    let server = SpanRecord {
        trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
        span_id: 0x00f0_67aa_0ba9_02b7,
        parent_span_id: 0,
        parent_is_remote: false,
        kind: SpanKind::Server,
        name,
        start,
        end: start + Duration::from_micros(150),
        status: SpanStatus::Unset,
        attributes: Attributes {
            rpc_system: Some("dubbo"),
            service: name.get(..33),
            method: name.get(34..),
            listener: Some("dubbo_in"),
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
        span_id: 0x1111_2222_3333_4444,
        parent_span_id: server.span_id,
        kind: SpanKind::Client,
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
    c.bench_function("tracing_server_and_client_span_encoded", |b| {
        b.iter(|| {
            tracer.push(black_box(&server));
            tracer.push(black_box(&client));
        })
    });
    let request = metaprotocol_benches::typical_request();
    let config: TracingConfig =
        serde_json::from_str(r#"{"endpoint": "http://127.0.0.1:9", "sample_ratio": 0.01}"#).unwrap();
    let one_percent = exporter.worker(&config.validate().unwrap().unwrap()).unwrap();
    c.bench_function("tracing_1_percent_sampling_decision", |b| {
        b.iter(|| black_box(one_percent.start(|key| black_box(&request).kvs.get(key))))
    });
    c.bench_function("tracing_traceparent_injected", |b| {
        b.iter(|| tracer.inject(black_box(1), black_box(2), 3, None, |k, v| drop(black_box((k, v)))))
    });
}

criterion_group!(benches, spans);
criterion_main!(benches);
