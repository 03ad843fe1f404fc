//! L7 filters: code that runs over every request and response and may answer locally.
//!
//! A [`Filter`] sees a [`RequestContext`] (the request's metadata, the mutations to apply, the
//! route decision, typed attributes) and returns a [`FilterAction`]: go on, reply locally, or drop.
//! Filters that need no I/O answer at once with no allocation; a filter that must wait (a remote
//! rate-limit or auth check) returns a boxed future, so no call ever blocks a worker thread.
//! A [`FilterChain`] runs them in configuration order.

mod attributes;
mod chain;
mod context;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use attributes::Attributes;
pub use chain::{ChainOutcome, FilterChain};
pub use context::{RequestContext, RouteDecision};

use crate::codec::LocalReply;

/// What a filter wants done with the message it was shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterAction {
    /// Run the next filter (then the router, or the write to the client).
    Continue,
    /// Answer the client with this protocol-native error instead. On a request the remaining
    /// filters and the upstream are skipped; on a response it replaces the upstream's answer.
    Reply(LocalReply),
    /// Discard the message and close the downstream connection (for abusive or broken clients).
    /// The other requests in flight on that connection are answered with an error first.
    Drop,
}

/// The result of a filter call: ready at once, or a future to await.
///
/// Returning [`FilterFuture::ready`] (or `FilterAction::Continue.into()`) costs no allocation;
/// [`FilterFuture::wait`] boxes an `async` block for filters that do I/O.
pub enum FilterFuture<'a> {
    /// The action is known now.
    Ready(Option<FilterAction>),
    /// The action comes later.
    Wait(Pin<Box<dyn Future<Output = FilterAction> + Send + 'a>>),
}

impl<'a> FilterFuture<'a> {
    /// An action known now.
    pub fn ready(action: FilterAction) -> Self {
        FilterFuture::Ready(Some(action))
    }

    /// `Continue`, known now: what a filter returns when it has nothing to do.
    pub fn proceed() -> Self {
        FilterFuture::Ready(Some(FilterAction::Continue))
    }

    /// The action if it is already known, else the future back (for synchronous callers and tests).
    pub fn into_ready(self) -> Result<FilterAction, Self> {
        match self {
            FilterFuture::Ready(Some(action)) => Ok(action),
            other => Err(other),
        }
    }

    /// An action that an `async` block will produce.
    pub fn wait(fut: impl Future<Output = FilterAction> + Send + 'a) -> Self {
        FilterFuture::Wait(Box::pin(fut))
    }
}

impl From<FilterAction> for FilterFuture<'_> {
    fn from(action: FilterAction) -> Self {
        FilterFuture::ready(action)
    }
}

impl Future for FilterFuture<'_> {
    type Output = FilterAction;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FilterAction> {
        match self.get_mut() {
            // Polling a finished future again is a caller bug; answer Continue rather than panic.
            FilterFuture::Ready(action) => Poll::Ready(action.take().unwrap_or(FilterAction::Continue)),
            FilterFuture::Wait(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl std::fmt::Debug for FilterFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterFuture::Ready(a) => f.debug_tuple("Ready").field(a).finish(),
            FilterFuture::Wait(_) => f.write_str("Wait(..)"),
        }
    }
}

/// An L7 filter. One instance serves every connection of a listener, so per-request state goes in
/// [`RequestContext::attributes`].
///
/// Every method has a default that does nothing, so a filter implements only the phases it needs:
///
/// * [`on_request`](Filter::on_request), in configuration order, before routing. It may read and
///   change `ctx.request`, add to `ctx.request_mutation` or `ctx.response_mutation`, pre-set
///   `ctx.route`, or reply locally.
/// * [`on_response`](Filter::on_response), in reverse order (as Envoy runs encoder filters), with
///   `ctx.response` set. Not called for one-way requests or when a filter replied on the request.
/// * [`on_complete`](Filter::on_complete), once per request whatever happened, for logs and metrics.
pub trait Filter: Send + Sync + 'static {
    /// The filter's name, for logs.
    fn name(&self) -> &str;

    /// Runs over a request. Default: `Continue`.
    fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> FilterFuture<'a> {
        let _ = ctx;
        FilterFuture::proceed()
    }

    /// Runs over a response (`ctx.response` is set). Default: `Continue`.
    fn on_response<'a>(&'a self, ctx: &'a mut RequestContext) -> FilterFuture<'a> {
        let _ = ctx;
        FilterFuture::proceed()
    }

    /// Runs when the request is over: answered, replied to locally, dropped, or sent one-way.
    /// Default: nothing.
    fn on_complete(&self, ctx: &RequestContext) {
        let _ = ctx;
    }
}
