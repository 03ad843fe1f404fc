//! The plugin through the real proxy runtime: a kv client, metaproxy with the kv codec registered
//! (as `src/main.rs` does), and a kv backend, on loopback. TEMPLATE: the same test, with your
//! protocol's frames, proves your plugin works end to end.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use kv_protocol::{FrameBuilder, KvCodec, KvCodecFactory, KvLayout, KvType};
use metaprotocol_core::{Codec, Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A kv backend that answers every request with its method and a `served-by` header.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut codec, mut buf) = (KvCodec::default(), BytesMut::new());
                while sock.read_buf(&mut buf).await.unwrap_or(0) > 0 {
                    while let Ok(Some(req)) = codec.decode(&mut buf) {
                        let method = req.metadata.kvs.get_str("method").unwrap_or("").to_string();
                        let resp = FrameBuilder::new(KvType::Response, req.metadata.request_id)
                            .header("served-by", "backend")
                            .header("x-routed-by", req.metadata.kvs.get_str("x-routed-by").unwrap_or("-"))
                            .body(method)
                            .build()
                            .unwrap();
                        sock.write_all(&resp).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_requests_are_routed_mutated_and_answered_through_metaproxy() {
    let backend = backend().await;
    let yaml = format!(
        r#"
listeners:
  - name: kv-in
    address: 127.0.0.1:0
    protocol: kv
    codec: {{ max_frame_size: 65536 }}
    routes:
      - name: greeter
        match: [{{ key: service, exact: Greeter }}]
        route: {{ cluster: backend }}
        request_mutation: [{{ key: x-routed-by, value: metaproxy }}]
clusters:
  - {{ name: backend, endpoints: [{{ address: "{backend}" }}] }}
access_log: {{ enabled: false }}
"#
    );
    // What src/main.rs does: the built-in registry plus this plugin's codec.
    let mut registry = metaproxy_runtime::default_registry().unwrap();
    registry.register_codec(KvCodecFactory).unwrap();
    let config = metaproxy_runtime::config::load_str(&yaml, "kv.yaml", &registry).unwrap();
    let running = metaproxy_runtime::server::start(config).await.unwrap();

    let mut client = tokio::net::TcpStream::connect(running.address("kv-in").unwrap()).await.unwrap();
    let mut frames = Vec::new();
    for id in 1..=3 {
        frames.extend_from_slice(&FrameBuilder::request(id, "Greeter", &format!("hello{id}")).build().unwrap());
    }
    frames.extend_from_slice(&FrameBuilder::request(4, "Billing", "charge").build().unwrap());
    frames.extend_from_slice(&FrameBuilder::new(KvType::Ping, 5).build().unwrap());
    client.write_all(&frames).await.unwrap();

    let (mut codec, mut buf, mut got): (KvCodec, BytesMut, Vec<Message<KvLayout>>) =
        (KvCodec::default(), BytesMut::new(), Vec::new());
    while got.len() < 5 {
        tokio::time::timeout(Duration::from_secs(5), client.read_buf(&mut buf))
            .await
            .expect("an answer is missing")
            .unwrap();
        while let Some(m) = codec.decode(&mut buf).unwrap() {
            got.push(m);
        }
    }
    got.sort_by_key(|m| m.metadata.request_id);
    for (id, m) in (1..=3).zip(&got) {
        assert_eq!(m.metadata.request_id, id);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.kvs.get_str("served-by"), Some("backend"));
        assert_eq!(
            m.metadata.kvs.get_str("x-routed-by"),
            Some("metaproxy"),
            "the route's request mutation reached the backend"
        );
        assert_eq!(&m.frame()[m.metadata.header_size as usize..], format!("hello{id}").as_bytes());
    }
    assert_eq!(got[3].metadata.message_type, MessageType::Error);
    assert_eq!(got[3].metadata.kvs.get_str("error-kind"), Some("route_not_found"));
    assert_eq!(got[4].metadata.message_type, MessageType::Pong, "pings are answered by the proxy");
    running.shutdown().await;
}
