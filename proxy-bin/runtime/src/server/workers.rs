//! Worker threads: each builds its own single-threaded runtime, asks every listener's protocol to
//! serve on it, and runs until the drain is over.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use metaprotocol_core::{LocalReply, ReplyKind};
use metaproxy_access_log::WorkerLog;
use tokio::sync::oneshot;

use crate::plan::{Connections, ListenerRun, Shared, WorkerReload, WorkerScope};
use crate::RuntimeError;

/// A worker thread's stack: 8 MiB, as a main thread has (pages are only taken when touched). The
/// built-in codecs walk nesting with heap stacks; the margin is for plugin codecs that recurse.
const WORKER_STACK: usize = 8 << 20;

/// After the drain timeout, how long connections get to write the error replies of what was
/// still in flight.
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A running worker thread.
pub(crate) struct WorkerThread {
    /// Resolves when the worker has drained and stopped.
    pub done: oneshot::Receiver<()>,
    /// The thread.
    pub thread: std::thread::JoinHandle<()>,
}

/// What a worker starts with.
pub(crate) struct WorkerArgs {
    /// Its number.
    pub id: usize,
    /// What all workers share.
    pub shared: Arc<Shared>,
    /// Its listening sockets, one per listener.
    pub runs: Vec<ListenerRun>,
    /// Its access-log handle.
    pub log: WorkerLog,
    /// Open downstream connections over every worker.
    pub process_open: Arc<AtomicUsize>,
    /// Gets the outcome of its start.
    pub ready: std::sync::mpsc::Sender<Result<(), RuntimeError>>,
    /// Reloads to apply.
    pub reloads: tokio::sync::mpsc::UnboundedReceiver<WorkerReload>,
}

/// Starts a worker thread.
pub(crate) fn spawn(args: WorkerArgs) -> Result<WorkerThread, RuntimeError> {
    let (done_tx, done) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("metaproxy-worker-{}", args.id))
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(source) => {
                    let _ = args.ready.send(Err(RuntimeError::Runtime(source)));
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run(args));
            drop(local);
            drop(runtime);
            let _ = done_tx.send(());
        })
        .map_err(RuntimeError::Runtime)?;
    Ok(WorkerThread { done, thread })
}

async fn run(args: WorkerArgs) {
    let WorkerArgs { id, shared, runs, log, process_open, ready, mut reloads } = args;
    let flush_every = log.flush_interval();
    let scope = Rc::new(WorkerScope {
        id,
        shared: shared.clone(),
        access_log: Rc::new(RefCell::new(log)),
        engines: RefCell::default(),
        connections: Rc::new(Connections::new(process_open)),
        inflight: RefCell::default(),
        listeners: RefCell::default(),
    });
    for run in runs {
        let protocol = run.spec.protocol.clone();
        if let Err(e) = protocol.serve(&scope, run) {
            let _ = ready.send(Err(e));
            return;
        }
    }
    let _ = ready.send(Ok(()));
    // Reloads: listeners removed stop and drain, the others serve their next requests with their
    // new specs, and listeners added start accepting.
    let reload_scope = scope.clone();
    let pending = shared.reload_pending.clone();
    tokio::task::spawn_local(async move {
        while let Some(reload) = reloads.recv().await {
            apply(&reload_scope, reload);
            pending.workers.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            pending.applied.notify_waiters();
        }
    });
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
        // Nothing accepted goes unanswered: what is still in flight gets an error reply, which
        // the connections then write before they close.
        let reply = LocalReply::new(ReplyKind::UpstreamReset, "the proxy shut down before the upstream answered");
        let answered: usize = scope.inflight.borrow().iter().map(|e| e.answer_all(&reply)).sum();
        tracing::warn!(
            worker = id,
            open = scope.connections.len(),
            answered,
            "drain timeout: answering what is in flight, then closing"
        );
        if tokio::time::timeout(FLUSH_GRACE, scope.connections.all_closed()).await.is_err() {
            tracing::warn!(
                worker = id,
                open = scope.connections.len(),
                "closing connections that did not take their answers"
            );
        }
    }
    scope.access_log.borrow_mut().flush();
}

/// Applies one reload in this worker (see [`WorkerReload`]).
fn apply(scope: &WorkerScope, reload: WorkerReload) {
    let WorkerReload { specs, remove, add } = reload;
    scope.listeners.borrow_mut().retain(|slot| {
        let removed = remove.contains(&slot.name());
        if removed {
            slot.stop();
        }
        !removed
    });
    let slots: Vec<_> = scope.listeners.borrow().clone();
    for slot in &slots {
        let name = slot.name();
        if let Some(spec) = specs.iter().find(|s| s.name == name) {
            if let Err(error) = slot.update(spec.clone()) {
                tracing::error!(worker = scope.id, %error, "cannot apply the reloaded listener");
            }
        }
    }
    for run in add {
        let name = run.spec.name.clone();
        let protocol = run.spec.protocol.clone();
        if let Err(error) = protocol.serve(scope, run) {
            tracing::error!(worker = scope.id, listener = %name, %error, "cannot start the added listener");
        }
    }
}
