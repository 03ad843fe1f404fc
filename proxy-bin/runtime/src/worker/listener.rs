//! A listener in one worker: its own compiled route table, its filters and counters, and the
//! accept loop on the worker's own `SO_REUSEPORT` socket (the kernel spreads new connections over
//! the workers' sockets; a connection stays on the worker that accepted it).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use metaprotocol_core::{Codec, RouteTable};
use tokio::net::TcpListener;

use super::downstream;
use super::engine::Engine;
use crate::plan::{Connections, ListenerRun, ListenerSpec};
use crate::stats::ListenerStats;
use crate::RuntimeError;

/// A listener as one worker runs it.
pub(crate) struct ListenerRt<C: Codec> {
    /// Its spec.
    pub spec: Arc<ListenerSpec>,
    /// This worker's own route table (no route state is shared between workers).
    pub routes: RouteTable,
    /// This worker's counters.
    pub stats: Arc<ListenerStats>,
    /// The worker's open connections.
    pub connections: Rc<Connections>,
    _codec: std::marker::PhantomData<C>,
}

/// Starts `run` on the calling worker: compiles its routes and spawns its accept loop.
pub(crate) fn start<C: Codec>(
    engine: Rc<Engine<C>>,
    run: ListenerRun,
    connections: Rc<Connections>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let routes = RouteTable::compile(&run.spec.routes)
        .map_err(|source| RuntimeError::Routes { listener: run.spec.name.to_string(), source })?;
    let address = run.spec.address;
    let socket = TcpListener::from_std(run.socket).map_err(|source| RuntimeError::Bind { address, source })?;
    let listener =
        Rc::new(ListenerRt { spec: run.spec, routes, stats: run.stats, connections, _codec: std::marker::PhantomData });
    tokio::task::spawn_local(async move {
        loop {
            tokio::select! {
                accepted = socket.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tokio::task::spawn_local(downstream::serve(engine.clone(), listener.clone(), stream, Some(peer)));
                    }
                    Err(error) => {
                        // Out of descriptors, usually: back off instead of spinning.
                        tracing::warn!(%error, listener = %listener.spec.name, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.wait_for(|draining| *draining) => break,
            }
        }
        tracing::debug!(listener = %listener.spec.name, "stopped accepting");
    });
    Ok(())
}
