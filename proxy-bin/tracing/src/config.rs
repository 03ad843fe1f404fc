//! A listener's `tracing:` section, as users write it, and its validated form.
//!
//! ```yaml
//! tracing:
//!   endpoint: "http://127.0.0.1:4317"   # the OTLP collector (gRPC); for http: http://host:4318[/v1/traces]
//!   protocol: grpc                      # grpc (default) | http (OTLP/HTTP, protobuf)
//!   sample_ratio: 1.0                   # requests without a context that start a trace (default 1.0)
//!   service_name: metaproxy             # the resource's service.name (default metaproxy)
//!   propagation: [w3c]                  # w3c (default), b3 (the single b3 header), b3multi (x-b3-*)
//!   batch_size: 512                     # spans a worker hands over at once (default 512)
//!   max_queue_size: 8192                # spans waiting for the exporter; past it spans are dropped
//!   flush_interval: 200ms               # a worker hands over a partial batch this often
//!   export_timeout: 5s                  # one export call to the collector (default 5s)
//!   exporter_nice: 10                   # the exporter thread's priority drop (0-19, default 10)
//! ```

use std::time::Duration;

use serde::Deserialize;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`POST /v1/traces`, port 4318 by convention).
    #[serde(alias = "http/protobuf")]
    Http,
}

impl OtlpProtocol {
    /// The configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::Http => "http",
        }
    }
}

/// A way trace context travels in a request's key/values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// W3C Trace Context: `traceparent` and `tracestate`.
    #[serde(alias = "tracecontext")]
    W3c,
    /// Zipkin B3, the single `b3` key.
    B3,
    /// Zipkin B3, the `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid` and `x-b3-sampled` keys.
    B3multi,
}

impl Propagation {
    /// The keys this format reads and writes.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Propagation::W3c => &["traceparent", "tracestate"],
            Propagation::B3 => &["b3"],
            Propagation::B3multi => &["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled"],
        }
    }
}

/// `listeners[].tracing`, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Off when false (default true): the section can stay in the file.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The collector's URL (default `http://127.0.0.1:4317` for gRPC, `http://127.0.0.1:4318/v1/traces`
    /// for HTTP; an HTTP URL without a path gets `/v1/traces`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `grpc` (default) or `http`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// The share of requests without a trace context that start a trace, 0 to 1 (default 1).
    /// Requests with a context follow its sampled flag.
    #[serde(default)]
    pub sample_ratio: Option<f64>,
    /// The `service.name` of the spans' resource (default `metaproxy`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// The formats read (first valid one wins) and written, in order (default `[w3c]`).
    #[serde(default)]
    pub propagation: Option<Vec<Propagation>>,
    /// Finished spans a worker collects before handing them to the exporter (default 512; a batch also goes once it holds 256 KiB).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Most spans waiting for the exporter (default 8192); past it new spans are dropped and
    /// counted.
    #[serde(default)]
    pub max_queue_size: Option<usize>,
    /// How often a worker hands over a batch that is not full (default 200ms).
    #[serde(default)]
    pub flush_interval: Option<String>,
    /// The longest one export call may take (default 5s); spans of a call that fails or times
    /// out are dropped and counted.
    #[serde(default)]
    pub export_timeout: Option<String>,
    /// How much the exporter thread lowers its scheduling priority (Linux `nice` increment, 0 to
    /// 19, default 10): when the CPU is saturated the workers get it first, and the spans the
    /// exporter cannot send in time are dropped and counted. 19 protects request throughput most
    /// (and drops the most spans under saturation); 0 exports most.
    #[serde(default)]
    pub exporter_nice: Option<u8>,
}

/// A configuration value that is not allowed, with the field it is in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct TracingConfigError {
    /// The field, relative to the `tracing` section.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The exporter thread's default `nice` increment.
pub const DEFAULT_EXPORTER_NICE: u8 = 10;

/// The default collector for gRPC.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
/// The default collector for HTTP.
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://127.0.0.1:4318/v1/traces";

/// What identifies an exporter: listeners whose tracing sections agree on these share one
/// exporter thread and queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExporterSpec {
    /// The collector's URL (for HTTP, with its path).
    pub endpoint: String,
    /// The transport.
    pub protocol: OtlpProtocol,
    /// The resource's `service.name`.
    pub service_name: String,
    /// Most spans waiting.
    pub max_queue_size: usize,
    /// Spans handed over at once (the queue holds `max_queue_size / batch_size` batches).
    pub batch_size: usize,
    /// The longest one export call may take.
    pub export_timeout: Duration,
    /// The exporter thread's `nice` increment.
    pub nice: u8,
}

/// A listener's validated tracing settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingSpec {
    /// Where and how spans go.
    pub exporter: ExporterSpec,
    /// The share of requests without a context that start a trace.
    pub sample_ratio: f64,
    /// Formats read and written, in order; never empty.
    pub propagation: Vec<Propagation>,
    /// How often a worker hands over a partial batch.
    pub flush_interval: Duration,
}

fn duration(value: &Option<String>, field: &'static str, default: Duration) -> Result<Duration, TracingConfigError> {
    let Some(text) = value else { return Ok(default) };
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| TracingConfigError { field, message: format!("not a duration ({e})") })?;
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(TracingConfigError { field, message: "must be more than 0s and at most 1h".into() });
    }
    Ok(d)
}

impl TracingConfig {
    /// Checks the section: `None` when it turns tracing off.
    pub fn validate(&self) -> Result<Option<TracingSpec>, TracingConfigError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let endpoint = endpoint(self.endpoint.as_deref(), self.protocol)?;
        let sample_ratio = self.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(TracingConfigError { field: "sample_ratio", message: "must be between 0 and 1".into() });
        }
        let service_name = self.service_name.clone().unwrap_or_else(|| "metaproxy".to_string());
        if service_name.trim().is_empty() {
            return Err(TracingConfigError { field: "service_name", message: "must not be empty".into() });
        }
        let mut propagation = self.propagation.clone().unwrap_or_else(|| vec![Propagation::W3c]);
        if propagation.is_empty() {
            return Err(TracingConfigError { field: "propagation", message: "needs at least one format".into() });
        }
        let mut seen = Vec::new();
        propagation.retain(|p| {
            let first = !seen.contains(p);
            seen.push(*p);
            first
        });
        let batch_size = self.batch_size.unwrap_or(512);
        if !(1..=8192).contains(&batch_size) {
            return Err(TracingConfigError { field: "batch_size", message: "must be 1 to 8192".into() });
        }
        let max_queue_size = self.max_queue_size.unwrap_or(8192);
        if max_queue_size < batch_size || max_queue_size > 1 << 22 {
            return Err(TracingConfigError {
                field: "max_queue_size",
                message: format!("must be at least batch_size ({batch_size}) and at most {}", 1 << 22),
            });
        }
        Ok(Some(TracingSpec {
            exporter: ExporterSpec {
                endpoint,
                protocol: self.protocol,
                service_name,
                max_queue_size,
                batch_size,
                export_timeout: duration(&self.export_timeout, "export_timeout", Duration::from_secs(5))?,
                nice: match self.exporter_nice {
                    None => DEFAULT_EXPORTER_NICE,
                    Some(n) if n <= 19 => n,
                    Some(_) => {
                        return Err(TracingConfigError { field: "exporter_nice", message: "must be 0 to 19".into() })
                    }
                },
            },
            sample_ratio,
            propagation,
            flush_interval: duration(&self.flush_interval, "flush_interval", Duration::from_millis(200))?,
        }))
    }
}

/// The collector URL: `http://host:port[/path]` (this build has no TLS). For HTTP, a URL without a
/// path gets `/v1/traces`, the OTLP path for traces.
fn endpoint(value: Option<&str>, protocol: OtlpProtocol) -> Result<String, TracingConfigError> {
    let err = |message: String| TracingConfigError { field: "endpoint", message };
    let Some(url) = value.map(str::trim) else {
        return Ok(match protocol {
            OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT,
            OtlpProtocol::Http => DEFAULT_HTTP_ENDPOINT,
        }
        .to_string());
    };
    if url.starts_with("https://") {
        return Err(err("https needs TLS, which this build does not include: use http://".into()));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(err(format!("`{url}` is not an http:// URL")));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let valid_authority = !authority.is_empty()
        && authority.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
        && authority.rsplit_once(':').is_none_or(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid_authority {
        return Err(err(format!("`{url}` has no valid host[:port]")));
    }
    if path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(err(format!("`{url}` has spaces or control characters in its path")));
    }
    Ok(match protocol {
        OtlpProtocol::Http if path.is_empty() || path == "/" => format!("http://{authority}/v1/traces"),
        _ => url.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(json: &str) -> TracingConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults() {
        let spec = parse("{}").validate().unwrap().unwrap();
        assert_eq!(spec.exporter.endpoint, DEFAULT_GRPC_ENDPOINT);
        assert_eq!(spec.exporter.protocol, OtlpProtocol::Grpc);
        assert_eq!(spec.exporter.service_name, "metaproxy");
        assert_eq!(spec.sample_ratio, 1.0);
        assert_eq!(spec.propagation, vec![Propagation::W3c]);
        assert_eq!(parse(r#"{"enabled": false}"#).validate(), Ok(None));
    }

    #[test]
    fn the_shape_scripts_use() {
        let c = parse(
            r#"{"endpoint": "http://127.0.0.1:4317", "protocol": "grpc", "sample_ratio": 1.0, "service_name": "metaproxy",
                "propagation": ["w3c", "b3", "b3multi", "w3c"]}"#,
        );
        let spec = c.validate().unwrap().unwrap();
        assert_eq!(spec.propagation, vec![Propagation::W3c, Propagation::B3, Propagation::B3multi]);
        let http = parse(r#"{"endpoint": "http://collector:4318", "protocol": "http", "sample_ratio": 0.01}"#);
        assert_eq!(http.validate().unwrap().unwrap().exporter.endpoint, "http://collector:4318/v1/traces");
        let custom = parse(r#"{"endpoint": "http://[::1]:4318/custom/path", "protocol": "http"}"#);
        assert_eq!(custom.validate().unwrap().unwrap().exporter.endpoint, "http://[::1]:4318/custom/path");
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (r#"{"sample_ratio": 1.5}"#, "sample_ratio"),
            (r#"{"sample_ratio": -0.1}"#, "sample_ratio"),
            (r#"{"endpoint": "https://x:4317"}"#, "endpoint"),
            (r#"{"endpoint": "grpc://x:4317"}"#, "endpoint"),
            (r#"{"endpoint": "http://:4317"}"#, "endpoint"),
            (r#"{"endpoint": "http://x:port"}"#, "endpoint"),
            (r#"{"propagation": []}"#, "propagation"),
            (r#"{"service_name": " "}"#, "service_name"),
            (r#"{"batch_size": 0}"#, "batch_size"),
            (r#"{"batch_size": 64, "max_queue_size": 10}"#, "max_queue_size"),
            (r#"{"flush_interval": "soon"}"#, "flush_interval"),
            (r#"{"export_timeout": "0s"}"#, "export_timeout"),
            (r#"{"exporter_nice": 20}"#, "exporter_nice"),
        ];
        for (json, field) in cases {
            assert_eq!(parse(json).validate().unwrap_err().field, field, "{json}");
        }
        assert!(serde_json::from_str::<TracingConfig>(r#"{"propagation": ["jaeger"]}"#).is_err());
        assert!(serde_json::from_str::<TracingConfig>(r#"{"sampling": 1}"#).is_err(), "unknown fields are refused");
    }
}
