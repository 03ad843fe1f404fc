//! The request path's share of tracing: a traced request's two spans (its server span and its
//! try's client span) encoded into the worker's batch, its `traceparent` made, and what every
//! request pays at 1% sampling (its context looked for among its key/values, the sampling draw).
//! The exporter behind the tracer points at a port nobody listens on: its queue fills and batches
//! are dropped, which is the cheapest thing a flush can do, so the figure is the encoding.

// criterion_group! generates an undocumented public function; setup failures may panic.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use metaproxy_tracing::{Exporter, TracingConfig};

fn spans(c: &mut Criterion) {
    let config: TracingConfig = serde_json::from_str(r#"{"endpoint": "http://127.0.0.1:9"}"#).unwrap();
    let spec = config.validate().unwrap().unwrap();
    let exporter = Exporter::start(&spec.exporter).unwrap();
    let tracer = exporter.worker(&spec).unwrap();
    let [server, client] = metaprotocol_benches::typical_traced_spans(Instant::now());
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
