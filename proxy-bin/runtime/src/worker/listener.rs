//! A listener as one worker runs it: its own compiled route table (no route state is shared
//! between workers), its filters and spec, and this worker's counters for it.

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
}
