//! L7 filters: code that runs over every request and response and may answer locally.
//!
//! A [`Filter`] sees a [`RequestContext`] (the request's metadata, the mutations to apply, the
//! route decision, typed attributes) and returns a [`FilterAction`]: go on, reply locally, or drop.
//! Filters that need no I/O answer at once with no allocation; a filter that must wait (a remote
//! rate-limit or auth check) returns a [`Pending`] future that owns what it needs, so no call ever
//! blocks a worker thread and the proxy can park the request. A [`FilterChain`] runs them in
//! configuration order, synchronously for as long as every filter answers at once.

mod attributes;
mod chain;
mod context;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use attributes::Attributes;
pub use chain::{ChainOutcome, ChainStep, FilterChain};
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

/// A filter's answer: known now, or later.
///
/// Filters that need no I/O return [`FilterResult::Ready`] (or `FilterAction::Continue.into()`),
/// which costs nothing. A filter that must wait (a remote rate-limit or auth check) returns
/// [`FilterResult::Wait`] with a [`Pending`]: a `'static` future that owns what it needs (clone
/// what it reads from the context) and resolves to a [`Resume`]. The proxy parks the request
/// meanwhile, without blocking its worker, and applies the `Resume` to the context when it comes.
pub enum FilterResult {
    /// The action is known now.
    Ready(FilterAction),
    /// The action comes later.
    Wait(Pending),
}

impl FilterResult {
    /// `Continue`, known now: what a filter returns when it has nothing to do.
    pub fn proceed() -> Self {
        FilterResult::Ready(FilterAction::Continue)
    }

    /// The action if it is already known, else the pending answer back (for synchronous callers
    /// and tests).
    pub fn into_ready(self) -> Result<FilterAction, Pending> {
        match self {
            FilterResult::Ready(action) => Ok(action),
            FilterResult::Wait(pending) => Err(pending),
        }
    }

    /// An answer that `future` will produce; see [`Pending`].
    pub fn wait(future: impl Future<Output = Resume> + Send + 'static) -> Self {
        FilterResult::Wait(Pending(Box::pin(future)))
    }
}

impl From<FilterAction> for FilterResult {
    fn from(action: FilterAction) -> Self {
        FilterResult::Ready(action)
    }
}

impl std::fmt::Debug for FilterResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterResult::Ready(a) => f.debug_tuple("Ready").field(a).finish(),
            FilterResult::Wait(_) => f.write_str("Wait(..)"),
        }
    }
}

/// A filter's answer in the making: a boxed `'static` future resolving to a [`Resume`].
pub struct Pending(Pin<Box<dyn Future<Output = Resume> + Send>>);

impl Future for Pending {
    type Output = Resume;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resume> {
        self.0.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending(..)")
    }
}

/// What a waiting filter decided: the action, and optionally changes to make to the request's
/// context first (set attributes, add a mutation, pick a route).
pub struct Resume {
    action: FilterAction,
    apply: Option<ContextEdit>,
}

type ContextEdit = Box<dyn FnOnce(&mut RequestContext) + Send>;

impl Resume {
    /// Resume with `action`, changing nothing.
    pub fn new(action: FilterAction) -> Self {
        Resume { action, apply: None }
    }

    /// Resume with `action` after `edit` changed the context.
    pub fn with(action: FilterAction, edit: impl FnOnce(&mut RequestContext) + Send + 'static) -> Self {
        Resume { action, apply: Some(Box::new(edit)) }
    }

    /// Applies the edit (if any) to `ctx` and returns the action.
    pub fn apply(self, ctx: &mut RequestContext) -> FilterAction {
        if let Some(edit) = self.apply {
            edit(ctx);
        }
        self.action
    }
}

impl From<FilterAction> for Resume {
    fn from(action: FilterAction) -> Self {
        Resume::new(action)
    }
}

impl std::fmt::Debug for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resume").field("action", &self.action).field("edits", &self.apply.is_some()).finish()
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
    fn on_request(&self, ctx: &mut RequestContext) -> FilterResult {
        let _ = ctx;
        FilterResult::proceed()
    }

    /// Runs over a response (`ctx.response` is set). Default: `Continue`.
    fn on_response(&self, ctx: &mut RequestContext) -> FilterResult {
        let _ = ctx;
        FilterResult::proceed()
    }

    /// Runs when the request is over: answered, replied to locally, dropped, or sent one-way.
    /// Default: nothing.
    fn on_complete(&self, ctx: &RequestContext) {
        let _ = ctx;
    }
}
