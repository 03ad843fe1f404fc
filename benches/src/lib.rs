//! Inputs shared by the benchmarks in `benches/`: a route table of 100 mixed routes and typical
//! request metadata. Run the benchmarks with `cargo bench -p metaprotocol-benches`.

#![forbid(unsafe_code)]

use bytes::Bytes;
use metaprotocol_core::route::RouteSpec;
use metaprotocol_core::{MessageType, Metadata, RouteTable};

/// 100 routes: a third exact, a third prefix, a third regex, each on two keys, followed by a
/// catch-all. None of the first 100 match [`typical_request`], so matching walks them all.
pub fn hundred_routes() -> Result<RouteTable, metaprotocol_core::ConfigError> {
    let mut specs = Vec::new();
    for i in 0..100 {
        let matcher = match i % 3 {
            0 => serde_json::json!({"key": "interface", "exact": format!("org.demo.Service{i}")}),
            1 => serde_json::json!({"key": "interface", "prefix": format!("org.demo.Prefix{i}")}),
            _ => serde_json::json!({"key": "method", "regex": format!("get(User|Order){i}[a-z]*")}),
        };
        specs.push(serde_json::json!({
            "name": format!("r{i}"),
            "match": [matcher, {"key": "version", "exact": "1.0.0"}],
            "route": {"cluster": format!("c{i}")}
        }));
    }
    specs.push(serde_json::json!({"name": "default", "route": {"cluster": "default"}}));
    let specs: Vec<RouteSpec> = serde_json::from_value(serde_json::Value::Array(specs))
        .map_err(|e| metaprotocol_core::ConfigError::invalid("routes", e.to_string()))?;
    RouteTable::compile(&specs)
}

/// Metadata of a typical Dubbo-like request: interface, method, version and six attachments.
pub fn typical_request() -> Metadata {
    let mut m = Metadata::new(MessageType::Request, 42);
    for (k, v) in [
        ("interface", "org.demo.UserService"),
        ("method", "getUserProfile"),
        ("version", "1.0.0"),
        ("group", "default"),
        ("batchjob", "false"),
        ("traceId", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("spanId", "00f067aa0ba902b7"),
        ("tenant", "acme"),
        ("timeout", "3000"),
    ] {
        m.kvs.push(Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes()));
    }
    m
}
