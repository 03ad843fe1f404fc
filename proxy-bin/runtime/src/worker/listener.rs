//! A listener as one worker runs it: its own compiled route table (no route state is shared
//! between workers), its filters and spec, and this worker's counters for it.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use metaprotocol_core::RouteTable;

use crate::plan::{Connections, ListenerSpec};
use crate::stats::ListenerStats;

/// A listener in one worker.
pub(crate) struct ListenerRt {
    /// Its spec.
    pub spec: Arc<ListenerSpec>,
    /// This worker's own route table.
    pub routes: RouteTable,
    /// This worker's counters.
    pub stats: Arc<ListenerStats>,
    /// The worker's open connections.
    pub connections: Rc<Connections>,
    /// This worker's tracer for the listener (`None`: tracing off).
    pub tracing: Option<Rc<metaproxy_tracing::WorkerTracer>>,
    /// The listener's number in this worker (kept by a reload that updates it), which its
    /// connections are counted under.
    pub id: u64,
    /// Set when a reload removed the listener: it accepts no more, and its connections drain.
    pub stopped: Rc<Cell<bool>>,
}

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// A number for a listener started in this worker, never given to another.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id.wrapping_add(1));
        id
    })
}
