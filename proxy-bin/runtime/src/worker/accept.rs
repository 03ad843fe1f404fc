//! The accept loop of a listener in one worker, on the worker's own `SO_REUSEPORT` socket (the
//! kernel spreads new connections over the workers' sockets; a connection stays on the worker
//! that accepted it), and [`Bound`]: a listener tied to its engine, which is what a client
//! connection reports its requests to.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use metaprotocol_core::{Codec, Message, RouteTable};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::downstream::{self, DownShared, DownstreamEvents};
use super::engine::Engine;
use super::listener::ListenerRt;
use crate::plan::{ListenerSlot, ListenerSpec};
use crate::RuntimeError;

/// A listener and the engine that serves its requests.
pub(crate) struct Bound<C: Codec> {
    /// The engine.
    pub engine: Rc<Engine<C>>,
    /// The listener as configured now: a reload swaps it, and each request keeps the one it
    /// started with.
    pub listener: RefCell<Rc<ListenerRt>>,
    /// Stops the accept loop (the listener was removed by a reload).
    pub stop: tokio::sync::Notify,
}

impl<C: Codec> Bound<C> {
    /// The listener as configured now.
    pub fn current(&self) -> Rc<ListenerRt> {
        self.listener.borrow().clone()
    }
}

impl<C: Codec> DownstreamEvents<C> for Bound<C> {
    fn codec(&self) -> &C {
        &self.engine.codec
    }

    fn listener(&self) -> Rc<ListenerRt> {
        self.current()
    }

    fn now(&self) -> std::time::Instant {
        self.engine.now()
    }

    fn tick(&self) {
        self.engine.tick();
    }

    fn on_request(self: &Rc<Self>, down: &Rc<DownShared<C>>, listener: &Rc<ListenerRt>, request: Message<C::Layout>) {
        self.engine.on_request(listener, down, request);
    }
}

impl<C: Codec> ListenerSlot for Bound<C> {
    fn name(&self) -> Arc<str> {
        self.listener.borrow().spec.name.clone()
    }

    fn update(&self, spec: Arc<ListenerSpec>) -> Result<(), RuntimeError> {
        let routes = RouteTable::compile(&spec.routes)
            .map_err(|source| RuntimeError::Routes { listener: spec.name.to_string(), source })?;
        let current = self.current();
        // The tracer stays: a change of `tracing` needs a restart (see server/reload.rs).
        let next = ListenerRt {
            spec,
            routes,
            stats: current.stats.clone(),
            connections: current.connections.clone(),
            tracing: current.tracing.clone(),
            id: current.id,
            stopped: current.stopped.clone(),
        };
        *self.listener.borrow_mut() = Rc::new(next);
        Ok(())
    }

    fn stop(&self) {
        let listener = self.current();
        listener.stopped.set(true);
        // A permit is stored when the loop is not waiting: the stop is not lost.
        self.stop.notify_one();
        listener.connections.drain_listener(listener.id);
    }
}

/// Accepts connections on `socket` until the drain starts or a reload removes the listener.
pub(crate) async fn accept<C: Codec>(bound: Rc<Bound<C>>, socket: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let listener = bound.current();
                    let spec = &listener.spec;
                    let open = spec.usage.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    if spec.max_connections.is_some_and(|max| open > max) {
                        // Over the listener's budget: closed at once, before anything is read.
                        spec.usage.connections.fetch_sub(1, Ordering::Relaxed);
                        listener.stats.downstream_cx_overflow.inc();
                        drop(stream);
                        continue;
                    }
                    tokio::task::spawn_local(downstream::serve(bound.clone(), stream, Some(peer)));
                }
                Err(error) => {
                    // Out of descriptors, usually: back off instead of spinning.
                    tracing::warn!(%error, listener = %bound.name(), "accept failed");
                    tokio::time::sleep(crate::admin::ACCEPT_BACKOFF).await;
                }
            },
            _ = shutdown.wait_for(|draining| *draining) => break,
            _ = bound.stop.notified() => break,
        }
    }
    tracing::debug!(listener = %bound.name(), "stopped accepting");
}
