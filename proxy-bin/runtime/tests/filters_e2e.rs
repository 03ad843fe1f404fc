//! Filters that must wait, through the real proxy: a request whose filter returns a pending
//! answer parks without blocking its worker, then resumes where the chain stopped (the filter is
//! not called again), with the filter's edits to its context applied; a waiting filter may also
//! answer locally; and the response side parks the same way.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{call, provider, proxy_with, status};
use metaprotocol_core::{
    ConfigError, ConfigValue, Filter, FilterAction, FilterFactory, FilterResult, LocalReply, ReplyKind, RequestContext,
    Resume,
};
use metaproxy_demo_peers::client::Client;
use metaproxy_demo_peers::provider::Behavior;

/// Checks each request "remotely" (a short sleep), then tags it; refuses method `forbidden`.
#[derive(Default)]
struct RemoteCheck {
    request_calls: AtomicU64,
    response_calls: AtomicU64,
}

impl Filter for RemoteCheck {
    fn name(&self) -> &str {
        "remote_check"
    }

    fn on_request(&self, ctx: &mut RequestContext) -> FilterResult {
        self.request_calls.fetch_add(1, Ordering::Relaxed);
        let forbidden = ctx.request.method() == Some(b"forbidden".as_slice());
        FilterResult::wait(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if forbidden {
                return Resume::new(FilterAction::Reply(LocalReply::new(ReplyKind::Denied, "not allowed")));
            }
            Resume::with(FilterAction::Continue, |ctx| {
                ctx.request_mutation.set("x-checked", "yes");
            })
        })
    }

    fn on_response(&self, _ctx: &mut RequestContext) -> FilterResult {
        self.response_calls.fetch_add(1, Ordering::Relaxed);
        FilterResult::wait(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Resume::with(FilterAction::Continue, |ctx| {
                ctx.response_mutation.set("x-responded", "late");
            })
        })
    }
}

/// Counts the requests that reach it: it runs after `remote_check`, once per request.
#[derive(Default)]
struct After(AtomicU64);

impl Filter for After {
    fn name(&self) -> &str {
        "after"
    }

    fn on_request(&self, ctx: &mut RequestContext) -> FilterResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        assert!(ctx.request_mutation.touches(b"x-checked"), "the waiting filter's edit comes first");
        FilterResult::proceed()
    }
}

struct Factory<F>(&'static str, Arc<F>);

impl<F: Filter> FilterFactory for Factory<F> {
    fn name(&self) -> &'static str {
        self.0
    }

    fn configure(&self, _config: &ConfigValue) -> Result<Arc<dyn Filter>, ConfigError> {
        Ok(self.1.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_filters_park_requests_and_resume_them() {
    let p = provider("p", Behavior::default()).await;
    let check = Arc::new(RemoteCheck::default());
    let after = Arc::new(After::default());
    let mut registry = metaproxy_runtime::default_registry().unwrap();
    registry.register_filter(Arc::new(Factory("remote_check", check.clone()))).unwrap();
    registry.register_filter(Arc::new(Factory("after", after.clone()))).unwrap();
    let yaml = r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    filters: [{ name: remote_check }, { name: after }]
    routes: [{ name: all, route: { cluster: c } }]
clusters:
  - { name: c, endpoints: [{ address: "{p}" }] }
access_log: { enabled: false }
"#;
    let running = proxy_with(yaml, &[&p], registry).await;
    let address = running.address("in").unwrap();
    // 4 connections x 50 requests, all in flight at once: each parks for a few milliseconds, and
    // the worker keeps serving the others meanwhile.
    let mut calls = Vec::new();
    for _ in 0..4 {
        let c = Client::connect(address).await.unwrap();
        for _ in 0..50 {
            let c = c.clone();
            calls.push(tokio::spawn(async move { call(&c, "sayHello", &[]).await }));
        }
    }
    for answer in futures_util::future::join_all(calls).await {
        let answer = answer.unwrap();
        assert_eq!(status(&answer), "20");
        // The provider echoes `x-` attachments: the tag set by the waiting filter reached it.
        assert_eq!(answer.metadata.kvs.get_str("x-checked"), Some("yes"));
        assert_eq!(answer.metadata.kvs.get_str("x-responded"), Some("late"));
    }
    assert_eq!(p.stats.total(), 200);
    assert_eq!(check.request_calls.load(Ordering::Relaxed), 200, "a waiting filter is not called again");
    assert_eq!(after.0.load(Ordering::Relaxed), 200, "the chain resumes after the waiting filter");
    assert_eq!(check.response_calls.load(Ordering::Relaxed), 200);

    // A waiting filter that refuses: the protocol's error reply, and the upstream never sees it.
    let c = Client::connect(address).await.unwrap();
    let refused = call(&c, "forbidden", &[]).await;
    assert_ne!(status(&refused), "20");
    assert!(refused.metadata.kvs.get_str("error_message").unwrap_or("").contains("not allowed"), "{refused:?}");
    assert_eq!(p.stats.total(), 200);
    running.shutdown().await;
}
