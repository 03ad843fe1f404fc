//! The `metaproxy` binary: the runtime's CLI with the built-in protocols registered.
//!
//! Everything lives in `metaproxy-runtime`; a plugin author's binary is this same file with one
//! more `register_codec` line (see `examples/kv-protocol/src/main.rs`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

/// mimalloc instead of the system allocator: see BENCHMARKS.md, "Tracing cost".
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match metaproxy_runtime::default_registry() {
        Ok(registry) => metaproxy_runtime::cli::main_with(registry),
        Err(e) => {
            eprintln!("metaproxy: {e}");
            ExitCode::FAILURE
        }
    }
}
