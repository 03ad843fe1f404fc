//! What one `inspect` command shares over its files: pairing, the dry run, the totals and the
//! report; and how decoded messages and stream events become report lines.

use super::codec::Decoded;
use super::dryrun::{is_routed, DryRun, Leg};
use super::output::{EventLine, MessageLine, Place, Report, Totals};
use super::pairing::{Pairer, Pairing};
use super::stream::StreamEvent;
use super::tcp::GapCause;
use crate::RuntimeError;

/// The state of one `inspect` command.
pub struct Session<'a> {
    /// The routing dry run (`--config`).
    pub dry: Option<DryRun>,
    /// Totals so far.
    pub totals: Totals,
    pairer: Pairer,
    report: &'a mut dyn Report,
    next_connection: u64,
}

/// Where a stream is: its connection's number and leg, and which side sends it.
#[derive(Debug, Clone)]
pub struct StreamAt<'p> {
    /// For reports.
    pub place: Place<'p>,
    /// The connection's number (0: the raw files of the command).
    pub connection: u64,
    /// The sending side, for pairing: 0 client to server, 1 server to client (a raw file: its
    /// index among the command's raw files).
    pub side: usize,
    /// True for a client's stream (the one the proxy decodes requests from and routes).
    pub from_client: bool,
    /// The connection's leg in the dry run.
    pub leg: Leg,
}

impl<'a> Session<'a> {
    /// A session reporting to `report`.
    pub fn new(report: &'a mut dyn Report, dry: Option<DryRun>) -> Self {
        Session { dry, totals: Totals::default(), pairer: Pairer::default(), report, next_connection: 0 }
    }

    /// A number for a new connection, from 1.
    pub fn new_connection(&mut self) -> u64 {
        self.totals.connections += 1;
        self.next_connection += 1;
        self.next_connection
    }

    /// Reports event `kind` at `place`.
    pub fn event(
        &mut self,
        place: &Place<'_>,
        kind: &'static str,
        offset: Option<u64>,
        bytes: Option<u64>,
        detail: String,
    ) -> Result<(), RuntimeError> {
        let mut line = EventLine::new(place, kind, detail);
        line.offset = offset;
        line.bytes = bytes;
        self.report.event(&line)
    }

    /// A hole in a stream.
    pub fn gap(&mut self, at: &StreamAt<'_>, offset: u64, bytes: u64, cause: GapCause) -> Result<(), RuntimeError> {
        self.totals.gaps += 1;
        self.totals.gap_bytes = self.totals.gap_bytes.saturating_add(bytes);
        let detail = format!("{bytes} bytes at stream offset {offset} are missing: {}", cause.as_str());
        self.event(&at.place, "gap", Some(offset), Some(bytes), detail)
    }

    /// A decoded message: pairs it, routes it (dry run) and reports it.
    pub fn message(&mut self, at: &StreamAt<'_>, offset: u64, decoded: &Decoded) -> Result<(), RuntimeError> {
        let md = &decoded.metadata;
        self.totals.messages += 1;
        let ts = at.place.ts.map(|t| t.0);
        let pairing = self.pairer.on_message(at.connection, at.side, md.message_type, md.request_id, ts);
        let mut latency_us = None;
        match &pairing {
            Pairing::Answers(w) => {
                self.totals.answered += 1;
                latency_us = ts.zip(w.ts_ns).map(|(now, then)| now.saturating_sub(then) as f64 / 1000.0);
            }
            Pairing::Unpaired => self.totals.unpaired_answers += 1,
            _ => self.totals.requests += 1,
        }
        let routed = is_routed(md.message_type) && at.from_client;
        let mut decision = None;
        let mut upstream = None;
        if let Some(dry) = &mut self.dry {
            match at.leg {
                Leg::Listener(i) if routed => decision = dry.route(i, md),
                Leg::Upstream { cluster, endpoint } => {
                    upstream = dry.upstream_view(cluster, endpoint);
                    if routed {
                        dry.not_on_a_listener();
                    }
                }
                _ if routed => dry.not_on_a_listener(),
                _ => {}
            }
        }
        let mut line = MessageLine::new(&at.place, offset, decoded.size, md);
        line.exchange = pairing.exchange();
        line.latency_us = latency_us;
        line.route = decision.as_ref();
        line.upstream = upstream.as_ref();
        self.report.message(&line)
    }

    /// A stream event of a capture (raw files handle errors themselves).
    pub fn stream_event(&mut self, at: &StreamAt<'_>, event: StreamEvent) -> Result<(), RuntimeError> {
        let t = &mut self.totals;
        let (kind, offset, bytes, detail) = match event {
            StreamEvent::Message { offset, decoded } => return self.message(at, offset, &decoded),
            StreamEvent::DecodeError { offset, error } => {
                t.decode_errors += 1;
                ("decode_error", offset, None, format!("{error}; looking for the next frame"))
            }
            StreamEvent::Resynced { from, at: to } => {
                t.resyncs += 1;
                let skipped = to.saturating_sub(from);
                t.skipped_bytes = t.skipped_bytes.saturating_add(skipped);
                let detail = match skipped {
                    0 => format!("decoding resumes at a frame boundary, stream offset {to}"),
                    n => format!("resynchronised at stream offset {to}: skipped {n} bytes before the first frame the codec recognises"),
                };
                ("resync", to, Some(skipped), detail)
            }
            StreamEvent::Skipped { from, bytes } => {
                t.skipped_bytes = t.skipped_bytes.saturating_add(bytes);
                ("skipped", from, Some(bytes), format!("{bytes} bytes in which the codec found no frame"))
            }
            StreamEvent::Discarded { offset, bytes } => {
                t.discarded_bytes = t.discarded_bytes.saturating_add(bytes);
                let detail = format!("the first {bytes} bytes of a message that the next gap cuts: not decoded");
                ("discarded", offset, Some(bytes), detail)
            }
            StreamEvent::Incomplete { offset, bytes } => {
                t.incomplete += 1;
                let detail = format!("the stream ends inside a message: its first {bytes} bytes, no more");
                ("incomplete", offset, Some(bytes), detail)
            }
        };
        self.event(&at.place, kind, Some(offset), bytes, detail)
    }

    /// Connection `connection` ended: reports the requests it left unanswered.
    pub fn close(&mut self, place: &Place<'_>, connection: u64) -> Result<(), RuntimeError> {
        for w in self.pairer.close(connection) {
            self.totals.unanswered += 1;
            let mut line = EventLine::new(
                place,
                "unanswered",
                format!("request id {} (exchange {}) has no answer in the capture", w.request_id, w.exchange),
            );
            line.exchange = Some(w.exchange);
            self.report.event(&line)?;
        }
        Ok(())
    }

    /// The end of the command: writes the totals (with the dry run's) when `summary`.
    pub fn finish(mut self, summary: bool) -> Result<Totals, RuntimeError> {
        self.totals.dry_run = self.dry.as_ref().map(|d| d.summary().clone());
        self.report.finish(&self.totals, summary)?;
        Ok(self.totals)
    }
}
