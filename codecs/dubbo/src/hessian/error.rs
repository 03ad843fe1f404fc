//! [`HessianError`]: why a Hessian 2 value could not be read or written.

use metaprotocol_core::CodecError;

/// Errors of the Hessian 2 reader and writer. Offsets are positions in the frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HessianError {
    /// The value continues past the end of the data.
    #[error("hessian: {what} runs past the end of the data at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: usize,
    },
    /// A byte that no Hessian 2 production starts with, or a malformed value.
    #[error("hessian: {what} at byte {offset}")]
    Invalid {
        /// What is wrong.
        what: &'static str,
        /// Where.
        offset: usize,
    },
    /// Lists, maps and objects nest deeper than the limit.
    #[error("hessian: nesting deeper than {limit} at byte {offset}")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where.
        offset: usize,
    },
    /// A value of another type was found where one type was required.
    #[error("hessian: expected {expected} at byte {offset}, found code {code:#04x}")]
    Unexpected {
        /// The expected type.
        expected: &'static str,
        /// The byte found.
        code: u8,
        /// Where.
        offset: usize,
    },
    /// A value could not be written (a string that is not UTF-8).
    #[error("hessian: cannot write {0}")]
    Write(&'static str),
}

impl From<HessianError> for CodecError {
    fn from(e: HessianError) -> Self {
        match e {
            HessianError::TooDeep { limit, offset } => CodecError::TooDeep { offset, limit },
            HessianError::Truncated { offset, .. }
            | HessianError::Invalid { offset, .. }
            | HessianError::Unexpected { offset, .. } => CodecError::malformed(offset, e.to_string()),
            HessianError::Write(what) => CodecError::Encode(format!("hessian: cannot write {what}").into()),
        }
    }
}
