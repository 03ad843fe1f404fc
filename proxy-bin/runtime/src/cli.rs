//! The `metaproxy` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use metaprotocol_core::ConfigValue;

use crate::plan::Summary;
use crate::registry::Registry;
use crate::RuntimeError;

/// metaproxy: an L7 proxy for RPC protocols (Dubbo, Thrift and your own), routing on message
/// metadata.
#[derive(Debug, Parser)]
#[command(
    name = "metaproxy",
    version,
    about = "metaproxy: an L7 proxy for RPC protocols (Dubbo, Thrift and your own) that routes on message metadata",
    long_about = None
)]
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
    /// Run the proxy with a configuration file until SIGINT or SIGTERM, then drain.
    Run {
        /// The YAML configuration.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Validate a configuration file and exit.
    Check {
        /// The YAML configuration.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Batch-job isolation for Dubbo, live: providers in two groups, the proxy and a mixed load,
    /// all on loopback in this process.
    Demo {
        /// Run against this configuration instead of the embedded one (providers are started at
        /// its endpoints, clients target its first listener).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// How long the clients send, such as `5s`.
        #[arg(long, default_value = "5s")]
        duration: String,
        /// Client connections.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Share of requests with `batchjob=true`, 0 to 1.
        #[arg(long, default_value_t = 0.3)]
        batch_share: f64,
    },
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Logs (and the access log) go to stderr; stdout carries command output such as `inspect`'s JSON.
    // Colour codes only on a terminal: logs redirected to a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The main thread's runtime: signals, the admin endpoint, DNS refreshes and the demo's clients.
/// Requests are served by the workers, each on a thread and runtime of its own.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(RuntimeError::Runtime)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Parses the process arguments and runs the command with `registry`'s codecs and filters.
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    // Not `stdout().lock()`: a lock held for the whole command would block every other thread
    // that writes to stdout.
    match run(&registry, cli.command, &mut std::io::stdout()) {
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
                Some(text) => serde_json::from_str(&text).map_err(RuntimeError::CodecOptions)?,
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
        Command::Check { config } => {
            let cfg = crate::config::load_file(&config, registry)?;
            writeln!(
                out,
                "{}: OK ({} listeners, {} clusters)",
                config.display(),
                cfg.listeners.len(),
                cfg.clusters.len()
            )
            .map_err(RuntimeError::Output)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let cfg = crate::config::load_file(&config, registry)?;
            init_logs("info");
            runtime(1)?.block_on(async move {
                let running = crate::server::start(cfg).await?;
                wait_for_signal().await;
                tracing::info!("shutting down: draining in-flight requests (a second signal exits at once)");
                tokio::select! {
                    _ = running.shutdown() => Ok(ExitCode::SUCCESS),
                    _ = wait_for_signal() => {
                        tracing::warn!("second signal during the drain: exiting at once");
                        Ok(ExitCode::FAILURE)
                    }
                }
            })
        }
        Command::Demo { config, duration, connections, batch_share } => {
            init_logs("warn");
            let duration = metaprotocol_core::route::config::parse_duration(&duration)
                .map_err(|message| RuntimeError::Argument { argument: "--duration", message })?;
            if !(0.0..=1.0).contains(&batch_share) {
                return Err(RuntimeError::Argument {
                    argument: "--batch-share",
                    message: "must be between 0 and 1".into(),
                });
            }
            let opts = crate::demo::DemoOptions {
                duration,
                connections: connections.max(1),
                batch_share,
                ..Default::default()
            };
            let passed = runtime(2)?.block_on(crate::demo::run(registry, config.as_deref(), &opts, out))?;
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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

/// Decodes every message in `path` with codec `protocol` (configured with `options`) and writes
/// one JSON line per message to `out`.
pub fn inspect_file(
    registry: &Registry,
    protocol: &str,
    options: &ConfigValue,
    path: &Path,
    out: &mut dyn Write,
) -> Result<Summary, RuntimeError> {
    let data = std::fs::read(path).map_err(|source| RuntimeError::Io { path: path.to_path_buf(), source })?;
    let protocol = registry.configure_codec(protocol, options)?;
    protocol.inspect(&path.display().to_string(), &data, out).map_err(|e| match e {
        RuntimeError::Decode { offset, source, .. } => {
            RuntimeError::Decode { path: path.to_path_buf(), offset, source }
        }
        RuntimeError::Truncated { offset, left, .. } => {
            RuntimeError::Truncated { path: path.to_path_buf(), offset, left }
        }
        other => other,
    })
}
