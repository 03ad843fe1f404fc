//! The accept loop of a listener in one worker, on the worker's own `SO_REUSEPORT` socket (the
//! kernel spreads new connections over the workers' sockets; a connection stays on the worker
//! that accepted it), and [`Bound`]: a listener tied to its engine, which is what a client
//! connection reports its requests to.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use metaprotocol_core::{Codec, Message};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::downstream::{self, DownShared, DownstreamEvents};
use super::engine::Engine;
use super::listener::ListenerRt;
use crate::plan::Connections;
use crate::stats::ListenerStats;

/// A listener and the engine that serves its requests.
pub(crate) struct Bound<C: Codec> {
    /// The engine.
    pub engine: Rc<Engine<C>>,
    /// The listener.
    pub listener: Rc<ListenerRt>,
}

impl<C: Codec> DownstreamEvents<C> for Bound<C> {
    fn codec(&self) -> &C {
        &self.engine.codec
    }

    fn spec(&self) -> &crate::plan::ListenerSpec {
        &self.listener.spec
    }

    fn now(&self) -> std::time::Instant {
        self.engine.now()
    }

    fn stats(&self) -> &ListenerStats {
        &self.listener.stats
    }

    fn connections(&self) -> &Connections {
        &self.listener.connections
    }

    fn tick(&self) {
        self.engine.tick();
    }

    fn on_request(self: &Rc<Self>, down: &Rc<DownShared<C>>, request: Message<C::Layout>) {
        self.engine.on_request(&self.listener, down, request);
    }
}

/// Accepts connections on `socket` until the drain starts.
pub(crate) async fn accept<C: Codec>(bound: Rc<Bound<C>>, socket: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let spec = &bound.listener.spec;
                    let open = spec.usage.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    if spec.max_connections.is_some_and(|max| open > max) {
                        // Over the listener's budget: closed at once, before anything is read.
                        spec.usage.connections.fetch_sub(1, Ordering::Relaxed);
                        bound.listener.stats.downstream_cx_overflow.inc();
                        drop(stream);
                        continue;
                    }
                    tokio::task::spawn_local(downstream::serve(bound.clone(), stream, Some(peer)));
                }
                Err(error) => {
                    // Out of descriptors, usually: back off instead of spinning.
                    tracing::warn!(%error, listener = %bound.listener.spec.name, "accept failed");
                    tokio::time::sleep(crate::admin::ACCEPT_BACKOFF).await;
                }
            },
            _ = shutdown.wait_for(|draining| *draining) => break,
        }
    }
    tracing::debug!(listener = %bound.listener.spec.name, "stopped accepting");
}
