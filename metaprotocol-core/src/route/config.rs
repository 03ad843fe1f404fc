//! The route table as written in configuration (`serde` types), before compiling.
//!
//! The shape is the one the proxy's YAML uses under `listeners[].routes`:
//!
//! ```yaml
//! - name: batchjob
//!   match:
//!     - { key: batchjob, exact: "true" }      # or prefix, suffix, contains, regex, present: true
//!     - { key: method, prefix: "get", invert: true }
//!   route: { cluster: provider, subset: batchjob }
//!   # or: weighted: [{ cluster: a, weight: 90 }, { cluster: b, subset: canary, weight: 10 }]
//!   request_mutation: [{ key: x-routed-by, value: metaproxy }, { key: debug, remove: true }]
//!   response_mutation: [{ key: x-served-by, value: batch }]
//!   mirror: { cluster: shadow, percentage: 5 }
//!   hash_keys: [userId]
//!   timeout: 3s
//!   retries: { count: 2, on: [connect_failure, reset] }
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// One route.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The route's name (unique within its table), used in logs and metrics.
    pub name: String,
    /// Conditions that must all hold; none means the route matches every request.
    #[serde(rename = "match", default)]
    pub matchers: Vec<MatcherSpec>,
    /// A single destination. Exactly one of `route` and `weighted` is required.
    #[serde(default)]
    pub route: Option<DestinationSpec>,
    /// Destinations chosen at random in proportion to their weights.
    #[serde(default)]
    pub weighted: Option<Vec<WeightedSpec>>,
    /// Key/value changes written into matching requests.
    #[serde(default)]
    pub request_mutation: Vec<MutationSpec>,
    /// Key/value changes written into their responses.
    #[serde(default)]
    pub response_mutation: Vec<MutationSpec>,
    /// A copy of a share of the traffic sent to another cluster, its responses discarded.
    #[serde(default)]
    pub mirror: Option<MirrorSpec>,
    /// Keys whose values are hashed for `ring_hash` load balancing.
    #[serde(default)]
    pub hash_keys: Vec<String>,
    /// How long the proxy waits for the response before answering with a timeout error.
    #[serde(default, deserialize_with = "duration_opt", skip_serializing)]
    pub timeout: Option<Duration>,
    /// Retry policy.
    #[serde(default)]
    pub retries: Option<RetrySpec>,
}

/// One condition on a metadata key. Exactly one of `exact`, `prefix`, `suffix`, `contains`,
/// `regex`, `present` is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherSpec {
    /// The metadata key (matched ignoring ASCII case).
    pub key: String,
    /// The value equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The value ends with this.
    #[serde(default)]
    pub suffix: Option<String>,
    /// The value contains this.
    #[serde(default)]
    pub contains: Option<String>,
    /// The whole value matches this regular expression (Rust `regex` syntax, anchored).
    #[serde(default)]
    pub regex: Option<String>,
    /// `true`: the key is present; `false`: it is absent.
    #[serde(default)]
    pub present: Option<bool>,
    /// Negates the condition.
    #[serde(default)]
    pub invert: bool,
}

/// A cluster and an optional subset of its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// The cluster's name.
    pub cluster: String,
    /// A subset defined on the cluster (endpoints selected by labels).
    #[serde(default)]
    pub subset: Option<String>,
}

/// A destination with a weight.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedSpec {
    /// The cluster's name.
    pub cluster: String,
    /// A subset of the cluster.
    #[serde(default)]
    pub subset: Option<String>,
    /// The share of traffic, relative to the other weights.
    pub weight: u32,
}

/// One key/value change: `{key, value}` sets, `{key, remove: true}` removes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MutationSpec {
    /// The key.
    pub key: String,
    /// The value to set.
    #[serde(default)]
    pub value: Option<String>,
    /// Remove the key instead.
    #[serde(default)]
    pub remove: bool,
}

/// Request mirroring.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// The cluster that receives copies.
    pub cluster: String,
    /// A subset of that cluster.
    #[serde(default)]
    pub subset: Option<String>,
    /// Share of matching requests mirrored, 0 to 100 (default 100).
    #[serde(default = "hundred")]
    pub percentage: f64,
}

fn hundred() -> f64 {
    100.0
}

/// When a request is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// The upstream connection could not be made.
    ConnectFailure,
    /// The upstream connection closed before the response arrived.
    Reset,
    /// A try exceeded `per_try_timeout`.
    PerTryTimeout,
}

/// Retry policy. One-way requests are never retried.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// How many times a request may be retried after its first try (at most 10).
    pub count: u32,
    /// The failures that trigger a retry (default: connect failures and resets).
    #[serde(default = "default_retry_on")]
    pub on: Vec<RetryOn>,
    /// A time limit per try; the route's `timeout` still bounds the whole request.
    #[serde(default, deserialize_with = "duration_opt", skip_serializing)]
    pub per_try_timeout: Option<Duration>,
}

fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::ConnectFailure, RetryOn::Reset]
}

/// Parses a duration written as `250ms`, `3s`, `1m30s` (humantime syntax).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("invalid duration `{text}`: {e}"))
}

fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let json = serde_json::json!({
            "name": "batchjob",
            "match": [{"key": "batchjob", "exact": "true"}, {"key": "m", "present": true, "invert": true}],
            "route": {"cluster": "provider", "subset": "batchjob"},
            "request_mutation": [{"key": "a", "value": "1"}, {"key": "b", "remove": true}],
            "timeout": "1500ms",
            "retries": {"count": 2}
        });
        let r: RouteSpec = serde_json::from_value(json).unwrap();
        assert_eq!(r.matchers.len(), 2);
        assert_eq!(r.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(r.retries.unwrap().on, vec![RetryOn::ConnectFailure, RetryOn::Reset]);
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_errors() {
        let e = serde_json::from_value::<RouteSpec>(serde_json::json!({"name": "x", "rout": {}})).unwrap_err();
        assert!(e.to_string().contains("unknown field `rout`"), "{e}");
        let e =
            serde_json::from_value::<RouteSpec>(serde_json::json!({"name": "x", "timeout": "3 parsecs"})).unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
    }
}
