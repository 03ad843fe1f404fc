//! # metaproxy-runtime
//!
//! The `metaproxy` program as a library, so that a protocol plugin's own binary is the whole proxy
//! with one more codec registered:
//!
//! ```no_run
//! use metaprotocol_core::Registry;
//!
//! fn main() -> std::process::ExitCode {
//!     let registry = Registry::new(); // register_codec(MyCodecFactory) here
//!     metaproxy_runtime::cli::main_with(registry)
//! }
//! ```
//!
//! * [`cli`]: the command line (`inspect`; `run`, `check` and `demo` arrive with the proxy).
//! * [`inspect`]: decodes captured byte streams with a registered codec and prints JSON.

#![forbid(unsafe_code)]

pub mod cli;
mod error;
pub mod inspect;

pub use error::RuntimeError;
