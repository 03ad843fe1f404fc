//! The workers: shared-nothing event loops, as Envoy's and HAProxy's.
//!
//! Each worker is one thread running a single-threaded tokio runtime. It accepts connections on
//! its own `SO_REUSEPORT` socket per listener, and owns them, its upstream connection pools (per
//! cluster and endpoint), its table of requests in flight and their timers, its route tables, its
//! counters and its access-log buffer. A request runs to completion inside the worker that
//! accepted it: decode, filters, route, encode into an upstream connection's buffer
//! ([`request`]); the upstream connection's task decodes the answer, restores the client's id and
//! encodes it into the client connection's buffer ([`response`]). Nothing on that path crosses
//! threads, locks, or goes through a channel; the only shared writes are the circuit breakers'
//! counters.
//!
//! The code is generic over the codec: [`serve`] is what an erased [`Protocol`](crate::plan::Protocol)
//! calls with its concrete type.

mod accept;
mod connection;
mod downstream;
mod engine;
mod ids;
mod io;
mod listener;
mod pool;
mod request;
mod response;
mod table;
mod trace;

use std::rc::Rc;
use std::sync::Arc;

use metaprotocol_core::{Codec, RouteTable};
use tokio::net::TcpListener;

use crate::plan::{ListenerRun, WorkerScope};
use crate::RuntimeError;
use accept::Bound;
use engine::Engine;
use listener::ListenerRt;

pub use engine::DEFAULT_TIMEOUT;

/// Serves `run` on the calling worker with codec `codec` (configured; cloned per connection). The
/// listeners of one worker whose protocols share `pool_key` share one engine: the same upstream
/// connections, in-flight table and timers.
pub(crate) fn serve<C: Codec>(
    scope: &WorkerScope,
    codec: &C,
    protocol: &str,
    pool_key: &str,
    run: ListenerRun,
) -> Result<(), RuntimeError> {
    let engine = engine_for(scope, codec, protocol, pool_key);
    let routes = RouteTable::compile(&run.spec.routes)
        .map_err(|source| RuntimeError::Routes { listener: run.spec.name.to_string(), source })?;
    let address = run.spec.address;
    let socket = TcpListener::from_std(run.socket).map_err(|source| RuntimeError::Bind { address, source })?;
    let tracing = trace::worker_tracer(scope, &run.spec);
    let listener = Rc::new(ListenerRt {
        spec: run.spec,
        routes,
        stats: run.stats,
        connections: scope.connections.clone(),
        tracing,
        id: listener::next_id(),
        stopped: Rc::default(),
    });
    let bound = Rc::new(Bound { engine, listener: std::cell::RefCell::new(listener), stop: Default::default() });
    scope.listeners.borrow_mut().push(bound.clone());
    tokio::task::spawn_local(accept::accept(bound, socket, scope.shared.shutdown.clone()));
    Ok(())
}

fn engine_for<C: Codec>(scope: &WorkerScope, codec: &C, protocol: &str, pool_key: &str) -> Rc<Engine<C>> {
    let mut engines = scope.engines.borrow_mut();
    let found = engines.iter().find(|(k, _)| k == pool_key).and_then(|(_, e)| e.clone().downcast::<Engine<C>>().ok());
    if let Some(engine) = found {
        return engine;
    }
    let engine = Engine::new(codec.clone(), Arc::from(protocol), &scope.shared.clusters, scope.access_log.clone());
    engines.push((pool_key.to_string(), engine.clone() as Rc<dyn std::any::Any>));
    scope.inflight.borrow_mut().push(Rc::new(engine::DrainHandle(engine.clone())));
    engine
}
