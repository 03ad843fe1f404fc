//! The per-message paths that promise no allocation are measured with a counting allocator:
//! route matching, key lookup, passthrough encode into a reused `WireBuf`, a request-id rewrite,
//! and a chain of synchronous filters.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

mod common;

use bytes::BytesMut;
use common::{frame, Tiny, TinyLayout};
use metaprotocol_core::route::RouteSpec;
use metaprotocol_core::{
    ChainOutcome, ChainStep, Codec, Filter, FilterChain, Message, MessageType, Mutation, RequestContext, RouteTable,
    WireBuf,
};

fn allocations(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

fn request() -> Message<TinyLayout> {
    let f = frame(
        MessageType::Request,
        9,
        &[("interface", "org.demo.UserService"), ("method", "getUser"), ("batchjob", "true"), ("version", "1.0.0")],
        &[1u8; 256],
    );
    Tiny::default().decode(&mut BytesMut::from(&f[..])).unwrap().unwrap()
}

#[test]
fn decoding_a_request_allocates_nothing_but_its_key_value_list() {
    let f = frame(
        MessageType::Request,
        9,
        &[("interface", "org.demo.UserService"), ("method", "getUser"), ("batchjob", "true"), ("version", "1.0.0")],
        &[1u8; 256],
    );
    let mut codec = Tiny::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    buf.extend_from_slice(&f);
    drop(codec.decode(&mut buf).unwrap());
    let n = allocations(|| {
        for _ in 0..100 {
            buf.extend_from_slice(&f);
            let m = codec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(m.metadata.get("batchjob"), Some(&b"true"[..]));
        }
    });
    // Four entries fit inline: the frame is split off the read buffer and shared, not copied.
    assert!(n <= 2, "decoding 100 requests allocated {n} times");
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
fn passthrough_and_id_rewrite_encode_do_not_allocate() {
    let mut codec = Tiny::default();
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
    out.clear();
    codec.encode(&msg, &empty, &mut out).unwrap();
    let n = allocations(|| {
        for _ in 0..100 {
            out.clear();
            codec.encode(&msg, &empty, &mut out).unwrap();
        }
    });
    // The new header is built in the buffer's scratch space: one allocation per few thousand bytes.
    assert!(n <= 1, "100 id rewrites allocated {n} times");
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
    let n = allocations(|| {
        for _ in 0..100 {
            assert!(matches!(chain.run_request(&mut ctx, 0), ChainStep::Done(ChainOutcome::Continue)));
            assert!(matches!(chain.run_response(&mut ctx, chain.len()), ChainStep::Done(ChainOutcome::Continue)));
        }
    });
    assert_eq!(n, 0, "three no-op filters allocated {n} times in 100 requests");
}
