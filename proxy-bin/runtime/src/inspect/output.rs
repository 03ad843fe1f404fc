//! What `inspect` reports, and the JSON-lines report (the default, for scripts).
//!
//! Three kinds of line, one JSON object each:
//!
//! * a message: where it was (capture time, file, connection, sender, receiver, direction), what
//!   `inspect` has always printed (offset in its stream, size, message type, request id, stream
//!   id, status, header and body sizes, operation, key/values), its exchange number (a response
//!   carries its request's, and the latency), and with `--config` the routing decision;
//! * an event (`"event": "gap"`, `"resync"`, …): something about the capture rather than a
//!   message, such as bytes the capture does not hold;
//! * the summary, last: `{"summary": {…}}`.
//!
//! For a raw byte-stream file the message line is exactly what it has always been (no capture
//! time, connection or exchange), so existing scripts keep working.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use metaprotocol_core::Metadata;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::dryrun::{Decision, DryRunSummary, UpstreamView};
use crate::RuntimeError;

/// A capture time (nanoseconds since the Unix epoch), written as RFC 3339 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ts(pub u64);

impl Ts {
    /// RFC 3339 with nanoseconds, such as `2026-12-01T17:09:12.345678901Z`.
    pub fn rfc3339(self) -> String {
        humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(self.0)).to_string()
    }

    /// The time of day with microseconds, such as `17:09:12.345678`, for tables.
    pub fn time_of_day(self) -> String {
        let full = humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_nanos(self.0)).to_string();
        full.get(11..26).map_or(full.clone(), str::to_string)
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

/// Where a message or event was.
#[derive(Debug, Clone, Default)]
pub struct Place<'a> {
    /// Capture time (captures only).
    pub ts: Option<Ts>,
    /// The file.
    pub file: &'a str,
    /// The connection's number in the capture, from 1.
    pub connection: Option<u64>,
    /// The sender.
    pub src: Option<SocketAddr>,
    /// The receiver.
    pub dst: Option<SocketAddr>,
    /// `client_to_server` or `server_to_client`.
    pub direction: Option<&'static str>,
    /// The codec that decoded the connection.
    pub protocol: Option<&'a str>,
}

/// One message.
#[derive(Debug, Serialize)]
pub struct MessageLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<Ts>,
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
    /// The frame's offset in its stream (in the file, for a raw file).
    pub offset: u64,
    /// The frame's size.
    pub size: usize,
    message_type: &'static str,
    request_id: u64,
    stream_id: Option<u64>,
    status: &'static str,
    header_size: u32,
    body_size: u32,
    /// The operation (`service/method`).
    pub operation: String,
    #[serde(serialize_with = "kvs_as_map")]
    kvs: &'a Metadata,
    /// The exchange (request and its answer share it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<u64>,
    /// For an answer: microseconds since its request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<f64>,
    /// For a request on a connection to a listener: the routing decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a Decision>,
    /// For a message on a connection to a cluster's endpoint: which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a UpstreamView>,
}

fn kvs_as_map<S: Serializer>(metadata: &&Metadata, s: S) -> Result<S::Ok, S::Error> {
    let kvs = &metadata.kvs;
    let mut map = s.serialize_map(Some(kvs.len()))?;
    for (k, v) in kvs.iter() {
        map.serialize_entry(&String::from_utf8_lossy(k), &String::from_utf8_lossy(v))?;
    }
    map.end()
}

impl<'a> MessageLine<'a> {
    /// The line for message `md` (`size` bytes at `offset`) at `place`.
    pub fn new(place: &Place<'a>, offset: u64, size: usize, md: &'a Metadata) -> Self {
        MessageLine {
            ts: place.ts,
            file: place.file,
            connection: place.connection,
            src: place.src,
            dst: place.dst,
            direction: place.direction,
            protocol: place.protocol,
            offset,
            size,
            message_type: md.message_type.as_str(),
            request_id: md.request_id,
            stream_id: md.stream_id,
            status: md.response_status.as_str(),
            header_size: md.header_size,
            body_size: md.body_size,
            operation: md.operation().to_string(),
            kvs: md,
            exchange: None,
            latency_us: None,
            route: None,
            upstream: None,
        }
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        self.kvs
    }

    /// Where it was.
    pub fn place(&self) -> Place<'a> {
        Place {
            ts: self.ts,
            file: self.file,
            connection: self.connection,
            src: self.src,
            dst: self.dst,
            direction: self.direction,
            protocol: self.protocol,
        }
    }
}

/// Something about the capture rather than a message.
#[derive(Debug, Serialize)]
pub struct EventLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<Ts>,
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'static str>,
    /// What happened: `gap`, `resync`, `decode_error`, `skipped`, `discarded`, `incomplete`,
    /// `unanswered`, `midstream`, `no_codec`, `truncated_capture`, `corrupt_capture`,
    /// `malformed_packet`, `unknown_link_type`.
    pub event: &'static str,
    /// The stream offset it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// How many bytes it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The exchange it concerns (`unanswered`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<u64>,
    /// In words.
    pub detail: String,
}

impl<'a> EventLine<'a> {
    /// Event `event` at `place`, explained by `detail`.
    pub fn new(place: &Place<'a>, event: &'static str, detail: String) -> Self {
        EventLine {
            ts: place.ts,
            file: place.file,
            connection: place.connection,
            src: place.src,
            dst: place.dst,
            direction: place.direction,
            event,
            offset: None,
            bytes: None,
            exchange: None,
            detail,
        }
    }

    /// Where it was.
    pub fn place(&self) -> Place<'a> {
        Place {
            ts: self.ts,
            file: self.file,
            connection: self.connection,
            src: self.src,
            dst: self.dst,
            direction: self.direction,
            protocol: None,
        }
    }
}

/// Totals over every file of one command.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Totals {
    /// Files read.
    pub files: u64,
    /// Packets read (captures).
    pub packets: u64,
    /// Packets that are not TCP (skipped).
    pub other_packets: u64,
    /// Packets whose headers do not parse, or of an unknown link type (skipped).
    pub malformed_packets: u64,
    /// TCP connections seen.
    pub connections: u64,
    /// Messages decoded.
    pub messages: u64,
    /// Requests (every message that is not an answer or a pong).
    pub requests: u64,
    /// Answers paired with their request.
    pub answered: u64,
    /// Requests that expected an answer the capture does not hold.
    pub unanswered: u64,
    /// Answers whose request the capture does not hold.
    pub unpaired_answers: u64,
    /// Decode errors (where a stream lost sync, or where a raw file stopped).
    pub decode_errors: u64,
    /// Times a stream found a frame again after losing sync.
    pub resyncs: u64,
    /// Bytes skipped while out of sync.
    pub skipped_bytes: u64,
    /// Holes in streams (bytes the capture does not hold).
    pub gaps: u64,
    /// Their bytes.
    pub gap_bytes: u64,
    /// Bytes of messages cut by a hole and discarded.
    pub discarded_bytes: u64,
    /// Streams that end inside a message.
    pub incomplete: u64,
    /// Bytes captured more than once (TCP retransmissions).
    pub retransmitted_bytes: u64,
    /// The routing dry run (`--config`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRunSummary>,
}

/// Where lines go: JSON lines ([`JsonReport`]) or a table ([`super::table::TableReport`]).
pub trait Report {
    /// One message.
    fn message(&mut self, line: &MessageLine<'_>) -> Result<(), RuntimeError>;
    /// One event.
    fn event(&mut self, line: &EventLine<'_>) -> Result<(), RuntimeError>;
    /// The end: the totals (written when `summary` is true).
    fn finish(&mut self, totals: &Totals, summary: bool) -> Result<(), RuntimeError>;
}

/// One JSON object per line.
pub struct JsonReport<'w> {
    out: &'w mut dyn Write,
}

impl<'w> JsonReport<'w> {
    /// Writing to `out`.
    pub fn new(out: &'w mut dyn Write) -> Self {
        JsonReport { out }
    }

    fn line<T: Serialize>(&mut self, value: &T) -> Result<(), RuntimeError> {
        serde_json::to_writer(&mut *self.out, value).map_err(|e| RuntimeError::Output(e.into()))?;
        self.out.write_all(b"\n").map_err(RuntimeError::Output)
    }
}

impl Report for JsonReport<'_> {
    fn message(&mut self, line: &MessageLine<'_>) -> Result<(), RuntimeError> {
        self.line(line)
    }

    fn event(&mut self, line: &EventLine<'_>) -> Result<(), RuntimeError> {
        self.line(line)
    }

    fn finish(&mut self, totals: &Totals, summary: bool) -> Result<(), RuntimeError> {
        #[derive(Serialize)]
        struct Summary<'a> {
            summary: &'a Totals,
        }
        if summary {
            self.line(&Summary { summary: totals })?;
        }
        self.out.flush().map_err(RuntimeError::Output)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn timestamps_in_utc() {
        let t = Ts(1_764_608_952_123_456_789);
        assert_eq!(t.rfc3339(), "2025-12-01T17:09:12.123456789Z");
        assert_eq!(t.time_of_day(), "17:09:12.123456");
    }

    #[test]
    fn a_raw_file_line_has_only_the_fields_it_always_had() {
        let md = Metadata::new(metaprotocol_core::MessageType::Request, 3);
        let place = Place { file: "f.bin", ..Place::default() };
        let json = serde_json::to_value(MessageLine::new(&place, 7, 20, &md)).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        let mut want = [
            "file",
            "offset",
            "size",
            "message_type",
            "request_id",
            "stream_id",
            "status",
            "header_size",
            "body_size",
            "operation",
            "kvs",
        ]
        .map(String::from)
        .to_vec();
        want.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, want);
    }
}
