//! [`CompiledFormat`]: a parsed line format, and writing one [`Entry`] with it as a text line or a
//! JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::error::{AccessLogError, FormatError};
use crate::escape::{self, Out};
use crate::template::{self, KeyArg, Operator, Segment};
use crate::timestamp::TimeCache;
use crate::{Entry, Lookup};

/// The text layout used when `text_format` is absent: today's `key=value` line, prefixed by the
/// start time.
pub const DEFAULT_TEXT_FORMAT: &str = "%START_TIME% listener=%LISTENER% downstream=%DOWNSTREAM_REMOTE_ADDRESS% \
op=%OPERATION% id=%REQUEST_ID% type=%MESSAGE_TYPE% route=%ROUTE_NAME% cluster=%UPSTREAM_CLUSTER% subset=%SUBSET% \
upstream=%UPSTREAM_HOST% outcome=%OUTCOME% reply=%LOCAL_REPLY% duration_us=%DURATION_US%\n";

/// The keys and operators of the JSON object used when `json_format` is absent, in output order.
const DEFAULT_JSON_FIELDS: [(&str, Operator); 13] = [
    ("start_time", Operator::StartTime),
    ("listener", Operator::Listener),
    ("downstream", Operator::DownstreamRemoteAddress),
    ("operation", Operator::Operation),
    ("request_id", Operator::RequestId),
    ("message_type", Operator::MessageType),
    ("route", Operator::RouteName),
    ("cluster", Operator::UpstreamCluster),
    ("subset", Operator::Subset),
    ("upstream", Operator::UpstreamHost),
    ("outcome", Operator::Outcome),
    ("reply", Operator::LocalReply),
    ("duration_us", Operator::DurationUs),
];

/// A line format parsed once at configuration time: [`CompiledFormat::write`] appends one line
/// per entry, `\n` included.
#[derive(Clone, Debug)]
pub struct CompiledFormat {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// Segments of a text line, without its final `\n`.
    Text(Vec<Segment>),
    /// The fields of a JSON object.
    Json(Vec<JsonField>),
}

#[derive(Clone, Debug)]
struct JsonField {
    /// `"key":`, escaped.
    key: Box<[u8]>,
    value: JsonValue,
}

#[derive(Clone, Debug)]
enum JsonValue {
    /// Exactly one operator: typed (numbers, `null` when missing).
    Typed(Operator),
    /// A string made of literal text and operators.
    Template(Vec<Segment>),
}

impl CompiledFormat {
    /// Parses an Envoy-style text format string. A final `\n` is added when missing; any other
    /// line break is refused, so that one request is always one line.
    pub fn text(format: &str) -> Result<CompiledFormat, FormatError> {
        let body = format.strip_suffix('\n').unwrap_or(format);
        if let Some(position) = body.find(['\n', '\r']) {
            return Err(FormatError::LineBreak { position });
        }
        Ok(CompiledFormat { kind: Kind::Text(template::parse(body)?) })
    }

    /// Parses Envoy's `json_format`: output key to an operator string or literal text.
    pub fn json(fields: &BTreeMap<String, String>) -> Result<CompiledFormat, AccessLogError> {
        let mut compiled = Vec::with_capacity(fields.len());
        for (key, value) in fields {
            let segments =
                template::parse(value).map_err(|source| AccessLogError::JsonFormat { key: key.clone(), source })?;
            let value = match segments.as_slice() {
                [Segment::Op(op)] => JsonValue::Typed(op.clone()),
                _ => JsonValue::Template(segments),
            };
            compiled.push(JsonField { key: json_key(key), value });
        }
        Ok(CompiledFormat { kind: Kind::Json(compiled) })
    }

    /// The default text line, [`DEFAULT_TEXT_FORMAT`].
    pub fn default_text() -> CompiledFormat {
        let segments = template::parse(DEFAULT_TEXT_FORMAT.trim_end_matches('\n')).unwrap_or_default();
        CompiledFormat { kind: Kind::Text(segments) }
    }

    /// The default JSON object: the fields of the default text line, numbers as numbers and
    /// missing values as `null`.
    pub fn default_json() -> CompiledFormat {
        let fields = DEFAULT_JSON_FIELDS
            .into_iter()
            .map(|(key, op)| JsonField { key: json_key(key), value: JsonValue::Typed(op) })
            .collect();
        CompiledFormat { kind: Kind::Json(fields) }
    }

    /// Appends `entry`'s line, `\n` included, to `out`. Allocates nothing unless `out` must grow.
    pub fn write(&self, entry: &Entry<'_>, out: &mut Vec<u8>) {
        self.write_with(entry, out, &mut TimeCache::default());
    }

    /// [`write`](Self::write) reusing the `%START_TIME%` text of the previous line's second.
    pub(crate) fn write_with(&self, entry: &Entry<'_>, out: &mut Vec<u8>, clock: &mut TimeCache) {
        match &self.kind {
            Kind::Text(segments) => {
                for segment in segments {
                    match segment {
                        Segment::Literal(text) => out.extend_from_slice(text.as_bytes()),
                        Segment::Op(op) => text_value(out, resolve(op, entry), clock),
                    }
                }
            }
            Kind::Json(fields) => {
                out.push(b'{');
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&field.key);
                    match &field.value {
                        JsonValue::Typed(op) => json_value(out, resolve(op, entry), clock),
                        JsonValue::Template(segments) => {
                            out.push(b'"');
                            for segment in segments {
                                match segment {
                                    Segment::Literal(text) => escape::json_str(out, text),
                                    Segment::Op(op) => json_in_string(out, resolve(op, entry), clock),
                                }
                            }
                            out.push(b'"');
                        }
                    }
                }
                out.push(b'}');
            }
        }
        out.push(b'\n');
    }
}

/// `"key":` with the key escaped.
fn json_key(key: &str) -> Box<[u8]> {
    let mut out = vec![b'"'];
    escape::json_str(&mut out, key);
    out.extend_from_slice(b"\":");
    out.into_boxed_slice()
}

/// One operator's value for one entry.
enum Value<'a> {
    Missing,
    Str(&'a str),
    Bytes(&'a [u8]),
    Number(u128),
    Addr(SocketAddr),
    Time(SystemTime),
    Operation(&'a [u8], &'a [u8]),
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Value::Missing, Value::Str)
    }
}

impl From<Option<SocketAddr>> for Value<'_> {
    fn from(value: Option<SocketAddr>) -> Self {
        value.map_or(Value::Missing, Value::Addr)
    }
}

fn resolve<'a>(op: &Operator, e: &Entry<'a>) -> Value<'a> {
    match op {
        Operator::StartTime => Value::Time(e.start_time),
        Operator::Duration => Value::Number(e.duration.as_millis()),
        Operator::DurationUs => Value::Number(e.duration.as_micros()),
        Operator::DownstreamRemoteAddress => e.downstream.into(),
        Operator::UpstreamHost => e.upstream.into(),
        Operator::UpstreamCluster => e.cluster.into(),
        Operator::RouteName => e.route.into(),
        Operator::ResponseFlags => Value::Str(response_flags(e.local_reply)),
        Operator::ResponseCode => e.response_code.into(),
        Operator::Protocol => Value::Str(e.protocol),
        Operator::Listener => Value::Str(e.listener),
        Operator::Operation => match (e.service, e.method) {
            (Some(service), Some(method)) => Value::Operation(service, method),
            (Some(one), None) | (None, Some(one)) => Value::Bytes(one),
            (None, None) => Value::Missing,
        },
        Operator::RequestId => Value::Number(u128::from(e.request_id)),
        Operator::MessageType => Value::Str(e.message_type),
        Operator::Outcome => Value::Str(e.outcome),
        Operator::Subset => e.subset.into(),
        Operator::Attempts => Value::Number(u128::from(e.attempts)),
        Operator::LocalReply => e.local_reply.into(),
        Operator::Req(arg) => lookup(Some(e.request), arg),
        Operator::Resp(arg) => lookup(e.response, arg),
    }
}

fn lookup<'a>(metadata: Option<&'a dyn Lookup>, arg: &KeyArg) -> Value<'a> {
    let Some(metadata) = metadata else { return Value::Missing };
    let found = metadata.get(&arg.key).or_else(|| arg.fallback.as_deref().and_then(|key| metadata.get(key)));
    match (found, arg.max_len) {
        (None, _) => Value::Missing,
        (Some(value), None) => Value::Bytes(value),
        (Some(value), Some(max_len)) => Value::Bytes(escape::truncate(value, max_len.get())),
    }
}

/// Envoy's short response flags for a local reply kind (`ReplyKind` names); `-` for none.
fn response_flags(local_reply: Option<&str>) -> &'static str {
    match local_reply {
        Some("route_not_found") => "NR",
        Some("cluster_not_found") => "NC",
        Some("no_healthy_upstream") => "UH",
        Some("timeout") => "UT",
        Some("over_limit") => "UO",
        Some("connect_failure") => "UF",
        Some("upstream_reset") => "UC",
        Some("bad_request") => "DPE",
        Some("denied") => "UAEX",
        _ => "-",
    }
}

fn number(out: &mut Vec<u8>, n: u128) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes `ip:port` (`[ip]:port` for IPv6); IPv4 with itoa, five times faster than `Display`.
fn addr_value(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            let [a, b, c, d] = v4.ip().octets();
            for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
            out.push(b':');
            out.extend_from_slice(digits.format(v4.port()).as_bytes());
        }
        SocketAddr::V6(v6) => {
            // Writing into a Vec cannot fail.
            let _ = write!(Out(out), "{v6}");
        }
    }
}

fn text_value(out: &mut Vec<u8>, value: Value<'_>, clock: &mut TimeCache) {
    match value {
        Value::Str("") | Value::Bytes([]) => out.push(b'-'),
        other => scalar(out, other, clock, &TEXT),
    }
}

/// How a value's text is escaped: for a text line, or for the inside of a JSON string.
struct Escape {
    str: fn(&mut Vec<u8>, &str),
    bytes: fn(&mut Vec<u8>, &[u8]),
}

const TEXT: Escape = Escape { str: escape::text_str, bytes: escape::text_bytes };
const JSON: Escape = Escape { str: escape::json_str, bytes: escape::json_bytes };

/// Writes a value as text escaped by `esc` (missing as `-`).
fn scalar(out: &mut Vec<u8>, value: Value<'_>, clock: &mut TimeCache, esc: &Escape) {
    match value {
        Value::Missing => out.push(b'-'),
        Value::Str(s) => (esc.str)(out, s),
        Value::Bytes(b) => (esc.bytes)(out, b),
        Value::Number(n) => number(out, n),
        Value::Addr(addr) => addr_value(out, addr),
        Value::Time(t) => {
            if !clock.write(out, t) {
                out.push(b'-');
            }
        }
        Value::Operation(service, method) => {
            (esc.bytes)(out, service);
            out.push(b'/');
            (esc.bytes)(out, method);
        }
    }
}

/// Writes a typed JSON value.
fn json_value(out: &mut Vec<u8>, value: Value<'_>, clock: &mut TimeCache) {
    match value {
        Value::Missing => out.extend_from_slice(b"null"),
        Value::Number(n) => number(out, n),
        Value::Time(t) => {
            let start = out.len();
            out.push(b'"');
            if clock.write(out, t) {
                out.push(b'"');
            } else {
                out.truncate(start);
                out.extend_from_slice(b"null");
            }
        }
        other => {
            out.push(b'"');
            json_in_string(out, other, clock);
            out.push(b'"');
        }
    }
}

/// Writes a value inside a JSON string (missing as `-`).
fn json_in_string(out: &mut Vec<u8>, value: Value<'_>, clock: &mut TimeCache) {
    scalar(out, value, clock, &JSON);
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
