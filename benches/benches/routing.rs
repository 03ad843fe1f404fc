//! Route matching over 100 routes, and the filter chain's overhead with three no-op filters.

// criterion_group! generates an undocumented public function; setup failures may panic.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use metaprotocol_core::{Filter, FilterChain, RequestContext};

struct Noop;
impl Filter for Noop {
    fn name(&self) -> &str {
        "noop"
    }
}

fn routing(c: &mut Criterion) {
    let table = metaprotocol_benches::hundred_routes().expect("routes compile");
    let request = metaprotocol_benches::typical_request();
    c.bench_function("route_match_100_routes_miss_to_default", |b| {
        b.iter(|| black_box(table.find(black_box(&request))).map(|r| r.name.len()))
    });
}

fn filter_chain(c: &mut Criterion) {
    let chain = FilterChain::new(vec![Arc::new(Noop) as Arc<dyn Filter>, Arc::new(Noop), Arc::new(Noop)]);
    let mut ctx = RequestContext::new(metaprotocol_benches::typical_request());
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    c.bench_function("filter_chain_3_noop_on_request", |b| {
        b.iter(|| {
            let fut = std::pin::pin!(chain.on_request(&mut ctx));
            black_box(std::future::Future::poll(fut, &mut cx))
        })
    });
}

criterion_group!(benches, routing, filter_chain);
criterion_main!(benches);
