//! Inputs shared by the benchmarks in `benches/`: a route table of 100 mixed routes and typical
//! request metadata. Run the benchmarks with `cargo bench -p metaprotocol-benches`.

#![forbid(unsafe_code)]

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::route::RouteSpec;
use metaprotocol_core::{MessageType, Metadata, RouteTable};
use metaprotocol_dubbo::hessian::{write_int, write_map_end, write_map_start, write_string};

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

/// A typical Dubbo request as a Java client writes it: `UserService.update(String, User)` with a
/// 1 KiB string argument, a typed object argument (class definition + instance) and six
/// attachments.
pub fn dubbo_typical_request() -> Result<Bytes, metaprotocol_dubbo::hessian::HessianError> {
    let mut b = BytesMut::new();
    for s in ["2.0.2", "org.demo.UserService", "1.0.0", "update", "Ljava/lang/String;Lorg/demo/User;"] {
        write_string(&mut b, s.as_bytes())?;
    }
    write_string(&mut b, "x".repeat(1024).as_bytes())?;
    b.put_u8(b'C');
    write_string(&mut b, b"org.demo.User")?;
    write_int(&mut b, 3);
    for f in ["name", "age", "email"] {
        write_string(&mut b, f.as_bytes())?;
    }
    b.put_u8(0x60);
    write_string(&mut b, b"alice")?;
    write_int(&mut b, 30);
    write_string(&mut b, b"alice@example.org")?;
    write_map_start(&mut b);
    for (k, v) in [
        ("path", "org.demo.UserService"),
        ("interface", "org.demo.UserService"),
        ("version", "1.0.0"),
        ("group", "default"),
        ("timeout", "3000"),
        ("batchjob", "false"),
    ] {
        write_string(&mut b, k.as_bytes())?;
        write_string(&mut b, v.as_bytes())?;
    }
    write_map_end(&mut b);
    let mut frame = BytesMut::with_capacity(16 + b.len());
    frame.put_slice(&[0xda, 0xbb, 0xc2, 0]);
    frame.put_u64(1);
    frame.put_u32(b.len() as u32);
    frame.put_slice(&b);
    Ok(frame.freeze())
}
