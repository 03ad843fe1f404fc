//! Discovery: a cluster's endpoints from the providers a ZooKeeper registry lists.
//!
//! One task per cluster with `registry:`, on the main runtime. It lists the children of
//! `<chroot><root>/<interface>/providers` with a watch, turns each into an endpoint
//! ([`provider`]), installs them with the cluster's static endpoints
//! ([`SharedCluster::set_endpoints`]: the endpoint set is swapped and its generation bumped, and
//! each worker's pools keep the connections of endpoints that stay and retire, after their
//! requests are answered, those of endpoints that left), then waits for the watch to fire and
//! lists again. A missing `providers` node is watched until it appears. Errors and lost sessions
//! leave the endpoints as they were: the last known providers keep serving until a new list says
//! otherwise.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use tokio::sync::{oneshot, watch};
use zookeeper_client as zk;

use super::session::{self, Backoff};
use super::url::{self, DubboUrl, UrlError};
use super::{Board, DiscoverySpec, Facts, MARKER_PARAM};
use crate::upstream::cluster::SharedCluster;
use crate::upstream::spec::EndpointSpec;

/// Why a provider node does not become an endpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Skip {
    /// The node name is not a Dubbo URL.
    #[error("not a Dubbo URL: {0}")]
    BadUrl(#[from] UrlError),
    /// The provider speaks another protocol than the cluster's.
    #[error("protocol `{0}`, not the cluster's")]
    Protocol(String),
    /// `disabled=true` or `enabled=false`.
    #[error("disabled")]
    Disabled,
    /// A `category` other than `providers`.
    #[error("category `{0}`")]
    Category(String),
    /// A node metaproxy wrote (its own registration, or another proxy's).
    #[error("a metaproxy registration")]
    Proxy,
    /// The address of one of this proxy's listeners.
    #[error("this proxy's own address")]
    Own,
    /// The host is not an IP address, or the port is missing.
    #[error("`{0}` is not an IP address and port")]
    NoAddress(String),
}

impl Skip {
    /// True when the node is malformed (logged as a warning), not merely not for this cluster.
    pub fn is_malformed(&self) -> bool {
        matches!(self, Skip::BadUrl(_) | Skip::NoAddress(_))
    }
}

/// The endpoint a provider node name stands for: its address, and every URL parameter as a label.
/// `own` holds this proxy's listener addresses.
pub fn provider(name: &str, protocol: &str, own: &HashSet<SocketAddr>) -> Result<(EndpointSpec, DubboUrl), Skip> {
    let url = DubboUrl::parse(&url::decode(name)?)?;
    if url.protocol != protocol {
        return Err(Skip::Protocol(url.protocol));
    }
    if url.params.contains_key(MARKER_PARAM) {
        return Err(Skip::Proxy);
    }
    // Dubbo's rule: `disabled` when present, else `enabled` (default true).
    let disabled = match url.param("disabled") {
        Some(d) => d.eq_ignore_ascii_case("true"),
        None => url.param("enabled").is_some_and(|e| e.eq_ignore_ascii_case("false")),
    };
    if disabled {
        return Err(Skip::Disabled);
    }
    if let Some(category) = url.param("category").filter(|c| *c != "providers") {
        return Err(Skip::Category(category.to_string()));
    }
    let address = url.socket_addr().ok_or_else(|| Skip::NoAddress(format!("{}:{}", url.host, url.port)))?;
    if own.contains(&address) {
        return Err(Skip::Own);
    }
    Ok((EndpointSpec { address, labels: url.params.clone() }, url))
}

/// How following a session ended.
enum Ended {
    /// Shutdown, or the cluster is gone.
    Stop,
    /// The session is over: open a new one.
    SessionLost,
}

/// The discovery task of one cluster.
#[derive(Debug)]
pub struct Discovery {
    spec: DiscoverySpec,
    cluster: Weak<SharedCluster>,
    own: Arc<HashSet<SocketAddr>>,
    board: Board,
    /// Told after the first list.
    fetched: Option<oneshot::Sender<()>>,
    /// The discovered endpoints installed last.
    last: Option<Vec<EndpointSpec>>,
    /// Node names skipped and logged already (only names still listed are kept).
    skipped: HashSet<String>,
}

impl Discovery {
    /// A task filling `cluster` as `spec` says; `fetched` is told after the first list.
    pub fn new(
        spec: DiscoverySpec,
        cluster: &Arc<SharedCluster>,
        own: Arc<HashSet<SocketAddr>>,
        board: Board,
        fetched: oneshot::Sender<()>,
    ) -> Self {
        Discovery {
            spec,
            cluster: Arc::downgrade(cluster),
            own,
            board,
            fetched: Some(fetched),
            last: None,
            skipped: HashSet::new(),
        }
    }

    /// Follows the registry until `shutdown` turns true or the cluster is dropped, opening a new
    /// session whenever one is lost.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let what = format!("discovery of cluster {}", self.spec.cluster);
        loop {
            let Some(client) =
                session::connect(&self.spec.zookeeper, self.spec.session_timeout, &mut shutdown, &what).await
            else {
                return;
            };
            match self.follow(&client, &mut shutdown).await {
                Ended::Stop => return,
                Ended::SessionLost => tracing::warn!(
                    cluster = %self.spec.cluster,
                    endpoints = self.last.as_ref().map_or(0, Vec::len),
                    "ZooKeeper session lost; the last providers keep serving while a new session lists them again"
                ),
            }
        }
    }

    /// Lists and watches the providers within one session.
    async fn follow(&mut self, client: &zk::Client, shutdown: &mut watch::Receiver<bool>) -> Ended {
        let path = self.spec.providers_path();
        let mut backoff = Backoff::new();
        loop {
            if self.cluster.strong_count() == 0 {
                return Ended::Stop;
            }
            let listed = match client.get_and_watch_children(&path).await {
                Ok((children, _, watcher)) => Ok((children, watcher)),
                // No `providers` node (yet): no providers; watch for it to appear.
                Err(zk::Error::NoNode) => match client.check_and_watch_stat(&path).await {
                    Ok((Some(_), _)) => continue,
                    Ok((None, watcher)) => Ok((Vec::new(), watcher)),
                    Err(error) => Err(error),
                },
                Err(error) => Err(error),
            };
            let watcher = match listed {
                Ok((children, watcher)) => {
                    backoff.reset();
                    self.apply(&children);
                    watcher
                }
                Err(error) if session::session_over(client, &error) => return Ended::SessionLost,
                Err(error) => {
                    tracing::warn!(cluster = %self.spec.cluster, %path, %error, "cannot list the providers; trying again");
                    if session::pause_or_stop(backoff.next(), shutdown).await {
                        return Ended::Stop;
                    }
                    continue;
                }
            };
            tokio::select! {
                event = watcher.changed() => {
                    if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
                        return Ended::SessionLost;
                    }
                    // A child came or went, or the node was created or deleted: list again.
                }
                _ = session::stopped(shutdown) => return Ended::Stop,
            }
        }
    }

    /// Installs the endpoints the provider nodes `children` stand for.
    fn apply(&mut self, children: &[String]) {
        let Some(cluster) = self.cluster.upgrade() else { return };
        let listed: HashSet<&str> = children.iter().map(String::as_str).collect();
        self.skipped.retain(|name| listed.contains(name.as_str()));
        let mut found = Vec::with_capacity(children.len());
        let mut facts = Facts::default();
        for name in children {
            match provider(name, &self.spec.protocol, &self.own) {
                Ok((endpoint, url)) => {
                    facts.add(&url);
                    found.push(endpoint);
                }
                Err(skip) => {
                    if self.skipped.insert(name.clone()) {
                        if skip.is_malformed() {
                            tracing::warn!(cluster = %self.spec.cluster, node = %name, reason = %skip, "skipping a provider node");
                        } else {
                            tracing::debug!(cluster = %self.spec.cluster, node = %name, reason = %skip, "skipping a provider node");
                        }
                    }
                }
            }
        }
        found.sort_by(|a, b| (a.address, &a.labels).cmp(&(b.address, &b.labels)));
        found.dedup();
        self.board.set(&self.spec.cluster, &self.spec.interface, facts);
        let last = self.last.as_deref().unwrap_or_default();
        if found.is_empty() && !last.is_empty() && self.spec.empty_protection {
            tracing::warn!(
                cluster = %self.spec.cluster,
                endpoints = last.len(),
                "ZooKeeper lists no provider; keeping the last ones (empty_protection)"
            );
        } else if self.last.as_ref() != Some(&found) {
            let addresses = |list: &[EndpointSpec]| list.iter().map(|e| e.address).collect::<BTreeSet<_>>();
            let (before, after) = (addresses(last), addresses(&found));
            tracing::info!(
                cluster = %self.spec.cluster,
                endpoints = found.len(),
                added = ?after.difference(&before).collect::<Vec<_>>(),
                removed = ?before.difference(&after).collect::<Vec<_>>(),
                "providers from ZooKeeper"
            );
            let mut all = cluster.spec.endpoints.clone();
            all.extend(found.iter().cloned());
            cluster.set_endpoints(&all);
            self.last = Some(found);
        }
        if let Some(fetched) = self.fetched.take() {
            let _ = fetched.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::upstream::zookeeper::ZkAddress;

    fn node(url: &str) -> String {
        url::encode(url)
    }

    fn no_own() -> HashSet<SocketAddr> {
        HashSet::new()
    }

    #[test]
    fn every_parameter_becomes_a_label() {
        let name = node("dubbo://10.0.0.7:20880/com.example.DemoService?application=demo&group=g&service_group=batchjob&version=1.0.0&weight=300");
        let (endpoint, url) = provider(&name, "dubbo", &no_own()).unwrap();
        assert_eq!(endpoint.address, "10.0.0.7:20880".parse().unwrap());
        assert_eq!(endpoint.labels.get("service_group").map(String::as_str), Some("batchjob"));
        assert_eq!(endpoint.labels.get("weight").map(String::as_str), Some("300"));
        assert_eq!(endpoint.labels.len(), 5);
        assert_eq!(url.path, "com.example.DemoService");
    }

    #[test]
    fn what_is_skipped_and_why() {
        let own: HashSet<SocketAddr> = HashSet::from(["127.0.0.1:20880".parse().unwrap()]);
        let skip = |url: &str| provider(&node(url), "dubbo", &own).err();
        assert_eq!(skip("tri://10.0.0.1:1/x"), Some(Skip::Protocol("tri".into())));
        assert_eq!(skip("dubbo://10.0.0.1:1/x?enabled=false"), Some(Skip::Disabled));
        assert_eq!(skip("dubbo://10.0.0.1:1/x?disabled=true&enabled=true"), Some(Skip::Disabled));
        assert_eq!(skip("dubbo://10.0.0.1:1/x?disabled=false&enabled=false"), None, "disabled wins");
        assert_eq!(skip("dubbo://10.0.0.1:1/x?category=routers"), Some(Skip::Category("routers".into())));
        assert_eq!(skip("dubbo://10.0.0.1:1/x?category=providers"), None);
        assert_eq!(skip("dubbo://10.0.0.9:1/x?metaproxy=in"), Some(Skip::Proxy));
        assert_eq!(skip("dubbo://127.0.0.1:20880/x"), Some(Skip::Own));
        assert_eq!(skip("dubbo://provider.local:1/x"), Some(Skip::NoAddress("provider.local:1".into())));
        assert_eq!(skip("dubbo://10.0.0.1/x"), Some(Skip::NoAddress("10.0.0.1:0".into())));
        assert!(matches!(provider("dubbo%3A%2F%2F%zz", "dubbo", &own), Err(Skip::BadUrl(_))));
        assert!(matches!(provider("not-a-url", "dubbo", &own), Err(Skip::BadUrl(UrlError::NoProtocol))));
        assert!(Skip::NoAddress(String::new()).is_malformed() && !Skip::Disabled.is_malformed());
    }

    fn discovery(empty_protection: bool) -> (Arc<SharedCluster>, Discovery, oneshot::Receiver<()>) {
        // Through the configuration loader, so the test follows `ClusterSpec` as it grows.
        let yaml = r#"
listeners: [{ name: in, address: "127.0.0.1:0", protocol: dubbo }]
clusters:
  - name: c
    endpoints: [{ address: "10.9.9.9:1" }]
    subsets: [{ name: b, labels: { service_group: b } }]
"#;
        let registry = crate::default_registry().unwrap();
        let config = crate::config::load_str(yaml, "test.yaml", &registry).unwrap();
        let cluster = SharedCluster::new(config.clusters.into_iter().next().unwrap());
        let spec = DiscoverySpec {
            cluster: Arc::from("c"),
            zookeeper: ZkAddress { servers: vec!["127.0.0.1:1".into()], chroot: String::new() },
            root: "/dubbo".into(),
            interface: "x".into(),
            protocol: "dubbo".into(),
            session_timeout: Duration::from_secs(10),
            initial_fetch_timeout: Duration::from_secs(1),
            empty_protection,
        };
        let (tx, rx) = oneshot::channel();
        let d = Discovery::new(spec, &cluster, Arc::new(HashSet::new()), Board::default(), tx);
        (cluster, d, rx)
    }

    #[test]
    fn applying_swaps_the_endpoint_set_and_keeps_what_stays() {
        let (cluster, mut d, mut fetched) = discovery(true);
        let a = node("dubbo://10.0.0.1:1/x?service_group=b&methods=m1");
        let b = node("dubbo://10.0.0.2:1/x?service_group=b&methods=m2");
        let bad = "dubbo%3A%2F%2F%zz".to_string();
        d.apply(&[a.clone(), bad.clone(), b.clone()]);
        assert!(fetched.try_recv().is_ok(), "the first list is reported");
        let first = cluster.endpoints();
        assert_eq!(first.endpoints.len(), 3, "the static endpoint and two providers");
        assert_eq!(first.subsets[0].1.len(), 2);
        assert!(d.skipped.contains(&bad));
        let g = cluster.generation();
        // The same list again changes nothing: no new generation for the workers to rebuild.
        d.apply(&[b.clone(), a.clone(), bad]);
        assert_eq!(cluster.generation(), g);
        // One provider leaves: the one that stays keeps its shared state.
        d.apply(std::slice::from_ref(&a));
        let second = cluster.endpoints();
        assert_eq!(second.endpoints.len(), 2);
        assert!(Arc::ptr_eq(&first.endpoints[1], &second.endpoints[1]));
        assert!(d.skipped.is_empty(), "names no longer listed are forgotten");
        assert_eq!(d.board.facts("x").unwrap().methods.len(), 1);
        // An empty list keeps the last providers (empty protection).
        d.apply(&[]);
        assert_eq!(cluster.endpoints().endpoints.len(), 2);
    }

    #[test]
    fn without_empty_protection_an_empty_list_leaves_the_static_endpoints() {
        let (cluster, mut d, _) = discovery(false);
        d.apply(&[node("dubbo://10.0.0.1:1/x")]);
        assert_eq!(cluster.endpoints().endpoints.len(), 2);
        d.apply(&[]);
        let set = cluster.endpoints();
        assert_eq!(set.endpoints.len(), 1);
        assert_eq!(set.endpoints[0].address, "10.9.9.9:1".parse().unwrap());
    }
}
