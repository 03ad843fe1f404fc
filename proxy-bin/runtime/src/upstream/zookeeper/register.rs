//! Registration: the proxy as a Dubbo provider in a ZooKeeper registry, so that clients that
//! discover providers through ZooKeeper call the proxy.
//!
//! One task per listener with `register:`, on the main runtime, started once the workers serve.
//! For each interface it writes what a Java Dubbo provider writes: the persistent
//! `<root>/<interface>/providers` and `<root>/<interface>/configurators` nodes (the latter is
//! where a provider subscribes to overrides, and clients list it too) and an ephemeral child of
//! `providers` named by the URL-encoded provider URL ([`provider_url`]). It then watches its
//! nodes: one deleted is written again; a lost session (the nodes go with it) is followed by a
//! new session and the same nodes; a node an expired session still holds is replaced, as Dubbo
//! does. When the drain starts the nodes are deleted, so clients stop choosing the proxy while it
//! answers what it has.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{select_all, BoxFuture, FutureExt};
use tokio::sync::watch;
use zookeeper_client as zk;

use super::session::{self, Backoff};
use super::url::{encode, DubboUrl};
use super::{Advertise, Board, Facts, RegisterSpec, MARKER_PARAM};

/// The `dubbo` parameter (protocol version) written when discovery says nothing: Java Dubbo's.
const DUBBO_PROTOCOL_VERSION: &str = "2.0.2";
/// How long the drain waits for the nodes to be deleted.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long finding the local address toward ZooKeeper may take per server.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One provider node to hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The `providers` node, chroot included.
    pub providers: String,
    /// The `configurators` node beside it.
    pub configurators: String,
    /// The ephemeral node: `providers` + `/` + the encoded URL.
    pub path: String,
    /// The URL it stands for.
    pub url: DubboUrl,
}

/// The provider URL a registration writes for `interface` at `address`: the parameters a Java
/// Dubbo provider writes and clients read (`interface`, `methods`, `version`, `revision`,
/// `side=provider`, `application`, `timestamp`, `dubbo`, …), the registration's own
/// `parameters`, and the [`MARKER_PARAM`] that keeps metaproxy from discovering it. `facts` is
/// what discovery found for the interface: the defaults of `methods` (the union of the
/// providers', else `*`), `version`, `revision` and `dubbo`.
pub fn provider_url(
    spec: &RegisterSpec,
    interface: &str,
    address: SocketAddr,
    facts: Option<&Facts>,
    timestamp_ms: u128,
) -> DubboUrl {
    let mut params: BTreeMap<String, String> = spec.parameters.clone();
    let mut set = |k: &str, v: String| {
        params.insert(k.to_string(), v);
    };
    let methods = match (&spec.methods, facts) {
        (Some(methods), _) => methods.join(","),
        (None, Some(f)) if !f.methods.is_empty() => f.methods.iter().cloned().collect::<Vec<_>>().join(","),
        _ => "*".to_string(),
    };
    let version = spec.version.clone().or_else(|| facts.and_then(|f| f.version.value()).map(str::to_string));
    // Java Dubbo writes the interface's jar version, else the service version; python3-dubbo
    // needs the parameter, so there is always one.
    let revision = facts
        .and_then(|f| f.revision.value())
        .map(str::to_string)
        .or_else(|| version.clone())
        .unwrap_or_else(|| "0.0.0".to_string());
    let dubbo = facts.and_then(|f| f.dubbo.value()).unwrap_or(DUBBO_PROTOCOL_VERSION).to_string();
    set("anyhost", "false".into());
    set("application", spec.application.clone());
    set("deprecated", "false".into());
    set("dubbo", dubbo);
    set("dynamic", "true".into());
    set("generic", "false".into());
    set("interface", interface.to_string());
    set("methods", methods);
    set(MARKER_PARAM, spec.listener.to_string());
    set("pid", std::process::id().to_string());
    set("revision", revision);
    set("side", "provider".into());
    set("timestamp", timestamp_ms.to_string());
    if let Some(v) = version {
        set("version", v);
    }
    if let Some(g) = &spec.group {
        set("group", g.clone());
    }
    DubboUrl {
        protocol: "dubbo".into(),
        host: address.ip().to_string(),
        port: address.port(),
        path: interface.to_string(),
        params,
    }
}

/// The nodes a registration holds at `address`.
pub fn nodes(spec: &RegisterSpec, address: SocketAddr, board: &Board, timestamp_ms: u128) -> Vec<Node> {
    spec.interfaces
        .iter()
        .map(|interface| {
            let base = spec.zookeeper.path(&format!("{}/{interface}", spec.root));
            let providers = format!("{base}/providers");
            let url = provider_url(spec, interface, address, board.facts(interface).as_ref(), timestamp_ms);
            Node {
                path: format!("{providers}/{}", encode(&url.to_full_string())),
                providers,
                configurators: format!("{base}/configurators"),
                url,
            }
        })
        .collect()
}

/// How holding the nodes ended.
enum Ended {
    Stop,
    SessionLost,
}

/// Registers `spec`'s listener, bound at `bound`, until `shutdown` turns true; then deletes its
/// nodes.
pub async fn run(spec: RegisterSpec, bound: SocketAddr, board: Board, mut shutdown: watch::Receiver<bool>) {
    let what = format!("registration of listener {}", spec.listener);
    // One timestamp for the life of the process: after a lost session the same URL comes back,
    // as Dubbo registers it again.
    let timestamp_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut backoff = Backoff::new();
    loop {
        let Some(client) = session::connect(&spec.zookeeper, spec.session_timeout, &mut shutdown, &what).await else {
            return;
        };
        let Some(address) = advertised(&spec, bound).await else {
            tracing::warn!(listener = %spec.listener, "no local address toward ZooKeeper to register; trying again");
            if session::pause_or_stop(backoff.next(), &mut shutdown).await {
                return;
            }
            continue;
        };
        backoff.reset();
        let nodes = nodes(&spec, address, &board, timestamp_ms);
        match hold(&spec, &client, &nodes, &mut shutdown).await {
            Ended::Stop => {
                deregister(&spec, &client, &nodes).await;
                return;
            }
            Ended::SessionLost => tracing::warn!(
                listener = %spec.listener,
                "ZooKeeper session lost (its nodes go with it); registering again in a new session"
            ),
        }
    }
}

/// The address to register: `advertise_address`, else the listener's, else (bound to every
/// interface) the local address of a connection to a ZooKeeper server, as Dubbo picks its host.
async fn advertised(spec: &RegisterSpec, bound: SocketAddr) -> Option<SocketAddr> {
    match spec.advertise_address {
        Some(Advertise::Socket(address)) => Some(address),
        Some(Advertise::Ip(ip)) => Some(SocketAddr::new(ip, bound.port())),
        None if !bound.ip().is_unspecified() => Some(bound),
        None => local_ip_toward(&spec.zookeeper.servers).await.map(|ip| SocketAddr::new(ip, bound.port())),
    }
}

/// The local address of a TCP connection to the first of `servers` that accepts one.
async fn local_ip_toward(servers: &[String]) -> Option<IpAddr> {
    for server in servers {
        let Ok(Ok(stream)) = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(server.as_str())).await
        else {
            continue;
        };
        if let Ok(local) = stream.local_addr() {
            return Some(local.ip());
        }
    }
    None
}

/// Writes the nodes and keeps them written within one session.
async fn hold(spec: &RegisterSpec, client: &zk::Client, nodes: &[Node], shutdown: &mut watch::Receiver<bool>) -> Ended {
    let mut state = client.state_watcher();
    let mut backoff = Backoff::new();
    let mut announced = false;
    loop {
        let mut watchers: Vec<BoxFuture<'static, zk::WatchedEvent>> = Vec::with_capacity(nodes.len());
        let mut failure = None;
        for node in nodes {
            let watched = match ensure(client, node).await {
                // Watch the node: deleted by someone, it is written again.
                Ok(()) => match client.check_and_watch_stat(&node.path).await {
                    Ok((Some(_), watcher)) => Ok(watcher),
                    Ok((None, _)) => Err(zk::Error::NoNode),
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            match watched {
                Ok(watcher) => watchers.push(watcher.changed().boxed()),
                Err(error) => {
                    failure = Some((node, error));
                    break;
                }
            }
        }
        if let Some((node, error)) = failure {
            if session::session_over(client, &error) {
                return Ended::SessionLost;
            }
            tracing::warn!(listener = %spec.listener, node = %node.path, %error, "cannot register; trying again");
            if session::pause_or_stop(backoff.next(), shutdown).await {
                return Ended::Stop;
            }
            continue;
        }
        backoff.reset();
        if !announced {
            for node in nodes {
                tracing::info!(listener = %spec.listener, url = %node.url.to_full_string(), node = %node.path, "registered in ZooKeeper");
            }
            announced = true;
        }
        if watchers.is_empty() {
            // No interface: nothing to hold (the configuration refuses this).
            session::stopped(shutdown).await;
            return Ended::Stop;
        }
        // The watches outlive a connection loss (the server reports on reconnection what changed
        // meanwhile): only a node event or the end of the session calls for action.
        tokio::select! {
            (event, _, _) = select_all(watchers) => {
                if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
                    return Ended::SessionLost;
                }
                tracing::info!(listener = %spec.listener, node = %event.path, event = ?event.event_type, "registration node changed; writing it again");
            }
            () = session_end(&mut state) => return Ended::SessionLost,
            _ = session::stopped(shutdown) => return Ended::Stop,
        }
    }
}

/// Resolves when the session reaches a terminal state (expired, closed, authentication failed).
async fn session_end(state: &mut zk::StateWatcher) {
    while !state.changed().await.is_terminated() {}
}

/// Writes `node` unless this session holds it already. A node of another (expired) session at
/// the same path is replaced: the server has not deleted it yet, and it would go with that
/// session.
async fn ensure(client: &zk::Client, node: &Node) -> Result<(), zk::Error> {
    let directory = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    client.mkdir(&node.configurators, &directory).await?;
    // As Curator (Dubbo's client) does, the node's data is the host's address.
    let data = node.url.host.as_bytes();
    // A few rounds: a missing parent is made, or an older session's node is deleted, in between.
    for _ in 0..4 {
        match client.create(&node.path, data, &ephemeral).await {
            Ok(_) => return Ok(()),
            Err(zk::Error::NoNode) => client.mkdir(&node.providers, &directory).await?,
            Err(zk::Error::NodeExists) => match client.check_stat(&node.path).await? {
                Some(stat) if stat.ephemeral_owner == client.session_id().0 => return Ok(()),
                Some(stat) => {
                    tracing::info!(node = %node.path, owner = stat.ephemeral_owner, "replacing a registration an older session holds");
                    match client.delete(&node.path, Some(stat.version)).await {
                        Ok(()) | Err(zk::Error::NoNode) | Err(zk::Error::BadVersion) => {}
                        Err(error) => return Err(error),
                    }
                }
                None => {}
            },
            Err(error) => return Err(error),
        }
    }
    Err(zk::Error::NodeExists)
}

/// Deletes the nodes (the drain started), bounded in time; the session closes after.
async fn deregister(spec: &RegisterSpec, client: &zk::Client, nodes: &[Node]) {
    let delete_all = async {
        for node in nodes {
            match client.delete(&node.path, None).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(error) => tracing::warn!(listener = %spec.listener, node = %node.path, %error, "cannot deregister"),
            }
        }
    };
    if tokio::time::timeout(DEREGISTER_TIMEOUT, delete_all).await.is_ok() {
        tracing::info!(listener = %spec.listener, "deregistered from ZooKeeper");
    } else {
        tracing::warn!(
            listener = %spec.listener,
            waited = ?DEREGISTER_TIMEOUT,
            "ZooKeeper did not confirm the deregistration; the nodes go when the session ends"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::upstream::zookeeper::{url, ZkAddress};

    fn spec() -> RegisterSpec {
        RegisterSpec {
            listener: Arc::from("dubbo-in"),
            zookeeper: ZkAddress { servers: vec!["127.0.0.1:2181".into()], chroot: "/front".into() },
            root: "/dubbo".into(),
            interfaces: vec!["com.example.DemoService".into(), "com.example.Other".into()],
            methods: None,
            version: None,
            group: None,
            application: "metaproxy".into(),
            advertise_address: None,
            parameters: BTreeMap::from([("weight".to_string(), "150".to_string())]),
            session_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn writes_what_a_java_provider_writes() {
        let address: SocketAddr = "10.1.2.3:20880".parse().unwrap();
        let nodes = nodes(&spec(), address, &Board::default(), 1_700_000_000_000);
        assert_eq!(nodes.len(), 2);
        let n = &nodes[0];
        assert_eq!(n.providers, "/front/dubbo/com.example.DemoService/providers");
        assert_eq!(n.configurators, "/front/dubbo/com.example.DemoService/configurators");
        let name = n.path.strip_prefix("/front/dubbo/com.example.DemoService/providers/").unwrap();
        assert!(!name.contains('/'));
        let back = DubboUrl::parse(&url::decode(name).unwrap()).unwrap();
        assert_eq!(back, n.url);
        assert_eq!(back.socket_addr(), Some(address));
        assert_eq!(back.path, "com.example.DemoService");
        for (k, v) in [
            ("interface", "com.example.DemoService"),
            ("side", "provider"),
            ("application", "metaproxy"),
            ("methods", "*"),
            ("revision", "0.0.0"),
            ("dubbo", "2.0.2"),
            ("timestamp", "1700000000000"),
            ("weight", "150"),
            ("metaproxy", "dubbo-in"),
            ("dynamic", "true"),
        ] {
            assert_eq!(back.param(k), Some(v), "{k}");
        }
        assert_eq!(back.param("version"), None);
        assert_eq!(back.param("group"), None);
        assert!(n.url.to_full_string().starts_with("dubbo://10.1.2.3:20880/com.example.DemoService?anyhost=false&"));
    }

    #[test]
    fn defaults_come_from_discovery_and_the_configuration_wins() {
        let board = Board::default();
        let mut facts = Facts::default();
        for q in ["methods=sayHello,add&version=1.0.0&revision=1.2.0", "methods=getUser&version=1.0.0&revision=1.2.0"] {
            facts.add(&DubboUrl::parse(&format!("dubbo://10.0.0.1:1/x?{q}")).unwrap());
        }
        board.set(&Arc::from("provider"), "com.example.DemoService", facts);
        let address: SocketAddr = "10.1.2.3:20880".parse().unwrap();
        let learned = &nodes(&spec(), address, &board, 1)[0].url;
        assert_eq!(learned.param("methods"), Some("add,getUser,sayHello"));
        assert_eq!(learned.param("version"), Some("1.0.0"));
        assert_eq!(learned.param("revision"), Some("1.2.0"));
        let mut configured = spec();
        configured.methods = Some(vec!["sayHello".into()]);
        configured.version = Some("2.0.0".into());
        configured.group = Some("gray".into());
        let url = &nodes(&configured, address, &board, 1)[0].url;
        assert_eq!(url.param("methods"), Some("sayHello"));
        assert_eq!(url.param("version"), Some("2.0.0"));
        assert_eq!(url.param("group"), Some("gray"));
        // The other interface learned nothing: `*`, and the revision falls back to the version.
        let mut versioned = spec();
        versioned.version = Some("2.0.0".into());
        let other = &nodes(&versioned, address, &board, 1)[1].url;
        assert_eq!(other.param("methods"), Some("*"));
        assert_eq!(other.param("revision"), Some("2.0.0"));
    }

    #[tokio::test]
    async fn the_advertised_address() {
        let mut s = spec();
        let bound: SocketAddr = "127.0.0.1:20880".parse().unwrap();
        assert_eq!(advertised(&s, bound).await, Some(bound));
        s.advertise_address = Some(Advertise::Ip("10.0.0.8".parse().unwrap()));
        assert_eq!(advertised(&s, bound).await, Some("10.0.0.8:20880".parse().unwrap()));
        s.advertise_address = Some(Advertise::Socket("10.0.0.8:1234".parse().unwrap()));
        assert_eq!(advertised(&s, bound).await, Some("10.0.0.8:1234".parse().unwrap()));
        // Bound to every interface: the local address toward a ZooKeeper server (here a
        // loopback listener standing in for one).
        let zk = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        s.advertise_address = None;
        s.zookeeper.servers = vec![zk.local_addr().unwrap().to_string()];
        let any: SocketAddr = "0.0.0.0:20880".parse().unwrap();
        assert_eq!(advertised(&s, any).await, Some("127.0.0.1:20880".parse().unwrap()));
        drop(zk);
        s.zookeeper.servers =
            vec![std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()];
        assert_eq!(advertised(&s, any).await, None, "no server reachable");
    }
}
