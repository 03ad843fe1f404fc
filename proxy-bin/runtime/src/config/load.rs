//! Loading a configuration file: parse the YAML, then check everything the proxy will rely on
//! (codecs and filters exist and accept their options, routes compile, every route names a
//! cluster and subset that exist, addresses and durations parse) and build the runtime form.
//! Every error names the file, the line and the field.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use metaprotocol_core::route::config::parse_duration;
use metaprotocol_core::{ConfigError, ConfigValue, FilterChain, RouteTable};
use serde_saphyr::Spanned;

use super::model::{AccessLogConfig, Config};
pub use crate::error::LoadError;
use crate::plan::{ListenerSpec, ListenerUsage};
use crate::registry::Registry;
use crate::upstream::zookeeper::{DiscoverySpec, RegisterSpec};
use crate::upstream::{ClusterSpec, DnsSpec, EndpointSpec, HealthCheckKind, HealthCheckSpec, Limits, OutlierSpec};

/// The longest route timeout: the workers' timer wheels reach about two years ahead, and nobody
/// waits a month for an RPC.
const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);
/// A listener's `idle_timeout` when it sets none: an hour, as Envoy's.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// A listener's `frame_timeout` when it sets none.
const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// A listener's `max_buffered_bytes` when it sets none: 128 MiB.
const DEFAULT_MAX_BUFFERED_BYTES: usize = 128 << 20;

/// The largest `max_requests` a cluster may set: the workers' timer wheels hold at most 2^30
/// entries (two per request with per-try timeouts).
const MAX_REQUESTS_LIMIT: usize = 1 << 28;

/// The default admin address: loopback only.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";

/// Which configuration runs: a hash of the file's text and the time it was loaded. Logged at
/// start, served by `/config_dump`, and exported as `metaproxy_config_info{version="..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigVersion {
    /// FNV-1a (64 bits) of the configuration text, as 16 hex digits: equal files, equal versions.
    pub hash: String,
    /// When the configuration was loaded.
    pub loaded_at: std::time::SystemTime,
}

impl ConfigVersion {
    /// The version of configuration `text`, loaded now.
    pub fn of(text: &str) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        ConfigVersion { hash: format!("{h:016x}"), loaded_at: std::time::SystemTime::now() }
    }

    /// The load time in RFC 3339 (UTC, seconds).
    pub fn loaded_at_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(self.loaded_at).to_string()
    }
}

/// A whole validated configuration.
#[derive(Debug)]
pub struct ProxyConfig {
    /// Which configuration this is.
    pub version: ConfigVersion,
    /// The file as written, as JSON (what `/config_dump` shows besides the values in force).
    pub source: serde_json::Value,
    /// Admin address.
    pub admin: Option<SocketAddr>,
    /// Worker threads.
    pub workers: usize,
    /// Drain timeout.
    pub drain_timeout: Duration,
    /// Access log settings (checked: its format compiles).
    pub access_log: AccessLogConfig,
    /// Listeners.
    pub listeners: Vec<ListenerSpec>,
    /// Clusters, in file order.
    pub clusters: Vec<ClusterSpec>,
    /// Clusters whose endpoints a ZooKeeper registry lists (`clusters[].registry`).
    pub discovery: Vec<DiscoverySpec>,
    /// Listeners registered in ZooKeeper (`listeners[].register`).
    pub registrations: Vec<RegisterSpec>,
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err<T>(&self, at: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.to_string(),
            line: at.referenced.line() as usize,
            field: field.into(),
            message: message.into(),
        }
    }

    fn config_err<T>(&self, at: &Spanned<T>, outer: &str, e: ConfigError) -> LoadError {
        match e.within(outer) {
            ConfigError::Invalid { field, message } => self.err(at, field, message),
            other => self.err(at, outer, other.to_string()),
        }
    }

    fn duration(&self, v: &Option<Spanned<String>>, field: &str, default: Duration) -> Result<Duration, LoadError> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(&s.value).map_err(|m| self.err(s, field, m)),
        }
    }
}

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path, registry: &Registry) -> Result<ProxyConfig, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: file.clone(),
        line: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    load_str(&text, &file, registry)
}

/// Validates configuration `text`, naming it `file` in errors.
pub fn load_str(text: &str, file: &str, registry: &Registry) -> Result<ProxyConfig, LoadError> {
    let raw: Config = serde_saphyr::from_str(text).map_err(|e| {
        // serde-saphyr says "error: line L column C: what" and then quotes the lines around it.
        let full = e.to_string();
        let message =
            full.split_once(": ").filter(|(head, _)| head.contains("line ")).map_or(full.as_str(), |(_, m)| m);
        let message = message.strip_prefix("error: ").unwrap_or(message).to_string();
        let line = full
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        LoadError { file: file.to_string(), line, field: String::new(), message }
    })?;
    let cx = Ctx { file };
    let clusters = clusters(&cx, &raw)?;
    let listeners = listeners(&cx, &raw, registry, &clusters)?;
    let discovery = super::zookeeper::discovery(&raw, file)?;
    let registrations = super::zookeeper::registrations(&raw, file)?;
    let workers = match &raw.workers {
        Some(w) if w.value == 0 => return Err(cx.err(w, "workers", "must be at least 1")),
        Some(w) => w.value,
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let admin = match raw.admin.as_ref().map(|a| a.address.as_ref()) {
        None => None,
        Some(None) => DEFAULT_ADMIN_ADDRESS.parse().ok(),
        Some(Some(a)) => Some(a.value.parse().map_err(|e| cx.err(a, "admin.address", format!("not an address: {e}")))?),
    };
    let access_log = match raw.access_log {
        None => AccessLogConfig::default(),
        Some(a) => {
            if let Err(e) = a.value.compile() {
                let field = e.field().map_or_else(|| "access_log".to_string(), |f| format!("access_log.{f}"));
                return Err(cx.err(&a, field, e.to_string()));
            }
            a.value
        }
    };
    // The same text as plain JSON for `/config_dump` (it parsed above, so it parses here).
    let source = serde_saphyr::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::Null);
    Ok(ProxyConfig {
        version: ConfigVersion::of(text),
        source,
        admin,
        workers,
        drain_timeout: cx.duration(&raw.drain_timeout, "drain_timeout", Duration::from_secs(10))?,
        access_log,
        listeners,
        clusters,
        discovery,
        registrations,
    })
}

fn clusters(cx: &Ctx<'_>, raw: &Config) -> Result<Vec<ClusterSpec>, LoadError> {
    let mut out: Vec<ClusterSpec> = Vec::new();
    for (i, c) in raw.clusters.iter().enumerate() {
        let at = format!("clusters[{i}]");
        let v = &c.value;
        if v.name.trim().is_empty() {
            return Err(cx.err(c, format!("{at}.name"), "must not be empty"));
        }
        let mut endpoints = Vec::new();
        for (j, e) in v.endpoints.iter().enumerate() {
            let address = e.value.address.parse().map_err(|err| {
                cx.err(
                    e,
                    format!("{at}.endpoints[{j}].address"),
                    format!("`{}` is not an IP address and port ({err}); use `dns` for names", e.value.address),
                )
            })?;
            endpoints.push(EndpointSpec { address, labels: e.value.labels.clone() });
        }
        let dns = match &v.dns {
            None => None,
            Some(d) => {
                if !d.value.address.contains(':') {
                    return Err(cx.err(d, format!("{at}.dns.address"), "needs a port: `name:port`"));
                }
                let refresh = match &d.value.refresh {
                    None => Duration::from_secs(5),
                    Some(r) => parse_duration(r).map_err(|m| cx.err(d, format!("{at}.dns.refresh"), m))?,
                };
                Some(DnsSpec { address: d.value.address.clone(), refresh, labels: d.value.labels.clone() })
            }
        };
        if endpoints.is_empty() && dns.is_none() && v.registry.is_none() {
            return Err(cx.err(c, at, "needs `endpoints`, `dns` or `registry`"));
        }
        let mut subsets = BTreeMap::new();
        for (j, s) in v.subsets.iter().enumerate() {
            if subsets.insert(s.value.name.clone(), s.value.labels.clone()).is_some() {
                return Err(cx.err(
                    s,
                    format!("{at}.subsets[{j}].name"),
                    format!("duplicate subset `{}`", s.value.name),
                ));
            }
        }
        let per_endpoint = v.connections_per_endpoint.unwrap_or(1);
        if per_endpoint == 0 {
            return Err(cx.err(c, format!("{at}.connections_per_endpoint"), "must be at least 1"));
        }
        let b = &v.circuit_breakers;
        let limit = |value: &Option<Spanned<usize>>, name: &str, default: usize, min: usize| match value {
            None => Ok(default),
            Some(n) if n.value < min => {
                Err(cx.err(n, format!("{at}.circuit_breakers.{name}"), format!("must be at least {min}")))
            }
            Some(n) if n.value > MAX_REQUESTS_LIMIT => {
                Err(cx.err(n, format!("{at}.circuit_breakers.{name}"), format!("must be at most {MAX_REQUESTS_LIMIT}")))
            }
            Some(n) => Ok(n.value),
        };
        let health_check = match &v.health_check {
            None => None,
            Some(h) => Some(health_check(cx, h, &at)?),
        };
        let outlier_detection = match &v.outlier_detection {
            None => None,
            Some(o) => Some(outlier_detection(cx, o, &at)?),
        };
        let healthy_panic_threshold = match &v.healthy_panic_threshold {
            None => 50,
            Some(t) => u8::try_from(t.value)
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| cx.err(t, format!("{at}.healthy_panic_threshold"), "must be a percentage, 0 to 100"))?,
        };
        let spec = ClusterSpec {
            health_check,
            outlier_detection,
            healthy_panic_threshold,
            name: Arc::from(v.name.as_str()),
            lb: v.lb,
            connect_timeout: cx.duration(
                &v.connect_timeout,
                &format!("{at}.connect_timeout"),
                Duration::from_secs(1),
            )?,
            endpoints,
            dns,
            subsets,
            connections_per_endpoint: per_endpoint,
            limits: Limits {
                max_connections: limit(&b.max_connections, "max_connections", 1024, 1)?,
                max_pending_requests: limit(&b.max_pending_requests, "max_pending_requests", 1024, 1)?,
                max_requests: limit(&b.max_requests, "max_requests", 65_536, 1)?,
            },
        };
        if out.iter().any(|o| o.name == spec.name) {
            return Err(cx.err(c, format!("{at}.name"), format!("duplicate cluster `{}`", v.name)));
        }
        out.push(spec);
    }
    Ok(out)
}

/// A positive duration, `default` when not set.
fn positive(
    cx: &Ctx<'_>,
    at: &Spanned<impl Sized>,
    value: &Option<String>,
    field: &str,
    default: Duration,
) -> Result<Duration, LoadError> {
    let d = match value {
        None => default,
        Some(text) => parse_duration(text).map_err(|m| cx.err(at, field, m))?,
    };
    if d.is_zero() {
        return Err(cx.err(at, field, "must be more than 0s"));
    }
    if d > MAX_TIMEOUT {
        return Err(cx.err(at, field, format!("must be at most {}", humantime::format_duration(MAX_TIMEOUT))));
    }
    Ok(d)
}

fn health_check(
    cx: &Ctx<'_>,
    h: &Spanned<super::model::HealthCheckConfig>,
    at: &str,
) -> Result<HealthCheckSpec, LoadError> {
    let v = &h.value;
    let at_least_one = |n: Option<u32>, name: &str, default: u32| match n {
        None => Ok(default),
        Some(0) => Err(cx.err(h, format!("{at}.health_check.{name}"), "must be at least 1")),
        Some(n) => Ok(n),
    };
    let field = format!("{at}.health_check.request");
    let request = match &v.request {
        None => None,
        Some(r) => Some(health_check_request(cx, h, r, &field)?),
    };
    let kind = match (v.kind, &request) {
        (None, Some(_)) | (Some(HealthCheckKind::Request), Some(_)) => HealthCheckKind::Request,
        (Some(HealthCheckKind::Request), None) => {
            return Err(cx.err(
                h,
                field,
                "`kind: request` needs the request to send (`request: { hex: ... }` or `{ file: ... }`)",
            ))
        }
        (Some(kind), Some(_)) => {
            return Err(cx.err(h, field, format!("a request is only sent by `kind: request`, not `{}`", kind.as_str())))
        }
        (kind, None) => kind.unwrap_or_default(),
    };
    Ok(HealthCheckSpec {
        interval: positive(cx, h, &v.interval, &format!("{at}.health_check.interval"), Duration::from_secs(5))?,
        timeout: positive(cx, h, &v.timeout, &format!("{at}.health_check.timeout"), Duration::from_secs(1))?,
        unhealthy_threshold: at_least_one(v.unhealthy_threshold, "unhealthy_threshold", 2)?,
        healthy_threshold: at_least_one(v.healthy_threshold, "healthy_threshold", 1)?,
        kind,
        request,
    })
}

/// The frame of a `request` health check: `hex` or `file`, exactly one.
fn health_check_request(
    cx: &Ctx<'_>,
    h: &Spanned<super::model::HealthCheckConfig>,
    r: &super::model::HealthCheckRequestConfig,
    field: &str,
) -> Result<bytes::Bytes, LoadError> {
    let bytes = match (&r.hex, &r.file) {
        (Some(text), None) => {
            let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            hex::decode(digits).map_err(|e| cx.err(h, format!("{field}.hex"), format!("not hexadecimal: {e}")))?
        }
        (None, Some(file)) => {
            let path = Path::new(cx.file).parent().unwrap_or(Path::new(".")).join(file);
            std::fs::read(&path)
                .map_err(|e| cx.err(h, format!("{field}.file"), format!("cannot read {}: {e}", path.display())))?
        }
        _ => return Err(cx.err(h, field, "give exactly one of `hex` and `file`")),
    };
    if bytes.is_empty() {
        return Err(cx.err(h, field, "the request is empty"));
    }
    Ok(bytes.into())
}

fn outlier_detection(
    cx: &Ctx<'_>,
    o: &Spanned<super::model::OutlierDetectionConfig>,
    at: &str,
) -> Result<OutlierSpec, LoadError> {
    let v = &o.value;
    let field = |name: &str| format!("{at}.outlier_detection.{name}");
    let consecutive_errors = match v.consecutive_5xx {
        None => 5,
        Some(0) => return Err(cx.err(o, field("consecutive_5xx"), "must be at least 1")),
        Some(n) => n,
    };
    let max_ejection_percent = match v.max_ejection_percent {
        None => 10,
        Some(p) => u8::try_from(p)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| cx.err(o, field("max_ejection_percent"), "must be a percentage, 0 to 100"))?,
    };
    Ok(OutlierSpec {
        consecutive_errors,
        interval: positive(cx, o, &v.interval, &field("interval"), Duration::from_secs(10))?,
        base_ejection_time: positive(
            cx,
            o,
            &v.base_ejection_time,
            &field("base_ejection_time"),
            Duration::from_secs(30),
        )?,
        max_ejection_percent,
    })
}

fn listeners(
    cx: &Ctx<'_>,
    raw: &Config,
    registry: &Registry,
    clusters: &[ClusterSpec],
) -> Result<Vec<ListenerSpec>, LoadError> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    if raw.listeners.is_empty() {
        return Err(LoadError {
            file: cx.file.to_string(),
            line: 1,
            field: "listeners".into(),
            message: "needs at least one listener".into(),
        });
    }
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        let at = format!("listeners[{i}]");
        let v = &l.value;
        if !names.insert(v.name.clone()) {
            return Err(cx.err(l, format!("{at}.name"), format!("duplicate listener `{}`", v.name)));
        }
        let address: SocketAddr = v
            .address
            .value
            .parse()
            .map_err(|e| cx.err(&v.address, format!("{at}.address"), format!("not an address: {e}")))?;
        // Every listener binds with SO_REUSEPORT, so two on one port would both bind, and the
        // kernel would split the port's connections between them.
        let clash = |other: &SocketAddr| {
            address.port() != 0
                && other.port() == address.port()
                && (other.ip() == address.ip() || other.ip().is_unspecified() || address.ip().is_unspecified())
        };
        if let Some(j) = addresses.iter().position(clash) {
            return Err(cx.err(
                &v.address,
                format!("{at}.address"),
                format!("port {} is also listeners[{j}]'s: each listener needs a port of its own", address.port()),
            ));
        }
        addresses.push(address);
        let options = v.codec.as_ref().map(|c| c.value.clone()).unwrap_or(ConfigValue::Null);
        let protocol = registry.configure_codec(&v.protocol.value, &options).map_err(|e| match (&v.codec, e) {
            (Some(c), e @ ConfigError::Invalid { .. }) => cx.config_err(c, &format!("{at}.codec"), e),
            (_, e) => cx.err(&v.protocol, format!("{at}.protocol"), e.to_string()),
        })?;
        let mut filters = Vec::new();
        for (j, f) in v.filters.iter().enumerate() {
            let cfg = f.value.config.clone().unwrap_or(ConfigValue::Null);
            let filter = registry
                .configure_filter(&f.value.name, &cfg)
                .map_err(|e| cx.config_err(f, &format!("{at}.filters[{j}]"), e))?;
            filters.push(filter);
        }
        let specs: Vec<_> = v.routes.iter().map(|r| r.value.clone()).collect();
        for (n, r) in v.routes.iter().enumerate() {
            let per_try = r.value.retries.as_ref().and_then(|t| t.per_try_timeout);
            for (name, t) in [("timeout", r.value.timeout), ("retries.per_try_timeout", per_try)] {
                if t.is_some_and(|t| t > MAX_TIMEOUT) {
                    return Err(cx.err(
                        r,
                        format!("{at}.routes[{n}].{name}"),
                        format!("must be at most {}", humantime::format_duration(MAX_TIMEOUT)),
                    ));
                }
            }
        }
        let routes = RouteTable::compile(&specs).map_err(|e| {
            let (field, message) = match &e {
                ConfigError::Invalid { field, message } => (field.clone(), message.clone()),
                other => (String::new(), other.to_string()),
            };
            // The route table names the route as `routes[N]`: point at that route's line.
            let n: usize = field
                .strip_prefix("routes[")
                .and_then(|r| r.split(']').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            match v.routes.get(n) {
                Some(r) => cx.err(r, format!("{at}.{field}"), message),
                None => cx.err(l, format!("{at}.{field}"), message),
            }
        })?;
        for (n, r) in v.routes.iter().enumerate() {
            for (route, dest) in routes.destinations().filter(|(route, _)| *route.name == *r.value.name) {
                let cluster = clusters.iter().find(|c| c.name == dest.cluster).ok_or_else(|| {
                    cx.err(
                        r,
                        format!("{at}.routes[{n}]"),
                        format!("route `{}` names cluster `{}`, which is not defined", route.name, dest.cluster),
                    )
                })?;
                if let Some(subset) = &dest.subset {
                    if !cluster.subsets.contains_key(&**subset) {
                        return Err(cx.err(
                            r,
                            format!("{at}.routes[{n}]"),
                            format!("cluster `{}` has no subset `{subset}`", dest.cluster),
                        ));
                    }
                }
            }
        }
        drop(routes);
        let optional = |d: Duration| (!d.is_zero()).then_some(d);
        let idle_timeout =
            optional(cx.duration(&v.idle_timeout, &format!("{at}.idle_timeout"), DEFAULT_IDLE_TIMEOUT)?);
        let frame_timeout =
            optional(cx.duration(&v.frame_timeout, &format!("{at}.frame_timeout"), DEFAULT_FRAME_TIMEOUT)?);
        for (value, name) in [(&v.idle_timeout, "idle_timeout"), (&v.frame_timeout, "frame_timeout")] {
            if let Some(d) = value {
                if parse_duration(&d.value).is_ok_and(|t| t > MAX_TIMEOUT) {
                    let most = humantime::format_duration(MAX_TIMEOUT);
                    return Err(cx.err(d, format!("{at}.{name}"), format!("must be at most {most}")));
                }
            }
        }
        let at_least_one = |value: &Option<Spanned<usize>>, name: &str| match value {
            Some(n) if n.value == 0 => Err(cx.err(n, format!("{at}.{name}"), "must be at least 1")),
            other => Ok(other.as_ref().map(|n| n.value)),
        };
        let max_connections = at_least_one(&v.max_connections, "max_connections")?;
        let max_buffered_bytes =
            at_least_one(&v.max_buffered_bytes, "max_buffered_bytes")?.unwrap_or(DEFAULT_MAX_BUFFERED_BYTES);
        let tracing = match &v.tracing {
            None => None,
            Some(t) => t.value.validate().map_err(|e| cx.err(t, format!("{at}.tracing.{}", e.field), e.message))?,
        };
        out.push(ListenerSpec {
            name: Arc::from(v.name.as_str()),
            address,
            protocol,
            filters: FilterChain::new(filters),
            routes: specs,
            max_requests_per_connection: v.max_requests_per_connection.unwrap_or(1024).max(1),
            idle_timeout,
            frame_timeout,
            max_connections,
            max_buffered_bytes,
            usage: Arc::new(ListenerUsage::default()),
            tracing,
        });
    }
    Ok(out)
}
