//! Writing the Hessian 2 values the codec produces: strings, ints, nulls and maps of strings
//! (attachments and error replies).

use std::ops::Range;

use bytes::{BufMut, BytesMut};

use super::HessianError;

/// Largest chunk a writer emits, in UTF-16 units (Hessian allows 65,535; Caucho uses 32,768).
const CHUNK_UNITS: usize = 0x8000;

/// Writes `null`.
pub fn write_null(dst: &mut BytesMut) {
    dst.put_u8(b'N');
}

/// Writes an `int` in its most compact form.
pub fn write_int(dst: &mut BytesMut, v: i32) {
    match v {
        -16..=47 => dst.put_u8((0x90 + v) as u8),
        -2048..=2047 => {
            dst.put_u8((0xc8 + (v >> 8)) as u8);
            dst.put_u8(v as u8);
        }
        -262_144..=262_143 => {
            dst.put_u8((0xd4 + (v >> 16)) as u8);
            dst.put_u16(v as u16);
        }
        _ => {
            dst.put_u8(b'I');
            dst.put_i32(v);
        }
    }
}

/// How many bytes [`write_int`] writes for `v`.
pub(crate) fn int_len(v: i32) -> usize {
    match v {
        -16..=47 => 1,
        -2048..=2047 => 2,
        -262_144..=262_143 => 3,
        _ => 5,
    }
}

/// Opens an untyped map (`H`); close it with [`write_map_end`].
pub fn write_map_start(dst: &mut BytesMut) {
    dst.put_u8(b'H');
}

/// Closes a map or variable-length list.
pub fn write_map_end(dst: &mut BytesMut) {
    dst.put_u8(b'Z');
}

/// Writes UTF-8 `text` as a Hessian string: the length counts UTF-16 units, characters outside
/// the Basic Multilingual Plane are written as a surrogate pair of 3-byte sequences (as Java
/// does), and strings over 32,768 units are split into chunks.
pub fn write_string(dst: &mut BytesMut, text: &[u8]) -> Result<(), HessianError> {
    write_string_at(dst, text).map(|_| ())
}

/// [`write_string`], returning where in `dst` the string's bytes (after the length) lie when it
/// was written in one chunk, or `None` when it was split.
pub(crate) fn write_string_at(dst: &mut BytesMut, text: &[u8]) -> Result<Option<Range<usize>>, HessianError> {
    let text = std::str::from_utf8(text).map_err(|_| HessianError::Write("a string that is not UTF-8"))?;
    let (units, supplementary) = measure(text);
    if supplementary == 0 && units <= CHUNK_UNITS {
        // No supplementary characters: Hessian's bytes are the UTF-8 bytes.
        put_chunk_header(dst, units, true);
        let start = dst.len();
        dst.put_slice(text.as_bytes());
        return Ok(Some(start..dst.len()));
    }
    let mut chunk = Vec::with_capacity(text.len().min(CHUNK_UNITS * 3) + supplementary * 2);
    let mut chunk_units = 0;
    let mut chunks = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let mut buf = [0u16; 2];
        for unit in c.encode_utf16(&mut buf).iter() {
            put_unit(&mut chunk, *unit, c);
        }
        chunk_units += c.len_utf16();
        let more = chars.peek().is_some();
        // Never split a surrogate pair: a chunk ends on a character boundary.
        if more && chunk_units + 2 > CHUNK_UNITS {
            put_chunk_header(dst, chunk_units, false);
            dst.put_slice(&chunk);
            chunk.clear();
            chunk_units = 0;
            chunks += 1;
        }
    }
    put_chunk_header(dst, chunk_units, true);
    let start = dst.len();
    dst.put_slice(&chunk);
    Ok((chunks == 0).then(|| start..dst.len()))
}

/// The UTF-16 length of `text` and how many of its characters are supplementary (two units).
fn measure(text: &str) -> (usize, usize) {
    if text.is_ascii() {
        return (text.len(), 0);
    }
    let supplementary = text.chars().filter(|c| c.len_utf16() == 2).count();
    (text.chars().count() + supplementary, supplementary)
}

/// How many bytes [`write_string`] writes for `text`, without writing it.
pub(crate) fn string_len(text: &[u8]) -> Result<usize, HessianError> {
    let text = std::str::from_utf8(text).map_err(|_| HessianError::Write("a string that is not UTF-8"))?;
    let (units, supplementary) = measure(text);
    if supplementary == 0 && units <= CHUNK_UNITS {
        return Ok(chunk_header_len(units, true) + text.len());
    }
    // Each supplementary character takes 6 bytes (two 3-byte surrogates) instead of 4.
    let mut total = text.len() + supplementary * 2;
    let mut chunk_units = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        chunk_units += c.len_utf16();
        if chars.peek().is_some() && chunk_units + 2 > CHUNK_UNITS {
            total += chunk_header_len(chunk_units, false);
            chunk_units = 0;
        }
    }
    Ok(total + chunk_header_len(chunk_units, true))
}

fn chunk_header_len(units: usize, last: bool) -> usize {
    match (units, last) {
        (0..=31, true) => 1,
        (32..=1023, true) => 2,
        _ => 3,
    }
}

fn put_unit(out: &mut Vec<u8>, unit: u16, c: char) {
    if c.len_utf16() == 1 {
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    } else {
        // A surrogate, as a 3-byte sequence (CESU-8).
        out.push(0xe0 | (unit >> 12) as u8);
        out.push(0x80 | ((unit >> 6) & 0x3f) as u8);
        out.push(0x80 | (unit & 0x3f) as u8);
    }
}

fn put_chunk_header(dst: &mut BytesMut, units: usize, last: bool) {
    match (units, last) {
        (0..=31, true) => dst.put_u8(units as u8),
        (32..=1023, true) => {
            dst.put_u8(0x30 + (units >> 8) as u8);
            dst.put_u8(units as u8);
        }
        (_, true) => {
            dst.put_u8(b'S');
            dst.put_u16(units as u16);
        }
        (_, false) => {
            dst.put_u8(b'R');
            dst.put_u16(units as u16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::reader::{Reader, StrValue};
    use super::*;

    fn round_trip(text: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_string(&mut out, text.as_bytes()).unwrap();
        let mut r = Reader::new(&out, 0);
        let got = match r.read_string().unwrap().unwrap() {
            StrValue::Span(range) => out[range].to_vec(),
            StrValue::Joined(v) => v,
        };
        assert!(r.is_at_end());
        out.to_vec().truncate(0);
        got
    }

    #[test]
    fn string_size_classes() {
        for (len, first) in [(0usize, 0x00u8), (31, 0x1f), (32, 0x30), (1023, 0x33), (1024, b'S'), (40_000, b'R')] {
            let text = "a".repeat(len);
            let mut out = BytesMut::new();
            write_string(&mut out, text.as_bytes()).unwrap();
            assert_eq!(out[0], first, "length {len}");
            assert_eq!(round_trip(&text), text.as_bytes());
        }
    }

    #[test]
    fn supplementary_characters_become_surrogate_pairs() {
        let mut out = BytesMut::new();
        write_string(&mut out, "a😀".as_bytes()).unwrap();
        assert_eq!(&out[..], b"\x03a\xed\xa0\xbd\xed\xb8\x80");
        assert_eq!(round_trip("héllo 世界").as_slice(), "héllo 世界".as_bytes());
        let long_emoji = "😀".repeat(20_000);
        let mut out = BytesMut::new();
        write_string(&mut out, long_emoji.as_bytes()).unwrap();
        assert_eq!(out[0], b'R');
        assert!(Reader::new(&out, 0).skip_value().is_ok());
        assert!(write_string(&mut out, b"\xff").is_err());
    }

    #[test]
    fn string_len_matches_what_is_written() {
        let long_mixed = "é😀a".repeat(20_000);
        let texts =
            ["", "a", &"b".repeat(31), &"c".repeat(32), &"d".repeat(1024), &"e".repeat(40_000), "héllo 世界", "a😀"];
        for text in texts.iter().copied().chain([long_mixed.as_str(), &"😀".repeat(20_000)]) {
            let mut out = BytesMut::new();
            let at = write_string_at(&mut out, text.as_bytes()).unwrap();
            assert_eq!(string_len(text.as_bytes()).unwrap(), out.len(), "{} bytes", text.len());
            if let Some(range) = at {
                let mut r = Reader::new(&out, 0);
                assert_eq!(r.read_string().unwrap(), Some(StrValue::Span(range)));
            } else {
                assert_eq!(out[0], b'R');
            }
        }
        assert!(string_len(b"\xff").is_err());
    }

    #[test]
    fn ints_round_trip_in_every_form() {
        for v in [0, -16, 47, 48, -17, -2048, 2047, 2048, -262_144, 262_143, 262_144, i32::MIN, i32::MAX] {
            let mut out = BytesMut::new();
            write_int(&mut out, v);
            assert_eq!(out.len(), int_len(v));
            assert_eq!(Reader::new(&out, 0).read_int().unwrap(), v);
        }
    }
}
