//! `kv-metaproxy`: the metaproxy CLI with the kv codec registered. TEMPLATE: a plugin's binary is
//! exactly this, with its own factory in place of `KvCodecFactory`.
//!
//! ```text
//! cargo run -p metaprotocol-example-kv -- inspect --protocol kv examples/kv-protocol/captures/session.kv
//! ```

#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = match metaproxy_runtime::default_registry() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kv-metaproxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = registry.register_codec(kv_protocol::KvCodecFactory) {
        eprintln!("kv-metaproxy: {e}");
        return ExitCode::FAILURE;
    }
    metaproxy_runtime::cli::main_with(registry)
}
