//! Validation of the ZooKeeper settings: `clusters[].registry` (discovery) and
//! `listeners[].register` (registration), into [`DiscoverySpec`]s and [`RegisterSpec`]s.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use metaprotocol_core::route::config::parse_duration;
use serde_saphyr::Spanned;

use super::model::{Config, RegisterConfig, RegistryConfig};
use super::LoadError;
use crate::upstream::zookeeper::{
    check_name, check_path, Advertise, DiscoverySpec, RegisterSpec, SpecError, ZkAddress, DEFAULT_ROOT,
};

/// The session timeout asked for when none is set.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the start waits for a cluster's first list of providers when nothing is set.
const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest session timeout or initial wait accepted.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Builds errors at one configuration node.
struct At<'a, T> {
    file: &'a str,
    node: &'a Spanned<T>,
    field: String,
}

impl<T> At<'_, T> {
    fn err(&self, field: &str, message: impl std::fmt::Display) -> LoadError {
        LoadError {
            file: self.file.to_string(),
            line: self.node.referenced.line() as usize,
            field: format!("{}{field}", self.field),
            message: message.to_string(),
        }
    }

    fn spec<V>(&self, field: &str, r: Result<V, SpecError>) -> Result<V, LoadError> {
        r.map_err(|e| self.err(field, e))
    }

    fn duration(
        &self,
        field: &str,
        text: &Option<String>,
        default: Duration,
        min: Duration,
    ) -> Result<Duration, LoadError> {
        let d = match text {
            None => return Ok(default),
            Some(t) => parse_duration(t).map_err(|m| self.err(field, m))?,
        };
        if d < min || d > MAX_WAIT {
            let range = format!("{} to {}", humantime::format_duration(min), humantime::format_duration(MAX_WAIT));
            return Err(self.err(field, format!("must be {range}")));
        }
        Ok(d)
    }

    fn root(&self, root: &Option<String>) -> Result<String, LoadError> {
        match root {
            None => Ok(DEFAULT_ROOT.to_string()),
            Some(r) => self.spec(".root", check_path(r)).map(|()| r.clone()),
        }
    }
}

/// Every cluster's `registry:`, validated. A cluster with `registry` has no `dns` (both would
/// replace its endpoints).
pub(super) fn discovery(raw: &Config, file: &str) -> Result<Vec<DiscoverySpec>, LoadError> {
    let mut out = Vec::new();
    for (i, c) in raw.clusters.iter().enumerate() {
        let Some(registry) = &c.value.registry else { continue };
        let at = At { file, node: registry, field: format!("clusters[{i}].registry") };
        if c.value.dns.is_some() {
            return Err(at.err("", "a cluster takes its endpoints from `dns` or from `registry`, not both"));
        }
        out.push(discovery_spec(&at, &c.value.name, &registry.value)?);
    }
    Ok(out)
}

fn discovery_spec(at: &At<'_, RegistryConfig>, cluster: &str, v: &RegistryConfig) -> Result<DiscoverySpec, LoadError> {
    let protocol = v.protocol.clone().unwrap_or_else(|| "dubbo".to_string());
    at.spec(".protocol", check_name(&protocol))?;
    Ok(DiscoverySpec {
        cluster: Arc::from(cluster),
        zookeeper: at.spec(".zookeeper", ZkAddress::parse(&v.zookeeper))?,
        root: at.root(&v.root)?,
        interface: at.spec(".interface", check_name(&v.interface)).map(|()| v.interface.clone())?,
        protocol,
        session_timeout: at.duration(
            ".session_timeout",
            &v.session_timeout,
            DEFAULT_SESSION_TIMEOUT,
            Duration::from_secs(1),
        )?,
        initial_fetch_timeout: at.duration(
            ".initial_fetch_timeout",
            &v.initial_fetch_timeout,
            DEFAULT_INITIAL_FETCH_TIMEOUT,
            Duration::ZERO,
        )?,
        empty_protection: v.empty_protection.unwrap_or(true),
    })
}

/// Every listener's `register:`, validated. Only Dubbo listeners register (the node is a
/// `dubbo://` URL).
pub(super) fn registrations(raw: &Config, file: &str) -> Result<Vec<RegisterSpec>, LoadError> {
    let mut out = Vec::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        let Some(register) = &l.value.register else { continue };
        let at = At { file, node: register, field: format!("listeners[{i}].register") };
        if l.value.protocol.value != "dubbo" {
            return Err(at.err("", format!("only a `dubbo` listener registers, not `{}`", l.value.protocol.value)));
        }
        out.push(register_spec(&at, &l.value.name, &register.value)?);
    }
    Ok(out)
}

fn register_spec(at: &At<'_, RegisterConfig>, listener: &str, v: &RegisterConfig) -> Result<RegisterSpec, LoadError> {
    if v.interfaces.is_empty() {
        return Err(at.err(".interfaces", "needs at least one interface"));
    }
    for (j, interface) in v.interfaces.iter().enumerate() {
        at.spec(&format!(".interfaces[{j}]"), check_name(interface))?;
        if v.interfaces.iter().take(j).any(|i| i == interface) {
            return Err(at.err(&format!(".interfaces[{j}]"), format!("`{interface}` is listed twice")));
        }
    }
    if let Some(methods) = &v.methods {
        if methods.is_empty() {
            return Err(at.err(".methods", "needs at least one method (leave it out for the default)"));
        }
        for (j, m) in methods.iter().enumerate() {
            at.spec(&format!(".methods[{j}]"), check_name(m))?;
        }
    }
    for (field, value) in [(".version", &v.version), (".group", &v.group), (".application", &v.application)] {
        if let Some(value) = value {
            at.spec(field, check_name(value))?;
        }
    }
    for (key, value) in &v.parameters {
        let field = format!(".parameters.{key}");
        at.spec(&field, check_name(key))?;
        if RegisterSpec::RESERVED.contains(&key.as_str()) {
            return Err(at.err(&field, format!("`{key}` is written by the registration itself")));
        }
        if value.chars().any(|c| c.is_control() || matches!(c, '&' | '#')) {
            return Err(at.err(&field, "has `&`, `#` or a control character"));
        }
    }
    let advertise_address = match &v.advertise_address {
        None => None,
        Some(text) => Some(advertise(text).ok_or_else(|| {
            at.err(".advertise_address", format!("`{text}` is not an IP address, or an IP address and port, of a host"))
        })?),
    };
    Ok(RegisterSpec {
        listener: Arc::from(listener),
        zookeeper: at.spec(".zookeeper", ZkAddress::parse(&v.zookeeper))?,
        root: at.root(&v.root)?,
        interfaces: v.interfaces.clone(),
        methods: v.methods.clone(),
        version: v.version.clone(),
        group: v.group.clone(),
        application: v.application.clone().unwrap_or_else(|| "metaproxy".to_string()),
        advertise_address,
        parameters: v.parameters.clone(),
        session_timeout: at.duration(
            ".session_timeout",
            &v.session_timeout,
            DEFAULT_SESSION_TIMEOUT,
            Duration::from_secs(1),
        )?,
    })
}

/// `ip` or `ip:port`; not an unspecified address (clients cannot call `0.0.0.0`), not port 0.
fn advertise(text: &str) -> Option<Advertise> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return (!ip.is_unspecified()).then_some(Advertise::Ip(ip));
    }
    let address: SocketAddr = text.parse().ok()?;
    (!address.ip().is_unspecified() && address.port() != 0).then_some(Advertise::Socket(address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn load(listener_extra: &str, cluster_extra: &str) -> Result<crate::config::ProxyConfig, LoadError> {
        let yaml = format!(
            r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
{listener_extra}
    routes: [{{ name: all, route: {{ cluster: c }} }}]
clusters:
  - name: c
{cluster_extra}
"#
        );
        load_str(&yaml, "t.yaml", &crate::default_registry().unwrap())
    }

    #[test]
    fn the_issue_shape_loads() {
        let cfg = load(
            "    register: { zookeeper: [\"127.0.0.1:2181\"], interfaces: [com.example.DemoService] }",
            "    registry: { zookeeper: [\"127.0.0.1:2181/backend\"], interface: com.example.DemoService }\n    subsets:\n      - { name: batchjob, labels: { service_group: batchjob } }",
        )
        .unwrap();
        let d = &cfg.discovery[0];
        assert_eq!(&*d.cluster, "c");
        assert_eq!(d.providers_path(), "/backend/dubbo/com.example.DemoService/providers");
        assert_eq!(
            (d.session_timeout, d.initial_fetch_timeout),
            (DEFAULT_SESSION_TIMEOUT, DEFAULT_INITIAL_FETCH_TIMEOUT)
        );
        assert!(d.empty_protection);
        assert_eq!(d.protocol, "dubbo");
        let r = &cfg.registrations[0];
        assert_eq!(&*r.listener, "in");
        assert_eq!(r.zookeeper.chroot, "");
        assert_eq!(r.interfaces, ["com.example.DemoService"]);
        assert_eq!((r.methods.as_ref(), r.version.as_ref(), r.application.as_str()), (None, None, "metaproxy"));
    }

    #[test]
    fn every_field() {
        let cfg = load(
            r#"    register:
      zookeeper: ["zk1:2181", "zk2:2181/front"]
      interfaces: [a.B, a.C]
      methods: [sayHello, add]
      version: 1.0.0
      group: g
      application: gateway
      advertise_address: 10.0.0.5
      parameters: { weight: "200", service_group: edge }
      root: /dubbo-gray
      session_timeout: 4s"#,
            r#"    registry: { zookeeper: ["zk:2181"], interface: a.B, root: /r, protocol: tri, session_timeout: 3s, initial_fetch_timeout: 0s, empty_protection: false }"#,
        )
        .unwrap();
        let r = &cfg.registrations[0];
        assert_eq!(r.zookeeper.connect_string(), "zk1:2181,zk2:2181");
        assert_eq!(r.zookeeper.chroot, "/front");
        assert_eq!(r.advertise_address, Some(Advertise::Ip("10.0.0.5".parse().unwrap())));
        assert_eq!(r.parameters.len(), 2);
        assert_eq!((r.root.as_str(), r.session_timeout), ("/dubbo-gray", Duration::from_secs(4)));
        let d = &cfg.discovery[0];
        assert_eq!((d.root.as_str(), d.protocol.as_str(), d.empty_protection), ("/r", "tri", false));
        assert!(d.initial_fetch_timeout.is_zero());
        // A cluster with only `registry` needs no endpoints.
        assert!(cfg.clusters[0].endpoints.is_empty());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            ("", "    registry: { zookeeper: [], interface: x }", "clusters[0].registry.zookeeper: must not be empty"),
            (
                "",
                "    registry: { zookeeper: [\"zk\"], interface: x }",
                "clusters[0].registry.zookeeper: `zk` is not `host:port`: no port",
            ),
            ("", "    registry: { zookeeper: [\"zk:1/a\", \"zk:2/b\"], interface: x }", "two chroots"),
            ("", "    registry: { zookeeper: [\"zk:1\"], interface: \"a/b\" }", "clusters[0].registry.interface"),
            ("", "    registry: { zookeeper: [\"zk:1\"], interface: x, root: dubbo }", "clusters[0].registry.root"),
            (
                "",
                "    registry: { zookeeper: [\"zk:1\"], interface: x, session_timeout: 10ms }",
                "clusters[0].registry.session_timeout: must be 1s to 10m",
            ),
            ("", "    registry: { zookeeper: [\"zk:1\"], interface: x }\n    dns: { address: \"a:1\" }", "not both"),
            ("", "    registry: { zookeeper: [\"zk:1\"], interface: x, extra: 1 }", "unknown field"),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [] }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.interfaces: needs at least one",
            ),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [x, x] }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.interfaces[1]: `x` is listed twice",
            ),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [x], methods: [] }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.methods",
            ),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [x], methods: [\"a,b\"] }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.methods[0]",
            ),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [x], version: \"1 0\" }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.version",
            ),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [x], parameters: { side: consumer } }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.parameters.side: `side` is written by the registration itself",
            ),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [x], advertise_address: 0.0.0.0 }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.advertise_address",
            ),
            (
                "    register: { zookeeper: [\"zk:1\"], interfaces: [x], advertise_address: host.example }",
                "    endpoints: [{ address: \"127.0.0.1:1\" }]",
                "listeners[0].register.advertise_address",
            ),
            ("", "", "needs `endpoints`, `dns` or `registry`"),
        ];
        for (listener, cluster, expected) in cases {
            let err = load(listener, cluster).err().unwrap_or_else(|| panic!("accepted: {listener} / {cluster}"));
            assert!(err.to_string().contains(expected), "{err} does not say {expected}");
        }
    }

    #[test]
    fn only_dubbo_listeners_register() {
        let yaml = r#"
listeners:
  - name: t
    address: 127.0.0.1:0
    protocol: thrift
    register: { zookeeper: ["zk:1"], interfaces: [x] }
clusters: [{ name: c, endpoints: [{ address: "127.0.0.1:1" }] }]
"#;
        let err = load_str(yaml, "t.yaml", &crate::default_registry().unwrap()).unwrap_err();
        assert!(err.to_string().contains("only a `dubbo` listener registers"), "{err}");
    }

    #[test]
    fn advertise_forms() {
        assert_eq!(advertise("10.0.0.1"), Some(Advertise::Ip("10.0.0.1".parse().unwrap())));
        assert_eq!(advertise("::1"), Some(Advertise::Ip("::1".parse().unwrap())));
        assert_eq!(advertise("10.0.0.1:20880"), Some(Advertise::Socket("10.0.0.1:20880".parse().unwrap())));
        assert_eq!(advertise("10.0.0.1:0"), None);
        assert_eq!(advertise("[::]:1"), None);
        assert_eq!(advertise("name:1"), None);
    }
}
