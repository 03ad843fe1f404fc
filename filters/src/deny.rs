//! The `deny` filter: answers requests that match a rule with a denial, before routing.
//!
//! ```yaml
//! filters:
//!   - name: deny
//!     config:
//!       message: "batch jobs may not call the admin service"   # optional
//!       rules:                                                 # any rule matching denies
//!         - match:                                             # all matchers must hold
//!             - { key: batchjob, exact: "true" }
//!             - { key: interface, prefix: org.demo.Admin }
//! ```

use std::sync::Arc;

use metaprotocol_core::route::{Matcher, MatcherSpec};
use metaprotocol_core::{
    parse_config, ConfigError, ConfigValue, Filter, FilterAction, FilterFactory, FilterResult, LocalReply, ReplyKind,
    RequestContext,
};
use serde::Deserialize;

/// The filter's configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyConfig {
    /// Rules; a request matching any of them is denied.
    pub rules: Vec<DenyRule>,
    /// The text of the denial (default: "denied by rule N").
    #[serde(default)]
    pub message: Option<String>,
}

/// One rule: an AND of matchers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyRule {
    /// The matchers, as in a route's `match`.
    #[serde(rename = "match")]
    pub matchers: Vec<MatcherSpec>,
}

/// The compiled filter.
#[derive(Debug)]
pub struct Deny {
    rules: Vec<Vec<Matcher>>,
    message: Option<String>,
}

impl Deny {
    /// Compiles a configuration.
    pub fn new(config: &DenyConfig) -> Result<Self, ConfigError> {
        if config.rules.is_empty() {
            return Err(ConfigError::invalid("rules", "needs at least one rule"));
        }
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if r.matchers.is_empty() {
                    return Err(ConfigError::invalid(format!("rules[{i}].match"), "needs at least one matcher"));
                }
                r.matchers
                    .iter()
                    .enumerate()
                    .map(|(j, m)| Matcher::compile(m).map_err(|e| e.within(&format!("rules[{i}].match[{j}]"))))
                    .collect()
            })
            .collect::<Result<_, _>>()?;
        Ok(Deny { rules, message: config.message.clone() })
    }
}

impl Filter for Deny {
    fn name(&self) -> &str {
        "deny"
    }

    fn on_request(&self, ctx: &mut RequestContext) -> FilterResult {
        let hit = self.rules.iter().position(|rule| rule.iter().all(|m| m.matches(&ctx.request)));
        match hit {
            None => FilterResult::proceed(),
            Some(i) => {
                let message = self.message.clone().unwrap_or_else(|| format!("denied by rule {i}"));
                FilterAction::Reply(LocalReply::new(ReplyKind::Denied, message)).into()
            }
        }
    }
}

/// Registers [`Deny`] as `deny`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DenyFactory;

impl FilterFactory for DenyFactory {
    fn name(&self) -> &'static str {
        "deny"
    }

    fn configure(&self, config: &ConfigValue) -> Result<Arc<dyn Filter>, ConfigError> {
        let config: DenyConfig = parse_config(config)?;
        Ok(Arc::new(Deny::new(&config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use metaprotocol_core::{MessageType, Metadata};

    fn ctx(pairs: &[(&'static str, &'static str)]) -> RequestContext {
        let mut m = Metadata::new(MessageType::Request, 1);
        for (k, v) in pairs {
            m.kvs.push_bytes(Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes()));
        }
        RequestContext::new(m)
    }

    fn filter() -> Arc<dyn Filter> {
        DenyFactory
            .configure(&serde_json::json!({"rules": [
                {"match": [{"key": "batchjob", "exact": "true"}, {"key": "interface", "prefix": "org.demo.Admin"}]},
                {"match": [{"key": "method", "exact": "dropAll"}]}
            ]}))
            .unwrap()
    }

    #[test]
    fn denies_matching_requests_only() {
        let f = filter();
        let mut c = ctx(&[("batchjob", "true"), ("interface", "org.demo.AdminService")]);
        match f.on_request(&mut c).into_ready().unwrap() {
            FilterAction::Reply(r) => {
                assert_eq!(r.kind, ReplyKind::Denied);
                assert_eq!(r.message, "denied by rule 0");
            }
            other => panic!("{other:?}"),
        }
        let mut c = ctx(&[("method", "dropAll")]);
        assert!(matches!(f.on_request(&mut c).into_ready().unwrap(), FilterAction::Reply(_)));
        let mut c = ctx(&[("batchjob", "true"), ("interface", "org.demo.UserService")]);
        assert_eq!(f.on_request(&mut c).into_ready().unwrap(), FilterAction::Continue);
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = DenyFactory.configure(&serde_json::json!({"rules": [{"match": [{"key": "k"}]}]})).err().unwrap();
        assert!(err.to_string().starts_with("rules[0].match[0]: a matcher on key `k` needs exactly one"), "{err}");
        assert!(DenyFactory.configure(&serde_json::json!({"rules": []})).is_err());
        assert!(DenyFactory
            .configure(&serde_json::json!({"rulez": []}))
            .err()
            .unwrap()
            .to_string()
            .contains("unknown field"));
    }
}
