//! Compiled metadata matchers: one condition on one key, evaluated without allocating.

use bytes::Bytes;

use crate::error::ConfigError;
use crate::metadata::Metadata;
use crate::route::config::MatcherSpec;

/// How a value is tested.
#[derive(Clone, Debug)]
pub enum MatchKind {
    /// Equal to.
    Exact(Bytes),
    /// Starts with.
    Prefix(Bytes),
    /// Ends with.
    Suffix(Bytes),
    /// Contains.
    Contains(Bytes),
    /// The whole value matches (the pattern is anchored at compile time).
    Regex(regex::bytes::Regex),
    /// The key is present (any value).
    Present,
}

/// A compiled condition: the key, the test, and whether the result is inverted.
#[derive(Clone, Debug)]
pub struct Matcher {
    key: Box<str>,
    kind: MatchKind,
    invert: bool,
}

impl Matcher {
    /// Compiles a spec; exactly one test must be given and a regex must be valid.
    pub fn compile(spec: &MatcherSpec) -> Result<Self, ConfigError> {
        if spec.key.is_empty() {
            return Err(ConfigError::invalid("key", "must not be empty"));
        }
        let mut kinds = Vec::new();
        let text = |s: &String| Bytes::copy_from_slice(s.as_bytes());
        if let Some(v) = &spec.exact {
            kinds.push(("exact", MatchKind::Exact(text(v))));
        }
        if let Some(v) = &spec.prefix {
            kinds.push(("prefix", MatchKind::Prefix(text(v))));
        }
        if let Some(v) = &spec.suffix {
            kinds.push(("suffix", MatchKind::Suffix(text(v))));
        }
        if let Some(v) = &spec.contains {
            kinds.push(("contains", MatchKind::Contains(text(v))));
        }
        if let Some(v) = &spec.regex {
            let re = regex::bytes::Regex::new(&format!("^(?:{v})$"))
                .map_err(|e| ConfigError::invalid("regex", format!("invalid regular expression: {e}")))?;
            kinds.push(("regex", MatchKind::Regex(re)));
        }
        let mut invert = spec.invert;
        if let Some(present) = spec.present {
            kinds.push(("present", MatchKind::Present));
            if !present {
                invert = !invert;
            }
        }
        if kinds.len() != 1 {
            let given: Vec<_> = kinds.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::invalid(
                "",
                format!(
                    "a matcher on key `{}` needs exactly one of exact, prefix, suffix, contains, regex, present (got {})",
                    spec.key,
                    if given.is_empty() { "none".to_string() } else { given.join(", ") }
                ),
            ));
        }
        let (_, kind) = kinds.remove(0);
        Ok(Matcher { key: spec.key.clone().into_boxed_str(), kind, invert })
    }

    /// The key tested.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True when the request satisfies the condition. A missing key fails every test but
    /// `present: false` (and so satisfies their inverted forms).
    pub fn matches(&self, metadata: &Metadata) -> bool {
        let value = metadata.kvs.get(&self.key);
        let hit = match (&self.kind, value) {
            (MatchKind::Present, v) => v.is_some(),
            (_, None) => false,
            (MatchKind::Exact(x), Some(v)) => v == x,
            (MatchKind::Prefix(x), Some(v)) => v.starts_with(x),
            (MatchKind::Suffix(x), Some(v)) => v.ends_with(x),
            (MatchKind::Contains(x), Some(v)) => contains(v, x),
            (MatchKind::Regex(re), Some(v)) => re.is_match(v),
        };
        hit != self.invert
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MessageType;

    fn md(pairs: &[(&'static str, &'static str)]) -> Metadata {
        let mut m = Metadata::new(MessageType::Request, 1);
        for (k, v) in pairs {
            m.kvs.push_bytes(Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes()));
        }
        m
    }

    fn spec(key: &str) -> MatcherSpec {
        MatcherSpec { key: key.into(), ..Default::default() }
    }

    #[test]
    fn every_kind_and_inversion() {
        let m = md(&[("Interface", "org.demo.UserService"), ("batchjob", "true")]);
        let cases: Vec<(MatcherSpec, bool)> = vec![
            (MatcherSpec { exact: Some("true".into()), ..spec("batchjob") }, true),
            (MatcherSpec { exact: Some("TRUE".into()), ..spec("batchjob") }, false),
            (MatcherSpec { prefix: Some("org.demo.".into()), ..spec("interface") }, true),
            (MatcherSpec { suffix: Some("Service".into()), ..spec("INTERFACE") }, true),
            (MatcherSpec { contains: Some("User".into()), ..spec("interface") }, true),
            (MatcherSpec { contains: Some("Order".into()), ..spec("interface") }, false),
            (MatcherSpec { regex: Some(r"org\.demo\.\w+".into()), ..spec("interface") }, true),
            (MatcherSpec { regex: Some(r"demo".into()), ..spec("interface") }, false),
            (MatcherSpec { present: Some(true), ..spec("batchjob") }, true),
            (MatcherSpec { present: Some(false), ..spec("batchjob") }, false),
            (MatcherSpec { present: Some(false), ..spec("absent") }, true),
            (MatcherSpec { exact: Some("x".into()), ..spec("absent") }, false),
            (MatcherSpec { exact: Some("x".into()), invert: true, ..spec("absent") }, true),
            (MatcherSpec { exact: Some("true".into()), invert: true, ..spec("batchjob") }, false),
        ];
        for (s, want) in cases {
            assert_eq!(Matcher::compile(&s).unwrap().matches(&m), want, "{s:?}");
        }
    }

    #[test]
    fn exactly_one_kind_and_valid_regex() {
        assert!(Matcher::compile(&spec("k")).unwrap_err().to_string().contains("got none"));
        let two = MatcherSpec { exact: Some("a".into()), prefix: Some("b".into()), ..spec("k") };
        assert!(Matcher::compile(&two).unwrap_err().to_string().contains("exact, prefix"));
        let bad = MatcherSpec { regex: Some("(".into()), ..spec("k") };
        assert!(Matcher::compile(&bad).unwrap_err().to_string().starts_with("regex: invalid regular expression"));
    }
}
