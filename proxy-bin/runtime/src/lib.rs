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
//! * [`config`]: the YAML configuration and its validation.
//! * [`Registry`]: codecs and filters by name; registering a codec is where its type is erased
//!   ([`plan::Protocol`]).
//! * [`server`]: starts the workers (shared-nothing event loops, one thread each) and drains them.
//! * [`upstream`]: clusters as workers share them: endpoint sets, load balancing, circuit
//!   breakers, DNS discovery, active health checking, outlier detection.
//! * [`admin`]: the admin API (`/ready`, `/metrics`, `/config_dump`, `/clusters`,
//!   `POST /healthcheck/fail|ok`); [`stats`]: the counters and histograms behind the metrics.
//! * [`cli`]: the command line; [`inspect`]: the capture inspector.
//! * [`trace`]: distributed tracing's span exporters (per-request work in the workers).
//!
//! `docs/ARCHITECTURE.md` describes the worker model and a request's life through it.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
mod demo;
mod error;
pub mod inspect;
pub mod plan;
mod protocol;
mod registry;
pub mod server;
pub mod stats;
pub mod trace;
pub mod upstream;
mod worker;

pub use error::RuntimeError;
pub use registry::Registry;
pub use worker::DEFAULT_TIMEOUT;

use metaprotocol_core::ConfigError;

/// A registry holding everything built into metaproxy: the built-in codecs (`dubbo`, `thrift`, `framed`) and
/// filters. Plugin binaries start from it and register their own codecs.
pub fn default_registry() -> Result<Registry, ConfigError> {
    let mut registry = Registry::new();
    registry.register_codec(metaprotocol_dubbo::DubboCodecFactory)?;
    registry.register_codec(metaprotocol_thrift::ThriftCodecFactory)?;
    registry.register_codec(metaprotocol_framed::FramedCodecFactory)?;
    for filter in metaprotocol_filters::builtin_filters() {
        registry.register_filter(filter)?;
    }
    Ok(registry)
}
