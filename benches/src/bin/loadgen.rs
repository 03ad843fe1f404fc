//! `loadgen`: a closed-loop load generator for Dubbo and framed Thrift. N connections, each with
//! M requests in flight, for a duration; reports throughput, latency percentiles (HDR histogram),
//! errors and mismatched responses, as text or JSON. `--idle N` instead opens N connections and
//! holds them (to measure a proxy's memory per idle connection).

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use metaprotocol_benches::load::{drive, Proto, Stats, Template};

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
    #[arg(long, short = 'm', default_value_t = 16)]
    in_flight: usize,
    /// How long to send, such as `10s`.
    #[arg(long, short = 'd', default_value = "10s")]
    duration: String,
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
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Ok(duration) = metaprotocol_core::route::config::parse_duration(&args.duration) else {
        eprintln!("loadgen: bad --duration");
        return std::process::ExitCode::FAILURE;
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()
    else {
        return std::process::ExitCode::FAILURE;
    };
    rt.block_on(async move {
        if let Some(n) = args.idle {
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                match tokio::net::TcpStream::connect(args.target).await {
                    Ok(s) => held.push(s),
                    Err(e) => {
                        eprintln!("loadgen: connection {} failed: {e}", held.len());
                        return std::process::ExitCode::FAILURE;
                    }
                }
            }
            println!("IDLE {n}");
            tokio::time::sleep(duration).await;
            return std::process::ExitCode::SUCCESS;
        }
        // Ten templates: the share of batch-job requests rounded to tenths.
        let batch = (args.batch_share.clamp(0.0, 1.0) * 10.0).round() as usize;
        let templates: Vec<Template> = (0..10).map(|i| Template::request(args.protocol, args.payload, i < batch)).collect();
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.connections)
            .map(|conn| {
                let templates = templates.clone();
                tokio::spawn(async move { drive(args.target, args.protocol, &templates, conn, args.in_flight, duration).await })
            })
            .collect();
        let mut total = Stats::new();
        let mut failed_connections = 0;
        for t in tasks {
            match t.await {
                Ok(Ok(s)) => total.merge(&s),
                _ => failed_connections += 1,
            }
        }
        let elapsed = started.elapsed().min(duration + Duration::from_secs(2)).as_secs_f64();
        let h = &total.latency;
        let requests = h.len();
        let rps = (requests as f64 / duration.as_secs_f64()).round();
        let (p50, p90, p99, p999) = (h.value_at_quantile(0.5), h.value_at_quantile(0.9), h.value_at_quantile(0.99), h.value_at_quantile(0.999));
        let report = serde_json::json!({
            "protocol": args.protocol,
            "target": args.target.to_string(),
            "connections": args.connections,
            "in_flight": args.in_flight,
            "payload": args.payload,
            "duration_s": duration.as_secs_f64(),
            "requests": requests,
            "throughput_rps": rps,
            "p50_us": p50,
            "p90_us": p90,
            "p99_us": p99,
            "p999_us": p999,
            "max_us": h.max(),
            "errors": total.errors,
            "mismatched": total.mismatched,
            "failed_connections": failed_connections,
            "elapsed_s": elapsed,
        });
        if args.json {
            println!("{report}");
        } else {
            println!(
                "{} requests in {:.1}s: {} req/s; latency p50 {}us p90 {}us p99 {}us p99.9 {}us max {}us; errors {}, mismatched {}, failed connections {}",
                requests, duration.as_secs_f64(), rps, p50, p90, p99, p999, h.max(), total.errors, total.mismatched, failed_connections
            );
        }
        if total.errors + total.mismatched + failed_connections > 0 { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
    })
}
