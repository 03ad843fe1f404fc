//! The `metaproxy` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use metaprotocol_core::{ConfigValue, Registry};

use crate::inspect::inspect_file;
use crate::RuntimeError;

/// metaproxy: an L7 proxy for RPC protocols (Dubbo, Thrift and your own), routing on message
/// metadata.
#[derive(Debug, Parser)]
#[command(name = "metaproxy", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode captured byte streams (one direction of a TCP connection per file) and print one JSON
    /// object per message.
    Inspect {
        /// The codec to decode with (a registered protocol name, such as `kv`).
        #[arg(long, short = 'p')]
        protocol: String,
        /// Codec options as JSON, as they would appear under `codec:` in the configuration.
        #[arg(long, value_name = "JSON")]
        codec_options: Option<String>,
        /// Capture files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the registered protocols and filters.
    Plugins,
}

/// Parses the process arguments and runs the command with `registry`'s codecs and filters.
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    match run(&registry, cli.command, &mut std::io::stdout().lock()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("metaproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command, writing its normal output to `out`.
pub fn run(registry: &Registry, command: Command, out: &mut dyn Write) -> Result<ExitCode, RuntimeError> {
    match command {
        Command::Inspect { protocol, codec_options, files } => {
            let options: ConfigValue = match codec_options {
                None => ConfigValue::Null,
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| RuntimeError::Usage(format!("--codec-options is not valid JSON: {e}")))?,
            };
            // Check the protocol and options once, before reading any file.
            registry.configure_codec(&protocol, &options)?;
            let mut failed = false;
            for file in &files {
                if let Err(e) = inspect_file(registry, &protocol, &options, file, out) {
                    eprintln!("metaproxy: {e}");
                    failed = true;
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Plugins => {
            let codecs: Vec<_> = registry.codec_names().collect();
            let filters: Vec<_> = registry.filter_names().collect();
            writeln!(out, "protocols: {}", codecs.join(", ")).map_err(RuntimeError::Output)?;
            writeln!(out, "filters: {}", filters.join(", ")).map_err(RuntimeError::Output)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
