//! The bytes a typical traced Dubbo request ships to the collector (BENCHMARKS.md, "Tracing
//! cost"): at full sampling, sending them is the largest part of tracing's cost, so they are held
//! to a budget. Measured through the public API: the spans a worker's tracer holds, encoded.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use metaproxy_tracing::{Exporter, TracingConfig};

#[test]
fn a_typical_request_s_spans_stay_within_their_byte_budget() {
    // A collector nobody listens on: nothing here waits for it, and the spans stay in the batch.
    let config: TracingConfig = serde_json::from_str(r#"{"endpoint": "http://127.0.0.1:9"}"#).unwrap();
    let spec = config.validate().unwrap().unwrap();
    let exporter = Exporter::start(&spec.exporter).unwrap();
    let tracer = exporter.worker(&spec).unwrap();
    let [server, client] = metaprotocol_benches::typical_traced_spans(Instant::now());
    tracer.push(&server);
    let server_bytes = tracer.pending_bytes();
    tracer.push(&client);
    let client_bytes = tracer.pending_bytes() - server_bytes;
    assert_eq!((server_bytes, client_bytes), (591, 329), "server and client span bytes, field header included");
}
