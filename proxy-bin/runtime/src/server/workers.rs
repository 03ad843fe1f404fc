//! Worker threads: each builds its own single-threaded runtime, asks every listener's protocol to
//! serve on it, and runs until the drain is over.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use metaproxy_access_log::WorkerLog;
use tokio::sync::oneshot;

use crate::plan::{Connections, ListenerRun, Shared, WorkerScope};
use crate::RuntimeError;

/// A running worker thread.
pub(crate) struct WorkerThread {
    /// Resolves when the worker has drained and stopped.
    pub done: oneshot::Receiver<()>,
    /// The thread.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts worker `id` with its listening sockets; `ready` gets the outcome of its start.
pub(crate) fn spawn(
    id: usize,
    shared: Arc<Shared>,
    runs: Vec<ListenerRun>,
    log: WorkerLog,
    process_open: Arc<AtomicUsize>,
    ready: std::sync::mpsc::Sender<Result<(), RuntimeError>>,
) -> Result<WorkerThread, RuntimeError> {
    let (done_tx, done) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("metaproxy-worker-{id}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(source) => {
                    let _ = ready.send(Err(RuntimeError::Runtime(source)));
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run(id, shared, runs, log, process_open, ready));
            drop(local);
            drop(runtime);
            let _ = done_tx.send(());
        })
        .map_err(RuntimeError::Runtime)?;
    Ok(WorkerThread { done, thread })
}

async fn run(
    id: usize,
    shared: Arc<Shared>,
    runs: Vec<ListenerRun>,
    log: WorkerLog,
    process_open: Arc<AtomicUsize>,
    ready: std::sync::mpsc::Sender<Result<(), RuntimeError>>,
) {
    let flush_every = log.flush_interval();
    let scope = WorkerScope {
        id,
        shared: shared.clone(),
        access_log: Rc::new(RefCell::new(log)),
        engines: RefCell::default(),
        connections: Rc::new(Connections::new(process_open)),
    };
    for run in runs {
        let protocol = run.spec.protocol.clone();
        if let Err(e) = protocol.serve(&scope, run) {
            let _ = ready.send(Err(e));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    if let Some(every) = flush_every {
        let log = scope.access_log.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                log.borrow_mut().flush_if_due(Instant::now());
            }
        });
    }
    let mut shutdown = shared.shutdown.clone();
    let _ = shutdown.wait_for(|draining| *draining).await;
    scope.connections.drain();
    if tokio::time::timeout(shared.drain_timeout, scope.connections.all_closed()).await.is_err() {
        tracing::warn!(worker = id, open = scope.connections.len(), "drain timeout: closing remaining connections");
    }
    scope.access_log.borrow_mut().flush();
}
