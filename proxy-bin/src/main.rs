//! The `metaproxy` binary: the runtime's CLI with the built-in protocols registered.
//!
//! Everything lives in `metaproxy-runtime`; a plugin author's binary is this same file with one
//! more `register_codec` line (see `examples/kv-protocol/src/main.rs`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = match metaproxy_runtime::default_registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("metaproxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The template protocol doubles as a built-in, so captures of it can be inspected at once.
    if let Err(e) = registry.register_codec(kv_protocol::KvCodecFactory) {
        eprintln!("metaproxy: {e}");
        return ExitCode::FAILURE;
    }
    metaproxy_runtime::cli::main_with(registry)
}
