//! Errors of the core crate: [`CodecError`] for wire data, [`ConfigError`] for configuration.

use std::borrow::Cow;

use bytes::Bytes;

/// Why a codec could not decode or encode a message.
///
/// A decode error means the byte stream is corrupt: the proxy answers with a protocol-native error
/// where it can and closes the connection. Offsets count from the start of the buffer handed to
/// [`Codec::decode`](crate::Codec::decode), i.e. from the first byte of the frame being decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A frame declares a length over the codec's maximum frame size. Raised as soon as the length
    /// is read, before the body is buffered.
    #[error("frame of {declared} bytes exceeds the maximum frame size of {max} bytes")]
    FrameTooLarge {
        /// The length the frame declares.
        declared: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The bytes do not follow the protocol.
    #[error("malformed message at byte {offset}: {reason}")]
    Malformed {
        /// Where the problem was found.
        offset: usize,
        /// What was wrong.
        reason: Cow<'static, str>,
    },
    /// Values nest deeper than the codec allows.
    #[error("nesting deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// Where the limit was hit.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// A valid message this codec does not handle (an unknown transform, serialization, version).
    #[error("unsupported: {0}")]
    Unsupported(Cow<'static, str>),
    /// The proxy asked for a request id the protocol cannot carry.
    #[error("request id {id} is out of range for this protocol (max {max})")]
    RequestIdOutOfRange {
        /// The id asked for.
        id: u64,
        /// The largest id the protocol carries.
        max: u64,
    },
    /// A message could not be encoded (for example a mutation made a block too large).
    #[error("cannot encode: {0}")]
    Encode(Cow<'static, str>),
    /// The proxy gave up on a frame before it was complete: it arrived too slowly, or holding it
    /// would take more memory than the listener allows. See
    /// [`Codec::refuse_partial`](crate::Codec::refuse_partial).
    #[error("frame refused before it was complete: {0}")]
    Refused(Cow<'static, str>),
    /// A whole request frame was cut from the stream and its header read, but its body does not
    /// parse. The frame is carried so that
    /// [`Codec::malformed_reply`](crate::Codec::malformed_reply) can answer that request.
    #[error("bad request {request_id}: {source}")]
    BadRequest {
        /// The request's id, from its header.
        request_id: u64,
        /// The whole frame, as consumed from the stream.
        frame: Bytes,
        /// What was wrong with the body.
        #[source]
        source: Box<CodecError>,
    },
}

impl CodecError {
    /// A [`CodecError::Malformed`] at `offset`.
    pub fn malformed(offset: usize, reason: impl Into<Cow<'static, str>>) -> Self {
        CodecError::Malformed { offset, reason: reason.into() }
    }

    /// A [`CodecError::BadRequest`]: `source` found in the body of request `request_id`, whose
    /// whole `frame` was consumed.
    pub fn bad_request(request_id: u64, frame: Bytes, source: CodecError) -> Self {
        CodecError::BadRequest { request_id, frame, source: Box::new(source) }
    }

    /// The byte offset the error points at, when it has one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            CodecError::Malformed { offset, .. } | CodecError::TooDeep { offset, .. } => Some(*offset),
            CodecError::FrameTooLarge { .. } => Some(0),
            CodecError::BadRequest { source, .. } => source.offset(),
            _ => None,
        }
    }
}

/// Why a configuration (codec options, filter config, route table, registry) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No codec or filter is registered under this name.
    #[error("unknown {kind} `{name}` (registered: {known})")]
    Unknown {
        /// "codec" or "filter".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// A codec or filter was registered twice under one name.
    #[error("{kind} `{name}` is already registered")]
    Duplicate {
        /// "codec" or "filter".
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// A value is invalid; `field` names where (for example `routes[2].match[0].regex`).
    #[error("{field}: {message}")]
    Invalid {
        /// The path of the offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A [`ConfigError::Invalid`] for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { field: field.into(), message: message.into() }
    }

    /// Prefixes the field path of an [`Invalid`](ConfigError::Invalid) error with `outer`.
    pub fn within(self, outer: &str) -> Self {
        match self {
            ConfigError::Invalid { field, message } if field.is_empty() => {
                ConfigError::Invalid { field: outer.to_string(), message }
            }
            ConfigError::Invalid { field, message } => {
                let sep = if field.starts_with('[') { "" } else { "." };
                ConfigError::Invalid { field: format!("{outer}{sep}{field}"), message }
            }
            other => other,
        }
    }
}
