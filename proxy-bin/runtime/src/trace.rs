//! Distributed tracing for the whole process: the span exporters of the listeners that trace
//! (`listeners[].tracing`), started before the workers and stopped after them, and their
//! counters in `/metrics`.
//!
//! Listeners whose tracing sections name the same collector, transport, service name and queue
//! share one exporter (one thread, one bounded queue). Each worker gets its own
//! [`WorkerTracer`] per listener, which it alone touches; the per-request work is in
//! `worker::trace`. The exporters themselves are in the `metaproxy-tracing` crate.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use metaproxy_tracing::{Exporter, WorkerTracer};
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::plan::ListenerSpec;
use crate::RuntimeError;

/// How long the proxy's shutdown waits for each exporter to send what is queued.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The exporters of a running proxy. A reload that adds a listener may add one.
#[derive(Debug, Default)]
pub struct Tracers {
    inner: std::sync::RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    exporters: Vec<Arc<Exporter>>,
    /// The exporter (index into `exporters`) of each listener that traces.
    listeners: Vec<(Arc<str>, usize)>,
}

impl Tracers {
    /// Starts one exporter per distinct collector among `listeners`' tracing sections; none when
    /// no listener traces.
    pub fn start(listeners: &[ListenerSpec]) -> Result<Tracers, RuntimeError> {
        let tracers = Tracers::default();
        tracers.add(listeners.iter())?;
        Ok(tracers)
    }

    /// Gives each of `listeners` that traces its exporter: the running one for its collector, or
    /// a new one. A listener already known keeps the exporter it has.
    pub fn add<'a>(&self, listeners: impl Iterator<Item = &'a ListenerSpec>) -> Result<(), RuntimeError> {
        let mut inner = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for listener in listeners {
            let Some(spec) = &listener.tracing else { continue };
            let index = match inner.exporters.iter().position(|e| *e.spec() == spec.exporter) {
                Some(i) => i,
                None => {
                    inner.exporters.push(Exporter::start(&spec.exporter).map_err(RuntimeError::Tracing)?);
                    inner.exporters.len() - 1
                }
            };
            match inner.listeners.iter_mut().find(|(name, _)| *name == listener.name) {
                Some(entry) => entry.1 = index,
                None => inner.listeners.push((listener.name.clone(), index)),
            }
        }
        Ok(())
    }

    /// A tracer for one worker's copy of `listener`; `None` when it does not trace.
    pub fn for_listener(&self, listener: &ListenerSpec) -> Option<WorkerTracer> {
        let spec = listener.tracing.as_ref()?;
        let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, index) = inner.listeners.iter().find(|(name, _)| *name == listener.name)?;
        inner.exporters.get(*index)?.worker(spec)
    }

    /// The exporters, in the order their listeners were configured.
    pub fn exporters(&self) -> Vec<Arc<Exporter>> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).exporters.clone()
    }

    /// Stops the exporters once the workers are gone: each sends what is queued, waiting up to
    /// 5 s. Blocks.
    pub fn shutdown(&self) {
        for exporter in &self.exporters() {
            if !exporter.shutdown(SHUTDOWN_WAIT) {
                tracing::warn!(endpoint = %exporter.spec().endpoint, "the span exporter did not finish in time");
            }
        }
    }

    /// Writes the tracing families of `/metrics`: spans exported and spans dropped (by reason),
    /// per collector. Nothing when no listener traces.
    pub fn encode_metrics(&self, enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let exporters = self.exporters();
        if exporters.is_empty() {
            return Ok(());
        }
        let mut exported = enc.encode_descriptor(
            "metaproxy_tracing_spans_exported",
            "Spans the collector accepted.",
            None,
            MetricType::Counter,
        )?;
        for e in &exporters {
            let labels = [("collector", e.spec().endpoint.as_str())];
            exported.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&e.stats().exported(), None)?;
        }
        let mut dropped = enc.encode_descriptor(
            "metaproxy_tracing_spans_dropped",
            "Spans dropped: the exporter's queue was full (collector slow or down) or the export call failed.",
            None,
            MetricType::Counter,
        )?;
        for e in &exporters {
            for (reason, n) in e.stats().dropped_by_reason() {
                let labels = [("collector", e.spec().endpoint.as_str()), ("reason", reason)];
                dropped.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&n, None)?;
            }
        }
        Ok(())
    }
}
