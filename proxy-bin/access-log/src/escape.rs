//! Writing values into a line buffer: escaped for one-line text or for JSON strings, bytes that
//! are not UTF-8 replaced by U+FFFD, and `max_len` truncation. Nothing here allocates beyond the
//! buffer's own growth.

use std::fmt::{self, Write as _};
use std::io;

use serde::Serializer as _;

/// What replaces bytes that are not UTF-8.
const REPLACEMENT: &str = "\u{FFFD}";

/// A `std::fmt::Write` view of a byte buffer.
pub(crate) struct Out<'a>(pub(crate) &'a mut Vec<u8>);

impl fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// True for the bytes that print as themselves in both text and JSON: printable ASCII other than
/// the quotes and the backslash.
fn plain(byte: u8) -> bool {
    matches!(byte, b' '..=b'~') && !matches!(byte, b'"' | b'\'' | b'\\')
}

/// Writes `s` for a one-line text log: printable characters as they are; line breaks and other
/// control or invisible characters, quotes and backslashes escaped as Rust does
/// (`str::escape_debug`: `\n`, `\"`, `\\`, `\u{2028}`), so a value can neither end the line nor
/// pose as another field's quoting.
pub(crate) fn text_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(plain) {
        out.extend_from_slice(s.as_bytes());
    } else {
        // Writing into a Vec cannot fail.
        let _ = write!(Out(out), "{}", s.escape_debug());
    }
}

/// Writes `bytes` as [`text_str`] does, U+FFFD for each sequence that is not UTF-8.
pub(crate) fn text_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.iter().all(|&b| plain(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        text_str(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(REPLACEMENT.as_bytes());
        }
    }
}

/// A serde_json formatter that writes a string's escaped contents without the quotes, so several
/// pieces can make one JSON string.
struct Unquoted;

impl serde_json::ser::Formatter for Unquoted {
    fn begin_string<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn end_string<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `s` escaped for the inside of a JSON string (serde_json's escaping), without quotes.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| plain(b) || b == b'\'') {
        out.extend_from_slice(s.as_bytes());
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::Serializer::with_formatter(&mut *out, Unquoted).serialize_str(s);
    }
}

/// Writes `bytes` as [`json_str`] does, U+FFFD for each sequence that is not UTF-8.
pub(crate) fn json_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.iter().all(|&b| plain(b) || b == b'\'') {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        json_str(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(REPLACEMENT.as_bytes());
        }
    }
}

/// The first `max_len` bytes of `value`, cut back so as not to split a UTF-8 character.
pub(crate) fn truncate(value: &[u8], max_len: usize) -> &[u8] {
    if value.len() <= max_len {
        return value;
    }
    let mut cut = max_len;
    // At most three continuation bytes (0b10xx_xxxx) follow a character's first byte.
    for _ in 0..3 {
        match value.get(cut) {
            Some(byte) if byte & 0xC0 == 0x80 && cut > 0 => cut -= 1,
            _ => break,
        }
    }
    value.get(..cut).unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        text_bytes(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    fn json(bytes: &[u8]) -> String {
        let mut out = vec![b'"'];
        json_bytes(&mut out, bytes);
        out.push(b'"');
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_escapes_line_breaks_quotes_and_invisible_characters() {
        assert_eq!(text(b"org.demo.Greeter"), "org.demo.Greeter");
        assert_eq!(text(b"a b=c"), "a b=c");
        assert_eq!(text(b"evil\n2024-01-01 listener=x"), "evil\\n2024-01-01 listener=x");
        assert_eq!(text(b"\r\t\x00\x1b[31m\x7f"), "\\r\\t\\0\\u{1b}[31m\\u{7f}");
        assert_eq!(text(br#"say "hi" \ it's"#), r#"say \"hi\" \\ it\'s"#);
        assert_eq!(text("line\u{2028}sep\u{85}nel\u{202e}rtl".as_bytes()), "line\\u{2028}sep\\u{85}nel\\u{202e}rtl");
        assert_eq!(text("用户服务".as_bytes()), "用户服务");
        assert!(!text(b"a\nb\rc\x0bd\x0ce").contains(['\n', '\r', '\x0b', '\x0c']));
    }

    #[test]
    fn bytes_that_are_not_utf8_print_as_replacement_characters() {
        assert_eq!(text(b"ab\xffcd\xc3"), "ab\u{FFFD}cd\u{FFFD}");
        assert_eq!(json(b"\xfe\xff\n"), "\"\u{FFFD}\u{FFFD}\\n\"");
    }

    #[test]
    fn json_strings_round_trip_through_serde_json() {
        let samples: [&[u8]; 6] = [
            b"plain",
            b"it's",
            b"quote \" backslash \\ slash /",
            b"\n\r\t\x00\x01\x1f\x7f",
            "é 用户 \u{2028}".as_bytes(),
            b"",
        ];
        for sample in samples {
            let encoded = json(sample);
            let decoded: String = serde_json::from_str(&encoded).unwrap();
            assert_eq!(decoded.as_bytes(), sample, "{encoded}");
            assert!(!encoded.contains('\n'));
        }
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate(b"abcdef", 3), b"abc");
        assert_eq!(truncate(b"abc", 3), b"abc");
        assert_eq!(truncate(b"ab", 3), b"ab");
        let e_acute = "aé".as_bytes(); // 61 c3 a9
        assert_eq!(truncate(e_acute, 2), b"a");
        let han = "用户".as_bytes(); // two 3-byte characters
        assert_eq!(truncate(han, 4), "用".as_bytes());
        assert_eq!(truncate(han, 2), b"");
        assert_eq!(truncate(b"\x80\x80\x80\x80\x80", 2), b"");
        assert_eq!(truncate(b"\xff\xff\xff", 2), b"\xff\xff");
    }
}
