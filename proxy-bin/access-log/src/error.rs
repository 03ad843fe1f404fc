//! [`AccessLogError`] (configuration and start-up) and [`FormatError`] (one format string).

use std::num::ParseIntError;
use std::path::PathBuf;

use crate::config::Format;

/// Why a format string (`text_format`, or one value of `json_format`) was refused.
///
/// Every `position` is the byte offset, in the format string, of the `%` that opens the offending
/// command operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// `%NAME%` names no supported command operator.
    #[error("unknown command operator `%{operator}%` at byte {position}")]
    UnknownOperator {
        /// The operator's name as written (without the `%` and any argument).
        operator: String,
        /// Where it starts.
        position: usize,
    },
    /// A `%` with no closing `%` after it.
    #[error(
        "unterminated command operator at byte {position}: no closing `%` (write `%%` for a literal percent sign)"
    )]
    Unterminated {
        /// Where the lone `%` is.
        position: usize,
    },
    /// `%REQ(...` without its closing parenthesis, or text between `)` and `%` that is not `:max_len`.
    #[error(
        "malformed command operator `%{text}%` at byte {position}: \
         expected `%{operator}(key)%` or `%{operator}(key):max_len%`"
    )]
    Malformed {
        /// The operator's name.
        operator: &'static str,
        /// Everything between the two `%`.
        text: String,
        /// Where it starts.
        position: usize,
    },
    /// `%REQ%` or `%RESP%` (or `%REQ()%`) without the metadata key to print.
    #[error("`%{operator}%` at byte {position} needs a metadata key, as in `%{operator}(key)%`")]
    MissingKey {
        /// The operator's name.
        operator: &'static str,
        /// Where it starts.
        position: usize,
    },
    /// An argument or `:max_len` given to an operator that takes none.
    #[error("`%{operator}%` at byte {position} takes no argument or `:max_len` (only REQ and RESP do)")]
    UnexpectedArgument {
        /// The operator's name.
        operator: &'static str,
        /// Where it starts.
        position: usize,
    },
    /// The `:max_len` suffix is not a positive integer.
    #[error("`%{operator}%` at byte {position}: max_len `{text}` is not a positive integer: {source}")]
    InvalidMaxLen {
        /// The operator's name.
        operator: &'static str,
        /// The suffix as written.
        text: String,
        /// Where the operator starts.
        position: usize,
        /// Why it does not parse.
        source: ParseIntError,
    },
    /// A text format holds a line break other than the one that may end it: one request is always
    /// exactly one line.
    #[error("line break at byte {position}: a text format may end with `\\n` but hold no other line break")]
    LineBreak {
        /// Where the line break is.
        position: usize,
    },
}

/// Errors of the access log: a refused configuration, an output that cannot be opened, a writer
/// thread that cannot start or that panicked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessLogError {
    /// `text_format` does not parse.
    #[error("{0}")]
    TextFormat(#[source] FormatError),
    /// One value of `json_format` does not parse.
    #[error("key `{key}`: {source}")]
    JsonFormat {
        /// The output key whose value was refused.
        key: String,
        /// Why.
        source: FormatError,
    },
    /// `text_format` set with `format: json`, or `json_format` with `format: text`.
    #[error("`{field}` is set but `format` is `{format}`")]
    FormatMismatch {
        /// `text_format` or `json_format`.
        field: &'static str,
        /// The configured format.
        format: Format,
    },
    /// `flush_interval` is not a duration.
    #[error("invalid duration `{value}`: {source}")]
    FlushInterval {
        /// The value as written.
        value: String,
        /// Why it does not parse.
        source: humantime::DurationError,
    },
    /// `buffer_size` or `max_pending_buffers` is zero.
    #[error("must be at least 1")]
    Zero {
        /// `buffer_size` or `max_pending_buffers`.
        field: &'static str,
    },
    /// `path` is the empty string.
    #[error("must not be empty (use `stdout`, `stderr` or a file path)")]
    EmptyPath,
    /// The log file cannot be opened for appending.
    #[error("cannot open `{}` for appending: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The writer thread cannot be started.
    #[error("cannot start the access log writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The writer thread panicked (a bug); what it had not written is lost.
    #[error("the access log writer thread panicked")]
    WriterPanicked,
}

impl AccessLogError {
    /// The `access_log` field the error is about (`text_format`, `json_format`, `flush_interval`,
    /// ...), for reports such as `file:line: access_log.text_format: ...`; `None` for errors
    /// that are not about one field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AccessLogError::TextFormat(_) => Some("text_format"),
            AccessLogError::JsonFormat { .. } => Some("json_format"),
            AccessLogError::FormatMismatch { field, .. } | AccessLogError::Zero { field } => Some(field),
            AccessLogError::FlushInterval { .. } => Some("flush_interval"),
            AccessLogError::EmptyPath | AccessLogError::Open { .. } => Some("path"),
            AccessLogError::Spawn(_) | AccessLogError::WriterPanicked => None,
        }
    }
}
