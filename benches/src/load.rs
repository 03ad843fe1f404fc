//! The load generator's engine: request templates for Dubbo and framed Thrift (binary), a
//! closed-loop connection driver that keeps a fixed number of requests in flight, and latency
//! statistics in an HDR histogram. Responses are matched to requests by id; an answer to no
//! outstanding request counts as mismatched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            Proto::Thrift => {
                let name = b"sayHello";
                let mut body = BytesMut::new();
                body.put_u32(0x8001_0001);
                body.put_u32(name.len() as u32);
                body.put_slice(name);
                body.put_i32(0);
                body.put_u8(11);
                body.put_i16(1);
                body.put_u32(arg.len() as u32);
                body.put_slice(arg.as_bytes());
                body.put_u8(0);
                let mut f = BytesMut::with_capacity(body.len() + 4);
                f.put_u32(body.len() as u32);
                f.put_slice(&body);
                Template { frame: f.freeze(), id_at: 4 + 8 + name.len(), id_len: 4 }
            }
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
            Proto::Thrift => {
                let name = b"sayHello";
                let mut body = BytesMut::new();
                body.put_u32(0x8001_0002);
                body.put_u32(name.len() as u32);
                body.put_slice(name);
                body.put_i32(0);
                body.put_u8(11);
                body.put_i16(0);
                body.put_u32(value.len() as u32);
                body.put_slice(value.as_bytes());
                body.put_u8(0);
                let mut f = BytesMut::with_capacity(body.len() + 4);
                f.put_u32(body.len() as u32);
                f.put_slice(&body);
                Template { frame: f.freeze(), id_at: 4 + 8 + name.len(), id_len: 4 }
            }
        }
    }

    /// Appends the frame with id `id` to `out`.
    pub fn write(&self, out: &mut BytesMut, id: u64) {
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

/// One whole frame at the front of `buf`: its length, id and whether it reports success.
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

/// What one run measured.
#[derive(Debug)]
pub struct Stats {
    /// Latencies in microseconds.
    pub latency: Histogram<u64>,
    /// Error answers (and requests left unanswered at the end).
    pub errors: u64,
    /// Answers matching no outstanding request.
    pub mismatched: u64,
}

impl Stats {
    /// Empty statistics (latencies from 1 µs to 60 s, 3 significant digits).
    #[allow(clippy::expect_used)] // Constant bounds that `Histogram` accepts; it cannot fail.
    pub fn new() -> Stats {
        Stats {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            errors: 0,
            mismatched: 0,
        }
    }

    /// Adds another run's numbers.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        self.errors += other.errors;
        self.mismatched += other.mismatched;
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

/// Drives one connection for `duration` with `in_flight` requests outstanding; request ids carry
/// `conn` in their top bits so an answer from another connection counts as mismatched.
pub async fn drive(
    target: SocketAddr,
    proto: Proto,
    templates: &[Template],
    conn: u64,
    in_flight: usize,
    duration: Duration,
) -> std::io::Result<Stats> {
    let mut stream = TcpStream::connect(target).await?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.split();
    let mut stats = Stats::new();
    let mut outstanding: HashMap<u64, Instant> = HashMap::with_capacity(in_flight * 2);
    let (mut next, mut out, mut inbuf) =
        ((conn << 40) | 1, BytesMut::with_capacity(64 * 1024), BytesMut::with_capacity(64 * 1024));
    let deadline = Instant::now() + duration;
    let mut send = |out: &mut BytesMut, outstanding: &mut HashMap<u64, Instant>| {
        let id = next
            & match proto {
                Proto::Thrift => 0x7fff_ffff,
                Proto::Dubbo => u64::MAX,
            };
        next += 1;
        if let Some(t) = templates.get((id as usize) % templates.len().max(1)) {
            t.write(out, id);
        }
        outstanding.insert(id, Instant::now());
    };
    for _ in 0..in_flight {
        send(&mut out, &mut outstanding);
    }
    wr.write_all(&out).await?;
    out.clear();
    let grace = deadline + Duration::from_secs(2);
    while !outstanding.is_empty() && Instant::now() < grace {
        let read = tokio::time::timeout_at(tokio::time::Instant::from_std(grace), rd.read_buf(&mut inbuf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
        while let Some((len, id, ok)) = next_frame(proto, &inbuf) {
            inbuf.advance(len);
            match outstanding.remove(&id) {
                Some(sent) => {
                    let _ = stats.latency.record(sent.elapsed().as_micros().max(1) as u64);
                    if !ok {
                        stats.errors += 1;
                    }
                    if Instant::now() < deadline {
                        send(&mut out, &mut outstanding);
                    }
                }
                None => stats.mismatched += 1,
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
            out.clear();
        }
    }
    stats.errors += outstanding.len() as u64;
    Ok(stats)
}
