//! Trace context on the wire: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin's B3
//! (the single `b3` header and the `x-b3-*` headers), parsed strictly and written without
//! allocating more than the value itself.
//!
//! Values come from a codec's key/values (Dubbo attachments, THeader headers, the keys of the
//! `framed` codec), so they are peer input: every parser here returns `None` for anything that is
//! not exactly what its specification allows, and the caller ignores it.

/// The identity of one span, as propagated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace's id (never zero).
    pub trace_id: u128,
    /// The span's id (never zero).
    pub span_id: u64,
    /// Whether the caller sampled the trace.
    pub sampled: bool,
}

/// What a request carries: a parent context, a bare sampling decision (B3 allows `b3: 0`), both or
/// neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    /// The caller's span, when a valid one was sent.
    pub parent: Option<SpanContext>,
    /// The caller's sampling decision: `None` when it defers to the proxy (B3 without a sampling
    /// state, or no context at all).
    pub sampled: Option<bool>,
}

/// The length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// The most `tracestate` bytes forwarded (the W3C limit for a whole header is 512 bytes that
/// vendors must propagate; longer values are dropped).
pub const MAX_TRACESTATE_LEN: usize = 512;

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Lower-case hex digits only, as both specifications require; at most 32 of them.
fn parse_hex(s: &[u8]) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    s.iter().try_fold(0u128, |acc, b| Some(acc << 4 | u128::from(hex_value(*b)?)))
}

/// Parses a `traceparent` value per W3C Trace Context level 1: `00-<32 hex trace id>-<16 hex
/// parent id>-<2 hex flags>`, lower-case hex, neither id all zeros. Version `ff` is invalid; a
/// higher version is read by its version-00 prefix, which must be followed by the end of the
/// value or a `-`. Anything else: `None`.
pub fn parse_traceparent(value: &[u8]) -> Option<SpanContext> {
    let version = u8::try_from(parse_hex(value.get(..2)?)?).ok()?;
    if version == 0xff {
        return None;
    }
    match (version, value.len()) {
        (0, TRACEPARENT_LEN) => {}
        (0, _) => return None,
        (_, n) if n < TRACEPARENT_LEN => return None,
        (_, n) if n > TRACEPARENT_LEN && value.get(TRACEPARENT_LEN) != Some(&b'-') => return None,
        _ => {}
    }
    let dashes = [2, 35, 52].iter().all(|&i| value.get(i) == Some(&b'-'));
    if !dashes {
        return None;
    }
    let trace_id = parse_hex(value.get(3..35)?)?;
    let span_id = u64::try_from(parse_hex(value.get(36..52)?)?).ok()?;
    let flags = parse_hex(value.get(53..55)?)?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(SpanContext { trace_id, span_id, sampled: flags & 1 == 1 })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes the low `out.len() / 2` bytes of `value` as lower-case hex, most significant first.
fn write_hex(out: &mut [u8], value: u128) {
    let bytes = value.to_be_bytes();
    let skip = bytes.len().saturating_sub(out.len() / 2);
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes.iter().skip(skip)) {
        if let [hi, lo] = pair {
            *hi = HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0');
            *lo = HEX.get(usize::from(byte & 0xf)).copied().unwrap_or(b'0');
        }
    }
}

/// `trace_id` as 32 lower-case hex digits.
pub fn trace_id_hex(trace_id: u128) -> [u8; 32] {
    let mut out = [0u8; 32];
    write_hex(&mut out, trace_id);
    out
}

/// `span_id` as 16 lower-case hex digits.
pub fn span_id_hex(span_id: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    write_hex(&mut out, u128::from(span_id));
    out
}

/// The version-00 `traceparent` value for a span.
pub fn format_traceparent(trace_id: u128, span_id: u64, sampled: bool) -> [u8; TRACEPARENT_LEN] {
    let mut out = [b'-'; TRACEPARENT_LEN];
    if let Some(v) = out.get_mut(0..2) {
        v.copy_from_slice(b"00");
    }
    if let Some(t) = out.get_mut(3..35) {
        write_hex(t, trace_id);
    }
    if let Some(s) = out.get_mut(36..52) {
        write_hex(s, u128::from(span_id));
    }
    if let Some(f) = out.get_mut(53..55) {
        f.copy_from_slice(if sampled { b"01" } else { b"00" });
    }
    out
}

/// True when `value` is a `tracestate` header this proxy may forward: at most
/// [`MAX_TRACESTATE_LEN`] bytes and 32 list members, each empty or `key=value` with a key and a
/// value as W3C Trace Context level 1 defines them.
pub fn valid_tracestate(value: &[u8]) -> bool {
    if value.len() > MAX_TRACESTATE_LEN {
        return false;
    }
    let mut members = 0;
    for member in value.split(|b| *b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        members += 1;
        if members > 32 {
            return false;
        }
        let Some(eq) = member.iter().position(|b| *b == b'=') else { return false };
        let (key, value) = (member.get(..eq).unwrap_or_default(), member.get(eq + 1..).unwrap_or_default());
        if !valid_key(key) || !valid_value(value) {
            return false;
        }
    }
    true
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// `simple-key` or `tenant-id@system-id`.
fn valid_key(key: &[u8]) -> bool {
    let part = |s: &[u8], max: usize, first_digit_ok: bool| {
        let Some(first) = s.first() else { return false };
        s.len() <= max
            && (first.is_ascii_lowercase() || (first_digit_ok && first.is_ascii_digit()))
            && s.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/".contains(b))
    };
    match key.iter().position(|b| *b == b'@') {
        None => part(key, 256, false),
        Some(at) => {
            let (tenant, system) = (key.get(..at).unwrap_or_default(), key.get(at + 1..).unwrap_or_default());
            part(tenant, 241, true) && part(system, 14, false)
        }
    }
}

/// 1 to 256 printable ASCII characters other than `,` and `=`, not ending in a space.
fn valid_value(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value.last() != Some(&b' ')
        && value.iter().all(|b| (0x20..=0x7e).contains(b) && *b != b',' && *b != b'=')
}

/// A B3 trace id: 16 or 32 lower-case hex digits, not zero.
fn b3_trace_id(s: &[u8]) -> Option<u128> {
    if s.len() != 16 && s.len() != 32 {
        return None;
    }
    parse_hex(s).filter(|id| *id != 0)
}

/// A B3 span id: 16 lower-case hex digits, not zero.
fn b3_span_id(s: &[u8]) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    parse_hex(s).and_then(|id| u64::try_from(id).ok()).filter(|id| *id != 0)
}

/// A B3 sampling state: `1` or `d` (debug) sample, `0` does not.
fn b3_sampling(s: &[u8]) -> Option<bool> {
    match s {
        b"1" | b"d" => Some(true),
        b"0" => Some(false),
        _ => None,
    }
}

/// Parses the single `b3` header: `{trace id}-{span id}[-{sampling}[-{parent span id}]]`, or a
/// bare sampling state (`0`, `1`, `d`).
pub fn parse_b3_single(value: &[u8]) -> Option<Incoming> {
    if let Some(sampled) = b3_sampling(value) {
        return Some(Incoming { parent: None, sampled: Some(sampled) });
    }
    let mut parts = value.split(|b| *b == b'-');
    let trace_id = b3_trace_id(parts.next()?)?;
    let span_id = b3_span_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => None,
        Some(s) => Some(b3_sampling(s)?),
    };
    if let Some(parent) = parts.next() {
        b3_span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    let parent = SpanContext { trace_id, span_id, sampled: sampled.unwrap_or(false) };
    Some(Incoming { parent: Some(parent), sampled })
}

/// Parses the `x-b3-*` headers, looked up with `get`: `x-b3-traceid` and `x-b3-spanid` (both or
/// neither), `x-b3-sampled` (`1`/`0`, or `true`/`false` as old clients send) and `x-b3-flags`
/// (`1`: debug, which samples). `None` when nothing valid is there.
pub fn parse_b3_multi<'a>(get: impl Fn(&str) -> Option<&'a [u8]>) -> Option<Incoming> {
    let debug = get("x-b3-flags") == Some(b"1");
    let sampled = match get("x-b3-sampled") {
        _ if debug => Some(true),
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        Some(_) => return None,
        None => None,
    };
    let parent = match (get("x-b3-traceid"), get("x-b3-spanid")) {
        (Some(t), Some(s)) => {
            Some(SpanContext { trace_id: b3_trace_id(t)?, span_id: b3_span_id(s)?, sampled: sampled.unwrap_or(false) })
        }
        (None, None) => None,
        _ => return None,
    };
    (parent.is_some() || sampled.is_some()).then_some(Incoming { parent, sampled })
}

/// The single `b3` header for a sampled span whose parent is `parent` (0: none).
pub fn format_b3_single(trace_id: u128, span_id: u64, parent: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(70);
    out.extend_from_slice(&trace_id_hex(trace_id));
    out.push(b'-');
    out.extend_from_slice(&span_id_hex(span_id));
    out.extend_from_slice(b"-1");
    if parent != 0 {
        out.push(b'-');
        out.extend_from_slice(&span_id_hex(parent));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let ctx = parse_traceparent(VALID).unwrap();
        assert_eq!(ctx.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ctx.span_id, 0x00f067aa0ba902b7);
        assert!(ctx.sampled);
        assert_eq!(&format_traceparent(ctx.trace_id, ctx.span_id, true)[..], VALID);
        let unsampled = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled);
        let other_flags = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09").unwrap();
        assert!(other_flags.sampled, "only bit 0 is the sampled flag");
    }

    #[test]
    fn traceparent_is_parsed_strictly() {
        let bad: &[&[u8]] = &[
            b"",
            b"00",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", // v00 with extra
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  // short flags
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // separator
            b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", // not hex
            b"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version not hex
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // future version, no dash
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xff",
        ];
        for v in bad {
            assert_eq!(parse_traceparent(v), None, "{}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn future_versions_are_read_by_their_prefix() {
        let v = b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        assert_eq!(parse_traceparent(v).map(|c| c.span_id), Some(0x00f067aa0ba902b7));
        let exact = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(parse_traceparent(exact).is_some_and(|c| !c.sampled));
    }

    #[test]
    fn tracestate_validation() {
        for ok in [&b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"[..], b"", b"a=1 , ,b=2", b"tenant@sys=x", b"0t@s=1"] {
            assert!(valid_tracestate(ok), "{}", String::from_utf8_lossy(ok));
        }
        let long_value = format!("a={}", "x".repeat(257));
        let too_many: String = (0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
        for bad in
            [&b"novalue"[..], b"A=1", b"a=", b"a=b,c", b"1a=x", b"a=\x01", long_value.as_bytes(), too_many.as_bytes()]
        {
            assert!(!valid_tracestate(bad), "{}", String::from_utf8_lossy(bad));
        }
        assert!(!valid_tracestate(&[b'a'; 600]));
    }

    #[test]
    fn b3_single_forms() {
        let full = parse_b3_single(b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90").unwrap();
        let parent = full.parent.unwrap();
        assert_eq!(parent.trace_id, 0x80f198ee56343ba864fe8b2a57d3eff7);
        assert_eq!(parent.span_id, 0xe457b5a2e4d86bd1);
        assert_eq!(full.sampled, Some(true));
        let short = parse_b3_single(b"64fe8b2a57d3eff7-e457b5a2e4d86bd1").unwrap();
        assert_eq!(short.parent.map(|p| p.trace_id), Some(0x64fe8b2a57d3eff7));
        assert_eq!(short.sampled, None, "no sampling state: the proxy decides");
        assert_eq!(parse_b3_single(b"0"), Some(Incoming { parent: None, sampled: Some(false) }));
        assert_eq!(parse_b3_single(b"d").and_then(|i| i.sampled), Some(true));
        for bad in [
            &b"x"[..],
            b"64fe8b2a57d3eff7",
            b"64fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
            b"64fe8b2a57d3eff7-e457-1",
            b"a-b-1-c-d",
        ] {
            assert_eq!(parse_b3_single(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let written = format_b3_single(0x80f198ee56343ba864fe8b2a57d3eff7, 0xe457b5a2e4d86bd1, 0x05e3ac9a4f6e3b90);
        assert_eq!(written, b"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
    }

    #[test]
    fn b3_multi_forms() {
        let headers =
            [("x-b3-traceid", &b"64fe8b2a57d3eff7"[..]), ("x-b3-spanid", b"e457b5a2e4d86bd1"), ("x-b3-sampled", b"1")];
        let get = |k: &str| headers.iter().find(|(h, _)| *h == k).map(|(_, v)| *v);
        let got = parse_b3_multi(get).unwrap();
        assert_eq!(got.parent.map(|p| p.span_id), Some(0xe457b5a2e4d86bd1));
        assert_eq!(got.sampled, Some(true));
        assert_eq!(parse_b3_multi(|_| None), None);
        let only_trace = [("x-b3-traceid", &b"64fe8b2a57d3eff7"[..])];
        assert_eq!(parse_b3_multi(|k| only_trace.iter().find(|(h, _)| *h == k).map(|(_, v)| *v)), None);
        let debug = [("x-b3-flags", &b"1"[..]), ("x-b3-sampled", b"0")];
        let got = parse_b3_multi(|k| debug.iter().find(|(h, _)| *h == k).map(|(_, v)| *v)).unwrap();
        assert_eq!(got, Incoming { parent: None, sampled: Some(true) }, "debug samples");
    }
}
