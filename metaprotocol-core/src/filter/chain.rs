//! [`FilterChain`]: runs a listener's filters in order and stops at the first that answers.
//!
//! The chain runs synchronously ([`FilterChain::run_request`]) for as long as every filter answers
//! at once, which costs no allocation; it stops at a filter that must wait and hands its
//! [`Pending`] to the caller, who awaits it wherever it parks the request and resumes the chain.

use std::sync::Arc;

use crate::codec::LocalReply;
use crate::filter::{Filter, FilterAction, FilterResult, Pending, RequestContext, Resume};

/// How a chain run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainOutcome {
    /// Every filter said continue.
    Continue,
    /// The filter at `index` asked for a local reply; later filters did not run.
    Reply {
        /// Position of the filter in the chain.
        index: usize,
        /// The reply it asked for.
        reply: LocalReply,
    },
    /// The filter at `index` asked to drop the message and close the connection.
    Drop {
        /// Position of the filter in the chain.
        index: usize,
    },
}

/// One synchronous run of a chain: finished, or stopped at a filter that must wait.
#[derive(Debug)]
pub enum ChainStep {
    /// The chain ran to its end, or a filter replied or dropped.
    Done(ChainOutcome),
    /// The filter at `index` returned a [`Pending`]. Await it, then call
    /// [`FilterChain::resume_request`] (or [`resume_response`](FilterChain::resume_response)) with
    /// `index` and what it resolved to.
    Wait {
        /// Position of the waiting filter.
        index: usize,
        /// Its answer in the making.
        pending: Pending,
    },
}

/// A listener's filters, in configuration order.
#[derive(Clone, Default)]
pub struct FilterChain {
    filters: Vec<Arc<dyn Filter>>,
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.filters.iter().map(|x| x.name())).finish()
    }
}

impl FilterChain {
    /// A chain of `filters`, run in this order on requests.
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        FilterChain { filters }
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// True when there are no filters.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The filters in order.
    pub fn filters(&self) -> &[Arc<dyn Filter>] {
        &self.filters
    }

    /// Runs `on_request` of the filters from position `from` on, in order, synchronously, until one
    /// replies, drops or must wait. Start with `from = 0`. A reply is also recorded in
    /// `ctx.local_reply`.
    pub fn run_request(&self, ctx: &mut RequestContext, from: usize) -> ChainStep {
        for (index, filter) in self.filters.iter().enumerate().skip(from) {
            match filter.on_request(ctx) {
                FilterResult::Ready(FilterAction::Continue) => {}
                FilterResult::Ready(action) => return ChainStep::Done(finish(ctx, index, action)),
                FilterResult::Wait(pending) => return ChainStep::Wait { index, pending },
            }
        }
        ChainStep::Done(ChainOutcome::Continue)
    }

    /// Continues a request run that stopped at `index` once its [`Pending`] resolved to `resume`.
    pub fn resume_request(&self, ctx: &mut RequestContext, index: usize, resume: Resume) -> ChainStep {
        match resume.apply(ctx) {
            FilterAction::Continue => self.run_request(ctx, index + 1),
            action => ChainStep::Done(finish(ctx, index, action)),
        }
    }

    /// Runs `on_response` of the first `upto` filters in reverse order (as Envoy runs encoder
    /// filters), synchronously, until one replies, drops or must wait. Start with
    /// `upto = self.len()`.
    pub fn run_response(&self, ctx: &mut RequestContext, upto: usize) -> ChainStep {
        for (index, filter) in self.filters.iter().enumerate().take(upto).rev() {
            match filter.on_response(ctx) {
                FilterResult::Ready(FilterAction::Continue) => {}
                FilterResult::Ready(action) => return ChainStep::Done(finish(ctx, index, action)),
                FilterResult::Wait(pending) => return ChainStep::Wait { index, pending },
            }
        }
        ChainStep::Done(ChainOutcome::Continue)
    }

    /// Continues a response run that stopped at `index` once its [`Pending`] resolved.
    pub fn resume_response(&self, ctx: &mut RequestContext, index: usize, resume: Resume) -> ChainStep {
        match resume.apply(ctx) {
            FilterAction::Continue => self.run_response(ctx, index),
            action => ChainStep::Done(finish(ctx, index, action)),
        }
    }

    /// Runs the whole request chain, awaiting filters that wait.
    pub async fn on_request(&self, ctx: &mut RequestContext) -> ChainOutcome {
        let mut step = self.run_request(ctx, 0);
        loop {
            match step {
                ChainStep::Done(outcome) => return outcome,
                ChainStep::Wait { index, pending } => step = self.resume_request(ctx, index, pending.await),
            }
        }
    }

    /// Runs the whole response chain, in reverse order, awaiting filters that wait.
    pub async fn on_response(&self, ctx: &mut RequestContext) -> ChainOutcome {
        let mut step = self.run_response(ctx, self.len());
        loop {
            match step {
                ChainStep::Done(outcome) => return outcome,
                ChainStep::Wait { index, pending } => step = self.resume_response(ctx, index, pending.await),
            }
        }
    }

    /// Runs `on_complete` of every filter, in order.
    pub fn on_complete(&self, ctx: &RequestContext) {
        for filter in &self.filters {
            filter.on_complete(ctx);
        }
    }
}

fn finish(ctx: &mut RequestContext, index: usize, action: FilterAction) -> ChainOutcome {
    match action {
        FilterAction::Continue => ChainOutcome::Continue,
        FilterAction::Reply(reply) => {
            ctx.local_reply = Some(reply.clone());
            ChainOutcome::Reply { index, reply }
        }
        FilterAction::Drop => ChainOutcome::Drop { index },
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::codec::ReplyKind;

    use crate::metadata::{MessageType, Metadata};

    /// Drives a future that never waits on I/O (the filters below only yield once).
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    struct Yield(bool);
    impl Future for Yield {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        on_request: FilterAction,
        asynchronous: bool,
    }

    impl Filter for Recorder {
        fn name(&self) -> &str {
            self.name
        }
        fn on_request(&self, ctx: &mut RequestContext) -> FilterResult {
            self.log.lock().unwrap().push(format!("req:{}", self.name));
            if self.asynchronous {
                let (action, name) = (self.on_request.clone(), self.name);
                FilterResult::wait(async move {
                    Yield(false).await;
                    Resume::with(action, move |ctx| {
                        ctx.request_mutation.set(name, "seen");
                    })
                })
            } else {
                ctx.request_mutation.set(self.name, "seen");
                self.on_request.clone().into()
            }
        }
        fn on_response(&self, _ctx: &mut RequestContext) -> FilterResult {
            self.log.lock().unwrap().push(format!("resp:{}", self.name));
            FilterResult::proceed()
        }
        fn on_complete(&self, _ctx: &RequestContext) {
            self.log.lock().unwrap().push(format!("done:{}", self.name));
        }
    }

    fn chain(actions: &[(&'static str, FilterAction, bool)]) -> (FilterChain, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let filters = actions
            .iter()
            .map(|(name, a, asynchronous)| {
                Arc::new(Recorder { name, log: log.clone(), on_request: a.clone(), asynchronous: *asynchronous })
                    as Arc<dyn Filter>
            })
            .collect();
        (FilterChain::new(filters), log)
    }

    #[test]
    fn runs_in_order_and_responses_in_reverse() {
        let (c, log) = chain(&[("a", FilterAction::Continue, false), ("b", FilterAction::Continue, true)]);
        let mut ctx = RequestContext::new(Metadata::new(MessageType::Request, 1));
        assert_eq!(block_on(c.on_request(&mut ctx)), ChainOutcome::Continue);
        assert_eq!(ctx.request_mutation.len(), 2);
        assert_eq!(block_on(c.on_response(&mut ctx)), ChainOutcome::Continue);
        c.on_complete(&ctx);
        assert_eq!(*log.lock().unwrap(), ["req:a", "req:b", "resp:b", "resp:a", "done:a", "done:b"]);
    }

    #[test]
    fn local_reply_skips_the_rest() {
        let reply = LocalReply::new(ReplyKind::OverLimit, "slow down");
        let (c, log) = chain(&[
            ("a", FilterAction::Continue, false),
            ("b", FilterAction::Reply(reply.clone()), true),
            ("c", FilterAction::Continue, false),
        ]);
        let mut ctx = RequestContext::new(Metadata::new(MessageType::Request, 1));
        assert_eq!(block_on(c.on_request(&mut ctx)), ChainOutcome::Reply { index: 1, reply: reply.clone() });
        assert_eq!(ctx.local_reply, Some(reply));
        assert_eq!(*log.lock().unwrap(), ["req:a", "req:b"]);
    }

    #[test]
    fn synchronous_runs_stop_at_a_waiting_filter_and_resume_after_it() {
        let (c, log) = chain(&[
            ("a", FilterAction::Continue, false),
            ("b", FilterAction::Continue, true),
            ("c", FilterAction::Continue, false),
        ]);
        let mut ctx = RequestContext::new(Metadata::new(MessageType::Request, 1));
        let ChainStep::Wait { index, pending } = c.run_request(&mut ctx, 0) else { panic!("b waits") };
        assert_eq!(index, 1);
        assert_eq!(*log.lock().unwrap(), ["req:a", "req:b"]);
        let resume = block_on(pending);
        assert!(matches!(c.resume_request(&mut ctx, index, resume), ChainStep::Done(ChainOutcome::Continue)));
        assert_eq!(*log.lock().unwrap(), ["req:a", "req:b", "req:c"], "b is not called twice");
        assert!(ctx.request_mutation.touches(b"b"), "the resume's edit was applied");
    }

    #[test]
    fn drop_stops_the_chain() {
        let (c, log) = chain(&[("a", FilterAction::Drop, false), ("b", FilterAction::Continue, false)]);
        let mut ctx = RequestContext::new(Metadata::new(MessageType::Request, 1));
        assert_eq!(block_on(c.on_request(&mut ctx)), ChainOutcome::Drop { index: 0 });
        assert_eq!(*log.lock().unwrap(), ["req:a"]);
    }
}
