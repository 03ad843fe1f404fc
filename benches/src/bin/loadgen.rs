//! `loadgen`: a closed-loop load generator for Dubbo and framed Thrift. N connections, each with
//! M requests in flight, for a warm-up and then a measured duration; reports throughput, latency
//! percentiles (HDR histogram, per request from send to receive), errors and mismatched responses,
//! as text or JSON. `--idle N` instead opens N connections and holds them (to measure a proxy's
//! memory per idle connection).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use metaprotocol_benches::load::{parse_duration, run, Plan, Proto, Template};

/// Closed-loop load for Dubbo and framed Thrift.
#[derive(Debug, Parser)]
#[command(name = "loadgen", about)]
struct Args {
    /// Where to send.
    #[arg(long, short = 't')]
    target: SocketAddr,
    /// Protocol.
    #[arg(long, short = 'p', value_enum, default_value = "dubbo")]
    protocol: Proto,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 8)]
    connections: u64,
    /// Requests in flight per connection.
    #[arg(long, short = 'm', default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=65536))]
    in_flight: u32,
    /// How long to measure, such as `10s`.
    #[arg(long, short = 'd', default_value = "10s")]
    duration: String,
    /// How long to load before measuring (answers are checked, not counted), such as `1s`.
    #[arg(long, default_value = "0s")]
    warmup: String,
    /// Request argument size in bytes.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Share of requests carrying `batchjob=true` (Dubbo), 0 to 1.
    #[arg(long, default_value_t = 0.3)]
    batch_share: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Open this many idle connections, hold them for `--duration`, and exit.
    #[arg(long)]
    idle: Option<usize>,
    /// Threads, each running its share of the connections on its own event loop.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn duration_arg(name: &str, text: &str) -> Result<Duration, ExitCode> {
    parse_duration(text).map_err(|e| {
        eprintln!("loadgen: bad --{name}: {e}");
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(&args) {
        Ok(code) | Err(code) => code,
    }
}

fn real_main(args: &Args) -> Result<ExitCode, ExitCode> {
    let duration = duration_arg("duration", &args.duration)?;
    let warmup = duration_arg("warmup", &args.warmup)?;
    if let Some(n) = args.idle {
        return Ok(hold_idle(args.target, n, duration));
    }
    // Ten templates: the share of batch-job requests rounded to tenths.
    let batch = (args.batch_share.clamp(0.0, 1.0) * 10.0).round() as usize;
    let templates: Arc<[Template]> =
        (0..10).map(|i| Template::request(args.protocol, args.payload, i < batch)).collect();
    if templates.iter().any(Template::is_empty) {
        eprintln!("loadgen: cannot build the request");
        return Err(ExitCode::FAILURE);
    }
    let plan = Plan {
        target: args.target,
        proto: args.protocol,
        templates,
        connections: args.connections,
        in_flight: args.in_flight as usize,
        warmup,
        duration,
        threads: args.threads,
    };
    let started = Instant::now();
    let total = run(&plan);
    let elapsed = started.elapsed().as_secs_f64();
    let h = &total.latency;
    let requests = h.len();
    let rps = (requests as f64 / duration.as_secs_f64().max(1e-9)).round();
    let q = |q: f64| h.value_at_quantile(q);
    let (p50, p90, p99, p999) = (q(0.5), q(0.9), q(0.99), q(0.999));
    if args.json {
        let report = serde_json::json!({
            "protocol": args.protocol,
            "target": args.target.to_string(),
            "connections": args.connections,
            "in_flight": args.in_flight,
            "payload": args.payload,
            "threads": args.threads,
            "warmup_s": warmup.as_secs_f64(),
            "duration_s": duration.as_secs_f64(),
            "requests": requests,
            "throughput_rps": rps,
            "mean_us": (h.mean() * 10.0).round() / 10.0,
            "p50_us": p50,
            "p90_us": p90,
            "p99_us": p99,
            "p999_us": p999,
            "max_us": h.max(),
            "errors": total.errors,
            "mismatched": total.mismatched,
            "failed_connections": total.failed_connections,
            "elapsed_s": elapsed,
        });
        println!("{report}");
    } else {
        println!(
            "{requests} requests in {:.1}s: {rps} req/s; latency p50 {p50}us p90 {p90}us p99 {p99}us p99.9 {p999}us \
             max {}us; errors {}, mismatched {}, failed connections {}",
            duration.as_secs_f64(),
            h.max(),
            total.errors,
            total.mismatched,
            total.failed_connections
        );
    }
    let bad = total.errors + total.mismatched + total.failed_connections > 0 || requests == 0;
    Ok(if bad { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Opens `n` connections to `target`, prints `IDLE n` and holds them for `duration`.
fn hold_idle(target: SocketAddr, n: usize, duration: Duration) -> ExitCode {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            match tokio::net::TcpStream::connect(target).await {
                Ok(s) => held.push(s),
                Err(e) => {
                    eprintln!("loadgen: connection {} failed: {e}", held.len());
                    return ExitCode::FAILURE;
                }
            }
        }
        println!("IDLE {n}");
        tokio::time::sleep(duration).await;
        ExitCode::SUCCESS
    })
}
