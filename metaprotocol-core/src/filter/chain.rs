//! [`FilterChain`]: runs a listener's filters in order and stops at the first that answers.

use std::sync::Arc;

use crate::codec::LocalReply;
use crate::filter::{Filter, FilterAction, RequestContext};

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

    /// Runs `on_request` of each filter in order, stopping at the first reply or drop. A reply is
    /// also recorded in `ctx.local_reply`.
    pub async fn on_request(&self, ctx: &mut RequestContext) -> ChainOutcome {
        for (index, filter) in self.filters.iter().enumerate() {
            let outcome = match filter.on_request(ctx).await {
                FilterAction::Continue => continue,
                FilterAction::Reply(reply) => ChainOutcome::Reply { index, reply },
                FilterAction::Drop => ChainOutcome::Drop { index },
            };
            return record(ctx, outcome);
        }
        ChainOutcome::Continue
    }

    /// Runs `on_response` of each filter in reverse order, stopping at the first reply or drop.
    pub async fn on_response(&self, ctx: &mut RequestContext) -> ChainOutcome {
        for (index, filter) in self.filters.iter().enumerate().rev() {
            let outcome = match filter.on_response(ctx).await {
                FilterAction::Continue => continue,
                FilterAction::Reply(reply) => ChainOutcome::Reply { index, reply },
                FilterAction::Drop => ChainOutcome::Drop { index },
            };
            return record(ctx, outcome);
        }
        ChainOutcome::Continue
    }

    /// Runs `on_complete` of every filter, in order.
    pub fn on_complete(&self, ctx: &RequestContext) {
        for filter in &self.filters {
            filter.on_complete(ctx);
        }
    }
}

fn record(ctx: &mut RequestContext, outcome: ChainOutcome) -> ChainOutcome {
    if let ChainOutcome::Reply { reply, .. } = &outcome {
        ctx.local_reply = Some(reply.clone());
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::codec::ReplyKind;
    use crate::filter::FilterFuture;
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
        fn on_request<'a>(&'a self, ctx: &'a mut RequestContext) -> FilterFuture<'a> {
            self.log.lock().unwrap().push(format!("req:{}", self.name));
            ctx.request_mutation.set(self.name, "seen");
            if self.asynchronous {
                let action = self.on_request.clone();
                FilterFuture::wait(async move {
                    Yield(false).await;
                    action
                })
            } else {
                self.on_request.clone().into()
            }
        }
        fn on_response<'a>(&'a self, _ctx: &'a mut RequestContext) -> FilterFuture<'a> {
            self.log.lock().unwrap().push(format!("resp:{}", self.name));
            FilterFuture::proceed()
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
    fn drop_stops_the_chain() {
        let (c, log) = chain(&[("a", FilterAction::Drop, false), ("b", FilterAction::Continue, false)]);
        let mut ctx = RequestContext::new(Metadata::new(MessageType::Request, 1));
        assert_eq!(block_on(c.on_request(&mut ctx)), ChainOutcome::Drop { index: 0 });
        assert_eq!(*log.lock().unwrap(), ["req:a"]);
    }
}
