//! A worker's side of tracing: the sampling decision, reading and writing trace context, and the
//! batch of finished spans it hands to the exporter.
//!
//! Nothing here locks or blocks. A worker encodes each finished span as OTLP protobuf the moment
//! it ends, into its own buffer (no allocation, no reference count, nothing shared); a full
//! batch, or the batch at each flush tick, goes to the exporter as one `Bytes` with one
//! `try_send` on a bounded channel. When the channel is full (the collector is slow or down) the
//! batch is dropped and counted instead: requests never wait for the exporter.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::config::{Propagation, TracingSpec};
use crate::context::{self, Incoming};
use crate::otlp::SpanWriter;
use crate::span::{Clock, SpanRecord};
use crate::stats::ExportStats;

/// A worker hands its batch over once it holds this many bytes, whatever `batch_size` says: with
/// the queue's length in batches, this bounds the memory spans waiting for the exporter take.
pub(crate) const MAX_BATCH_BYTES: usize = 256 << 10;

/// Room kept beyond the last batch's size when the next batch's buffer is taken.
const BATCH_SLACK: usize = 4 << 10;

/// Encoded spans on their way to the exporter: `ScopeSpans.spans` fields, one after another.
#[derive(Debug)]
pub(crate) struct EncodedSpans {
    /// The fields.
    pub(crate) bytes: Bytes,
    /// How many spans they hold.
    pub(crate) count: usize,
}

/// A worker's spans not handed over yet, and what it writes them with.
#[derive(Debug)]
struct Batch {
    spans: BytesMut,
    count: usize,
    writer: SpanWriter,
    /// Renewed at each flush.
    clock: Clock,
}

/// A sampled request's trace: the ids its server span continues from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampled {
    /// The trace's id (the caller's, or a new one).
    pub trace_id: u128,
    /// The caller's span (0 when this request starts the trace).
    pub parent_span_id: u64,
    /// The format the caller's context came in, if any.
    pub from: Option<Propagation>,
}

/// A request's operation: the spans' name (`service/method`, either alone, or a fallback such as
/// the protocol's name) and where its parts lie in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The name.
    pub name: Arc<str>,
    /// Where the service lies in `name`.
    pub service: Option<Range<usize>>,
    /// Where the method lies in `name`.
    pub method: Option<Range<usize>>,
}

impl Operation {
    fn new(service: Option<&[u8]>, method: Option<&[u8]>, fallback: &str) -> Operation {
        let service = service.map(String::from_utf8_lossy);
        let method = method.map(String::from_utf8_lossy);
        let len = service.as_ref().map_or(0, |s| s.len()) + method.as_ref().map_or(0, |m| m.len()) + 1;
        let mut name = String::with_capacity(len);
        let (mut service_at, mut method_at) = (None, None);
        if let Some(s) = &service {
            name.push_str(s);
            service_at = Some(0..name.len());
        }
        if let Some(m) = &method {
            if !name.is_empty() {
                name.push('/');
            }
            let start = name.len();
            name.push_str(m);
            method_at = Some(start..name.len());
        }
        if name.is_empty() {
            name.push_str(fallback);
        }
        Operation { name: Arc::from(name), service: service_at, method: method_at }
    }

    /// True when this is the operation of `service` and `method` (as valid UTF-8).
    fn is(&self, service: Option<&[u8]>, method: Option<&[u8]>) -> bool {
        let part = |range: &Option<Range<usize>>| range.clone().and_then(|r| self.name.get(r)).map(str::as_bytes);
        part(&self.service) == service && part(&self.method) == method
    }
}

/// Operations remembered per worker and listener, so that the name of a frequent operation is
/// made once, not per request.
const OPERATION_CACHE: usize = 64;

/// A cheap hash of an operation: the lengths and up to 8 bytes at each end of the service and the
/// method (a hit is then checked byte for byte).
fn operation_hash(service: Option<&[u8]>, method: Option<&[u8]>) -> u64 {
    let ends = |s: Option<&[u8]>| {
        let s = s.unwrap_or_default();
        let word = |b: &[u8]| b.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x));
        let head = word(s.get(..s.len().min(8)).unwrap_or_default());
        let tail = word(s.get(s.len().saturating_sub(8)..).unwrap_or_default());
        (s.len() as u64) ^ head.rotate_left(17) ^ tail.rotate_left(41)
    };
    let h = ends(service).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ends(method);
    h.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (h >> 29)
}

/// One worker's tracer for one listener (not `Send`: it stays on its worker).
#[derive(Debug)]
pub struct WorkerTracer {
    /// Requests without a context are sampled when a random `u64` is below this.
    threshold: u64,
    /// `sample_ratio` is 1.
    always: bool,
    propagation: Vec<Propagation>,
    batch_size: usize,
    flush_interval: Duration,
    batch: RefCell<Batch>,
    /// Where the values of injected context are written, split off as `Bytes` (no allocation
    /// per value).
    values: RefCell<BytesMut>,
    sender: mpsc::Sender<EncodedSpans>,
    stats: Arc<ExportStats>,
    /// Spans dropped since the last flush, added to `stats` at each flush (one shared write per
    /// flush, not per span).
    dropped: Cell<u64>,
    operations: RefCell<Vec<Option<(u64, Operation)>>>,
}

impl WorkerTracer {
    pub(crate) fn new(spec: &TracingSpec, sender: mpsc::Sender<EncodedSpans>, stats: Arc<ExportStats>) -> Self {
        let ratio = spec.sample_ratio.clamp(0.0, 1.0);
        // `as` saturates: a ratio of 1 is handled by `always`.
        let threshold = (ratio * 18_446_744_073_709_551_616.0) as u64;
        WorkerTracer {
            threshold,
            always: ratio >= 1.0,
            propagation: spec.propagation.clone(),
            batch_size: spec.exporter.batch_size,
            flush_interval: spec.flush_interval,
            batch: RefCell::new(Batch {
                spans: BytesMut::new(),
                count: 0,
                writer: SpanWriter::default(),
                clock: Clock::now(),
            }),
            values: RefCell::new(BytesMut::new()),
            sender,
            stats,
            dropped: Cell::new(0),
            operations: RefCell::new(vec![None; OPERATION_CACHE]),
        }
    }

    /// The operation of a request naming `service` and `method` (`fallback` when it names
    /// neither), from this worker's cache when it was seen recently: no allocation then.
    pub fn operation(&self, service: Option<&[u8]>, method: Option<&[u8]>, fallback: &str) -> Operation {
        let hash = operation_hash(service, method);
        let slot = (hash % OPERATION_CACHE as u64) as usize;
        let mut cache = self.operations.borrow_mut();
        if let Some(Some((h, op))) = cache.get(slot) {
            if *h == hash && op.is(service, method) && (service.is_some() || method.is_some() || *op.name == *fallback)
            {
                return op.clone();
            }
        }
        let op = Operation::new(service, method, fallback);
        if let Some(entry) = cache.get_mut(slot) {
            *entry = Some((hash, op.clone()));
        }
        op
    }

    /// The formats read and written, in order.
    pub fn propagation(&self) -> &[Propagation] {
        &self.propagation
    }

    /// How often the worker should call [`flush`](Self::flush).
    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }

    /// Reads the caller's context with `get` (a case-insensitive key lookup in the request's
    /// key/values): the first configured format holding a valid one wins. Invalid values are
    /// ignored, as if absent.
    pub fn extract<'a>(&self, get: impl Fn(&str) -> Option<&'a [u8]>) -> (Incoming, Option<Propagation>) {
        for p in &self.propagation {
            let found = match p {
                Propagation::W3c => get("traceparent")
                    .and_then(context::parse_traceparent)
                    .map(|ctx| Incoming { parent: Some(ctx), sampled: Some(ctx.sampled) }),
                Propagation::B3 => get("b3").and_then(context::parse_b3_single),
                Propagation::B3multi => context::parse_b3_multi(&get),
            };
            if let Some(incoming) = found {
                return (incoming, Some(*p));
            }
        }
        (Incoming::default(), None)
    }

    /// Whether to trace a request, and under which ids: the caller's sampling decision when it
    /// made one (parent-based sampling), else `sample_ratio`. A request with no context that is
    /// sampled starts a new trace.
    pub fn sample(&self, incoming: Incoming, from: Option<Propagation>) -> Option<Sampled> {
        let sampled = match incoming.sampled {
            Some(decision) => decision,
            None => self.always || (self.threshold > 0 && fastrand::u64(..) < self.threshold),
        };
        if !sampled {
            return None;
        }
        Some(match incoming.parent {
            Some(parent) => Sampled { trace_id: parent.trace_id, parent_span_id: parent.span_id, from },
            None => Sampled { trace_id: new_trace_id(), parent_span_id: 0, from: None },
        })
    }

    /// [`extract`](Self::extract) then [`sample`](Self::sample).
    pub fn start<'a>(&self, get: impl Fn(&str) -> Option<&'a [u8]>) -> Option<Sampled> {
        let (incoming, from) = self.extract(get);
        self.sample(incoming, from)
    }

    /// Writes, with `put`, the key/values that make `span_id` (a client span of trace
    /// `trace_id`, child of `parent_span_id`) the parent of the upstream's work, in every
    /// configured format. `tracestate` is the caller's, forwarded unchanged with W3C.
    pub fn inject(
        &self,
        trace_id: u128,
        span_id: u64,
        parent_span_id: u64,
        tracestate: Option<&Bytes>,
        mut put: impl FnMut(&'static str, Bytes),
    ) {
        let mut values = self.values.borrow_mut();
        let mut value = |bytes: &[u8]| {
            if values.capacity() < bytes.len() {
                values.reserve(bytes.len().max(8 << 10));
            }
            values.extend_from_slice(bytes);
            values.split().freeze()
        };
        for p in &self.propagation {
            match p {
                Propagation::W3c => {
                    put("traceparent", value(&context::format_traceparent(trace_id, span_id, true)));
                    if let Some(ts) = tracestate {
                        put("tracestate", ts.clone());
                    }
                }
                Propagation::B3 => put("b3", value(&context::format_b3_single(trace_id, span_id, parent_span_id))),
                Propagation::B3multi => {
                    put("x-b3-traceid", value(&context::trace_id_hex(trace_id)));
                    put("x-b3-spanid", value(&context::span_id_hex(span_id)));
                    if parent_span_id != 0 {
                        put("x-b3-parentspanid", value(&context::span_id_hex(parent_span_id)));
                    }
                    put("x-b3-sampled", Bytes::from_static(b"1"));
                }
            }
        }
    }

    /// Whether a span that finishes now can reach the exporter. When the exporter's queue is full
    /// (the collector, or the exporter thread, cannot keep up), the span is counted as dropped
    /// and the caller does not build it: a saturated exporter costs the request path one atomic
    /// load per span.
    pub fn admit(&self) -> bool {
        if self.sender.capacity() > 0 {
            return true;
        }
        self.dropped.set(self.dropped.get() + 1);
        false
    }

    /// Encodes a finished span into this worker's batch; hands the batch over when it is full.
    pub fn push(&self, span: &SpanRecord<'_>) {
        let full = {
            let mut batch = self.batch.borrow_mut();
            let Batch { spans, count, writer, clock } = &mut *batch;
            writer.write(spans, span, clock);
            *count += 1;
            *count >= self.batch_size || spans.len() >= MAX_BATCH_BYTES
        };
        if full {
            self.flush();
        }
    }

    /// Hands the batch to the exporter, or drops and counts it when the exporter's queue is full.
    pub fn flush(&self) {
        let dropped = self.dropped.replace(0);
        if dropped > 0 {
            self.stats.dropped_queue_full.fetch_add(dropped, Ordering::Relaxed);
        }
        let spans = {
            let mut batch = self.batch.borrow_mut();
            batch.clock = Clock::now();
            if batch.count == 0 {
                return;
            }
            let count = std::mem::take(&mut batch.count);
            let bytes = batch.spans.split().freeze();
            // The next batch's buffer, sized after this one: a batch that outgrew its buffer would
            // be copied into a bigger one while it is written.
            let want = (bytes.len() + bytes.len() / 4 + BATCH_SLACK).min(MAX_BATCH_BYTES + BATCH_SLACK);
            if batch.spans.capacity() < want {
                batch.spans.reserve(want);
            }
            EncodedSpans { bytes, count }
        };
        if let Err(e) = self.sender.try_send(spans) {
            let (mpsc::error::TrySendError::Full(lost) | mpsc::error::TrySendError::Closed(lost)) = e;
            self.stats.dropped_queue_full.fetch_add(lost.count as u64, Ordering::Relaxed);
        }
    }

    /// Spans waiting in this worker's batch.
    pub fn pending(&self) -> usize {
        self.batch.borrow().count
    }

    /// Bytes of encoded spans waiting in this worker's batch (what they will take on the wire,
    /// inside the export call's envelope).
    pub fn pending_bytes(&self) -> usize {
        self.batch.borrow().spans.len()
    }
}

impl Drop for WorkerTracer {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A new span id: random, never zero (this worker's thread-local generator).
pub fn new_span_id() -> u64 {
    fastrand::u64(1..)
}

/// A new trace id: random, never zero.
pub fn new_trace_id() -> u128 {
    fastrand::u128(1..)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::TracingConfig;

    fn tracer(json: &str) -> (WorkerTracer, mpsc::Receiver<EncodedSpans>, Arc<ExportStats>) {
        let spec = serde_json::from_str::<TracingConfig>(json).unwrap().validate().unwrap().unwrap();
        let (tx, rx) = mpsc::channel(1);
        let stats = Arc::new(ExportStats::default());
        (WorkerTracer::new(&spec, tx, stats.clone()), rx, stats)
    }

    fn kv<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a [u8]> + 'a {
        move |k| pairs.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_bytes())
    }

    #[test]
    fn parent_based_sampling() {
        let (never, _rx, _) = tracer(r#"{"sample_ratio": 0}"#);
        let sampled = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")];
        let s = never.start(kv(&sampled)).unwrap();
        assert_eq!(s.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(s.parent_span_id, 0x00f067aa0ba902b7);
        assert_eq!(s.from, Some(Propagation::W3c));
        assert_eq!(never.start(kv(&[])), None, "ratio 0, no context: not sampled");
        let (always, _rx, _) = tracer(r#"{"sample_ratio": 1}"#);
        let unsampled = [("TraceParent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")];
        assert_eq!(always.start(kv(&unsampled)), None, "the caller's decision is honoured");
        let root = always.start(kv(&[])).unwrap();
        assert_ne!(root.trace_id, 0);
        assert_eq!(root.parent_span_id, 0);
        let invalid = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x")];
        assert_eq!(always.start(kv(&invalid)).map(|s| s.parent_span_id), Some(0), "invalid: a new trace");
    }

    #[test]
    fn ratio_samples_about_its_share() {
        let (t, _rx, _) = tracer(r#"{"sample_ratio": 0.25}"#);
        let n = (0..20_000).filter(|_| t.start(kv(&[])).is_some()).count();
        assert!((4_000..6_000).contains(&n), "{n} of 20000 at 0.25");
    }

    #[test]
    fn formats_in_configured_order() {
        let (t, _rx, _) = tracer(r#"{"propagation": ["b3", "w3c"]}"#);
        let both = [
            ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ];
        assert_eq!(t.start(kv(&both)).unwrap().trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        let deny = [("b3", "0"), ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")];
        assert_eq!(t.start(kv(&deny)), None, "b3: 0 refuses sampling");
        let mut headers = Vec::new();
        t.inject(1, 2, 3, Some(&Bytes::from_static(b"a=b")), |k, v| headers.push((k, v)));
        let keys: Vec<_> = headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["b3", "traceparent", "tracestate"]);
        assert_eq!(&headers[1].1[..], b"00-00000000000000000000000000000001-0000000000000002-01");
        let (multi, _rx, _) = tracer(r#"{"propagation": ["b3multi"]}"#);
        let mut keys = Vec::new();
        multi.inject(1, 2, 0, None, |k, _| keys.push(k));
        assert_eq!(keys, ["x-b3-traceid", "x-b3-spanid", "x-b3-sampled"]);
    }

    fn record() -> SpanRecord<'static> {
        SpanRecord {
            trace_id: 1,
            span_id: 2,
            parent_span_id: 0,
            parent_is_remote: false,
            kind: crate::span::SpanKind::Server,
            name: "s/m",
            start: std::time::Instant::now(),
            end: std::time::Instant::now(),
            status: crate::span::SpanStatus::Unset,
            attributes: crate::span::Attributes::default(),
            trace_state: None,
        }
    }

    #[test]
    fn operations_are_named_once_and_remembered() {
        let (t, _rx, _) = tracer("{}");
        let op = t.operation(Some(b"org.demo.Greeter"), Some(b"sayHello"), "dubbo");
        assert_eq!(&*op.name, "org.demo.Greeter/sayHello");
        assert_eq!(op.name.get(op.service.clone().unwrap()), Some("org.demo.Greeter"));
        assert_eq!(op.name.get(op.method.clone().unwrap()), Some("sayHello"));
        let again = t.operation(Some(b"org.demo.Greeter"), Some(b"sayHello"), "dubbo");
        assert!(Arc::ptr_eq(&op.name, &again.name), "the second time comes from the cache");
        let other = t.operation(Some(b"org.demo.Greeter"), Some(b"sayBye"), "dubbo");
        assert_eq!(&*other.name, "org.demo.Greeter/sayBye");
        assert_eq!(&*t.operation(None, Some(b"get"), "framed").name, "get");
        assert_eq!(&*t.operation(None, None, "framed").name, "framed");
        let lossy = t.operation(Some(b"bad\xff"), None, "x");
        assert_eq!(&*lossy.name, "bad\u{fffd}");
        assert!(!Arc::ptr_eq(&lossy.name, &t.operation(Some(b"bad\xff"), None, "x").name), "not cached as valid text");
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (t, mut rx, stats) = tracer(r#"{"batch_size": 2, "max_queue_size": 2}"#);
        t.push(&record());
        assert_eq!(t.pending(), 1);
        assert!(t.pending_bytes() > 0);
        t.push(&record()); // a full batch: sent (the channel holds one batch)
        assert_eq!(t.pending(), 0);
        t.push(&record());
        t.push(&record()); // the channel is full: dropped
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 2);
        assert!(!t.admit(), "the queue is full: spans are not even built");
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 2, "counted at the next flush");
        t.flush();
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_recv().map(|b| b.count).ok(), Some(2));
        assert!(t.admit(), "room again");
        t.push(&record());
        drop(t); // dropping the tracer hands over what it holds
        assert_eq!(rx.try_recv().map(|b| b.count).ok(), Some(1));
    }
}
