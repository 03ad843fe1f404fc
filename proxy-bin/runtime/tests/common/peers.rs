//! Python peer processes for end-to-end tests: servers that print `LISTENING <port>`, and
//! one-shot client scripts that print one JSON line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The peers' Python, installed by `scripts/test.sh`.
pub fn python() -> PathBuf {
    let p = root().join("target/peers/venv/bin/python");
    assert!(p.exists(), "Python peers missing: run scripts/test.sh (it installs them)");
    p
}

/// A server script running until dropped.
pub struct PeerServer {
    child: Child,
    /// Where it listens.
    pub port: u16,
}

impl PeerServer {
    /// Starts `script` (relative to the repository root) with `args`; waits for `LISTENING <port>`.
    /// The server's output goes to a file, not a pipe, so it can print as much as it likes.
    #[allow(clippy::zombie_processes)] // `PeerServer`'s `Drop` kills and reaps the child.
    pub fn start(script: &str, args: &[&str]) -> PeerServer {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("peers");
        std::fs::create_dir_all(&dir).unwrap();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dir.join(format!("{}-{n}.out", std::process::id()));
        let file = std::fs::File::create(&log).unwrap();
        let child =
            Command::new(python()).arg(root().join(script)).args(args).stdout(Stdio::from(file)).spawn().unwrap();
        let started = std::time::Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(port) = text.lines().find_map(|l| l.trim().strip_prefix("LISTENING ")) {
                return PeerServer { child, port: port.parse().unwrap() };
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{script} did not start: {text}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client script and parses the JSON line it prints last.
pub fn run_json(script: &str, args: &[String]) -> Value {
    let out = Command::new(python()).arg(root().join(script)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
}
