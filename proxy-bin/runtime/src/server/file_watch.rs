//! What makes `metaproxy run` reload: the configuration file changing (polled, so that editors
//! that write a new file and rename it, and Kubernetes' ConfigMap symlink swaps, are seen like an
//! in-place write), and SIGHUP.
//!
//! A burst of writes is debounced: a changed file is loaded once its contents have stayed the same
//! for one more poll. A file that does not load is logged with the loader's
//! `file:line: field: message` error and counted (`metaproxy_config_reloads_total{result=
//! "rejected"}`); the running configuration keeps serving.

use std::path::Path;
use std::time::Duration;

use super::Running;
use crate::registry::Registry;

/// How often the file is read.
pub const POLL: Duration = Duration::from_millis(250);

/// The fingerprint of the file at `path` now (`None` when it cannot be read): take it before
/// loading the configuration that [`reload_until`] starts from, so that a change made while the
/// proxy starts is not missed.
pub fn fingerprint_file(path: &Path) -> Option<u64> {
    std::fs::read(path).ok().map(|b| fingerprint(&b))
}

/// A cheap fingerprint of the file's contents (FNV-1a), to notice changes.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Loads `path` and applies it to `running`, logging the outcome.
async fn reload_from(running: &mut Running, path: &Path, registry: &Registry) {
    match crate::config::load_file(path, registry) {
        Ok(config) => {
            if let Err(error) = running.reload(config).await {
                tracing::error!(%error, "configuration not reloaded; the running one keeps serving");
            }
        }
        Err(error) => {
            running.reload_rejected();
            tracing::error!(%error, "configuration not reloaded; the running one keeps serving");
        }
    }
}

/// Serves until `stop` resolves, reloading `path` when it changes or on SIGHUP. `loaded` is the
/// fingerprint of the file the running configuration came from ([`fingerprint_file`]).
pub async fn reload_until(
    running: &mut Running,
    path: &Path,
    registry: &Registry,
    mut loaded: Option<u64>,
    stop: impl std::future::Future<Output = ()>,
) {
    let read = || fingerprint_file(path);
    // A change seen once, waiting for one more poll with the same contents.
    let mut pending: Option<u64> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    tokio::pin!(stop);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        tokio::select! {
            _ = &mut stop => return,
            _ = hangup => {
                tracing::info!(path = %path.display(), "SIGHUP: reloading the configuration");
                loaded = read();
                pending = None;
                reload_from(running, path, registry).await;
            }
            _ = tick.tick() => {
                let now = read();
                if now == loaded || now.is_none() {
                    pending = None;
                } else if pending == now {
                    tracing::info!(path = %path.display(), "the configuration file changed: reloading");
                    loaded = now;
                    pending = None;
                    reload_from(running, path, registry).await;
                } else {
                    pending = now;
                }
            }
        }
    }
}
