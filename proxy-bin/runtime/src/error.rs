//! [`RuntimeError`]: what the runtime reports to the command line. Every variant keeps its source.

use std::net::SocketAddr;
use std::path::PathBuf;

use metaprotocol_core::{CodecError, ConfigError};
use metaproxy_access_log::AccessLogError;

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
    /// A plugin refused its configuration (unknown codec, bad options).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configuration file was refused (`file:line: field: message`).
    #[error(transparent)]
    Load(#[from] LoadError),
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
    Output(#[source] std::io::Error),
    /// A socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A runtime or worker thread could not be started.
    #[error("cannot start a worker: {0}")]
    Runtime(#[source] std::io::Error),
    /// A worker did not report that it serves.
    #[error("a worker did not start")]
    WorkerStart,
    /// A listener's routes do not compile in a worker.
    #[error("listener `{listener}`: {source}")]
    Routes {
        /// The listener.
        listener: String,
        /// Why.
        source: ConfigError,
    },
    /// A reloaded configuration changes what only a restart can change; the running one keeps
    /// serving.
    #[error("not reloaded, a restart is needed: {what}")]
    ReloadNeedsRestart {
        /// The setting that changed.
        what: String,
    },
    /// The access log could not be started.
    #[error("access log: {0}")]
    AccessLog(#[source] AccessLogError),
    /// A span exporter could not be started.
    #[error("tracing: {0}")]
    Tracing(#[source] metaproxy_tracing::TracingError),
    /// `--codec-options` is not JSON.
    #[error("--codec-options is not valid JSON: {0}")]
    CodecOptions(#[source] serde_json::Error),
    /// A command-line argument is out of range.
    #[error("{argument}: {message}")]
    Argument {
        /// The argument.
        argument: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The demo could not start a provider.
    #[error("cannot start a demo provider on {address}: {source}")]
    DemoProvider {
        /// Where.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A `--codec-options` file is neither YAML nor JSON.
    #[error("--codec-options {path}: {source}")]
    CodecOptionsFile {
        /// The file.
        path: PathBuf,
        /// The parser's error (boxed: it is large, and rare).
        source: Box<serde_saphyr::Error>,
    },
    /// A `--codec-options` JSON file does not parse.
    #[error("--codec-options {path}: {source}")]
    CodecOptionsJson {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A registered protocol did not hand its codec to the inspector.
    #[error("protocol `{protocol}` cannot be inspected")]
    InspectCodec {
        /// The protocol.
        protocol: String,
    },
    /// A pcap or pcapng file's header does not parse.
    #[error("{path}: not a readable capture: {source}")]
    CaptureHeader {
        /// The capture file.
        path: PathBuf,
        /// What the pcap reader said.
        source: pcap_file::PcapError,
    },
    /// A capture file is corrupt after some packets (those before were inspected).
    #[error("{path}: {source}")]
    Capture {
        /// The capture file.
        path: PathBuf,
        /// Where and why reading stopped.
        source: crate::inspect::ReadError,
    },
    /// No registered codec decodes a raw capture file.
    #[error("{path}: no registered codec decodes this file (tried: {tried}); name one with --protocol")]
    NoCodec {
        /// The capture file.
        path: PathBuf,
        /// The codecs tried.
        tried: String,
    },
    /// `--listener` names no listener of the configuration.
    #[error("--listener: no listener `{name}` in the configuration (listeners: {known})")]
    UnknownListener {
        /// The name given.
        name: String,
        /// The configuration's listeners.
        known: String,
    },
}

/// A configuration error located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub file: String,
    /// The line (1-based; 0 when unknown).
    pub line: usize,
    /// The field's path, such as `listeners[0].routes[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field.is_empty() {
            true => write!(f, "{}:{}: {}", self.file, self.line, self.message),
            false => write!(f, "{}:{}: {}: {}", self.file, self.line, self.field, self.message),
        }
    }
}

impl std::error::Error for LoadError {}
