//! A request's way out, run to completion inside the worker as soon as it is decoded: filters,
//! route, circuit breaker, load balancing, then encoding straight into the chosen upstream
//! connection's buffer. No channel, no spawned task, no boxed future and no timer registration
//! per request; only a filter that must wait parks its request in a task of its own.
//!
//! The request's state ([`Exchange`]) is written once into the engine's table when it is decoded
//! and worked on in place, by key, until it is answered: a large value is not moved from call to
//! call.

use std::rc::Rc;

use metaprotocol_core::route::Destination;
use metaprotocol_core::{
    ChainOutcome, ChainStep, Codec, LocalReply, Message, Metadata, ReplyKind, RequestContext, Resume, RouteDecision,
};

use super::connection::{ConnState, UpInner, UpShared};
use super::downstream::DownShared;
use super::engine::{
    Engine, EngineState, Exchange, Outcome, RequestTicket, Sent, Sink, Timer, TimerKind, DEFAULT_TIMEOUT,
};
use super::io::encode;
use super::listener::ListenerRt;
use super::pool::{self, Choice, ClusterPools, EndpointPool, LoadGuard};
use super::trace::{ExchangeTrace, TryEnd};
use crate::upstream::lb::{self, PickInput};
use crate::upstream::{Resource, UpstreamError};

/// Where a try goes: the endpoint and the connection to it.
type Target<C> = (Rc<EndpointPool<C>>, Rc<UpShared<C>>);

/// What routing decided.
enum Next {
    /// Answer locally.
    Reply(LocalReply),
    /// Send (two-way), after mirroring to the destination if any.
    Send(Option<Destination>),
    /// Send one-way, after mirroring to the destination if any.
    Oneway(Option<Destination>),
}

impl<C: Codec> Engine<C> {
    /// Starts a request decoded on `down`.
    pub(crate) fn on_request(
        self: &Rc<Self>,
        listener: &Rc<ListenerRt>,
        down: &Rc<DownShared<C>>,
        mut request: Message<C::Layout>,
    ) {
        let started = self.now();
        let metadata = request.take_metadata();
        let original_id = metadata.request_id;
        let mut ctx = RequestContext::starting_at(metadata, started);
        ctx.downstream_addr = down.peer;
        down.inner.borrow_mut().inflight += 1;
        listener.stats.downstream_rq_total.inc();
        listener.stats.downstream_rq_active.inc();
        let trace = self.trace_start(listener, &ctx.request);
        let key = {
            let mut state = self.state.borrow_mut();
            let seq = next_seq(&mut state.next_seq);
            let sink = Sink::Client(down.clone());
            let mut exchange = Exchange::new(seq, sink, listener.clone(), ctx, request, original_id, started);
            exchange.trace = trace;
            state.inflight.insert(exchange)
        };
        self.run_request_filters(key, 0, None);
    }

    /// Runs the request filters from position `from` (resuming a waiting one with `resume`).
    fn run_request_filters(self: &Rc<Self>, key: usize, from: usize, resume: Option<Resume>) {
        let step = {
            let mut state = self.state.borrow_mut();
            let Some(ex) = state.inflight.get_mut(key) else { return };
            let Exchange { listener, ctx, .. } = ex;
            match resume {
                None => listener.spec.filters.run_request(ctx, from),
                Some(resume) => listener.spec.filters.resume_request(ctx, from, resume),
            }
        };
        match step {
            ChainStep::Done(ChainOutcome::Continue) => self.route(key),
            ChainStep::Done(ChainOutcome::Reply { reply, .. }) => self.reply_by_key(key, reply),
            ChainStep::Done(ChainOutcome::Drop { .. }) => self.drop_by_key(key),
            ChainStep::Wait { index, pending } => {
                // The request parks in a task of its own (it stays in the table) until the filter
                // answers.
                let seq = self.state.borrow().inflight.get(key).map(|ex| ex.seq);
                let engine = self.clone();
                tokio::task::spawn_local(async move {
                    let answer = tokio::time::timeout(DEFAULT_TIMEOUT, pending).await;
                    engine.tick();
                    if engine.state.borrow().inflight.get(key).map(|ex| ex.seq) != seq {
                        return;
                    }
                    match answer {
                        Ok(resume) => engine.run_request_filters(key, index, Some(resume)),
                        Err(_) => engine
                            .reply_by_key(key, LocalReply::new(ReplyKind::Timeout, "a filter did not answer in time")),
                    }
                });
            }
        }
    }

    /// Routes a request whose filters all continued, and sends it.
    fn route(self: &Rc<Self>, key: usize) {
        let next = {
            let mut state = self.state.borrow_mut();
            let EngineState { inflight, timers, .. } = &mut *state;
            let Some(ex) = inflight.get_mut(key) else { return };
            self.decide(ex, key, timers)
        };
        match next {
            Next::Reply(reply) => self.reply_by_key(key, reply),
            Next::Send(mirror) => {
                if let Some(m) = mirror {
                    self.mirror(key, &m);
                }
                self.send_try(key);
            }
            Next::Oneway(mirror) => {
                if let Some(m) = mirror {
                    self.mirror(key, &m);
                }
                self.send_oneway(key);
            }
        }
    }

    /// The routing decision for `ex`, recorded in it: route, cluster, hash, mutations, breaker,
    /// deadline.
    fn decide(&self, ex: &mut Exchange<C>, key: usize, timers: &mut tokio_util::time::DelayQueue<Timer>) -> Next {
        if ex.ctx.route.is_none() {
            let Some(route) = ex.listener.routes.find(&ex.ctx.request) else {
                return Next::Reply(LocalReply::new(ReplyKind::RouteNotFound, "no route matched the request"));
            };
            let destination = route.pick(fastrand::u64(..)).clone();
            ex.ctx.route = Some(RouteDecision { route: route.clone(), destination });
        }
        let Some(decision) = ex.ctx.route.as_ref() else { return Next::Reply(internal("no route decision")) };
        let route = decision.route.clone();
        let Some(cluster) = self.cluster(&decision.destination.cluster).cloned() else {
            let message = format!("cluster `{}` does not exist", decision.destination.cluster);
            return Next::Reply(LocalReply::new(ReplyKind::ClusterNotFound, message));
        };
        ex.hash = route.hash(&ex.ctx.request);
        if !route.request_mutation.is_empty() {
            ex.ctx.request_mutation.extend_from(&route.request_mutation);
        }
        let mirror = route.mirror_for(fastrand::u64(..)).cloned();
        let Some(ticket) = RequestTicket::acquire(&cluster.shared) else {
            cluster.stats.upstream_rq_pending_overflow.inc();
            let error =
                UpstreamError::Overflow { cluster: cluster.shared.spec.name.clone(), resource: Resource::Requests };
            return Next::Reply(LocalReply::new(error.reply_kind(), error.to_string()));
        };
        ex.ticket = Some(ticket);
        ex.cluster = Some(cluster);
        if !ex.request.metadata.message_type.expects_response() {
            // One-way requests, and stream frames that expect no answer of their own.
            return Next::Oneway(mirror);
        }
        ex.max_tries = 1 + route.retries.count;
        let deadline = deadline(ex.started, route.timeout.unwrap_or(DEFAULT_TIMEOUT));
        let timer = Timer { key, seq: ex.seq, kind: TimerKind::Request };
        ex.request_timer = Some(timers.insert_at(timer, deadline.into()));
        Next::Send(mirror)
    }

    /// Sends the next try of request `key`; a failure to send is a failed try.
    pub(crate) fn send_try(self: &Rc<Self>, key: usize) {
        if let Err(error) = self.try_send(key) {
            self.fail_try(key, error);
        }
    }

    fn try_send(self: &Rc<Self>, key: usize) -> Result<(), UpstreamError> {
        let mut state = self.state.borrow_mut();
        let EngineState { inflight, timers, .. } = &mut *state;
        let Some(ex) = inflight.get_mut(key) else { return Ok(()) };
        ex.attempts += 1;
        let cluster = ex.cluster.clone().ok_or(UpstreamError::PerTryTimeout)?;
        let variant = upstream_variant(&self.codec, ex);
        let (endpoint, conn) = self.connection_for(&cluster, &ex.ctx, ex.hash, variant)?;
        ex.upstream = Some(conn.address);
        let mut inner = conn.inner.borrow_mut();
        let pending_unit = inner.state == ConnState::Connecting;
        if pending_unit && !cluster.shared.breaker.try_acquire(Resource::Pending) {
            cluster.stats.upstream_rq_pending_overflow.inc();
            return Err(UpstreamError::Overflow {
                cluster: cluster.shared.spec.name.clone(),
                resource: Resource::Pending,
            });
        }
        let traced = if ex.trace.is_some() { self.trace_try_begin(ex, conn.address) } else { None };
        match encode_into(&self.codec, &mut inner, key, ex, traced.as_ref()) {
            Ok(id) => {
                if pending_unit {
                    inner.pending += 1;
                }
                UpShared::wake(&mut inner);
                drop(inner);
                ex.sent = Some(Sent { conn, id, _load: LoadGuard::new(endpoint, self.now()) });
                cluster.stats.upstream_rq_total.inc();
                if let Some(t) = ex.ctx.route.as_ref().and_then(|d| d.route.retries.per_try_timeout) {
                    let timer = Timer { key, seq: ex.seq, kind: TimerKind::Try };
                    ex.try_timer = Some(timers.insert_at(timer, deadline(self.now(), t).into()));
                }
                Ok(())
            }
            Err(error) => {
                if pending_unit {
                    cluster.shared.breaker.release(Resource::Pending);
                }
                Err(error)
            }
        }
    }

    /// Picks an endpoint of the request's cluster (and subset), and one of this worker's
    /// connections to it, opening one when the pool is not full.
    fn connection_for(
        self: &Rc<Self>,
        cluster: &Rc<ClusterPools<C>>,
        ctx: &RequestContext,
        hash: Option<u64>,
        variant: u8,
    ) -> Result<Target<C>, UpstreamError> {
        let view = cluster.view();
        let no_endpoint = || UpstreamError::NoEndpoint { cluster: cluster.shared.spec.name.clone() };
        let subset = match ctx.route.as_ref().and_then(|d| d.destination.subset.as_deref()) {
            Some(name) => Some(view.set.subset_index(name).ok_or_else(no_endpoint)?),
            None => None,
        };
        let input = PickInput {
            policy: cluster.shared.spec.lb,
            subset,
            hash,
            random: fastrand::u64(..),
            now_ms: cluster.shared.now_ms(),
        };
        let slot = subset.map_or(0, |s| s + 1);
        let mut positions = cluster.round_robin.borrow_mut();
        if positions.len() <= slot {
            positions.resize(slot + 1, 0);
        }
        let mut round_robin = positions.get(slot).copied().unwrap_or(0);
        let picked = lb::pick(&view.set, input, &mut round_robin, |i| view.pools.get(i).map_or(0, |p| p.active.get()));
        if let Some(p) = positions.get_mut(slot) {
            *p = round_robin;
        }
        drop(positions);
        let endpoint = picked.and_then(|i| view.pools.get(i)).cloned().ok_or_else(no_endpoint)?;
        let conn = match endpoint.choose(cluster.shared.spec.connections_per_endpoint, variant) {
            Choice::Use(conn) => conn,
            Choice::Open => {
                pool::open(self, &self.codec, cluster, &endpoint, variant).ok_or(UpstreamError::Overflow {
                    cluster: cluster.shared.spec.name.clone(),
                    resource: Resource::Connections,
                })?
            }
            Choice::Full => return Err(UpstreamError::Backlog { address: endpoint.shared.address }),
        };
        Ok((endpoint, conn))
    }

    /// A try failed: retry when the route's policy allows it, else answer with the failure.
    pub(crate) fn fail_try(self: &Rc<Self>, key: usize, error: UpstreamError) {
        let retry = {
            let mut state = self.state.borrow_mut();
            let EngineState { inflight, timers, .. } = &mut *state;
            let Some(ex) = inflight.get_mut(key) else { return };
            if let Some(sent) = ex.sent.take() {
                // The try timed out: its answer may still come, and must find nothing.
                sent.conn.abandon(sent.id);
            }
            if let Some(t) = ex.try_timer.take() {
                let _ = timers.try_remove(&t);
            }
            if ex.trace.is_some() {
                self.trace_try_end(ex, TryEnd::Failed(&error));
            }
            let policy = ex.ctx.route.as_ref().map(|d| &d.route.retries);
            let allowed = ex.attempts < ex.max_tries
                && error.retry_on().is_some_and(|on| policy.is_some_and(|p| p.retries_on(on)));
            tracing::debug!(%error, attempt = ex.attempts, retry = allowed, "upstream try failed");
            if allowed {
                if let Some(c) = &ex.cluster {
                    c.stats.upstream_rq_retry.inc();
                }
            }
            allowed
        };
        if retry {
            return self.send_try(key);
        }
        self.reply_by_key(key, LocalReply::new(error.reply_kind(), error.to_string()));
    }

    /// Takes request `key` out of the table, cancelling its timers.
    pub(crate) fn remove(&self, key: usize) -> Option<Exchange<C>> {
        let mut state = self.state.borrow_mut();
        let mut ex = state.inflight.remove(key)?;
        state.cancel(&mut ex.request_timer);
        state.cancel(&mut ex.try_timer);
        Some(ex)
    }

    /// Sends one-way request `key`: no id, no timer, no answer; it is over once encoded.
    fn send_oneway(self: &Rc<Self>, key: usize) {
        let sent = {
            let mut state = self.state.borrow_mut();
            let Some(ex) = state.inflight.get_mut(key) else { return };
            ex.attempts = 1;
            let Some(cluster) = ex.cluster.clone() else { return };
            let variant = upstream_variant(&self.codec, ex);
            self.connection_for(&cluster, &ex.ctx, ex.hash, variant).and_then(|(_, conn)| {
                ex.upstream = Some(conn.address);
                let traced = if ex.trace.is_some() { self.trace_try_begin(ex, conn.address) } else { None };
                let mut inner = conn.inner.borrow_mut();
                let UpInner { encoder, out, .. } = &mut *inner;
                encode(encoder, &ex.request, traced.as_ref().unwrap_or(&ex.ctx.request_mutation), out)
                    .map_err(|source| UpstreamError::Encode { source })?;
                UpShared::wake(&mut inner);
                cluster.stats.upstream_rq_total.inc();
                Ok(())
            })
        };
        match sent {
            Ok(()) => {
                if let Some(ex) = self.remove(key) {
                    self.finish(&ex, Outcome::Sent, None);
                }
            }
            Err(error) => self.reply_by_key(key, LocalReply::new(error.reply_kind(), error.to_string())),
        }
    }

    /// Sends a copy of request `key` to `destination`, through that cluster's circuit breaker;
    /// its answer is discarded.
    fn mirror(self: &Rc<Self>, key: usize, destination: &Destination) {
        let Some(cluster) = self.cluster(&destination.cluster).cloned() else { return };
        let Some(ticket) = RequestTicket::acquire(&cluster.shared) else {
            cluster.stats.upstream_rq_mirror_overflow.inc();
            return;
        };
        cluster.stats.upstream_rq_mirrored.inc();
        let copy_key = {
            let mut state = self.state.borrow_mut();
            let EngineState { inflight, timers, next_seq: last_seq } = &mut *state;
            let Some(ex) = inflight.get(key) else { return };
            let Some(decision) = ex.ctx.route.as_ref() else { return };
            let mut ctx =
                RequestContext::starting_at(Metadata::new(ex.ctx.request.message_type, ex.original_id), ex.started);
            ctx.request_mutation = ex.ctx.request_mutation.clone();
            ctx.route = Some(RouteDecision { route: decision.route.clone(), destination: destination.clone() });
            let deadline = deadline(ex.started, decision.route.timeout.unwrap_or(DEFAULT_TIMEOUT));
            let oneway = !ex.request.metadata.message_type.expects_response();
            let mut copy = Exchange::new(
                next_seq(last_seq),
                Sink::Mirror,
                ex.listener.clone(),
                ctx,
                ex.request.clone(),
                ex.original_id,
                ex.started,
            );
            copy.cluster = Some(cluster);
            copy.hash = ex.hash;
            copy.trace = ex.trace.as_deref().map(ExchangeTrace::for_mirror);
            copy.ticket = Some(ticket);
            let seq = copy.seq;
            let copy_key = inflight.insert(copy);
            if !oneway {
                let timer = Timer { key: copy_key, seq, kind: TimerKind::Request };
                if let Some(c) = inflight.get_mut(copy_key) {
                    c.request_timer = Some(timers.insert_at(timer, deadline.into()));
                }
            }
            (copy_key, oneway)
        };
        match copy_key {
            (k, true) => self.send_oneway(k),
            (k, false) => self.send_try(k),
        }
    }
}

/// The longest a deadline may reach: the configuration refuses longer timeouts, and a route that
/// a filter built itself is held to it here (an `Instant` must not overflow, nor the timer wheel
/// be asked beyond its horizon).
const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// `start + timeout`, the timeout capped at [`MAX_TIMEOUT`].
fn deadline(start: std::time::Instant, timeout: std::time::Duration) -> std::time::Instant {
    start + timeout.min(MAX_TIMEOUT)
}

fn internal(message: &'static str) -> LocalReply {
    LocalReply::new(ReplyKind::InternalError, message)
}

/// The next sequence number, telling an exchange from a later one that reuses its slab key.
fn next_seq(next: &mut u64) -> u64 {
    *next = next.wrapping_add(1);
    *next
}

/// Gives request `key` an id on the connection and encodes it into the connection's buffer, with
/// `traced` (the request's mutation plus its trace context) in place of the request's mutation
/// when it is traced.
fn encode_into<C: Codec>(
    codec: &C,
    inner: &mut UpInner<C>,
    key: usize,
    ex: &mut Exchange<C>,
    traced: Option<&metaprotocol_core::Mutation>,
) -> Result<u64, UpstreamError> {
    let full = || UpstreamError::Overflow {
        cluster: ex.cluster.as_ref().map_or_else(|| std::sync::Arc::from("-"), |c| c.shared.spec.name.clone()),
        resource: Resource::Requests,
    };
    let waiting = u32::try_from(key).map_err(|_| full())?;
    let Some(id) = inner.ids.insert(waiting) else { return Err(full()) };
    let UpInner { encoder, out, ids, .. } = inner;
    let encoded = codec
        .rewrite_request_id(&mut ex.request, id)
        .and_then(|_| encode(encoder, &ex.request, traced.unwrap_or(&ex.ctx.request_mutation), out));
    match encoded {
        Ok(()) => Ok(id),
        Err(source) => {
            ids.remove(id);
            Err(UpstreamError::Encode { source })
        }
    }
}

/// Which upstream connections may carry `ex`: those of its wire variant (low 3 bits). A request
/// resent because the connection it shared was reset goes on connections kept for such resends,
/// grouped by client (high bits): if a request of one client is what makes the upstream close
/// connections, its resend takes down only that client's resends, never fresh traffic or
/// another client's.
fn upstream_variant<C: Codec>(codec: &C, ex: &Exchange<C>) -> u8 {
    let variant = codec.wire_variant(&ex.request) & 0x07;
    match &ex.sink {
        Sink::Client(down) if ex.reset_retried => 0x80 | ((down.id % 16) as u8) << 3 | variant,
        _ => variant,
    }
}
