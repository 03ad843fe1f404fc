//! The `metaproxy` command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use metaprotocol_core::ConfigValue;

use crate::inspect::InspectArgs;
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

/// `inspect --help` ends with these.
const INSPECT_EXAMPLES: &str = "Examples:
  tcpdump -i lo -w capture.pcap 'tcp port 20880'            (record; Ctrl-C to stop)
  metaproxy inspect capture.pcap                            (codec from the port, or guessed)
  metaproxy inspect -p dubbo --format table capture.pcapng
  metaproxy inspect -c proxy.yaml --format table capture.pcap   (routing dry run: nothing is sent)
  metaproxy inspect -p dubbo requests.bin responses.bin     (raw bytes, one direction per file)";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode captured RPC traffic (pcap, pcapng or raw bytes) and print every message, paired
    /// with its response; with --config, where the proxy would route each request.
    ///
    /// pcap and pcapng files (tcpdump -w, dumpcap, tshark -w): every TCP connection is reassembled
    /// in both directions (out-of-order segments, retransmissions, holes, a capture that starts
    /// mid-stream: decoding resynchronises at the next frame and says so), every message is
    /// decoded and printed with its capture time, connection and direction, and each response with
    /// its request's exchange number and the latency. Other files are the raw bytes of one
    /// direction of a stream.
    ///
    /// Output: one JSON object per message or event, then a summary (--format json, the default),
    /// or one aligned line per request and response (--format table).
    #[command(after_long_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
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
        // The reader of our output went away (`metaproxy inspect … | head`): it has what it
        // wanted, so stop quietly, as `cat` and `grep` do.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "metaproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// True when writing a command's output failed because its reader closed the pipe (`EPIPE`):
/// the command should stop quietly and succeed. (Rust ignores `SIGPIPE`, so the write fails
/// instead of killing the process.)
pub fn is_broken_pipe(error: &RuntimeError) -> bool {
    matches!(error, RuntimeError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Runs one command, writing its normal output to `out`.
pub fn run(registry: &Registry, command: Command, out: &mut dyn Write) -> Result<ExitCode, RuntimeError> {
    match command {
        Command::Inspect(args) => crate::inspect::run(registry, &args, out),
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
            let loaded = crate::server::file_watch::fingerprint_file(&config);
            let cfg = crate::config::load_file(&config, registry)?;
            init_logs("info");
            let registry = registry.clone();
            runtime(1)?.block_on(async move {
                let mut running = crate::server::start(cfg).await?;
                // Reloads on file changes and SIGHUP, until SIGTERM or SIGINT.
                crate::server::file_watch::reload_until(&mut running, &config, &registry, loaded, wait_for_signal())
                    .await;
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

/// Decodes every message in `path` (a pcap or pcapng capture, or the raw bytes of one direction
/// of a stream) with codec `protocol` (configured with `options`) and writes one JSON line per
/// message to `out` (for a capture, events and a summary too).
pub fn inspect_file(
    registry: &Registry,
    protocol: &str,
    options: &ConfigValue,
    path: &Path,
    out: &mut dyn Write,
) -> Result<Summary, RuntimeError> {
    let configured = registry.configure_codec(protocol, options)?;
    crate::inspect::inspect_file(registry, protocol, &*configured, path, out)
}
