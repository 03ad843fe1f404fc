//! The load generator's engine: request templates for Dubbo and framed Thrift (binary), a
//! closed-loop connection driver that keeps a fixed number of requests in flight, and latency
//! statistics in an HDR histogram.
//!
//! The driver is built not to be the bottleneck: each `--threads` thread runs its connections on a
//! current-thread runtime; a connection keeps its requests in a fixed array of slots (request `id`
//! lives in slot `id % in_flight`, so matching an answer is an index and a compare, with no map);
//! it takes the clock once per read (the receive time of every answer in it) and once per write
//! (the send time of every request in it), and answers a whole read's worth of responses with one
//! write. Responses are matched to requests by id; an answer to no outstanding request counts as
//! mismatched.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The protocols the generator and the echo upstream speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// Dubbo over Hessian 2.
    Dubbo,
    /// Thrift, framed transport, binary protocol.
    Thrift,
}

/// A request frame whose id is patched per request.
#[derive(Clone, Debug)]
pub struct Template {
    frame: Bytes,
    id_at: usize,
    id_len: usize,
}

impl Template {
    /// A request with a `payload`-byte string argument (and `batchjob=true` when `batch`).
    pub fn request(proto: Proto, payload: usize, batch: bool) -> Template {
        let arg = "x".repeat(payload);
        match proto {
            Proto::Dubbo => {
                let attachments: &[(&str, &str)] =
                    if batch { &[("batchjob", "true")] } else { &[("batchjob", "false")] };
                let req = metaprotocol_dubbo::build::Request {
                    id: 0,
                    two_way: true,
                    service: "org.apache.dubbo.demo.DemoService",
                    version: "1.0.0",
                    method: "sayHello",
                    args: &[&arg],
                    attachments,
                };
                Template { frame: req.to_frame().unwrap_or_default(), id_at: 4, id_len: 8 }
            }
            Proto::Thrift => thrift_frame(0x8001_0001, 1, &arg),
        }
    }

    /// A response to request `id` with a `payload`-byte string value (what the echo upstream sends).
    pub fn response(proto: Proto, payload: usize) -> Template {
        let value = "y".repeat(payload);
        match proto {
            Proto::Dubbo => Template {
                frame: metaprotocol_dubbo::build::value_response(0, &value, &[]).unwrap_or_default(),
                id_at: 4,
                id_len: 8,
            },
            Proto::Thrift => thrift_frame(0x8001_0002, 0, &value),
        }
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Whether the frame is empty (only when building it failed).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Appends the frame with id `id` to `out`.
    pub fn write(&self, out: &mut Vec<u8>, id: u64) {
        let start = out.len();
        out.extend_from_slice(&self.frame);
        let bytes = id.to_be_bytes();
        if let (Some(dst), Some(src)) =
            (out.get_mut(start + self.id_at..start + self.id_at + self.id_len), bytes.get(8 - self.id_len..))
        {
            dst.copy_from_slice(src);
        }
    }
}

/// A framed binary Thrift message `sayHello` of type `version_and_type` with one string field.
fn thrift_frame(version_and_type: u32, field: i16, value: &str) -> Template {
    let name = b"sayHello";
    let mut body = BytesMut::new();
    body.put_u32(version_and_type);
    body.put_u32(name.len() as u32);
    body.put_slice(name);
    body.put_i32(0);
    body.put_u8(11);
    body.put_i16(field);
    body.put_u32(value.len() as u32);
    body.put_slice(value.as_bytes());
    body.put_u8(0);
    let mut f = BytesMut::with_capacity(body.len() + 4);
    f.put_u32(body.len() as u32);
    f.put_slice(&body);
    Template { frame: f.freeze(), id_at: 4 + 8 + name.len(), id_len: 4 }
}

/// One whole frame at the front of `buf`: its length, id and whether it reports success (Dubbo:
/// status 20 or a request; Thrift: any message type but EXCEPTION).
pub fn next_frame(proto: Proto, buf: &[u8]) -> Option<(usize, u64, bool)> {
    let u32_at = |at: usize| buf.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_be_bytes);
    match proto {
        Proto::Dubbo => {
            let total = 16 + u32_at(12)? as usize;
            let id = u64::from_be_bytes(buf.get(4..12)?.try_into().ok()?);
            let ok = *buf.get(3)? == 20 || buf.get(2)? & 0x80 != 0;
            (buf.len() >= total).then_some((total, id, ok))
        }
        Proto::Thrift => {
            let total = 4 + u32_at(0)? as usize;
            let name_len = u32_at(8)? as usize;
            let id = u64::from(u32_at(12 + name_len)?);
            let ok = *buf.get(7)? != 3;
            (buf.len() >= total).then_some((total, id, ok))
        }
    }
}

/// A receive buffer that reads straight into its free tail and moves unread bytes to the front
/// only when the tail runs short (and grows when one frame needs more room).
#[derive(Debug)]
pub struct RecvBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl RecvBuf {
    /// The least free space a read is given.
    const MIN_READ: usize = 32 * 1024;

    /// A buffer of `capacity` bytes (at least twice the minimum read).
    pub fn new(capacity: usize) -> RecvBuf {
        RecvBuf { data: vec![0; capacity.max(2 * Self::MIN_READ)], start: 0, end: 0 }
    }

    /// The bytes read and not yet consumed.
    pub fn pending(&self) -> &[u8] {
        self.data.get(self.start..self.end).unwrap_or_default()
    }

    /// Drops the first `n` pending bytes.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// One read from `src` into the free tail; `Ok(0)` at end of stream.
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, src: &mut R) -> std::io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.data.len() - self.end < Self::MIN_READ {
            self.data.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.data.len() - self.end < Self::MIN_READ {
                self.data.resize(self.data.len() * 2, 0);
            }
        }
        let tail = self.data.get_mut(self.end..).unwrap_or_default();
        let n = src.read(tail).await?;
        self.end += n;
        Ok(n)
    }
}

/// Parses a duration such as `10s`, `500ms`, `1.5s` or `2m` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("invalid duration `{text}`"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" | "min" => value * 60.0,
        other => return Err(format!("invalid duration `{text}`: unknown unit `{other}`")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration `{text}`: {e}"))
}

/// What one run (or one connection) measured.
#[derive(Debug)]
pub struct Stats {
    /// Latencies in microseconds of the answers received in the measured window.
    pub latency: Histogram<u64>,
    /// Error answers (and requests left unanswered at the end).
    pub errors: u64,
    /// Answers matching no outstanding request.
    pub mismatched: u64,
    /// Connections that could not connect or that broke before the end.
    pub failed_connections: u64,
}

impl Stats {
    /// Empty statistics (latencies from 1 µs to 60 s, 3 significant digits).
    #[allow(clippy::expect_used)] // Constant bounds that `Histogram` accepts; it cannot fail.
    pub fn new() -> Stats {
        Stats {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            errors: 0,
            mismatched: 0,
            failed_connections: 0,
        }
    }

    /// Adds another run's numbers.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        self.errors += other.errors;
        self.mismatched += other.mismatched;
        self.failed_connections += other.failed_connections;
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// What to send and for how long.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where to send.
    pub target: SocketAddr,
    /// The protocol.
    pub proto: Proto,
    /// Requests, used in turn.
    pub templates: Arc<[Template]>,
    /// Connections in all.
    pub connections: u64,
    /// Requests outstanding per connection.
    pub in_flight: usize,
    /// Load before the measured window (answers in it are checked, not counted).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// OS threads, each with a current-thread runtime.
    pub threads: usize,
}

/// How long to wait for the last answers after the measured window.
const GRACE: Duration = Duration::from_secs(2);

/// The times every connection of a run shares.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// Answers from here on count.
    measure_from: Instant,
    /// No request is sent from here on, and answers no longer count.
    deadline: Instant,
}

/// Runs `plan`: connects every connection first, then loads them all for the warm-up and the
/// measured window, on `plan.threads` threads.
pub fn run(plan: &Plan) -> Stats {
    let threads = plan.threads.clamp(1, plan.connections.max(1) as usize);
    let barrier = Arc::new(Barrier::new(threads));
    let start: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (plan, barrier, start) = (plan.clone(), barrier.clone(), start.clone());
            std::thread::spawn(move || run_thread(&plan, t as u64, threads as u64, &barrier, &start))
        })
        .collect();
    let mut total = Stats::new();
    for h in handles {
        match h.join() {
            Ok(s) => total.merge(&s),
            Err(_) => total.failed_connections += 1,
        }
    }
    total
}

/// One thread's share: connections `t`, `t + threads`, ...
fn run_thread(plan: &Plan, t: u64, threads: u64, barrier: &Barrier, start: &OnceLock<Instant>) -> Stats {
    let mut stats = Stats::new();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: runtime: {e}");
            barrier.wait();
            stats.failed_connections += plan.connections.div_ceil(threads);
            return stats;
        }
    };
    rt.block_on(async {
        let mut streams = Vec::new();
        for conn in (t..plan.connections).step_by(threads as usize) {
            match TcpStream::connect(plan.target).await.and_then(|s| s.set_nodelay(true).map(|()| s)) {
                Ok(s) => streams.push((conn, s)),
                Err(e) => {
                    eprintln!("loadgen: connection {conn}: {e}");
                    stats.failed_connections += 1;
                }
            }
        }
        // Every thread has connected; all start loading at the same instant.
        barrier.wait();
        let t0 = *start.get_or_init(Instant::now);
        let window = Window { measure_from: t0 + plan.warmup, deadline: t0 + plan.warmup + plan.duration };
        let mut tasks = tokio::task::JoinSet::new();
        for (conn, stream) in streams {
            let plan = plan.clone();
            tasks.spawn(async move { drive(stream, &plan, conn, window).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(s) => stats.merge(&s),
                Err(_) => stats.failed_connections += 1,
            }
        }
    });
    stats
}

/// A request slot: the id outstanding in it and when it was sent.
#[derive(Clone, Copy, Debug)]
struct Slot {
    id: u64,
    sent: Instant,
    busy: bool,
}

/// The ids a connection uses: `base + k` for `k` in `0..span`, where `span` is a multiple of the
/// slot count, so that id `base + k` always lives in slot `k % slots`. `base` carries the
/// connection number, so an answer from another connection counts as mismatched.
#[derive(Clone, Copy, Debug)]
struct Ids {
    base: u64,
    span: u64,
    slots: u64,
}

impl Ids {
    fn new(proto: Proto, conn: u64, slots: usize) -> Ids {
        let slots = slots.max(1) as u64;
        // Thrift sequence ids are 32-bit and signed: stay below 2^31.
        let (base, room) = match proto {
            Proto::Dubbo => (conn << 40, 1u64 << 40),
            Proto::Thrift => ((conn % 128) << 24, 1u64 << 24),
        };
        Ids { base, span: (room / slots).max(1) * slots, slots }
    }

    /// The slot of `id`, if it is one of this connection's ids.
    fn slot(&self, id: u64) -> Option<usize> {
        let k = id.checked_sub(self.base).filter(|k| *k < self.span)?;
        Some((k % self.slots) as usize)
    }

    /// The id after `id` in the same slot.
    fn next(&self, id: u64) -> u64 {
        self.base + (id - self.base + self.slots) % self.span
    }
}

/// Drives one connected stream: `plan.in_flight` requests outstanding until the window's
/// deadline, then waits (at most two seconds) for the last answers. Requests left unanswered count
/// as errors.
async fn drive(mut stream: TcpStream, plan: &Plan, conn: u64, window: Window) -> Stats {
    let mut stats = Stats::new();
    let ids = Ids::new(plan.proto, conn, plan.in_flight);
    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..ids.slots).map(|k| Slot { id: ids.base + k, sent: now, busy: true }).collect();
    let request_len = plan.templates.first().map_or(0, Template::len);
    let mut out = Vec::with_capacity(request_len * plan.in_flight + 1024);
    let mut sent_now: Vec<usize> = Vec::with_capacity(plan.in_flight);
    let mut inbuf = RecvBuf::new((request_len * plan.in_flight * 4).max(256 * 1024));
    let mut turn = conn as usize;
    let mut send = |out: &mut Vec<u8>, id: u64| {
        turn += 1;
        if let Some(t) = plan.templates.get(turn % plan.templates.len().max(1)) {
            t.write(out, id);
        }
    };
    for (k, slot) in slots.iter().enumerate() {
        send(&mut out, slot.id);
        sent_now.push(k);
    }
    let mut outstanding = slots.len();
    let give_up = tokio::time::sleep_until((window.deadline + GRACE).into());
    tokio::pin!(give_up);
    let mut broken = false;
    loop {
        if !out.is_empty() {
            // One clock reading stamps every request of this write.
            let t = Instant::now();
            for k in sent_now.drain(..) {
                if let Some(slot) = slots.get_mut(k) {
                    slot.sent = t;
                }
            }
            tokio::select! {
                biased;
                written = stream.write_all(&out) => if written.is_err() { broken = true; break },
                () = &mut give_up => break,
            }
            out.clear();
        }
        if outstanding == 0 {
            break;
        }
        tokio::select! {
            biased;
            read = inbuf.read_from(&mut stream) => match read {
                Ok(0) | Err(_) => { broken = true; break }
                Ok(_) => {}
            },
            () = &mut give_up => break,
        }
        // One clock reading is the receive time of every answer in this read.
        let now = Instant::now();
        let counting = now >= window.measure_from && now < window.deadline;
        let sending = now < window.deadline;
        while let Some((len, id, ok)) = next_frame(plan.proto, inbuf.pending()) {
            inbuf.consume(len);
            let Some((k, slot)) =
                ids.slot(id).and_then(|k| slots.get_mut(k).map(|s| (k, s))).filter(|(_, s)| s.busy && s.id == id)
            else {
                stats.mismatched += 1;
                continue;
            };
            if !ok {
                stats.errors += 1;
            }
            if counting {
                let us = now.saturating_duration_since(slot.sent).as_micros().max(1);
                stats.latency.saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
            }
            if sending {
                slot.id = ids.next(id);
                send(&mut out, slot.id);
                sent_now.push(k);
            } else {
                slot.busy = false;
                outstanding -= 1;
            }
        }
    }
    stats.errors += slots.iter().filter(|s| s.busy).count() as u64;
    if broken {
        stats.failed_connections += 1;
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_in_their_slot_and_wrap_within_the_connection() {
        let ids = Ids::new(Proto::Thrift, 3, 16);
        assert_eq!(ids.span % 16, 0);
        let mut id = ids.base + 5;
        for _ in 0..(ids.span / 16 + 3) {
            assert_eq!(ids.slot(id), Some(5));
            assert!(id < 1 << 31);
            id = ids.next(id);
        }
        assert_eq!(ids.slot(Ids::new(Proto::Thrift, 4, 16).base), None);
        assert_eq!(Ids::new(Proto::Dubbo, 1, 16).slot(7), None);
    }

    #[test]
    fn frames_round_trip_ids_and_status() {
        for proto in [Proto::Dubbo, Proto::Thrift] {
            let mut out = Vec::new();
            Template::request(proto, 100, true).write(&mut out, 0x1234_5678);
            Template::response(proto, 100).write(&mut out, 0x0abc);
            let (len, id, ok) = next_frame(proto, &out).unwrap();
            assert_eq!((id, ok), (0x1234_5678, true));
            let (_, id, ok) = next_frame(proto, &out[len..]).unwrap();
            assert_eq!((id, ok), (0x0abc, true));
            assert!(next_frame(proto, &out[..len - 1]).is_none());
        }
    }

    /// A server answering every request, with an error status for every fifth and an extra answer
    /// under an unknown id after every seventh; returns its address.
    fn faulty_server(proto: Proto) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((mut sock, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let response = Template::response(proto, 16);
                        let (mut inbuf, mut out, mut n) = (RecvBuf::new(0), Vec::new(), 0u64);
                        while inbuf.read_from(&mut sock).await.unwrap_or(0) > 0 {
                            while let Some((len, id, _)) = next_frame(proto, inbuf.pending()) {
                                inbuf.consume(len);
                                n += 1;
                                let at = out.len();
                                response.write(&mut out, id);
                                if n % 5 == 0 {
                                    // Dubbo status 70 (service error); Thrift message type EXCEPTION.
                                    let (i, v) = if proto == Proto::Dubbo { (3, 70) } else { (7, 3) };
                                    out[at + i] = v;
                                }
                                if n % 7 == 0 {
                                    response.write(&mut out, 0x7000_0000);
                                }
                            }
                            if sock.write_all(&out).await.is_err() {
                                break;
                            }
                            out.clear();
                        }
                    });
                }
            });
        });
        addr
    }

    #[test]
    fn run_counts_answers_errors_and_mismatches() {
        for proto in [Proto::Dubbo, Proto::Thrift] {
            let plan = Plan {
                target: faulty_server(proto),
                proto,
                templates: (0..10).map(|i| Template::request(proto, 32, i < 3)).collect(),
                connections: 3,
                in_flight: 4,
                warmup: Duration::from_millis(50),
                duration: Duration::from_millis(200),
                threads: 2,
            };
            let stats = run(&plan);
            let answered = stats.latency.len();
            assert!(answered > 100, "{proto:?}: {answered} answers");
            assert_eq!(stats.failed_connections, 0);
            // Every fifth answer is an error, warm-up and tail included.
            assert!(stats.errors >= answered / 5, "{proto:?}: {} errors of {answered}", stats.errors);
            assert!(stats.mismatched >= answered / 7, "{proto:?}: {} mismatched", stats.mismatched);
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
