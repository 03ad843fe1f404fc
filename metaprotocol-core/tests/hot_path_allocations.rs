//! The per-message paths that promise no allocation are measured with a counting allocator:
//! route matching, key lookup, passthrough encode into a reused `WireBuf`, a request-id rewrite,
//! and a chain of synchronous filters.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use bytes::BytesMut;
use kv_protocol::{FrameBuilder, KvCodec};
use metaprotocol_core::route::RouteSpec;
use metaprotocol_core::{Codec, Filter, FilterChain, Mutation, RequestContext, RouteTable, WireBuf};

fn allocations(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

fn request() -> metaprotocol_core::Message {
    let frame = FrameBuilder::request(9, "org.demo.UserService", "getUser")
        .header("batchjob", "true")
        .header("version", "1.0.0")
        .body(vec![1u8; 256])
        .build()
        .unwrap();
    KvCodec::default().decode(&mut BytesMut::from(&frame[..])).unwrap().unwrap()
}

#[test]
fn route_matching_and_lookup_do_not_allocate() {
    let specs: Vec<RouteSpec> = serde_json::from_value(serde_json::json!([
        {"name": "regex", "match": [{"key": "method", "regex": "list.*"}], "route": {"cluster": "a"}},
        {"name": "prefix", "match": [{"key": "interface", "prefix": "org.other."}], "route": {"cluster": "b"}},
        {"name": "contains", "match": [{"key": "interface", "contains": "Order"}], "route": {"cluster": "b"}},
        {"name": "batch", "match": [{"key": "BATCHJOB", "exact": "true"}, {"key": "version", "present": true}],
         "weighted": [{"cluster": "c", "weight": 1}, {"cluster": "d", "weight": 3}], "hash_keys": ["version"]}
    ]))
    .unwrap();
    let table = RouteTable::compile(&specs).unwrap();
    let msg = request();
    // Warm the regex engine's per-thread cache once, as a long-running proxy has.
    let _ = table.find(&msg.metadata);
    let n = allocations(|| {
        for i in 0..100u64 {
            let route = table.find(&msg.metadata).unwrap();
            assert_eq!(&*route.name, "batch");
            let _ = route.pick(i);
            let _ = route.hash(&msg.metadata);
            assert!(msg.metadata.kvs.get("Version").is_some());
        }
    });
    assert_eq!(n, 0, "route matching allocated {n} times in 100 requests");
}

#[test]
fn passthrough_and_id_rewrite_encode_do_not_allocate_beyond_the_header() {
    let mut codec = KvCodec::default();
    let mut msg = request();
    let mut out = WireBuf::new();
    codec.encode(&msg, &Mutation::new(), &mut out).unwrap();
    let empty = Mutation::new();
    let n = allocations(|| {
        for _ in 0..100 {
            out.clear();
            codec.encode(&msg, &empty, &mut out).unwrap();
        }
    });
    assert_eq!(n, 0, "passthrough encode allocated {n} times in 100 messages");
    codec.rewrite_request_id(&mut msg, 77).unwrap();
    let n = allocations(|| {
        out.clear();
        codec.encode(&msg, &empty, &mut out).unwrap();
    });
    // The protocol forces one: the 20-byte header that carries the new id.
    assert_eq!(n, 1, "an id rewrite should cost exactly the new header");
}

struct Noop;
impl Filter for Noop {
    fn name(&self) -> &str {
        "noop"
    }
}

#[test]
fn a_chain_of_synchronous_filters_does_not_allocate() {
    let chain = FilterChain::new(vec![Arc::new(Noop) as Arc<dyn Filter>, Arc::new(Noop), Arc::new(Noop)]);
    let mut ctx = RequestContext::new(request().metadata);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let n = allocations(|| {
        for _ in 0..100 {
            {
                let fut = std::pin::pin!(chain.on_request(&mut ctx));
                assert!(std::future::Future::poll(fut, &mut cx).is_ready());
            }
            let fut = std::pin::pin!(chain.on_response(&mut ctx));
            assert!(std::future::Future::poll(fut, &mut cx).is_ready());
        }
    });
    assert_eq!(n, 0, "three no-op filters allocated {n} times in 100 requests");
}
