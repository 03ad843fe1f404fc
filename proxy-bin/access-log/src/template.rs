//! Parsing an Envoy-style format string into [`Segment`]s: literal text and command operators.

use std::num::NonZeroUsize;

use crate::error::FormatError;

/// One command operator, with its argument when it takes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Operator {
    StartTime,
    Duration,
    DurationUs,
    DownstreamRemoteAddress,
    UpstreamHost,
    UpstreamCluster,
    RouteName,
    ResponseFlags,
    ResponseCode,
    Protocol,
    Listener,
    Operation,
    RequestId,
    MessageType,
    Outcome,
    Subset,
    Attempts,
    LocalReply,
    /// `%REQ(key)%`.
    Req(KeyArg),
    /// `%RESP(key)%`.
    Resp(KeyArg),
}

/// The argument of `%REQ(key?fallback):max_len%`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyArg {
    pub(crate) key: Box<str>,
    pub(crate) fallback: Option<Box<str>>,
    pub(crate) max_len: Option<NonZeroUsize>,
}

/// A piece of a format string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Text copied as is (`%%` already turned into `%`).
    Literal(Box<str>),
    /// A value of the entry.
    Op(Operator),
}

/// The operators without an argument, by name.
const SIMPLE: [(&str, Operator); 18] = [
    ("START_TIME", Operator::StartTime),
    ("DURATION", Operator::Duration),
    ("DURATION_US", Operator::DurationUs),
    ("DOWNSTREAM_REMOTE_ADDRESS", Operator::DownstreamRemoteAddress),
    ("UPSTREAM_HOST", Operator::UpstreamHost),
    ("UPSTREAM_CLUSTER", Operator::UpstreamCluster),
    ("ROUTE_NAME", Operator::RouteName),
    ("RESPONSE_FLAGS", Operator::ResponseFlags),
    ("RESPONSE_CODE", Operator::ResponseCode),
    ("PROTOCOL", Operator::Protocol),
    ("LISTENER", Operator::Listener),
    ("OPERATION", Operator::Operation),
    ("REQUEST_ID", Operator::RequestId),
    ("MESSAGE_TYPE", Operator::MessageType),
    ("OUTCOME", Operator::Outcome),
    ("SUBSET", Operator::Subset),
    ("UPSTREAM_REQUEST_ATTEMPT_COUNT", Operator::Attempts),
    ("LOCAL_REPLY", Operator::LocalReply),
];

/// Parses `format` into segments, adjacent literal text merged.
pub(crate) fn parse(format: &str) -> Result<Vec<Segment>, FormatError> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let (text, tail) = rest.split_at(at);
        literal.push_str(text);
        let position = format.len() - rest.len() + at;
        let after = tail.strip_prefix('%').unwrap_or(tail);
        if let Some(after) = after.strip_prefix('%') {
            literal.push('%');
            rest = after;
            continue;
        }
        let Some(end) = after.find('%') else {
            return Err(FormatError::Unterminated { position });
        };
        let (token, after) = after.split_at(end);
        rest = after.strip_prefix('%').unwrap_or(after);
        if !literal.is_empty() {
            segments.push(Segment::Literal(std::mem::take(&mut literal).into_boxed_str()));
        }
        segments.push(Segment::Op(operator(token, position)?));
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal.into_boxed_str()));
    }
    Ok(segments)
}

/// Parses the text between two `%`: `NAME`, `NAME(arg)` or `NAME(arg):max_len`.
fn operator(token: &str, position: usize) -> Result<Operator, FormatError> {
    let name_end = token.find(['(', ':']).unwrap_or(token.len());
    let (name, suffix) = token.split_at(name_end);
    if let Some((_, op)) = SIMPLE.iter().find(|(n, _)| *n == name) {
        return if suffix.is_empty() {
            Ok(op.clone())
        } else {
            Err(FormatError::UnexpectedArgument { operator: static_name(name), position })
        };
    }
    let keyed: fn(KeyArg) -> Operator = match name {
        "REQ" => Operator::Req,
        "RESP" => Operator::Resp,
        _ => return Err(FormatError::UnknownOperator { operator: name.to_owned(), position }),
    };
    let operator = static_name(name);
    let malformed = || FormatError::Malformed { operator, text: token.to_owned(), position };
    let Some(arg) = suffix.strip_prefix('(') else {
        return Err(if suffix.is_empty() { FormatError::MissingKey { operator, position } } else { malformed() });
    };
    let (arg, after) = arg.split_once(')').ok_or_else(malformed)?;
    let max_len = match after {
        "" => None,
        _ => {
            let text = after.strip_prefix(':').ok_or_else(malformed)?;
            let max_len = text.parse::<NonZeroUsize>().map_err(|source| FormatError::InvalidMaxLen {
                operator,
                text: text.to_owned(),
                position,
                source,
            })?;
            Some(max_len)
        }
    };
    let (key, fallback) = match arg.split_once('?') {
        Some((key, fallback)) => (key, Some(fallback)),
        None => (arg, None),
    };
    if key.is_empty() || fallback.is_some_and(str::is_empty) {
        return Err(FormatError::MissingKey { operator, position });
    }
    Ok(keyed(KeyArg { key: key.into(), fallback: fallback.map(Into::into), max_len }))
}

/// The `'static` spelling of a known operator name, for errors.
fn static_name(name: &str) -> &'static str {
    match name {
        "REQ" => "REQ",
        "RESP" => "RESP",
        _ => SIMPLE.iter().find(|(n, _)| *n == name).map_or("?", |(n, _)| n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(format: &str) -> Operator {
        match parse(format).unwrap().as_slice() {
            [Segment::Op(op)] => op.clone(),
            other => panic!("{format}: {other:?}"),
        }
    }

    fn key(key: &str, fallback: Option<&str>, max_len: Option<usize>) -> KeyArg {
        KeyArg {
            key: key.into(),
            fallback: fallback.map(Into::into),
            max_len: max_len.map(|n| NonZeroUsize::new(n).unwrap()),
        }
    }

    #[test]
    fn every_simple_operator_parses() {
        for (name, expected) in SIMPLE {
            assert_eq!(op(&format!("%{name}%")), expected, "{name}");
        }
        let names: Vec<&str> = SIMPLE.iter().map(|(n, _)| *n).collect();
        for envoy in ["START_TIME", "DURATION", "DOWNSTREAM_REMOTE_ADDRESS", "UPSTREAM_HOST", "UPSTREAM_CLUSTER"] {
            assert!(names.contains(&envoy));
        }
        for envoy in ["ROUTE_NAME", "RESPONSE_FLAGS", "RESPONSE_CODE", "PROTOCOL", "UPSTREAM_REQUEST_ATTEMPT_COUNT"] {
            assert!(names.contains(&envoy));
        }
    }

    #[test]
    fn keyed_operators_parse_with_fallback_and_max_len() {
        assert_eq!(op("%REQ(version)%"), Operator::Req(key("version", None, None)));
        assert_eq!(op("%RESP(x-status)%"), Operator::Resp(key("x-status", None, None)));
        assert_eq!(op("%REQ(user):10%"), Operator::Req(key("user", None, Some(10))));
        assert_eq!(op("%REQ(x-a?x-b):3%"), Operator::Req(key("x-a", Some("x-b"), Some(3))));
        assert_eq!(op("%RESP(x-a?x-b)%"), Operator::Resp(key("x-a", Some("x-b"), None)));
    }

    #[test]
    fn literals_and_percent_escapes_merge() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("100%% sure").unwrap(), vec![Segment::Literal("100% sure".into())]);
        assert_eq!(
            parse("[%START_TIME%] %% %OPERATION%%%").unwrap(),
            vec![
                Segment::Literal("[".into()),
                Segment::Op(Operator::StartTime),
                Segment::Literal("] % ".into()),
                Segment::Op(Operator::Operation),
                Segment::Literal("%".into()),
            ]
        );
        assert_eq!(parse("%%%%").unwrap(), vec![Segment::Literal("%%".into())]);
        assert_eq!(
            parse("é%PROTOCOL%ü").unwrap(),
            vec![Segment::Literal("é".into()), Segment::Op(Operator::Protocol), Segment::Literal("ü".into())]
        );
    }

    fn error(format: &str) -> String {
        parse(format).unwrap_err().to_string()
    }

    #[test]
    fn unknown_operators_are_named() {
        assert_eq!(error("ok %BYTES_SENT%"), "unknown command operator `%BYTES_SENT%` at byte 3");
        assert_eq!(error("%start_time%"), "unknown command operator `%start_time%` at byte 0");
        assert_eq!(error("%HEADER(x)%"), "unknown command operator `%HEADER%` at byte 0");
        assert!(matches!(
            parse("a%FOO%").unwrap_err(),
            FormatError::UnknownOperator { operator, position: 1 } if operator == "FOO"
        ));
    }

    #[test]
    fn a_lone_percent_is_unterminated() {
        assert_eq!(
            error("50% done"),
            "unterminated command operator at byte 2: no closing `%` (write `%%` for a literal percent sign)"
        );
        assert!(matches!(parse("%START_TIME").unwrap_err(), FormatError::Unterminated { position: 0 }));
        assert!(matches!(parse("%%%").unwrap_err(), FormatError::Unterminated { position: 2 }));
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            error("%DURATION:5%"),
            "`%DURATION%` at byte 0 takes no argument or `:max_len` (only REQ and RESP do)"
        );
        assert!(matches!(
            parse("%START_TIME(%s)%").unwrap_err(),
            FormatError::UnexpectedArgument { operator: "START_TIME", .. }
        ));
        assert_eq!(error(" %REQ%"), "`%REQ%` at byte 1 needs a metadata key, as in `%REQ(key)%`");
        assert!(matches!(parse("%RESP()%").unwrap_err(), FormatError::MissingKey { operator: "RESP", .. }));
        assert!(matches!(parse("%REQ(a?)%").unwrap_err(), FormatError::MissingKey { .. }));
        assert_eq!(
            error("%REQ(user%"),
            "malformed command operator `%REQ(user%` at byte 0: expected `%REQ(key)%` or `%REQ(key):max_len%`"
        );
        assert!(matches!(parse("%REQ(a)b%").unwrap_err(), FormatError::Malformed { .. }));
        assert!(matches!(parse("%REQ:3%").unwrap_err(), FormatError::Malformed { .. }));
        for bad in ["x", "0", "-1", ""] {
            assert!(
                matches!(parse(&format!("%REQ(a):{bad}%")).unwrap_err(), FormatError::InvalidMaxLen { .. }),
                "{bad}"
            );
        }
        assert!(error("%REQ(a):0%").starts_with("`%REQ%` at byte 0: max_len `0` is not a positive integer: "));
    }
}
