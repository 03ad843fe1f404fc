//! The `metaproxy` binary as an operator runs it: `check` reports errors with file and line,
//! `run` serves a configuration and drains in-flight requests on SIGTERM.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use metaproxy_demo_peers::client::Client;
use metaproxy_demo_peers::provider::{self, Behavior};

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("run-binary");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_the_example_and_locates_errors() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/configs/batchjob.yaml");
    let ok = Command::new(env!("CARGO_BIN_EXE_metaproxy")).args(["check", "-c"]).arg(&example).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK (1 listeners, 1 clusters)"));
    let text = std::fs::read_to_string(&example).unwrap().replace("subset: batchjob }", "subset: batch }");
    let bad = write_config("bad.yaml", &text);
    let out = Command::new(env!("CARGO_BIN_EXE_metaproxy")).args(["check", "-c"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:") && err.contains("listeners[0].routes[0]: cluster `provider` has no subset `batch`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let p = provider::spawn(
        ([127, 0, 0, 1], 0).into(),
        "slow",
        Behavior { delay: Duration::from_millis(700), ..Behavior::default() },
    )
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = write_config(
        "drain.yaml",
        &format!(
            "drain_timeout: 5s\nworkers: 1\nlisteners:\n  - name: in\n    address: 127.0.0.1:{port}\n    protocol: dubbo\n    routes:\n      - name: all\n        route: {{ cluster: c }}\nclusters:\n  - {{ name: c, endpoints: [{{ address: \"{}\" }}] }}\n",
            p.address
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_metaproxy"))
        .args(["run", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let client = loop {
        if let Ok(c) = Client::connect(addr).await {
            break c;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "metaproxy did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.call("S", "m", "x", &[]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    for call in calls {
        let Ok(m) = tokio::time::timeout(Duration::from_secs(5), call).await else {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a request hung; metaproxy said:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let m = m.unwrap().expect("answered before the connection closed");
        assert_eq!(m.metadata.kvs.get_str("status"), Some("20"), "in-flight requests finish during the drain");
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "metaproxy exited with {status}");
    // New connections are refused once draining has begun.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_exits_at_once_and_logs_are_plain_text() {
    use std::io::BufRead;
    let p = provider::spawn(
        ([127, 0, 0, 1], 0).into(),
        "stuck",
        Behavior { delay: Duration::from_secs(30), ..Behavior::default() },
    )
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = write_config(
        "second-signal.yaml",
        &format!(
            "drain_timeout: 60s\nworkers: 1\nlisteners:\n  - name: in\n    address: 127.0.0.1:{port}\n    protocol: dubbo\n    routes:\n      - name: all\n        route: {{ cluster: c }}\nclusters:\n  - {{ name: c, endpoints: [{{ address: \"{}\" }}] }}\n",
            p.address
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_metaproxy"))
        .args(["run", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Log lines as they come, on a thread of their own.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line =
                lines.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no `{needle}` in {seen:?}"));
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
    };
    let mut log = wait_for("listening");
    let client = Client::connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let call = tokio::spawn(async move { client.call("S", "m", "x", &[]).await });
    let started = Instant::now();
    while p.stats.total() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the request never reached the provider");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let term = || assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    term();
    log.extend(wait_for("shutting down"));
    // The drain would wait 30 s for the stuck request; a second signal ends it now.
    let second = Instant::now();
    term();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(second.elapsed() < Duration::from_secs(5), "took {:?} to exit", second.elapsed());
    assert!(!status.success(), "an interrupted drain is not a clean exit: {status}");
    let _ = call.await;
    log.extend(lines.try_iter());
    // stderr is a pipe, not a terminal: no colour codes.
    assert!(log.iter().all(|l| !l.contains('\x1b')), "{log:?}");
}

/// CPU time (user + system) the process `pid` has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which ends with ')'): utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn accept_loops_back_off_at_the_descriptor_limit_instead_of_spinning() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = write_config(
        "fd-limit.yaml",
        &format!(
            "workers: 1\nadmin: {{ address: 127.0.0.1:{admin} }}\nlisteners:\n  - name: in\n    address: 127.0.0.1:{port}\n    protocol: dubbo\n    routes:\n      - name: all\n        route: {{ cluster: c }}\nclusters:\n  - {{ name: c, endpoints: [{{ address: \"127.0.0.1:9\" }}] }}\naccess_log: {{ enabled: false }}\n"
        ),
    );
    // At most 64 descriptors: a few dozen connections exhaust them.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 64 && exec {} run -c {}", env!("CARGO_BIN_EXE_metaproxy"), cfg.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "metaproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Fill the descriptor table, then leave connections pending on both the listener and the
    // admin endpoint: accept fails with EMFILE for as long as they wait.
    let held: Vec<_> = (0..100).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    let pending_admin: Vec<_> =
        (0..3).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", admin)).ok()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(child.id());
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(child.id()) - before;
    let elapsed = window.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    drop((held, pending_admin));
    // A spinning accept loop burns a whole core: about 100 ticks a second.
    let ticks_per_second = used as f64 / elapsed.as_secs_f64();
    assert!(ticks_per_second < 20.0, "{used} ticks of CPU in {elapsed:?} with accepts failing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_binary_reloads_its_file_and_keeps_serving_through_a_bad_one() {
    use std::io::BufRead;
    let a = provider::spawn(([127, 0, 0, 1], 0).into(), "a", Behavior::default()).await.unwrap();
    let b = provider::spawn(([127, 0, 0, 1], 0).into(), "b", Behavior::default()).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = |target: &str| {
        format!(
            "workers: 1\nadmin: {{ address: 127.0.0.1:{admin} }}\nlisteners:\n  - name: in\n    address: 127.0.0.1:{port}\n    protocol: dubbo\n    routes:\n      - name: all\n        route: {{ cluster: {target} }}\nclusters:\n  - {{ name: a, endpoints: [{{ address: \"{}\" }}] }}\n  - {{ name: b, endpoints: [{{ address: \"{}\" }}] }}\naccess_log: {{ enabled: false }}\n",
            a.address, b.address
        )
    };
    let cfg = write_config("reload.yaml", &text("a"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_metaproxy"))
        .args(["run", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no `{needle}` logged"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("listening");
    let client = Client::connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let served_by =
        |m: metaproxy_demo_peers::client::DubboMessage| m.metadata.kvs.get_str("served-by").map(String::from);
    assert_eq!(served_by(client.call("S", "m", "x", &[]).await.unwrap()).as_deref(), Some("a"));
    // The file is rewritten: the next requests go to b, on the same connection.
    std::fs::write(&cfg, text("b")).unwrap();
    wait_for("configuration reloaded");
    assert_eq!(served_by(client.call("S", "m", "x", &[]).await.unwrap()).as_deref(), Some("b"));
    // A file that does not load: the error is logged with its line, the running one serves on.
    std::fs::write(&cfg, text("a").replace("cluster: a", "cluster: nowhere")).unwrap();
    let error = wait_for("not reloaded");
    assert!(error.contains("reload.yaml:") && error.contains("nowhere"), "{error}");
    assert_eq!(served_by(client.call("S", "m", "x", &[]).await.unwrap()).as_deref(), Some("b"));
    // SIGHUP reloads the file as it is now.
    std::fs::write(&cfg, text("a")).unwrap();
    wait_for("configuration reloaded");
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    wait_for("SIGHUP");
    assert_eq!(served_by(client.call("S", "m", "x", &[]).await.unwrap()).as_deref(), Some("a"));
    let metrics = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(metrics.contains("metaproxy_config_reloads_total{result=\"rejected\"} 1"), "{metrics}");
    let _ = child.kill();
    let _ = child.wait();
}
