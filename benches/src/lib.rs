//! Inputs shared by the benchmarks in `benches/`: a route table of 100 mixed routes, typical
//! request metadata, and a typical traced request's spans. Run the benchmarks with
//! `cargo bench -p metaprotocol-benches`.

#![forbid(unsafe_code)]

pub mod load;

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::route::RouteSpec;
use metaprotocol_core::{MessageType, Metadata, RouteTable, Text};
use metaprotocol_dubbo::hessian::{write_int, write_map_end, write_map_start, write_string};
use metaproxy_tracing::{Attributes, SpanKind, SpanRecord, SpanStatus};

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
        m.kvs.push(Text::from_static(k), Text::from_static(v));
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

/// A typical Thrift call in `transport` and `protocol`: `Greeter:sayHello` whose args struct
/// holds a 1 KiB string, a nested struct with a list, and a map; THeader frames carry four info
/// headers.
pub fn thrift_typical_call(
    transport: metaprotocol_thrift::transport::Transport,
    protocol: metaprotocol_thrift::protocol::Protocol,
) -> Result<Bytes, metaprotocol_core::CodecError> {
    use metaprotocol_thrift::protocol::{put_header, put_varint, zigzag32, Protocol};
    use metaprotocol_thrift::transport::{put_header_prefix, Transport};
    let mut body = BytesMut::new();
    let text = "x".repeat(1024);
    let string = |b: &mut BytesMut, s: &[u8]| match protocol {
        Protocol::Binary => {
            b.put_u32(s.len() as u32);
            b.put_slice(s);
        }
        Protocol::Compact => {
            put_varint(b, s.len() as u64);
            b.put_slice(s);
        }
    };
    match protocol {
        Protocol::Binary => {
            body.put_u8(11);
            body.put_i16(1);
            string(&mut body, text.as_bytes());
            body.put_u8(12);
            body.put_i16(2);
            body.put_u8(15);
            body.put_i16(1);
            body.put_u8(10);
            body.put_u32(16);
            for i in 0..16i64 {
                body.put_i64(i);
            }
            body.put_u8(0);
            body.put_u8(13);
            body.put_i16(3);
            body.put_u8(11);
            body.put_u8(8);
            body.put_u32(4);
            for (k, v) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
                string(&mut body, k.as_bytes());
                body.put_i32(v);
            }
            body.put_u8(0);
        }
        Protocol::Compact => {
            body.put_u8(0x18);
            string(&mut body, text.as_bytes());
            body.put_u8(0x1c);
            body.put_u8(0x19);
            body.put_u8(0xf6);
            put_varint(&mut body, 16);
            for i in 0..16i32 {
                put_varint(&mut body, zigzag32(i));
            }
            body.put_u8(0);
            body.put_u8(0x1b);
            put_varint(&mut body, 4);
            body.put_u8(0x85);
            for (k, v) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
                string(&mut body, k.as_bytes());
                put_varint(&mut body, zigzag32(v));
            }
            body.put_u8(0);
        }
    }
    let mut payload = BytesMut::new();
    put_header(&mut payload, protocol, 1, b"Greeter:sayHello", 7);
    payload.put_slice(&body);
    let mut out = BytesMut::new();
    match transport {
        Transport::Framed => out.put_u32(payload.len() as u32),
        Transport::Unframed => {}
        Transport::Header => {
            let info: metaprotocol_core::KeyValues =
                [("x-tag", "blue"), ("batchjob", "false"), ("tenant", "acme"), ("trace", "4bf92f3577b34da6")]
                    .iter()
                    .map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes())))
                    .collect();
            put_header_prefix(&mut out, 0, 7, protocol, &info, payload.len())?;
        }
    }
    out.put_slice(&payload);
    Ok(out.freeze())
}

/// The operation of [`typical_traced_spans`].
const TRACED_OPERATION: &str = "org.apache.dubbo.demo.DemoService/sayHello";

/// A traced Dubbo request's spans as the proxy records them: its server span (a new trace, one
/// try, answered) and that try's client span, both started at `start`.
pub fn typical_traced_spans(start: std::time::Instant) -> [SpanRecord<'static>; 2] {
    let name = TRACED_OPERATION;
    let server = SpanRecord {
        trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
        span_id: 0x00f0_67aa_0ba9_02b7,
        parent_span_id: 0,
        parent_is_remote: false,
        kind: SpanKind::Server,
        name,
        start,
        end: start + std::time::Duration::from_micros(150),
        status: SpanStatus::Unset,
        attributes: Attributes {
            rpc_system: Some("dubbo"),
            service: name.get(..33),
            method: name.get(34..),
            listener: Some("in"),
            route: Some("default"),
            cluster: Some("echo"),
            subset: None,
            peer: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))),
            upstream: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 20880))),
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
            peer: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 20880))),
            status: Some("ok"),
            response_code: Some(20),
            response_size: Some(1100),
            attempts: Some(1),
            ..Attributes::default()
        },
        ..server
    };
    [server, client]
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use metaprotocol_core::{Codec, MessageType};

    #[test]
    fn benchmark_inputs_decode_as_intended() {
        assert!(super::hundred_routes().is_ok());
        let frame = super::dubbo_typical_request().unwrap();
        let m = metaprotocol_dubbo::DubboCodec::default().decode(&mut BytesMut::from(&frame[..])).unwrap().unwrap();
        assert_eq!(m.metadata.kvs.iter().count(), 11);
        use metaprotocol_thrift::{protocol::Protocol, transport::Transport};
        for t in [Transport::Framed, Transport::Unframed, Transport::Header] {
            for p in [Protocol::Binary, Protocol::Compact] {
                let frame = super::thrift_typical_call(t, p).unwrap();
                let mut buf = BytesMut::from(&frame[..]);
                let m = metaprotocol_thrift::ThriftCodec::default().decode(&mut buf).unwrap().unwrap();
                assert!(buf.is_empty(), "{t:?} {p:?}");
                assert_eq!(m.metadata.message_type, MessageType::Request);
                assert_eq!(m.metadata.operation().to_string(), "Greeter/sayHello");
            }
        }
    }
}
