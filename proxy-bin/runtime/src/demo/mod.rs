//! `metaproxy demo`: batch-job isolation for Dubbo, in one process on loopback.
//!
//! Two groups of Dubbo providers (`service_group: user`, `service_group: batchjob`), the proxy
//! with a route that sends requests carrying the attachment `batchjob=true` to the batchjob
//! subset, and clients sending a mix of both kinds. It prints, as it runs, how many requests of
//! each kind each provider served with latency percentiles, then a verdict: batch traffic must
//! never reach the user group.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metaprotocol_core::MessageType;
use metaproxy_demo_peers::client::Client;
use metaproxy_demo_peers::provider::{self, Behavior, Provider};

use crate::config::{load_file, load_str, ProxyConfig};
use crate::registry::Registry;
use crate::RuntimeError;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How long the clients send.
    pub duration: Duration,
    /// Client connections.
    pub connections: usize,
    /// Requests in flight per connection.
    pub in_flight: usize,
    /// Share of batch-job requests, 0 to 1.
    pub batch_share: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { duration: Duration::from_secs(5), connections: 8, in_flight: 8, batch_share: 0.3 }
    }
}

// One worker: the demo's clients and providers run in this process too, on the other core.
const EMBEDDED: &str = r#"
workers: 1
listeners:
  - name: dubbo-in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: batchjob
        match:
          - { key: batchjob, exact: "true" }
        route: { cluster: provider, subset: batchjob }
        timeout: 3s
      - name: default
        route: { cluster: provider, subset: user }
        timeout: 3s
clusters:
  - name: provider
    lb: least_request
    connect_timeout: 1s
    endpoints:
      - { address: USER1, labels: { service_group: user } }
      - { address: USER2, labels: { service_group: user } }
      - { address: BATCH1, labels: { service_group: batchjob } }
    subsets:
      - { name: user, labels: { service_group: user } }
      - { name: batchjob, labels: { service_group: batchjob } }
access_log: { enabled: false }
"#;

#[derive(Default)]
struct Latencies {
    user: Vec<u32>,
    batch: Vec<u32>,
    errors: u64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted.get(i).copied().unwrap_or(0)) / 1000.0
}

fn summary(samples: &[u32]) -> String {
    let mut s = samples.to_vec();
    s.sort_unstable();
    format!(
        "n={:<6} p50={:>6.2}ms p90={:>6.2}ms p99={:>6.2}ms",
        s.len(),
        percentile(&s, 0.5),
        percentile(&s, 0.9),
        percentile(&s, 0.99)
    )
}

/// Runs the demo on the embedded configuration, or on `config` when given; writes the report to
/// `out` and returns whether the verdict holds.
pub async fn run(
    registry: &Registry,
    config: Option<&Path>,
    opts: &DemoOptions,
    out: &mut dyn Write,
) -> Result<bool, RuntimeError> {
    let io = RuntimeError::Output;
    let (providers, proxy_config) = match config {
        None => {
            let any: SocketAddr = ([127, 0, 0, 1], 0).into();
            let user1 = provider::spawn(any, "user-1", Behavior::default()).await.map_err(io)?;
            let user2 = provider::spawn(any, "user-2", Behavior::default()).await.map_err(io)?;
            let batch1 = provider::spawn(any, "batch-1", Behavior::default()).await.map_err(io)?;
            let text = EMBEDDED
                .replace("USER1", &user1.address.to_string())
                .replace("USER2", &user2.address.to_string())
                .replace("BATCH1", &batch1.address.to_string());
            let cfg = load_str(&text, "<embedded demo config>", registry)?;
            let groups =
                vec![(user1, "user".to_string()), (user2, "user".to_string()), (batch1, "batchjob".to_string())];
            (groups, cfg)
        }
        Some(path) => {
            let cfg = load_file(path, registry)?;
            let providers = providers_for(&cfg).await?;
            (providers, cfg)
        }
    };
    let listener = proxy_config.listeners.first().map(|l| l.name.to_string()).unwrap_or_default();
    let running = crate::server::start(proxy_config).await?;
    let target = running
        .address(&listener)
        .ok_or(RuntimeError::Argument { argument: "--config", message: "the configuration has no listener".into() })?;
    writeln!(out, "metaproxy demo: proxy on {target} (listener `{listener}`), providers:").map_err(io)?;
    for (p, group) in &providers {
        writeln!(out, "  {:<10} {:<22} service_group={group}", p.name, p.address).map_err(io)?;
    }
    writeln!(
        out,
        "clients: {} connections x {} in flight for {:?}, {:.0}% of requests carry batchjob=true\n",
        opts.connections,
        opts.in_flight,
        opts.duration,
        opts.batch_share * 100.0
    )
    .map_err(io)?;

    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let deadline = Instant::now() + opts.duration;
    let mut workers = Vec::new();
    for _ in 0..opts.connections {
        let client = Client::connect(target).await.map_err(io)?;
        for _ in 0..opts.in_flight {
            let (client, latencies, share) = (client.clone(), latencies.clone(), opts.batch_share);
            workers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let batch = fastrand::f64() < share;
                    let attachments: &[(&str, &str)] = if batch { &[("batchjob", "true")] } else { &[] };
                    let started = Instant::now();
                    let result =
                        client.call("org.apache.dubbo.demo.DemoService", "sayHello", "metaproxy", attachments).await;
                    let micros = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    let Ok(mut l) = latencies.lock() else { return };
                    match result {
                        Ok(m) if m.metadata.message_type == MessageType::Response => {
                            if batch {
                                l.batch.push(micros)
                            } else {
                                l.user.push(micros)
                            }
                        }
                        _ => l.errors += 1,
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now()))).await;
        let line: Vec<String> = providers
            .iter()
            .map(|(p, _)| {
                format!(
                    "{}: user={} batch={}",
                    p.name,
                    p.stats.user.load(Ordering::Relaxed),
                    p.stats.batch.load(Ordering::Relaxed)
                )
            })
            .collect();
        writeln!(out, "[{:>4.1}s] {}", started.elapsed().as_secs_f64(), line.join("  ")).map_err(io)?;
    }
    for w in workers {
        let _ = w.await;
    }
    let l = latencies.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default();
    writeln!(out, "\nlatency through the proxy:").map_err(io)?;
    writeln!(out, "  user requests   {}", summary(&l.user)).map_err(io)?;
    writeln!(out, "  batch requests  {}", summary(&l.batch)).map_err(io)?;
    writeln!(out, "  errors          {}", l.errors).map_err(io)?;
    writeln!(out, "upstream connections in use: {}", running.upstream_connections("provider")).map_err(io)?;
    let batch_at_user: u64 =
        providers.iter().filter(|(_, g)| g != "batchjob").map(|(p, _)| p.stats.batch.load(Ordering::Relaxed)).sum();
    let user_at_batch: u64 =
        providers.iter().filter(|(_, g)| g == "batchjob").map(|(p, _)| p.stats.user.load(Ordering::Relaxed)).sum();
    let batch_total: u64 = providers.iter().map(|(p, _)| p.stats.batch.load(Ordering::Relaxed)).sum();
    let ok = batch_at_user == 0 && user_at_batch == 0 && l.errors == 0 && batch_total > 0;
    writeln!(
        out,
        "\nverdict: {} - {batch_total} batch-job requests, {batch_at_user} of them reached the user group; {user_at_batch} user requests reached the batchjob group; {} errors",
        if ok { "PASS" } else { "FAIL" },
        l.errors
    )
    .map_err(io)?;
    running.shutdown().await;
    Ok(ok)
}

/// Starts a provider at every static endpoint of the configuration, named after its labels.
async fn providers_for(cfg: &ProxyConfig) -> Result<Vec<(Provider, String)>, RuntimeError> {
    let mut out = Vec::new();
    for cluster in &cfg.clusters {
        for (i, e) in cluster.endpoints.iter().enumerate() {
            let group = e.labels.get("service_group").cloned().unwrap_or_else(|| "default".into());
            let name = format!("{group}-{}", i + 1);
            let p = provider::spawn(e.address, &name, Behavior::default())
                .await
                .map_err(|source| RuntimeError::DemoProvider { address: e.address, source })?;
            out.push((p, group));
        }
    }
    Ok(out)
}
