//! Real peers of the `framed` codec's end-to-end tests, and the `metaproxy` binary in front of
//! them: Debian's memcached, pylibmc (Python, in target/peers/venv), sofa-rpc-node (in
//! target/peers/node). `codecs/framed/fixtures/install.sh` installs them (scripts/test.sh runs
//! it); a test fails, saying so, when they are missing. Every wait is on an event: a line a
//! process prints when it listens, or a client process exiting.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// How long a process may take to say it listens before the test fails.
const START: Duration = Duration::from_secs(30);

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const INSTALL: &str = "run codecs/framed/fixtures/install.sh (scripts/test.sh does)";

/// The venv's Python, with pylibmc.
pub fn python() -> PathBuf {
    let p = root().join("target/peers/venv/bin/python");
    let ok = Command::new(&p).args(["-c", "import pylibmc"]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "pylibmc missing from target/peers/venv: {INSTALL}");
    p
}

/// sofa-rpc-node's modules.
pub fn node_path() -> PathBuf {
    let p = root().join("target/peers/node/node_modules");
    assert!(p.join("sofa-rpc-node/package.json").exists(), "sofa-rpc-node missing from target/peers/node: {INSTALL}");
    p
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process, killed and reaped when dropped; its output is drained by a thread, and each
/// line is offered to the waiter until it finds the one it waits for.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Proc {
    /// Starts `cmd`, reading the stream `from` (stdout or stderr) line by line.
    pub fn start(name: &str, mut cmd: Command, stderr: bool) -> Proc {
        cmd.stdin(Stdio::null());
        if stderr {
            cmd.stderr(Stdio::piped()).stdout(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name} does not start ({e}): {INSTALL}"));
        let stream: Box<dyn Read + Send> =
            if stderr { Box::new(child.stderr.take().unwrap()) } else { Box::new(child.stdout.take().unwrap()) };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Proc { child, lines, name: name.to_string() }
    }

    /// Waits for a line containing `needle`; returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(START) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("{}: no line with `{needle}` ({e}); it printed:\n{}", self.name, seen.join("\n")),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A memcached server on 127.0.0.1:`port`, listening.
pub fn memcached(port: u16) -> Proc {
    let mut cmd = Command::new("memcached");
    // -u: memcached refuses to run as root without it (and ignores it otherwise); -vv prints
    // "server listening" once it listens (and a line per command, drained).
    cmd.args(["-u", "root", "-l", "127.0.0.1", "-U", "0", "-vv", "-p", &port.to_string()]);
    let p = Proc::start("memcached", cmd, true);
    p.wait_for("server listening");
    p
}

/// The `metaproxy run` binary on `config`, listening (`workers` log lines "listening").
pub fn metaproxy(config: &Path) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_metaproxy"));
    cmd.args(["run", "-c"]).arg(config).env("RUST_LOG", "info");
    let p = Proc::start("metaproxy", cmd, true);
    p.wait_for("listening");
    p
}

/// Writes a configuration file for this test run.
pub fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("framed-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// An example configuration's text.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(root().join("examples/configs").join(name)).unwrap()
}

/// The `codec:` block of the first listener of an example, as its own YAML document (what
/// `inspect --codec-options FILE` reads): the lines under `codec:`, dedented.
pub fn example_codec_yaml(name: &str) -> String {
    let text = example(name);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "codec:").expect("a codec: block") + 1;
    let indent = lines[start].len() - lines[start].trim_start().len();
    let mut out = String::new();
    for l in &lines[start..] {
        let depth = l.len() - l.trim_start().len();
        if !l.trim().is_empty() && depth < indent {
            break;
        }
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// Every JSON line `metaproxy inspect` prints for a message (the ones with key/values).
pub fn inspect(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_metaproxy")).arg("inspect").args(args).output().unwrap();
    assert!(out.status.success(), "inspect {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("kvs").is_some())
        .collect()
}

/// `metaproxy check -c` on an example: its stdout, asserting success.
pub fn check_example(name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_metaproxy"))
        .args(["check", "-c"])
        .arg(root().join("examples/configs").join(name))
        .output()
        .unwrap();
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A committed capture of the framed codec's peers.
pub fn capture(name: &str) -> String {
    root().join("codecs/framed/fixtures/peers").join(name).to_string_lossy().into_owned()
}

/// Runs a client and parses the JSON line it prints last.
pub fn run_json(mut cmd: Command) -> Value {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
}
