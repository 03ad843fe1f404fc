//! ZooKeeper sessions for discovery and registration: connecting with backoff until shutdown,
//! and telling a lost session from a passing error.
//!
//! The client keeps a session across connection losses by itself (reconnecting, and re-arming
//! watches as the server delivers what changed meanwhile). What it cannot survive is a terminal
//! state (the session expired, or the client closed): then the callers here start a new session.

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use super::ZkAddress;

/// The first pause after a failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest pause between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Doubling pauses between attempts, reset after a success.
#[derive(Debug)]
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Self {
        Backoff(BACKOFF_START)
    }

    /// The next pause, with up to a quarter of jitter so that many proxies do not retry at once.
    pub(super) fn next(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        pause + pause.mul_f64(fastrand::f64() / 4.0)
    }

    pub(super) fn reset(&mut self) {
        self.0 = BACKOFF_START;
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub(super) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Sleeps `pause` unless shutdown comes first; true when it did.
pub(super) async fn pause_or_stop(pause: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = stopped(shutdown) => true,
    }
}

/// Opens a session with `address`'s servers, trying again with backoff until one opens;
/// `None` when shutdown comes first. `what` names the caller in logs.
pub(super) async fn connect(
    address: &ZkAddress,
    session_timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
    what: &str,
) -> Option<zk::Client> {
    let servers = address.connect_string();
    let mut backoff = Backoff::new();
    let mut failures = 0u32;
    loop {
        let attempt =
            zk::Client::connector().with_session_timeout(session_timeout).with_fail_eagerly().connect(&servers);
        let result = tokio::select! {
            r = attempt => r,
            _ = stopped(shutdown) => return None,
        };
        match result {
            Ok(client) => {
                tracing::info!(%what, zookeeper = %servers, session = %client.session_id(), timeout = ?client.session_timeout(), "ZooKeeper session opened");
                return Some(client);
            }
            Err(error) => {
                failures += 1;
                // Every failure while they are few, then one in ten: a registry down for long
                // does not flood the log.
                if failures <= 3 || failures % 10 == 0 {
                    tracing::warn!(%what, zookeeper = %servers, %error, failures, "cannot open a ZooKeeper session; trying again");
                }
            }
        }
        if pause_or_stop(backoff.next(), shutdown).await {
            return None;
        }
    }
}

/// True when `error` (or the client's state) means the session is over: only a new session
/// helps. Other errors (a connection loss, a timeout) pass while the client reconnects.
pub(super) fn session_over(client: &zk::Client, error: &zk::Error) -> bool {
    matches!(error, zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed | zk::Error::NoHosts)
        || client.state().is_terminated()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let pauses: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        assert!(pauses[0] >= BACKOFF_START && pauses[0] <= BACKOFF_START * 5 / 4, "{pauses:?}");
        assert!(pauses[1] >= BACKOFF_START * 2, "{pauses:?}");
        assert!(pauses.iter().all(|p| *p <= BACKOFF_MAX * 5 / 4), "{pauses:?}");
        assert!(pauses[7] >= BACKOFF_MAX, "{pauses:?}");
        b.reset();
        assert!(b.next() <= BACKOFF_START * 5 / 4);
    }

    #[tokio::test]
    async fn connect_gives_up_at_shutdown() {
        let (tx, mut rx) = watch::channel(false);
        // Nothing listens there: every attempt fails at once.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let address = ZkAddress { servers: vec![dead.to_string()], chroot: String::new() };
        let stop = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = tx.send(true);
        });
        let got =
            tokio::time::timeout(Duration::from_secs(10), connect(&address, Duration::from_secs(2), &mut rx, "test"))
                .await
                .expect("connect did not stop at shutdown");
        assert!(got.is_none());
        stop.await.unwrap();
    }
}
