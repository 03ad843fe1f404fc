//! A request's way back: an upstream response (matched by id, its client id restored, response
//! filters run), a local reply, a timeout, or a lost connection, encoded straight into the client
//! connection's buffer; then the access log line, `on_complete`, and the counters.

use std::borrow::Cow;
use std::rc::Rc;

use metaprotocol_core::{
    ChainOutcome, ChainStep, Codec, LocalReply, Message, Metadata, Mutation, ReplyKind, ResponseStatus,
};
use metaproxy_access_log::{Entry, Lookup};

use super::connection::{UpShared, UpstreamEvents};
use super::engine::{Engine, EngineState, Exchange, Outcome, Sink, Timer, TimerKind, DEFAULT_TIMEOUT};
use super::io::encode;
use super::trace::TryEnd;
use crate::stats::response_class;
use crate::upstream::UpstreamError;

impl<C: Codec> UpstreamEvents<C> for Engine<C> {
    fn tick(&self) {
        Engine::tick(self);
    }

    fn on_response(self: &Rc<Self>, conn: &Rc<UpShared<C>>, response: Message<C::Layout>) {
        self.response_arrived(conn, response);
    }

    fn on_connection_lost(self: &Rc<Self>, conn: &Rc<UpShared<C>>, stranded: Vec<u32>, error: &UpstreamError) {
        self.connection_lost(conn, stranded, error);
    }
}

/// Metadata as the access log looks keys up in it.
struct MetadataLookup<'a>(&'a Metadata);

impl Lookup for MetadataLookup<'_> {
    fn get(&self, key: &str) -> Option<&[u8]> {
        self.0.get(key)
    }
}

impl<C: Codec> Engine<C> {
    /// An upstream response arrived on `conn`.
    fn response_arrived(self: &Rc<Self>, conn: &Rc<UpShared<C>>, mut response: Message<C::Layout>) {
        let id = response.metadata.request_id;
        let Some(key) = conn.inner.borrow_mut().ids.remove(id) else {
            tracing::debug!(id, "upstream answer to no request in flight (late or unknown); dropped");
            return;
        };
        let key = key as usize;
        let filtered = {
            let mut state = self.state.borrow_mut();
            let EngineState { inflight, timers, .. } = &mut *state;
            let Some(ex) = inflight.get_mut(key) else { return };
            for timer in [&mut ex.request_timer, &mut ex.try_timer] {
                if let Some(t) = timer.take() {
                    let _ = timers.try_remove(&t);
                }
            }
            if let (Some(sent), Some(cluster)) = (ex.sent.take(), ex.cluster.as_ref()) {
                sent._load.answered(cluster, self.now(), response.metadata.response_status);
            }
            if ex.trace.is_some() {
                self.trace_try_end(ex, TryEnd::Response(&response.metadata));
            }
            if let Err(e) = self.codec.rewrite_request_id(&mut response, ex.original_id) {
                drop(state);
                let reply = LocalReply::new(ReplyKind::InternalError, format!("cannot restore the request id: {e}"));
                return self.reply_by_key(key, reply);
            }
            if ex.listener.spec.filters.is_empty() || matches!(ex.sink, Sink::Mirror) {
                // The common case, finished where the request lies: no move of its state. (A
                // mirrored copy's answer is discarded: no filter sees it.)
                self.write_response(ex, &response);
                self.finish(ex, Outcome::Response, Some(&response.metadata));
                inflight.discard(key);
                return;
            }
            true
        };
        if filtered {
            let Some(mut ex) = self.remove(key) else { return };
            ex.ctx.response = Some(Box::new(response.take_metadata()));
            let step = ex.listener.spec.filters.run_response(&mut ex.ctx, ex.listener.spec.filters.len());
            self.after_response_filters(ex, response, step);
        }
    }

    fn after_response_filters(self: &Rc<Self>, mut ex: Exchange<C>, response: Message<C::Layout>, step: ChainStep) {
        match step {
            ChainStep::Done(ChainOutcome::Continue) => {
                self.write_response(&ex, &response);
                self.finish(&ex, Outcome::Response, None);
            }
            ChainStep::Done(ChainOutcome::Reply { reply, .. }) => self.reply_locally(ex, reply),
            ChainStep::Done(ChainOutcome::Drop { .. }) => self.drop_request(ex),
            ChainStep::Wait { index, pending } => {
                // The answer parks in a task of its own until the filter answers.
                let engine = self.clone();
                tokio::task::spawn_local(async move {
                    let answer = tokio::time::timeout(DEFAULT_TIMEOUT, pending).await;
                    engine.tick();
                    match answer {
                        Ok(resume) => {
                            let step = ex.listener.spec.filters.resume_response(&mut ex.ctx, index, resume);
                            engine.after_response_filters(ex, response, step);
                        }
                        Err(_) => {
                            let reply = LocalReply::new(ReplyKind::Timeout, "a filter did not answer in time");
                            engine.reply_locally(ex, reply);
                        }
                    }
                });
            }
        }
    }

    /// Encodes the upstream's answer for the client, with the response mutations.
    fn write_response(&self, ex: &Exchange<C>, response: &Message<C::Layout>) {
        let Sink::Client(down) = &ex.sink else { return };
        let route = ex.ctx.route.as_ref().map(|d| &d.route.response_mutation).filter(|m| !m.is_empty());
        let mutation: Cow<'_, Mutation> = match route {
            None => Cow::Borrowed(&ex.ctx.response_mutation),
            Some(m) if ex.ctx.response_mutation.is_empty() => Cow::Borrowed(m),
            Some(m) => {
                let mut all = ex.ctx.response_mutation.clone();
                all.extend_from(m);
                Cow::Owned(all)
            }
        };
        down.deliver(|encoder, out| {
            if let Err(error) = encode(encoder, response, &mutation, out) {
                tracing::warn!(%error, "cannot encode the answer; sending an error reply");
                let reply = LocalReply::new(ReplyKind::InternalError, format!("cannot encode the response: {error}"));
                if let Ok(m) = encoder.local_reply(&ex.request, &reply) {
                    let _ = encode(encoder, &m, &Mutation::new(), out);
                }
            }
        });
    }

    /// Answers request `key` locally and ends it.
    pub(crate) fn reply_by_key(self: &Rc<Self>, key: usize, reply: LocalReply) {
        if let Some(mut ex) = self.remove(key) {
            if let Some(sent) = ex.sent.take() {
                // Still on a live connection (a timeout): a late answer must find nothing.
                sent.conn.abandon(sent.id);
            }
            self.reply_locally(ex, reply);
        }
    }

    /// Drops request `key` (a filter asked to) and ends it.
    pub(crate) fn drop_by_key(self: &Rc<Self>, key: usize) {
        if let Some(ex) = self.remove(key) {
            self.drop_request(ex);
        }
    }

    /// Answers the client with a protocol-native error (nothing for a one-way request or a mirror).
    pub(crate) fn reply_locally(self: &Rc<Self>, mut ex: Exchange<C>, reply: LocalReply) {
        if ex.request.metadata.request_id != ex.original_id {
            let _ = self.codec.rewrite_request_id(&mut ex.request, ex.original_id);
        }
        if let Sink::Client(down) = &ex.sink {
            ex.listener.stats.local_reply(reply.kind);
            if reply.kind == ReplyKind::OverLimit && ex.ctx.route.is_some() {
                // Refused by a cluster's limits (after routing; a filter's refusal comes before):
                // the connection waits for capacity instead of sending more to be refused.
                self.park(down);
            }
            if ex.request.metadata.message_type.expects_response() {
                let request = &ex.request;
                down.deliver(|encoder, out| match encoder.local_reply(request, &reply) {
                    Ok(m) => {
                        let _ = encode(encoder, &m, &Mutation::new(), out);
                    }
                    Err(error) => tracing::debug!(%error, "the codec cannot build this reply"),
                });
            }
        }
        ex.ctx.local_reply = Some(reply);
        self.finish(&ex, Outcome::Local, None);
    }

    /// A filter dropped the request: the client's connection closes once the rest is answered.
    pub(crate) fn drop_request(self: &Rc<Self>, ex: Exchange<C>) {
        if let Sink::Client(down) = &ex.sink {
            down.abort();
        }
        self.finish(&ex, Outcome::Dropped, None);
    }

    /// A timer fired.
    pub(crate) fn on_timer(self: &Rc<Self>, timer: Timer) {
        {
            let mut state = self.state.borrow_mut();
            let Some(ex) = state.inflight.get_mut(timer.key) else { return };
            if ex.seq != timer.seq {
                return;
            }
            match timer.kind {
                TimerKind::Request => ex.request_timer = None,
                TimerKind::Try => ex.try_timer = None,
            }
        }
        match timer.kind {
            TimerKind::Try => {
                if let Some(ex) = self.state.borrow().inflight.get(timer.key) {
                    if let Some(c) = &ex.cluster {
                        c.stats.upstream_rq_per_try_timeout.inc();
                        if let Some(sent) = &ex.sent {
                            c.shared.outlier_error(sent._load.endpoint());
                        }
                    }
                }
                self.fail_try(timer.key, UpstreamError::PerTryTimeout);
            }
            TimerKind::Request => {
                let timeout = {
                    let state = self.state.borrow();
                    let Some(ex) = state.inflight.get(timer.key) else { return };
                    if let Some(c) = &ex.cluster {
                        c.stats.upstream_rq_timeout.inc();
                        if let Some(sent) = &ex.sent {
                            c.shared.outlier_error(sent._load.endpoint());
                        }
                    }
                    ex.ctx.route.as_ref().and_then(|d| d.route.timeout).unwrap_or(DEFAULT_TIMEOUT)
                };
                // A late answer finds no request and is dropped.
                let reply = LocalReply::new(ReplyKind::Timeout, format!("no response within {timeout:?}"));
                self.reply_by_key(timer.key, reply);
            }
        }
    }

    /// An upstream connection ended (or never opened) with `stranded` requests on it.
    ///
    /// When an open connection resets, most of its requests were merely sharing it with the one
    /// that made the upstream close it (a frame it could not read, say). Each gets one more try
    /// on another connection, whatever the route's retry policy, once: it was sent and not
    /// answered, and the client must not pay for another client's request. (One-way requests are
    /// not in flight, so never resent.)
    fn connection_lost(self: &Rc<Self>, conn: &Rc<UpShared<C>>, stranded: Vec<u32>, error: &UpstreamError) {
        let reset = matches!(error, UpstreamError::Reset { .. });
        // A connection lost with requests on it is one error of its endpoint for outlier
        // detection, however many requests it carried.
        let mut outlier = matches!(error, UpstreamError::Reset { .. } | UpstreamError::BadResponse { .. });
        for key in stranded {
            let key = key as usize;
            let on_conn = {
                let mut state = self.state.borrow_mut();
                match state.inflight.get_mut(key) {
                    Some(ex) if ex.sent.as_ref().is_some_and(|s| Rc::ptr_eq(&s.conn, conn)) => {
                        if let (true, Some(sent), Some(c)) = (outlier, &ex.sent, &ex.cluster) {
                            c.shared.outlier_error(sent._load.endpoint());
                            outlier = false;
                        }
                        // The id went with the connection.
                        ex.sent = None;
                        if ex.trace.is_some() {
                            self.trace_try_end(ex, TryEnd::Failed(error));
                        }
                        let shared_retry = reset && !ex.reset_retried && matches!(ex.sink, Sink::Client(_));
                        if shared_retry {
                            ex.reset_retried = true;
                            ex.max_tries += 1;
                            if let Some(c) = &ex.cluster {
                                c.stats.upstream_rq_retry.inc();
                            }
                        }
                        Some(shared_retry)
                    }
                    _ => None,
                }
            };
            match on_conn {
                Some(true) => self.resend(key),
                Some(false) => self.fail_try(key, error.clone()),
                None => {}
            }
        }
    }

    /// Sends request `key` again (its previous try is over: no id, no live timer of its own).
    fn resend(self: &Rc<Self>, key: usize) {
        {
            let mut state = self.state.borrow_mut();
            let EngineState { inflight, timers, .. } = &mut *state;
            if let Some(t) = inflight.get_mut(key).and_then(|ex| ex.try_timer.take()) {
                let _ = timers.try_remove(&t);
            }
        }
        self.send_try(key);
    }

    /// The end of every request: access log, `on_complete`, counters, and the client connection's
    /// count of requests in flight. The caller then drops the exchange, which releases its
    /// circuit-breaker unit.
    pub(crate) fn finish(&self, ex: &Exchange<C>, outcome: Outcome, response: Option<&Metadata>) {
        if ex.trace.is_some() {
            self.trace_finish(ex, outcome, response);
        }
        let listener = &ex.listener;
        let Sink::Client(down) = &ex.sink else { return };
        let stats = &listener.stats;
        match outcome {
            Outcome::Response => stats.responses.inc(),
            Outcome::Sent => stats.oneway.inc(),
            Outcome::Dropped => stats.dropped.inc(),
            Outcome::Local => {}
        }
        stats.downstream_rq_active.dec();
        let elapsed = self.now().saturating_duration_since(ex.started);
        stats.downstream_rq_time.record(elapsed);
        let answer = match outcome {
            Outcome::Response => response.or(ex.ctx.response.as_deref()).map(|m| m.response_status),
            Outcome::Local if ex.request.metadata.message_type.expects_response() => Some(ResponseStatus::Error),
            _ => None,
        };
        if let Some(class) = answer.and_then(|status| stats.responses_by_class.get(response_class(status))) {
            class.inc();
        }
        {
            let mut log = self.access_log.borrow_mut();
            if log.enabled() {
                let duration = elapsed;
                let response = response.or(ex.ctx.response.as_deref());
                let request = MetadataLookup(&ex.ctx.request);
                let response_lookup = response.map(MetadataLookup);
                let decision = ex.ctx.route.as_ref();
                let entry = Entry {
                    start_time: self.wall_time(ex.started),
                    duration,
                    listener: &listener.spec.name,
                    protocol: &self.protocol,
                    downstream: down.peer,
                    service: ex.ctx.request.service(),
                    method: ex.ctx.request.method(),
                    request_id: ex.original_id,
                    message_type: ex.ctx.request.message_type.as_str(),
                    route: decision.map(|d| &*d.route.name),
                    cluster: decision.map(|d| &*d.destination.cluster),
                    subset: decision.and_then(|d| d.destination.subset.as_deref()),
                    upstream: ex.upstream,
                    attempts: ex.attempts,
                    outcome: outcome.as_str(),
                    local_reply: ex.ctx.local_reply.as_ref().map(|r| r.kind.as_str()),
                    response_code: response.and_then(|m| m.kvs.get_str("status")),
                    request: &request,
                    response: response_lookup.as_ref().map(|l| l as &dyn Lookup),
                };
                log.log(&entry);
            }
        }
        listener.spec.filters.on_complete(&ex.ctx);
        down.finish_one();
        if ex.ticket.is_some() {
            // Its cluster capacity is released with the exchange: the first parked connection
            // gets the turn.
            self.unpark_one();
        }
    }
}
