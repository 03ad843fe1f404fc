//! Dubbo service discovery and registration in a ZooKeeper registry.
//!
//! Dubbo keeps its registry in ZooKeeper as `<root>/<interface>/providers/<URL-encoded provider
//! URL>` (root `/dubbo`), one ephemeral node per provider, with `configurators`, `routers` and
//! `consumers` beside `providers`. Two things happen here, once per process on the main runtime
//! (as DNS refreshes and health checks do):
//!
//! * **Discovery** ([`discovery`]): a cluster with `registry:` watches its interface's `providers`
//!   node and turns every provider URL ([`url`]) into an endpoint (host and port from the URL,
//!   every URL parameter as a label: `group`, `version`, `weight`, `application`, custom ones such
//!   as `service_group`), installed with the cluster's static endpoints through the same live
//!   endpoint-set swap DNS uses ([`SharedCluster::set_endpoints`]): workers keep their
//!   connections to providers that stay and drain those to providers that left. Disabled
//!   providers, other protocols and metaproxy registrations are skipped; a provider whose URL
//!   does not parse is skipped and logged once. When the session is lost the last endpoints keep
//!   serving, and a new session lists and watches again.
//! * **Registration** ([`register`]): a listener with `register:` writes, for each of its
//!   interfaces, an ephemeral provider node with its own address (as a Java Dubbo provider
//!   writes one, `configurators` node included), holds it while the process serves (writing it
//!   again if it is deleted or the session is lost) and deletes it when the drain starts.
//!
//! Connect strings may end with a chroot (`127.0.0.1:2181/backend`, [`ZkAddress`]), so the proxy
//! can discover providers in one place and register itself in another where clients look.

pub mod discovery;
pub mod register;
mod session;
pub mod url;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::cluster::SharedCluster;

/// The URL parameter that marks a provider node written by metaproxy (its value is the
/// listener's name). Discovery never routes to such a node: a proxy that discovers where proxies
/// register would otherwise send requests to itself or to another proxy in a loop.
pub const MARKER_PARAM: &str = "metaproxy";

/// Dubbo's registry root.
pub const DEFAULT_ROOT: &str = "/dubbo";

/// Why a `zookeeper:`, `root:` or interface setting is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// An empty list or name.
    #[error("must not be empty")]
    Empty,
    /// A server that is not `host:port`.
    #[error("`{entry}` is not `host:port`: {reason}")]
    BadServer {
        /// The entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// Two entries name different chroots.
    #[error("two chroots, `{0}` and `{1}`: the connect string has one")]
    TwoChroots(String, String),
    /// A ZooKeeper path that is not absolute and plain.
    #[error("`{path}` is not a ZooKeeper path: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A name that cannot be a node name or a URL parameter.
    #[error("`{0}` has a character it cannot have (`/`, `&`, `=`, `,`, `?`, `#`, space or a control character)")]
    BadName(String),
}

/// A ZooKeeper ensemble and the chroot the tree is read or written under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkAddress {
    /// The servers, `host:port` each.
    pub servers: Vec<String>,
    /// The chroot (`/backend`), or empty for the root.
    pub chroot: String,
}

impl ZkAddress {
    /// Parses the `zookeeper:` list: `host:port` entries (one entry may also hold a whole
    /// comma-separated connect string), any of which may end with the chroot, as ZooKeeper
    /// connect strings allow (`127.0.0.1:2181/backend`); entries that name one must name the same.
    pub fn parse(entries: &[String]) -> Result<ZkAddress, SpecError> {
        let mut servers = Vec::new();
        let mut chroot: Option<String> = None;
        for entry in entries.iter().flat_map(|e| e.split(',')).map(str::trim) {
            let (server, root) = match entry.find('/') {
                Some(at) => entry.split_at(at),
                None => (entry, ""),
            };
            let bad = |reason: &str| SpecError::BadServer { entry: entry.to_string(), reason: reason.to_string() };
            let (host, port) = server.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            let host_ok = !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
            if !host_ok {
                return Err(bad("bad host"));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad("bad port")),
            }
            servers.push(server.to_string());
            if !root.is_empty() && root != "/" {
                check_path(root)?;
                match &chroot {
                    Some(c) if c != root => return Err(SpecError::TwoChroots(c.clone(), root.to_string())),
                    _ => chroot = Some(root.to_string()),
                }
            }
        }
        if servers.is_empty() {
            return Err(SpecError::Empty);
        }
        Ok(ZkAddress { servers, chroot: chroot.unwrap_or_default() })
    }

    /// The servers as a connect string, without the chroot (paths carry it, see
    /// [`path`](Self::path)).
    pub fn connect_string(&self) -> String {
        self.servers.join(",")
    }

    /// `path` under the chroot.
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.chroot)
    }
}

/// Checks that `path` is an absolute ZooKeeper path with plain segments.
pub fn check_path(path: &str) -> Result<(), SpecError> {
    let bad = |reason| Err(SpecError::BadPath { path: path.to_string(), reason });
    let Some(rest) = path.strip_prefix('/') else { return bad("it must start with `/`") };
    if rest.is_empty() {
        return bad("it is the root");
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return bad("it has an empty segment (`//` or a trailing `/`)");
        }
        if segment == "." || segment == ".." {
            return bad("it has a `.` or `..` segment");
        }
        if segment.chars().any(char::is_control) {
            return bad("it has a control character");
        }
    }
    Ok(())
}

/// Checks that `name` (an interface, a method, a version, a group) fits in a node name and in a
/// URL parameter unescaped.
pub fn check_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::Empty);
    }
    let forbidden = |c: char| c.is_control() || c.is_whitespace() || matches!(c, '/' | '&' | '=' | ',' | '?' | '#');
    if name.chars().any(forbidden) {
        return Err(SpecError::BadName(name.to_string()));
    }
    Ok(())
}

/// A cluster's `registry:`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverySpec {
    /// The cluster it fills.
    pub cluster: Arc<str>,
    /// Where to read.
    pub zookeeper: ZkAddress,
    /// The registry root (default `/dubbo`).
    pub root: String,
    /// The Dubbo interface.
    pub interface: String,
    /// Providers of this protocol are used (default `dubbo`).
    pub protocol: String,
    /// The session timeout asked for.
    pub session_timeout: Duration,
    /// How long the start waits for the first list.
    pub initial_fetch_timeout: Duration,
    /// An empty list keeps the last endpoints instead of removing them all.
    pub empty_protection: bool,
}

impl DiscoverySpec {
    /// The node whose children are the providers, chroot included.
    pub fn providers_path(&self) -> String {
        self.zookeeper.path(&format!("{}/{}/providers", self.root, self.interface))
    }
}

/// Where a registration says the proxy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advertise {
    /// This address, with the listener's port.
    Ip(IpAddr),
    /// This address and port (behind a NAT or a port mapping).
    Socket(SocketAddr),
}

/// A listener's `register:`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterSpec {
    /// The listener.
    pub listener: Arc<str>,
    /// Where to write.
    pub zookeeper: ZkAddress,
    /// The registry root (default `/dubbo`).
    pub root: String,
    /// One provider node per interface.
    pub interfaces: Vec<String>,
    /// The `methods` parameter; `None`: the methods discovered for the interface, else `*`.
    pub methods: Option<Vec<String>>,
    /// The `version` parameter; `None`: the one every discovered provider of the interface has,
    /// else none.
    pub version: Option<String>,
    /// The `group` parameter, if any.
    pub group: Option<String>,
    /// The `application` parameter (default `metaproxy`).
    pub application: String,
    /// The address written; `None`: the listener's, or when it is bound to every interface
    /// (`0.0.0.0`), the local address of a connection to ZooKeeper (as Dubbo picks its host).
    pub advertise_address: Option<Advertise>,
    /// More parameters (`weight`, `service_group`, …).
    pub parameters: BTreeMap<String, String>,
    /// The session timeout asked for.
    pub session_timeout: Duration,
}

impl RegisterSpec {
    /// Parameters that `parameters:` may not set: the registration writes them itself.
    pub const RESERVED: [&'static str; 6] = ["interface", "methods", "side", "version", "group", MARKER_PARAM];
}

/// What the providers of one interface agree on: the defaults of a registration for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Every method any provider lists.
    pub methods: BTreeSet<String>,
    /// The `version` parameter.
    pub version: Agreement,
    /// The `revision` parameter.
    pub revision: Agreement,
    /// The `dubbo` parameter (protocol version).
    pub dubbo: Agreement,
}

/// Whether a parameter has one value over every provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Agreement {
    /// No provider seen yet.
    #[default]
    Unknown,
    /// Every provider has this value (empty: none has the parameter).
    One(String),
    /// Providers differ.
    Many,
}

impl Agreement {
    fn add(&mut self, value: &str) {
        *self = match std::mem::take(self) {
            Agreement::Unknown => Agreement::One(value.to_string()),
            Agreement::One(v) if v == value => Agreement::One(v),
            _ => Agreement::Many,
        };
    }

    fn merge(&mut self, other: &Agreement) {
        match other {
            Agreement::Unknown => {}
            Agreement::One(v) => self.add(v),
            Agreement::Many => *self = Agreement::Many,
        }
    }

    /// The agreed value, when there is one and it is not empty.
    pub fn value(&self) -> Option<&str> {
        match self {
            Agreement::One(v) if !v.is_empty() => Some(v),
            _ => None,
        }
    }
}

impl Facts {
    /// Adds one provider's URL.
    pub fn add(&mut self, url: &url::DubboUrl) {
        let methods = url.param("methods").unwrap_or_default();
        self.methods.extend(methods.split(',').filter(|m| !m.is_empty() && *m != "*").map(str::to_string));
        self.version.add(url.param("version").unwrap_or_default());
        self.revision.add(url.param("revision").unwrap_or_default());
        self.dubbo.add(url.param("dubbo").unwrap_or_default());
    }

    fn merge(&mut self, other: &Facts) {
        self.methods.extend(other.methods.iter().cloned());
        self.version.merge(&other.version);
        self.revision.merge(&other.revision);
        self.dubbo.merge(&other.dubbo);
    }
}

/// Facts per (cluster, interface).
type FactsByCluster = BTreeMap<(Arc<str>, String), Facts>;

/// What discovery last found, per cluster and interface: read by registrations for their
/// defaults.
#[derive(Clone, Debug, Default)]
pub struct Board(Arc<Mutex<FactsByCluster>>);

impl Board {
    fn set(&self, cluster: &Arc<str>, interface: &str, facts: Facts) {
        if let Ok(mut map) = self.0.lock() {
            map.insert((cluster.clone(), interface.to_string()), facts);
        }
    }

    /// What every cluster discovering `interface` found, merged; `None` when none did.
    pub fn facts(&self, interface: &str) -> Option<Facts> {
        let map = self.0.lock().ok()?;
        let mut found = map.iter().filter(|((_, i), _)| i == interface).map(|(_, f)| f);
        let mut facts = found.next()?.clone();
        found.for_each(|f| facts.merge(f));
        Some(facts)
    }
}

/// ZooKeeper discovery and registration for one running proxy.
#[derive(Debug)]
pub struct ZooKeeper {
    board: Board,
    registrations: Vec<(RegisterSpec, SocketAddr)>,
    shutdown: watch::Receiver<bool>,
}

impl ZooKeeper {
    /// Starts discovery for `discovery` (each on a cluster of `clusters`) and waits for each
    /// first list of providers, up to its `initial_fetch_timeout`, so the first requests find
    /// endpoints. `bound` is every listener's bound address; with the registrations' advertised
    /// addresses, discovery never turns them into endpoints. Runs until `shutdown` turns true.
    pub async fn discover(
        clusters: &[Arc<SharedCluster>],
        discovery: Vec<DiscoverySpec>,
        registrations: Vec<RegisterSpec>,
        bound: &[(Arc<str>, SocketAddr)],
        shutdown: watch::Receiver<bool>,
    ) -> ZooKeeper {
        let mut own: HashSet<SocketAddr> = bound.iter().map(|(_, a)| *a).filter(|a| !a.ip().is_unspecified()).collect();
        let registrations: Vec<(RegisterSpec, SocketAddr)> = registrations
            .into_iter()
            .filter_map(|spec| {
                let address = bound.iter().find(|(name, _)| *name == spec.listener).map(|(_, a)| *a)?;
                match spec.advertise_address {
                    Some(Advertise::Socket(a)) => own.insert(a),
                    Some(Advertise::Ip(ip)) => own.insert(SocketAddr::new(ip, address.port())),
                    None => false,
                };
                Some((spec, address))
            })
            .collect();
        let own = Arc::new(own);
        let board = Board::default();
        let mut first = Vec::new();
        for spec in discovery {
            let Some(cluster) = clusters.iter().find(|c| *c.spec.name == *spec.cluster) else { continue };
            let (fetched, rx) = oneshot::channel();
            let wait = spec.initial_fetch_timeout;
            tracing::info!(
                cluster = %spec.cluster,
                zookeeper = %spec.zookeeper.connect_string(),
                path = %spec.providers_path(),
                "discovering providers in ZooKeeper"
            );
            let task = discovery::Discovery::new(spec.clone(), cluster, own.clone(), board.clone(), fetched);
            tokio::spawn(task.run(shutdown.clone()));
            first.push(async move {
                if !wait.is_zero() && !matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(()))) {
                    tracing::warn!(
                        cluster = %spec.cluster,
                        waited = ?wait,
                        "no providers listed by ZooKeeper yet; serving without them until it answers"
                    );
                }
            });
        }
        futures_util::future::join_all(first).await;
        ZooKeeper { board, registrations, shutdown }
    }

    /// Starts the registrations: call once the listeners serve. Each task ends after deleting
    /// its nodes, once `shutdown` turned true.
    pub fn register(self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for (spec, address) in self.registrations {
            tracing::info!(
                listener = %spec.listener,
                zookeeper = %spec.zookeeper.connect_string(),
                chroot = %spec.zookeeper.chroot,
                interfaces = ?spec.interfaces,
                "registering in ZooKeeper"
            );
            tasks.push(tokio::spawn(register::run(spec, address, self.board.clone(), self.shutdown.clone())));
        }
        tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Result<ZkAddress, SpecError> {
        ZkAddress::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn connect_strings_with_and_without_chroot() {
        let a = parse(&["127.0.0.1:2181"]).unwrap();
        assert_eq!((a.connect_string().as_str(), a.chroot.as_str()), ("127.0.0.1:2181", ""));
        assert_eq!(a.path("/dubbo/x/providers"), "/dubbo/x/providers");
        let b = parse(&["zk1:2181", "zk2:2182/backend/dubbo-a"]).unwrap();
        assert_eq!(b.connect_string(), "zk1:2181,zk2:2182");
        assert_eq!(b.path("/dubbo"), "/backend/dubbo-a/dubbo");
        let c = parse(&["zk1:2181,zk2:2182/backend", "[::1]:2183/backend"]).unwrap();
        assert_eq!(c.servers, ["zk1:2181", "zk2:2182", "[::1]:2183"]);
        assert_eq!(parse(&["zk1:2181/"]).unwrap().chroot, "");
    }

    #[test]
    fn bad_connect_strings() {
        assert_eq!(parse(&[]), Err(SpecError::Empty));
        assert!(matches!(parse(&["zk1"]), Err(SpecError::BadServer { .. })));
        assert!(matches!(parse(&["zk1:0"]), Err(SpecError::BadServer { .. })));
        assert!(matches!(parse(&["zk1:x"]), Err(SpecError::BadServer { .. })));
        assert!(matches!(parse(&[":2181"]), Err(SpecError::BadServer { .. })));
        assert!(matches!(parse(&["z k:2181"]), Err(SpecError::BadServer { .. })));
        assert!(matches!(parse(&["zk1:2181/a/"]), Err(SpecError::BadPath { .. })));
        assert!(matches!(parse(&["zk1:2181/a//b"]), Err(SpecError::BadPath { .. })));
        assert!(matches!(parse(&["zk1:2181/a/../b"]), Err(SpecError::BadPath { .. })));
        assert_eq!(parse(&["a:1/x", "b:2/y"]), Err(SpecError::TwoChroots("/x".into(), "/y".into())));
    }

    #[test]
    fn names() {
        assert!(check_name("com.example.DemoService").is_ok());
        assert!(check_name("sayHello$1").is_ok());
        for bad in ["a/b", "a b", "a&b", "a=b", "a,b", "a\n"] {
            assert_eq!(check_name(bad), Err(SpecError::BadName(bad.into())), "{bad}");
        }
        assert_eq!(check_name(""), Err(SpecError::Empty));
        assert!(check_path("/dubbo").is_ok());
        assert!(check_path("dubbo").is_err());
        assert!(check_path("/").is_err());
    }

    #[test]
    fn facts_agree_or_not() {
        let url = |q: &str| url::DubboUrl::parse(&format!("dubbo://10.0.0.1:1/x?{q}")).unwrap();
        let mut f = Facts::default();
        assert_eq!(f.version.value(), None);
        f.add(&url("methods=a,b&version=1.0.0&dubbo=2.0.2"));
        f.add(&url("methods=b,c&version=1.0.0"));
        assert_eq!(f.methods.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(f.version.value(), Some("1.0.0"));
        assert_eq!(f.dubbo, Agreement::Many);
        assert_eq!(f.revision.value(), None, "no provider has one");
        let board = Board::default();
        board.set(&Arc::from("c1"), "x", f);
        let mut g = Facts::default();
        g.add(&url("methods=d&version=2.0.0"));
        board.set(&Arc::from("c2"), "x", g);
        let merged = board.facts("x").unwrap();
        assert_eq!(merged.methods.len(), 4);
        assert_eq!(merged.version, Agreement::Many);
        assert!(board.facts("y").is_none());
    }
}
