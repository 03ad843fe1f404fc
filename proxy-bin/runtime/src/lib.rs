//! # metaproxy-runtime
//!
//! The `metaproxy` program as a library, so that a protocol plugin's own binary is the whole proxy
//! with one more codec registered:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let Ok(registry) = metaproxy_runtime::default_registry() else { return std::process::ExitCode::FAILURE };
//!     // registry.register_codec(MyCodecFactory) here
//!     metaproxy_runtime::cli::main_with(registry)
//! }
//! ```
//!
//! * [`cli`]: the command line (`inspect`; `run`, `check` and `demo` arrive with the proxy).
//! * [`inspect`]: decodes captured byte streams with a registered codec and prints JSON.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod demo;
mod error;
pub mod inspect;
pub mod server;
pub mod upstream;

pub use error::RuntimeError;

use metaprotocol_core::{ConfigError, Registry};

/// A registry holding everything built into metaproxy: the built-in codecs (`dubbo`, `thrift`) and
/// filters.
/// Plugin binaries start from it and register their own codecs.
pub fn default_registry() -> Result<Registry, ConfigError> {
    let mut registry = Registry::new();
    registry.register_codec(metaprotocol_dubbo::DubboCodecFactory)?;
    registry.register_codec(metaprotocol_thrift::ThriftCodecFactory)?;
    metaprotocol_filters::register_builtin_filters(&mut registry)?;
    Ok(registry)
}
