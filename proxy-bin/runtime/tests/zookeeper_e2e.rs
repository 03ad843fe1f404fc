//! Dubbo service discovery and registration in ZooKeeper, against real software: Debian's
//! ZooKeeper server (started here on loopback, with a data directory of its own), `dubbo-py`
//! providers whose provider nodes sit under a discovery chroot, written as Java Dubbo writes them
//! (ephemeral, `URLEncoder`-encoded `dubbo://` URLs with a `service_group` parameter), and the
//! `python3-dubbo` client finding the proxy through its `ZkRegister`.
//!
//! Needs Debian's `zookeeper` (`scripts/install-zookeeper.sh`) and the Python peers
//! (`codecs/dubbo/fixtures/peers/install.sh`); `scripts/test.sh` installs both.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::peers::{run_json, PeerServer};
use common::SERVICE;
use metaproxy_demo_peers::client::{Client, DubboMessage};
use metaproxy_runtime::server::Running;
use tokio::net::TcpListener;
use tokio::sync::watch;
use zookeeper_client as zk;

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";

// ---------------------------------------------------------------------------------------------
// A ZooKeeper server of the test's own.

/// Debian's ZooKeeper server on a loopback port, with a fresh data directory. `tickTime` is
/// 500 ms, so sessions may be as short as 1 s. Runs under a shell that kills it when the test
/// process closes its end of the pipe, so no server outlives a test, even one that aborts.
struct ZkServer {
    shell: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: PathBuf,
}

impl ZkServer {
    fn start() -> ZkServer {
        assert!(
            Path::new(ZK_JAR).exists(),
            "{ZK_JAR} missing: run scripts/install-zookeeper.sh (scripts/test.sh does)"
        );
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "zookeeper-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxClientCnxns=0\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let java = format!(
            "java -Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp {ZK_JAR} org.apache.zookeeper.server.ZooKeeperServerMain {}",
            cfg.display()
        );
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(format!("{java} & pid=$!; read line; kill $pid; wait $pid"))
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdin = shell.stdin.take();
        ZkServer { shell, stdin, port, dir }
    }

    /// `127.0.0.1:<port><chroot>`.
    fn connect_string(&self, chroot: &str) -> String {
        format!("127.0.0.1:{}{chroot}", self.port)
    }

    /// A session of the test's own (at the root), once the server answers.
    async fn client(&self) -> zk::Client {
        let started = Instant::now();
        let servers = self.connect_string("");
        loop {
            let attempt = zk::Client::connector()
                .with_session_timeout(Duration::from_secs(10))
                .with_fail_eagerly()
                .connect(&servers);
            if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(5), attempt).await {
                return client;
            }
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            assert!(started.elapsed() < Duration::from_secs(30), "ZooKeeper did not start: {log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let started = Instant::now();
        while self.shell.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.shell.kill();
        let _ = self.shell.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Provider nodes, as Java Dubbo writes them.

/// `java.net.URLEncoder.encode(text, "UTF-8")`, written here independently of the proxy's own.
fn java_url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => char::from(b).to_string(),
            b' ' => "+".to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A provider URL as a Java Dubbo 2.7 provider registers it (`URL.toFullString()`: parameters in
/// key order), with the custom `service_group` parameter and `extra` ones.
fn provider_url(port: u16, service_group: &str, extra: &[(&str, &str)]) -> String {
    let mut params: BTreeMap<&str, String> = BTreeMap::from([
        ("anyhost", "true".to_string()),
        ("application", "demo-provider".to_string()),
        ("deprecated", "false".to_string()),
        ("dubbo", "2.0.2".to_string()),
        ("dynamic", "true".to_string()),
        ("generic", "false".to_string()),
        ("interface", SERVICE.to_string()),
        ("methods", "add,getMap,getUser,sayHello,sayNull".to_string()),
        ("pid", "4242".to_string()),
        ("release", "2.7.23".to_string()),
        ("revision", "1.0.0".to_string()),
        ("service_group", service_group.to_string()),
        ("side", "provider".to_string()),
        ("timestamp", "1700000000000".to_string()),
        ("version", "1.0.0".to_string()),
    ]);
    for (k, v) in extra {
        params.insert(k, v.to_string());
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("dubbo://127.0.0.1:{port}/{SERVICE}?{}", query.join("&"))
}

/// `<chroot>/dubbo/<interface>/providers`.
fn providers_dir(chroot: &str) -> String {
    format!("{chroot}/dubbo/{SERVICE}/providers")
}

/// Writes a provider node (ephemeral, as Dubbo's `dynamic=true` providers are) under `chroot`;
/// returns its path.
async fn add_provider(zk: &zk::Client, chroot: &str, url: &str) -> String {
    let dir = providers_dir(chroot);
    zk.mkdir(&dir, &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())).await.unwrap();
    let path = format!("{dir}/{}", java_url_encode(url));
    zk.create(&path, b"127.0.0.1", &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())).await.unwrap();
    path
}

/// The decoded provider URLs under `chroot`.
async fn listed(zk: &zk::Client, chroot: &str) -> Vec<String> {
    let names = zk.list_children(&providers_dir(chroot)).await.unwrap_or_default();
    names.iter().map(|n| metaproxy_runtime::upstream::zookeeper::url::decode(n).unwrap()).collect()
}

/// The proxy's own registrations under `chroot` (URLs with `metaproxy=` in them).
async fn registrations(zk: &zk::Client, chroot: &str) -> Vec<String> {
    listed(zk, chroot).await.into_iter().filter(|u| u.contains("metaproxy=")).collect()
}

/// Polls `condition` every 20 ms until it holds; fails the test after `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dubbo_py(name: &str) -> PeerServer {
    PeerServer::start("codecs/dubbo/fixtures/peers/provider.py", &["--port", "0", "--name", name])
}

/// The batch-job configuration (examples/configs/batchjob.yaml's routes), with the cluster's
/// endpoints from ZooKeeper and the listener registered there.
fn batchjob_yaml(register: &str, registry: &str) -> String {
    format!(
        r#"
workers: 2
access_log: {{ enabled: false }}
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    register: {register}
    routes:
      - name: batchjob
        match: [{{ key: batchjob, exact: "true" }}]
        route: {{ cluster: provider, subset: batchjob }}
        timeout: 5s
      - name: default
        route: {{ cluster: provider, subset: user }}
        timeout: 5s
clusters:
  - name: provider
    registry: {registry}
    subsets:
      - {{ name: user, labels: {{ service_group: user }} }}
      - {{ name: batchjob, labels: {{ service_group: batchjob }} }}
"#
    )
}

async fn start_proxy(yaml: &str) -> Running {
    let registry = metaproxy_runtime::default_registry().unwrap();
    let cfg =
        metaproxy_runtime::config::load_str(yaml, "test.yaml", &registry).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    metaproxy_runtime::server::start(cfg).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Load through the proxy.

/// Which provider answered: dubbo-py's `sayHello` ends with `from <name>`.
fn served_by(m: &DubboMessage) -> Option<String> {
    let frame = m.frame();
    let at = frame.windows(5).position(|w| w == b"from ")? + 5;
    let name: String =
        frame[at..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'-').map(|b| char::from(*b)).collect();
    (!name.is_empty()).then_some(name)
}

#[derive(Debug, Default)]
struct Tally {
    /// (provider, batch) -> answers.
    answers: BTreeMap<(String, bool), u64>,
    failures: Vec<String>,
}

impl Tally {
    fn of(&self, provider: &str) -> u64 {
        self.answers.iter().filter(|((p, _), _)| p == provider).map(|(_, n)| n).sum()
    }
}

/// Clients calling `sayHello` through the proxy in a loop, three in ten calls carrying
/// `batchjob=true`, each answer tallied by provider and kind; every failure (an error status,
/// a closed connection, no answer in 10 s) is kept.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(running: &Running, connections: usize, in_flight: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut tasks = Vec::new();
        for c in 0..connections {
            let client = Client::connect(running.address("in").unwrap()).await.unwrap();
            for t in 0..in_flight {
                let (client, stop, tally) = (client.clone(), stop.clone(), tally.clone());
                tasks.push(tokio::spawn(async move {
                    let mut i = c * 7 + t;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let batch = i % 10 < 3;
                        let attachments: &[(&str, &str)] = if batch { &[("batchjob", "true")] } else { &[] };
                        let call = tokio::time::timeout(
                            Duration::from_secs(10),
                            client.call(SERVICE, "sayHello", "hi", attachments),
                        );
                        let (outcome, closed) = match call.await {
                            Ok(Ok(m)) if common::status(&m) == "20" => {
                                (served_by(&m).ok_or_else(|| "no provider name".to_string()), false)
                            }
                            Ok(Ok(m)) => (Err(format!("status {}", common::status(&m))), false),
                            Ok(Err(e)) => (Err(e.to_string()), true),
                            Err(_) => (Err("no answer in 10 s".to_string()), false),
                        };
                        let mut tally = tally.lock().unwrap();
                        match outcome {
                            Ok(provider) => *tally.answers.entry((provider, batch)).or_default() += 1,
                            Err(e) => tally.failures.push(e),
                        }
                        if closed {
                            // The connection is gone: no call on it can be made any more.
                            break;
                        }
                    }
                }));
            }
        }
        Load { stop, tally, tasks }
    }

    fn answers_from(&self, provider: &str) -> u64 {
        self.tally.lock().unwrap().of(provider)
    }

    fn total(&self) -> u64 {
        self.tally.lock().unwrap().answers.values().sum()
    }

    fn failures(&self) -> Vec<String> {
        self.tally.lock().unwrap().failures.clone()
    }

    async fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            t.await.unwrap();
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // A test that fails midway stops its load too.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Batch-job answers only from batchjob providers, user answers only from user providers.
fn assert_isolated(tally: &Tally) {
    for ((provider, batch), n) in &tally.answers {
        assert_eq!(*batch, provider.starts_with("batch"), "{n} answers of batch={batch} from {provider}: {tally:?}");
    }
}

// ---------------------------------------------------------------------------------------------

/// The whole path of the issue: providers nobody lists by hand found under a discovery chroot,
/// the proxy registered at the root where the client looks, python3-dubbo's ZkRegister finding
/// only the proxy and calling through it, batch jobs reaching only the batchjob providers, and
/// the registration gone when the proxy drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python3_dubbo_discovers_the_proxy_and_batch_jobs_reach_only_batchjob_providers() {
    let server = ZkServer::start();
    let (user1, user2, batch1) = (dubbo_py("user-1"), dubbo_py("user-2"), dubbo_py("batch-1"));
    let dead = common::dead_address();
    let zk = server.client().await;
    for (p, group) in [(&user1, "user"), (&user2, "user"), (&batch1, "batchjob")] {
        add_provider(&zk, "/backend", &provider_url(p.port, group, &[])).await;
    }
    // Nodes that must not become endpoints: all in the user group, at an address nothing listens
    // on, so a request sent there would fail (the routes do not retry).
    add_provider(&zk, "/backend", &provider_url(dead.port(), "user", &[("enabled", "false")])).await;
    add_provider(&zk, "/backend", &provider_url(dead.port(), "user", &[("disabled", "true")])).await;
    let tri = provider_url(dead.port(), "user", &[]).replacen("dubbo://", "tri://", 1);
    add_provider(&zk, "/backend", &tri).await;
    zk.create(
        &format!("{}/not-a-url%zz", providers_dir("/backend")),
        b"",
        &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .unwrap();

    let yaml = batchjob_yaml(
        &format!(r#"{{ zookeeper: ["{}"], interfaces: [{SERVICE}] }}"#, server.connect_string("")),
        &format!(r#"{{ zookeeper: ["{}"], interface: {SERVICE} }}"#, server.connect_string("/backend")),
    );
    let running = start_proxy(&yaml).await;
    let port = running.address("in").unwrap().port();

    // Registered at the root, as a Java provider registers: clients there see only the proxy.
    eventually("the proxy's provider node", Duration::from_secs(10), || async { !listed(&zk, "").await.is_empty() })
        .await;
    let at_root = listed(&zk, "").await;
    assert_eq!(at_root.len(), 1, "{at_root:?}");
    let url = metaproxy_runtime::upstream::zookeeper::url::DubboUrl::parse(&at_root[0]).unwrap();
    assert_eq!((url.protocol.as_str(), url.host.as_str(), url.port), ("dubbo", "127.0.0.1", port));
    assert_eq!(url.path, SERVICE);
    for (k, v) in [
        ("interface", SERVICE),
        ("side", "provider"),
        ("application", "metaproxy"),
        // Learned from the discovered providers: their methods, version and revision.
        ("methods", "add,getMap,getUser,sayHello,sayNull"),
        ("version", "1.0.0"),
        ("revision", "1.0.0"),
        ("dubbo", "2.0.2"),
    ] {
        assert_eq!(url.param(k), Some(v), "{k} in {at_root:?}");
    }
    assert!(url.param("timestamp").unwrap().parse::<u64>().unwrap() > 1_600_000_000_000);
    let (_, stat) = zk.get_data(&format!("/dubbo/{SERVICE}/configurators")).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0, "configurators is a persistent node");
    let node = format!("{}/{}", providers_dir(""), java_url_encode(&at_root[0]));
    let (_, stat) = zk.get_data(&node).await.expect("the node name is the URL encoded as Java encodes it");
    assert_ne!(stat.ephemeral_owner, 0, "the provider node is ephemeral");

    // python3-dubbo discovers providers at the root and calls: four batch jobs, eight user calls.
    let zk_hosts = server.connect_string("");
    let args: Vec<String> = [
        "--zookeeper",
        &zk_hosts,
        "--interface",
        SERVICE,
        "--method",
        "sayHello",
        "--arg",
        "zk",
        "--calls",
        "12",
        "--batch-every",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || run_json("codecs/dubbo/fixtures/peers/zk_client_call.py", &args))
        .await
        .unwrap();
    assert_eq!(out["providers"], serde_json::json!([format!("127.0.0.1:{port}")]), "{out}");
    let calls = out["calls"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(calls.len(), 12, "{out}");
    let mut seen = BTreeMap::<String, usize>::new();
    for call in calls {
        assert_eq!(call["ok"], true, "{out}");
        let result = call["result"].as_str().unwrap();
        let provider = result.strip_prefix("Hello zk from ").unwrap_or_else(|| panic!("{result}"));
        let batch = call["batch"].as_bool().unwrap();
        assert_eq!(batch, provider == "batch-1", "batch={batch} answered by {provider}: {out}");
        *seen.entry(provider.to_string()).or_default() += 1;
    }
    assert_eq!(seen.get("batch-1"), Some(&4), "{seen:?}");
    assert!(seen.contains_key("user-1") && seen.contains_key("user-2"), "both user providers serve: {seen:?}");
    // The client registered itself as a consumer beside the proxy's provider node, as Dubbo
    // consumers do.
    let consumers = zk.list_children(&format!("/dubbo/{SERVICE}/consumers")).await.unwrap();
    assert_eq!(consumers.len(), 1, "{consumers:?}");

    // The drain deletes the registration, and the shutdown waits for it.
    running.shutdown().await;
    assert_eq!(listed(&zk, "").await, Vec::<String>::new());
}

/// A provider's node removed and added back under load: the provider stops getting requests,
/// then gets them again, and no request fails. The weights of the providers' URLs share the
/// user traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_leave_and_come_back_under_load_without_a_failed_request() {
    let server = ZkServer::start();
    let (user1, user2, batch1) = (dubbo_py("user-1"), dubbo_py("user-2"), dubbo_py("batch-1"));
    let zk = server.client().await;
    add_provider(&zk, "/b", &provider_url(user1.port, "user", &[("weight", "100")])).await;
    let user2_node = add_provider(&zk, "/b", &provider_url(user2.port, "user", &[("weight", "300")])).await;
    add_provider(&zk, "/b", &provider_url(batch1.port, "batchjob", &[])).await;
    let yaml = batchjob_yaml(
        &format!(r#"{{ zookeeper: ["{}"], interfaces: [{SERVICE}] }}"#, server.connect_string("/b-front")),
        &format!(r#"{{ zookeeper: ["{}"], interface: {SERVICE} }}"#, server.connect_string("/b")),
    );
    let running = start_proxy(&yaml).await;
    let load = Load::start(&running, 4, 8).await;

    // Weighted shares: user-2 (300) gets about three times user-1's (100) user requests.
    eventually("400 user answers", Duration::from_secs(20), || async {
        load.answers_from("user-1") + load.answers_from("user-2") >= 400
    })
    .await;
    let (u1, u2) = (load.answers_from("user-1"), load.answers_from("user-2"));
    let share = u2 as f64 / (u1 + u2) as f64;
    assert!((0.65..=0.85).contains(&share), "user-2's share {share:.2} ({u1} vs {u2}), weights 100:300");

    // user-2's node removed: its requests drain, then it gets none.
    zk.delete(&user2_node, None).await.unwrap();
    let mut last = (load.answers_from("user-2"), load.answers_from("user-1"));
    eventually("user-2 out of rotation", Duration::from_secs(20), || {
        let now = (load.answers_from("user-2"), load.answers_from("user-1"));
        let moved = now.0 != last.0;
        let quiet_for = now.1.saturating_sub(last.1);
        if moved {
            last = now;
        }
        // 300 user answers in a row without one from user-2.
        async move { !moved && quiet_for >= 300 }
    })
    .await;
    let gone_at = load.answers_from("user-2");

    // Back in the registry (a new timestamp, as a restarted provider writes): it serves again.
    let back = provider_url(user2.port, "user", &[("weight", "300"), ("timestamp", "1700000000001")]);
    add_provider(&zk, "/b", &back).await;
    eventually("user-2 back in rotation", Duration::from_secs(20), || async {
        load.answers_from("user-2") >= gone_at + 100
    })
    .await;
    assert!(load.failures().is_empty(), "{:?}", load.failures());
    let total = load.total();
    let tally = load.stop().await;
    eprintln!(
        "weighted share of user-2: {share:.3} ({u1} vs {u2}); user-2 left after {gone_at}; answers: {:?}",
        tally.answers
    );
    assert!(tally.failures.is_empty(), "{} of {total} requests failed: {:?}", tally.failures.len(), tally.failures);
    assert_isolated(&tally);
    assert!(tally.of("batch-1") > 0, "{tally:?}");
    running.shutdown().await;
}

/// A relay between the proxy and ZooKeeper that the test can cut (every relayed connection
/// closed, new ones closed on accept) and restore: a network partition on loopback.
struct Relay {
    port: u16,
    cut: watch::Sender<bool>,
}

impl Relay {
    async fn start(to: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Relay { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// The ZooKeeper session lost under load: the last providers keep serving, the server expires
/// the proxy's registration; when ZooKeeper is reachable again the proxy registers again and
/// follows the providers again (a change made while it was cut off, then one made after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_keeps_the_last_providers_and_both_sides_come_back() {
    let server = ZkServer::start();
    let (user1, user2, batch1) = (dubbo_py("user-1"), dubbo_py("user-2"), dubbo_py("batch-1"));
    let zk = server.client().await;
    let user1_node = add_provider(&zk, "/c", &provider_url(user1.port, "user", &[])).await;
    add_provider(&zk, "/c", &provider_url(batch1.port, "batchjob", &[])).await;
    let relay = Relay::start(server.port).await;
    let via_relay = |chroot: &str| format!("127.0.0.1:{}{chroot}", relay.port);
    let yaml = batchjob_yaml(
        &format!(r#"{{ zookeeper: ["{}"], interfaces: [{SERVICE}], session_timeout: 2s }}"#, via_relay("/c-front")),
        &format!(r#"{{ zookeeper: ["{}"], interface: {SERVICE}, session_timeout: 2s }}"#, via_relay("/c")),
    );
    let running = start_proxy(&yaml).await;
    eventually("the registration", Duration::from_secs(10), || async {
        registrations(&zk, "/c-front").await.len() == 1
    })
    .await;
    let node = format!("{}/{}", providers_dir("/c-front"), java_url_encode(&registrations(&zk, "/c-front").await[0]));
    let first_owner = zk.check_stat(&node).await.unwrap().unwrap().ephemeral_owner;
    let load = Load::start(&running, 2, 4).await;
    eventually("traffic", Duration::from_secs(10), || async { load.answers_from("user-1") >= 50 }).await;

    // Cut off from ZooKeeper: the server expires the proxy's sessions (the registration goes),
    // and a provider added meanwhile cannot be seen.
    relay.set_cut(true);
    add_provider(&zk, "/c", &provider_url(user2.port, "user", &[])).await;
    eventually("the server expiring the registration", Duration::from_secs(15), || async {
        registrations(&zk, "/c-front").await.is_empty()
    })
    .await;
    // Still serving from the last providers while cut off.
    let during = load.total();
    eventually("answers while cut off", Duration::from_secs(10), || async { load.total() >= during + 200 }).await;
    assert_eq!(load.answers_from("user-2"), 0, "user-2 was added while the proxy could not see it");
    assert!(load.failures().is_empty(), "{:?}", load.failures());

    // Reachable again: a new session registers again and lists again.
    let cut_off_answers = load.total() - during;
    relay.set_cut(false);
    eventually("the registration back", Duration::from_secs(15), || async {
        registrations(&zk, "/c-front").await.len() == 1
    })
    .await;
    let owner = zk.check_stat(&node).await.unwrap().map(|s| s.ephemeral_owner);
    assert!(owner.is_some_and(|o| o != 0 && o != first_owner), "a new session holds the same node: {owner:?}");
    eventually("user-2, added while cut off, in rotation", Duration::from_secs(15), || async {
        load.answers_from("user-2") >= 50
    })
    .await;
    // The watch is set again too: a change made now is followed.
    zk.delete(&user1_node, None).await.unwrap();
    let mut last = (load.answers_from("user-1"), load.answers_from("user-2"));
    eventually("user-1 out of rotation", Duration::from_secs(15), || {
        let now = (load.answers_from("user-1"), load.answers_from("user-2"));
        let moved = now.0 != last.0;
        let quiet_for = now.1.saturating_sub(last.1);
        if moved {
            last = now;
        }
        async move { !moved && quiet_for >= 200 }
    })
    .await;
    let tally = load.stop().await;
    eprintln!("answered while cut off: {}; answers: {:?}", cut_off_answers, tally.answers);
    assert!(tally.failures.is_empty(), "{} failed: {:?}", tally.failures.len(), tally.failures);
    assert_isolated(&tally);
    running.shutdown().await;
}

/// Registered in the very node it discovers from, the proxy lists its own registration and
/// never routes to it: every request goes to the provider, and no connection comes back to the
/// proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_routes_to_its_own_registration() {
    let server = ZkServer::start();
    let user1 = dubbo_py("user-1");
    let zk = server.client().await;
    add_provider(&zk, "/same", &provider_url(user1.port, "user", &[])).await;
    let same = format!(r#"["{}"]"#, server.connect_string("/same"));
    let yaml = batchjob_yaml(
        // In the user group, as the provider: were it not skipped, the default route would pick it.
        &format!("{{ zookeeper: {same}, interfaces: [{SERVICE}], parameters: {{ service_group: user }} }}"),
        &format!("{{ zookeeper: {same}, interface: {SERVICE}, empty_protection: false }}"),
    );
    let running = start_proxy(&yaml).await;
    eventually("the proxy beside the provider", Duration::from_secs(10), || async {
        listed(&zk, "/same").await.len() == 2
    })
    .await;
    let client = Client::connect(running.address("in").unwrap()).await.unwrap();
    for _ in 0..40 {
        let m = common::call(&client, "sayHello", &[]).await;
        assert_eq!(common::status(&m), "20");
        assert_eq!(served_by(&m).as_deref(), Some("user-1"));
    }
    assert_eq!(running.downstream_connections(), 1, "only the test's client: the proxy never called itself");
    running.shutdown().await;
}
