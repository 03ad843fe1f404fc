//! `access_log:` in the proxy's YAML: [`AccessLogConfig`], checked and compiled once into a
//! [`CompiledAccessLog`].
//!
//! ```yaml
//! access_log:
//!   path: /var/log/metaproxy/access.log   # or stdout, or stderr (the default)
//!   format: text                          # or json
//!   text_format: "[%START_TIME%] %OPERATION% %RESPONSE_FLAGS% %DURATION% %REQ(x-user):16%\n"
//!   buffer_size: 65536                    # bytes per worker buffer
//!   flush_interval: 100ms
//!   max_pending_buffers: 64
//! ```
//!
//! # Command operators
//!
//! | operator | value |
//! | --- | --- |
//! | `%START_TIME%` | when the request arrived, RFC 3339 UTC with milliseconds |
//! | `%DURATION%` / `%DURATION_US%` | how long it took, in whole milliseconds / microseconds |
//! | `%DOWNSTREAM_REMOTE_ADDRESS%` | the downstream peer's `ip:port` |
//! | `%UPSTREAM_HOST%` | the upstream endpoint's `ip:port` |
//! | `%UPSTREAM_CLUSTER%` / `%SUBSET%` / `%ROUTE_NAME%` | the routing decision |
//! | `%UPSTREAM_REQUEST_ATTEMPT_COUNT%` | how many times the request was sent upstream |
//! | `%RESPONSE_FLAGS%` | Envoy's short flags for the local reply kind (below); `-` for none |
//! | `%RESPONSE_CODE%` | the protocol's reply status, e.g. Dubbo `20` |
//! | `%LOCAL_REPLY%` | the local reply's kind, e.g. `route_not_found` |
//! | `%PROTOCOL%` / `%LISTENER%` | the listener's protocol and name |
//! | `%OPERATION%` | `service/method` (or whichever of the two the request names) |
//! | `%REQUEST_ID%` / `%MESSAGE_TYPE%` | the request id and message type |
//! | `%OUTCOME%` | `response`, `local_reply`, `sent_oneway` or `dropped` |
//! | `%REQ(key)%` / `%RESP(key)%` | a request / response metadata value (below) |
//! | `%%` | a literal `%` |
//!
//! `%REQ(key)%` and `%RESP(key)%` match the key ASCII case-insensitively; `%REQ(a?b)%` falls
//! back to key `b` when `a` is absent; `%REQ(key):N%` keeps at most N bytes of the value, never
//! splitting a UTF-8 character.
//!
//! `%RESPONSE_FLAGS%` maps the local reply kind: `NR` route_not_found, `NC` cluster_not_found,
//! `UH` no_healthy_upstream, `UT` timeout, `UO` over_limit, `UF` connect_failure, `UC`
//! upstream_reset, `DPE` bad_request, `UAEX` denied; `-` for internal_error, any other kind, and
//! requests without a local reply.
//!
//! A missing value prints `-` in text and `null` in JSON. In text, control characters, quotes
//! and backslashes in values are escaped (`\n`, `\"`, `\u{2028}`, ...) so a request is always
//! exactly one line; bytes that are not UTF-8 print as U+FFFD. A text format gets its final
//! `\n` added when it has none.
//!
//! In `json_format`, a value that is exactly one operator keeps its JSON type (numbers for
//! durations, ids and counts, `null` when missing); any other value is a string template
//! (missing values print `-` in it). Keys are written in sorted order, as the map holds them.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::AccessLogError;
use crate::render::CompiledFormat;

/// The default `buffer_size`: 64 KiB.
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;
/// The default `flush_interval`: 100 ms.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// The default `max_pending_buffers`.
pub const DEFAULT_MAX_PENDING_BUFFERS: usize = 64;

/// `access_log:` in the proxy's YAML. Every field is optional.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogConfig {
    /// Set to false to turn the access log off (default true).
    pub enabled: bool,
    /// `stdout`, `stderr` (the default) or a file path, appended to and created if missing.
    pub path: Option<String>,
    /// `text` (default) or `json`.
    pub format: Format,
    /// An Envoy-style format string with command operators; by default today's
    /// `%START_TIME% listener=%LISTENER% downstream=... duration_us=%DURATION_US%` layout.
    pub text_format: Option<String>,
    /// Envoy's `json_format`: output key to an operator (`"%ROUTE_NAME%"`), a template or literal
    /// text; by default an object with the fields of the default text layout.
    pub json_format: Option<BTreeMap<String, String>>,
    /// Each worker hands its buffer to the writer when it holds this many bytes (default 64 KiB).
    pub buffer_size: Option<usize>,
    /// A humantime duration such as `100ms` (the default): a worker hands over a non-empty buffer
    /// at least this often (see [`WorkerLog::flush_if_due`](crate::WorkerLog::flush_if_due)).
    pub flush_interval: Option<String>,
    /// How many full buffers may wait for the writer (default 64); past that, lines are dropped
    /// and counted.
    pub max_pending_buffers: Option<usize>,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            path: None,
            format: Format::Text,
            text_format: None,
            json_format: None,
            buffer_size: None,
            flush_interval: None,
            max_pending_buffers: None,
        }
    }
}

/// Access log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A text line from `text_format`.
    #[default]
    Text,
    /// One JSON object per line, from `json_format`.
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Text => "text",
            Format::Json => "json",
        })
    }
}

/// Where the writer thread writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The process's standard output (`path: stdout`).
    Stdout,
    /// The process's standard error (`path: stderr`, the default).
    Stderr,
    /// A file, opened for appending and created if missing (any other `path`; write `./stdout`
    /// for a file of that name).
    File(PathBuf),
}

/// An [`AccessLogConfig`] checked and compiled: the format parsed, every default applied.
#[derive(Clone, Debug)]
pub struct CompiledAccessLog {
    /// Whether the access log is on.
    pub enabled: bool,
    /// Where lines go.
    pub output: Output,
    /// The parsed line format.
    pub format: CompiledFormat,
    /// Bytes after which a worker hands its buffer over.
    pub buffer_size: NonZeroUsize,
    /// How often a worker hands over a non-empty buffer at least.
    pub flush_interval: Duration,
    /// The bound of the queue of full buffers waiting for the writer.
    pub max_pending_buffers: NonZeroUsize,
}

impl AccessLogConfig {
    /// Checks the configuration and parses the format once, as the proxy does when it loads its
    /// configuration. An error names its field with [`AccessLogError::field`].
    pub fn compile(&self) -> Result<CompiledAccessLog, AccessLogError> {
        let format = match (self.format, &self.text_format, &self.json_format) {
            (Format::Text, _, Some(_)) => {
                return Err(AccessLogError::FormatMismatch { field: "json_format", format: self.format })
            }
            (Format::Json, Some(_), _) => {
                return Err(AccessLogError::FormatMismatch { field: "text_format", format: self.format })
            }
            (Format::Text, Some(text), None) => CompiledFormat::text(text).map_err(AccessLogError::TextFormat)?,
            (Format::Text, None, None) => CompiledFormat::default_text(),
            (Format::Json, None, Some(map)) => CompiledFormat::json(map)?,
            (Format::Json, None, None) => CompiledFormat::default_json(),
        };
        let output = match self.path.as_deref() {
            None | Some("stderr") => Output::Stderr,
            Some("stdout") => Output::Stdout,
            Some("") => return Err(AccessLogError::EmptyPath),
            Some(path) => Output::File(PathBuf::from(path)),
        };
        let flush_interval = match &self.flush_interval {
            None => DEFAULT_FLUSH_INTERVAL,
            Some(value) => humantime::parse_duration(value)
                .map_err(|source| AccessLogError::FlushInterval { value: value.clone(), source })?,
        };
        let positive = |value: Option<usize>, default: usize, field: &'static str| {
            NonZeroUsize::new(value.unwrap_or(default)).ok_or(AccessLogError::Zero { field })
        };
        Ok(CompiledAccessLog {
            enabled: self.enabled,
            output,
            format,
            buffer_size: positive(self.buffer_size, DEFAULT_BUFFER_SIZE, "buffer_size")?,
            flush_interval,
            max_pending_buffers: positive(
                self.max_pending_buffers,
                DEFAULT_MAX_PENDING_BUFFERS,
                "max_pending_buffers",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FormatError;

    fn parse(json: &str) -> AccessLogConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_empty_section_gets_every_default() {
        let config = parse("{}");
        assert_eq!(config, AccessLogConfig::default());
        let compiled = config.compile().unwrap();
        assert!(compiled.enabled);
        assert_eq!(compiled.output, Output::Stderr);
        assert_eq!(compiled.buffer_size.get(), 64 * 1024);
        assert_eq!(compiled.flush_interval, Duration::from_millis(100));
        assert_eq!(compiled.max_pending_buffers.get(), 64);
    }

    #[test]
    fn every_field_is_read() {
        let config = parse(
            r#"{"enabled": false, "path": "/tmp/a.log", "format": "json", "json_format": {"op": "%OPERATION%"},
                "buffer_size": 1024, "flush_interval": "1s 500ms", "max_pending_buffers": 3}"#,
        );
        let compiled = config.compile().unwrap();
        assert!(!compiled.enabled);
        assert_eq!(compiled.output, Output::File(PathBuf::from("/tmp/a.log")));
        assert_eq!(compiled.buffer_size.get(), 1024);
        assert_eq!(compiled.flush_interval, Duration::from_millis(1500));
        assert_eq!(compiled.max_pending_buffers.get(), 3);
        assert_eq!(parse(r#"{"path": "stdout"}"#).compile().unwrap().output, Output::Stdout);
        assert_eq!(parse(r#"{"path": "stderr"}"#).compile().unwrap().output, Output::Stderr);
    }

    #[test]
    fn unknown_fields_and_formats_are_refused() {
        assert!(serde_json::from_str::<AccessLogConfig>(r#"{"formatt": "json"}"#).is_err());
        assert!(serde_json::from_str::<AccessLogConfig>(r#"{"format": "yaml"}"#).is_err());
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (r#"{"text_format": "%NOPE%"}"#, "text_format", "unknown command operator `%NOPE%` at byte 0"),
            (
                r#"{"format": "json", "json_format": {"a": "%REQ%"}}"#,
                "json_format",
                "key `a`: `%REQ%` at byte 0 needs a metadata key, as in `%REQ(key)%`",
            ),
            (r#"{"format": "json", "text_format": "x"}"#, "text_format", "`text_format` is set but `format` is `json`"),
            (r#"{"json_format": {}}"#, "json_format", "`json_format` is set but `format` is `text`"),
            (r#"{"flush_interval": "soon"}"#, "flush_interval", "invalid duration `soon`: "),
            (r#"{"buffer_size": 0}"#, "buffer_size", "must be at least 1"),
            (r#"{"max_pending_buffers": 0}"#, "max_pending_buffers", "must be at least 1"),
            (r#"{"path": ""}"#, "path", "must not be empty"),
        ];
        for (json, field, message) in cases {
            let err = parse(json).compile().unwrap_err();
            assert_eq!(err.field(), Some(field), "{json}");
            assert!(err.to_string().starts_with(message), "{json}: {err}");
        }
    }

    #[test]
    fn format_errors_keep_their_source() {
        let err = parse(r#"{"text_format": "%REQ(a):x%"}"#).compile().unwrap_err();
        let source = std::error::Error::source(&err).unwrap();
        let format_error = source.downcast_ref::<FormatError>().unwrap();
        assert!(matches!(format_error, FormatError::InvalidMaxLen { .. }));
        assert!(std::error::Error::source(format_error).is_some());
    }
}
