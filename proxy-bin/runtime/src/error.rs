//! [`RuntimeError`]: what the runtime reports to the command line.

use std::path::PathBuf;

use metaprotocol_core::{CodecError, ConfigError};

/// Errors of the runtime crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Configuration was refused (unknown codec, bad options).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A capture does not decode.
    #[error("{path}: byte offset {offset}: {source}")]
    Decode {
        /// The capture file.
        path: PathBuf,
        /// Where in the file the failing message starts plus the codec's offset within it.
        offset: u64,
        /// The codec's error.
        source: CodecError,
    },
    /// A capture ends inside a message.
    #[error("{path}: byte offset {offset}: the file ends inside a message ({left} bytes left undecoded)")]
    Truncated {
        /// The capture file.
        path: PathBuf,
        /// Where the incomplete message starts.
        offset: u64,
        /// How many bytes are left.
        left: usize,
    },
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(std::io::Error),
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
}
