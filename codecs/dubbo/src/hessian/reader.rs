//! [`Reader`]: a cursor over Hessian 2 data that reads the simple values routing needs and hands
//! back byte ranges instead of copies.

use std::ops::Range;

use super::HessianError;

/// Default nesting limit for lists, maps and objects.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// A string value: a range of the data when it was written in one chunk (the common case, no
/// copy), or the chunks joined when it was split (the protocol forces the copy). The bytes are
/// Hessian's UTF-8 (supplementary characters may appear as CESU-8 surrogate pairs, as Java writes
/// them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrValue {
    /// The string's bytes are `data[range]` (range in frame positions).
    Span(Range<usize>),
    /// A chunked string, joined.
    Joined(Vec<u8>),
}

/// True when `text` (Hessian's UTF-8) holds a surrogate that is not half of a high-then-low pair:
/// such a string has no Unicode form.
fn has_lone_surrogate(text: &[u8]) -> bool {
    // A surrogate's 3-byte form: 0xED, then 0xA0..=0xAF (high) or 0xB0..=0xBF (low).
    let surrogate = |at: usize| match (text.get(at), text.get(at + 1)) {
        (Some(0xed), Some(&b)) if (0xa0..=0xaf).contains(&b) => Some(true),
        (Some(0xed), Some(&b)) if (0xb0..=0xbf).contains(&b) => Some(false),
        _ => None,
    };
    let mut i = 0;
    while i < text.len() {
        match surrogate(i) {
            Some(true) if surrogate(i + 3) == Some(false) => i += 6,
            Some(_) => return true,
            None => i += 1,
        }
    }
    false
}

/// A Hessian 2 read position. Positions (in ranges and errors) are counted from `base`, so a
/// reader over a frame's body still reports offsets within the whole frame.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) base: usize,
    pub(crate) max_depth: usize,
    /// Field counts of the class definitions seen so far: a Hessian stream numbers them in order
    /// and objects refer to them by index, so the table lives as long as the stream.
    pub(crate) classes: ClassTable,
    /// Refuse strings that hold a lone surrogate (see [`Reader::unicode_only`]).
    pub(crate) unicode_only: bool,
}

/// Field counts of class definitions: the first few inline (no allocation for a typical body),
/// the rest in a vector.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClassTable {
    inline: [u32; 8],
    len: usize,
    spill: Vec<u32>,
}

impl ClassTable {
    pub(crate) fn push(&mut self, fields: u32) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = fields,
            None => self.spill.push(fields),
        }
        self.len += 1;
    }

    pub(crate) fn get(&self, index: usize) -> Option<&u32> {
        if index >= self.len {
            return None;
        }
        self.inline.get(index).or_else(|| self.spill.get(index - self.inline.len()))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`, which begins at frame position `base`.
    pub fn new(data: &'a [u8], base: usize) -> Self {
        Reader { data, pos: 0, base, max_depth: DEFAULT_MAX_DEPTH, classes: ClassTable::default(), unicode_only: false }
    }

    /// Makes [`read_string`](Reader::read_string) refuse strings holding a lone surrogate, which
    /// Java writes and reads back but which have no Unicode form: a Python or Go peer fails to
    /// decode them (`dubbo-py` closes the connection). Hessian itself allows them, so this is off
    /// unless asked for; the proxy asks for it on the strings it reads from requests.
    #[must_use]
    pub fn unicode_only(mut self) -> Self {
        self.unicode_only = true;
        self
    }

    /// Sets the nesting limit.
    #[must_use]
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// The current frame position.
    pub fn position(&self) -> usize {
        self.base + self.pos
    }

    /// True when all data has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Number of class definitions seen.
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    pub(crate) fn invalid(&self, what: &'static str) -> HessianError {
        HessianError::Invalid { what, offset: self.position() }
    }

    fn truncated(&self, what: &'static str) -> HessianError {
        HessianError::Truncated { what, offset: self.position() }
    }

    /// The next byte, not consumed.
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub(crate) fn byte(&mut self, what: &'static str) -> Result<u8, HessianError> {
        let b = self.peek().ok_or_else(|| self.truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HessianError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| self.truncated(what))?;
        let s = self.data.get(self.pos..end).ok_or_else(|| self.truncated(what))?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn skip_bytes(&mut self, n: usize, what: &'static str) -> Result<(), HessianError> {
        self.bytes(n, what).map(|_| ())
    }

    fn be(&mut self, n: usize, what: &'static str) -> Result<u64, HessianError> {
        Ok(self.bytes(n, what)?.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    pub(crate) fn u16_be(&mut self, what: &'static str) -> Result<usize, HessianError> {
        Ok(self.be(2, what)? as usize)
    }

    /// Reads an `int` in any of its forms.
    pub fn read_int(&mut self) -> Result<i32, HessianError> {
        let at = self.position();
        let code = self.byte("int")?;
        self.int_after(code).ok_or(HessianError::Unexpected { expected: "int", code, offset: at })?
    }

    /// The rest of an int whose first byte was `code`; `None` when `code` does not start an int.
    pub(crate) fn int_after(&mut self, code: u8) -> Option<Result<i32, HessianError>> {
        let v = match code {
            0x80..=0xbf => Ok(i32::from(code) - 0x90),
            0xc0..=0xcf => self.be(1, "int").map(|b| ((i32::from(code) - 0xc8) << 8) + b as i32),
            0xd0..=0xd7 => self.be(2, "int").map(|b| ((i32::from(code) - 0xd4) << 16) + b as i32),
            b'I' => self.be(4, "int").map(|b| b as u32 as i32),
            _ => return None,
        };
        Some(v)
    }

    /// Reads a `long` in any of its forms, or an `int` (widened), as Dubbo peers mix them.
    pub fn read_long(&mut self) -> Result<i64, HessianError> {
        let at = self.position();
        let code = self.byte("long")?;
        let v = match code {
            0xd8..=0xef => i64::from(code) - 0xe0,
            0xf0..=0xff => ((i64::from(code) - 0xf8) << 8) + self.be(1, "long")? as i64,
            0x38..=0x3f => ((i64::from(code) - 0x3c) << 16) + self.be(2, "long")? as i64,
            0x59 => i64::from(self.be(4, "long")? as u32 as i32),
            b'L' => self.be(8, "long")? as i64,
            _ => match self.int_after(code) {
                Some(v) => i64::from(v?),
                None => return Err(HessianError::Unexpected { expected: "long", code, offset: at }),
            },
        };
        Ok(v)
    }

    /// Reads a boolean.
    pub fn read_bool(&mut self) -> Result<bool, HessianError> {
        let at = self.position();
        match self.byte("boolean")? {
            b'T' => Ok(true),
            b'F' => Ok(false),
            code => Err(HessianError::Unexpected { expected: "boolean", code, offset: at }),
        }
    }

    /// Consumes a null if one is next; returns whether it did.
    pub fn read_null(&mut self) -> bool {
        if self.peek() == Some(b'N') {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// True when a string starts at the current position.
    pub fn at_string(&self) -> bool {
        matches!(self.peek(), Some(0x00..=0x1f | 0x30..=0x33 | b'R' | b'S'))
    }

    /// Reads a string, or `None` for a null.
    #[inline]
    pub fn read_string(&mut self) -> Result<Option<StrValue>, HessianError> {
        match self.ascii_string() {
            Some(range) => Ok(Some(StrValue::Span(range))),
            None => self.read_string_general(),
        }
    }

    /// The common string, read without the general machinery: one chunk (compact, medium or `S`
    /// form) whose bytes are all ASCII, so that its length in UTF-16 units is its length in
    /// bytes. Consumes it and returns its frame range; `None`, consuming nothing, for anything
    /// else (a null, a chunked or non-ASCII string, a truncated one, another value), which the
    /// general path then reads or refuses.
    #[inline]
    pub(crate) fn ascii_string(&mut self) -> Option<Range<usize>> {
        let rest = self.data.get(self.pos..)?;
        let (&code, after) = rest.split_first()?;
        let (header, len) = match code {
            0x00..=0x1f => (1, usize::from(code)),
            0x30..=0x33 => (2, usize::from(code - 0x30) << 8 | usize::from(*after.first()?)),
            b'S' => (3, usize::from(u16::from_be_bytes([*after.first()?, *after.get(1)?]))),
            _ => return None,
        };
        if !rest.get(header..header + len)?.is_ascii() {
            return None;
        }
        let start = self.pos + header;
        self.pos = start + len;
        Some(self.base + start..self.base + self.pos)
    }

    #[cold]
    fn read_string_general(&mut self) -> Result<Option<StrValue>, HessianError> {
        if self.read_null() {
            return Ok(None);
        }
        let at = self.position();
        let mut code = self.byte("string")?;
        let mut joined: Option<Vec<u8>> = None;
        loop {
            let (chars, last) = match code {
                0x00..=0x1f => (usize::from(code), true),
                0x30..=0x33 => ((usize::from(code - 0x30) << 8) + self.be(1, "string length")? as usize, true),
                b'S' => (self.u16_be("string length")?, true),
                b'R' => (self.u16_be("string length")?, false),
                _ => return Err(HessianError::Unexpected { expected: "string", code, offset: self.position() - 1 }),
            };
            let start = self.pos;
            self.skip_utf8_chars(chars)?;
            let span = self.base + start..self.base + self.pos;
            match (&mut joined, last) {
                (None, true) => {
                    if self.unicode_only && has_lone_surrogate(self.slice(span.clone())) {
                        return Err(HessianError::Invalid { what: "a string with a lone surrogate", offset: at });
                    }
                    return Ok(Some(StrValue::Span(span)));
                }
                (None, false) => joined = Some(self.slice(span).to_vec()),
                (Some(j), _) => j.extend_from_slice(self.slice(span)),
            }
            if last {
                if self.unicode_only && joined.as_deref().is_some_and(has_lone_surrogate) {
                    return Err(HessianError::Invalid { what: "a string with a lone surrogate", offset: at });
                }
                return Ok(joined.map(StrValue::Joined));
            }
            code = self.byte("string chunk")?;
            if !matches!(code, 0x00..=0x1f | 0x30..=0x33 | b'R' | b'S') {
                return Err(HessianError::Invalid { what: "a chunked string continues with a non-string", offset: at });
            }
        }
    }

    /// The data at frame positions `range` (empty if out of bounds).
    pub fn slice(&self, range: Range<usize>) -> &'a [u8] {
        let (s, e) = (range.start.saturating_sub(self.base), range.end.saturating_sub(self.base));
        self.data.get(s..e).unwrap_or(&[])
    }

    /// Skips `chars` characters of Hessian UTF-8, where a character is one UTF-16 unit: 1, 2 or 3
    /// bytes (surrogates are written as two 3-byte sequences). A 4-byte sequence, which some
    /// writers emit for a supplementary character, counts as the two units it stands for.
    pub(crate) fn skip_utf8_chars(&mut self, chars: usize) -> Result<(), HessianError> {
        // Fast path: all-ASCII text is one byte per character.
        if let Some(run) = self.data.get(self.pos..self.pos.saturating_add(chars)) {
            if run.len() == chars && run.is_ascii() {
                self.pos += chars;
                return Ok(());
            }
        }
        let mut left = chars;
        while left > 0 {
            let lead = self.byte("string data")?;
            let (extra, units) = match lead {
                0x00..=0x7f => (0, 1),
                0xc0..=0xdf => (1, 1),
                0xe0..=0xef => (2, 1),
                0xf0..=0xf7 => (3, 2),
                _ => return Err(self.invalid("invalid UTF-8 lead byte in a string")),
            };
            if units > left {
                return Err(self.invalid("a 4-byte character split across a string length"));
            }
            self.skip_bytes(extra, "string data")?;
            left -= units;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(bytes: &[u8]) -> Vec<i32> {
        let mut r = Reader::new(bytes, 0);
        let mut out = Vec::new();
        while !r.is_at_end() {
            out.push(r.read_int().unwrap());
        }
        out
    }

    #[test]
    fn int_forms_from_the_spec() {
        assert_eq!(ints(&[0x90, 0x80, 0xbf]), [0, -16, 47]);
        assert_eq!(ints(&[0xc8, 0x00, 0xc0, 0x00, 0xc7, 0x00, 0xcf, 0xff]), [0, -2048, -256, 2047]);
        assert_eq!(ints(&[0xd4, 0x00, 0x00, 0xd0, 0x00, 0x00, 0xd7, 0xff, 0xff]), [0, -262144, 262143]);
        assert_eq!(ints(&[b'I', 0x80, 0, 0, 0, b'I', 0x7f, 0xff, 0xff, 0xff]), [i32::MIN, i32::MAX]);
    }

    #[test]
    fn long_forms_from_the_spec() {
        let mut r = Reader::new(
            &[0xe0, 0xd8, 0xef, 0xf8, 0x00, 0xf0, 0x00, 0x3c, 0x00, 0x00, 0x38, 0x00, 0x00, 0x59, 0x80, 0, 0, 0, 0x90],
            0,
        );
        let got: Vec<i64> = (0..8).map(|_| r.read_long().unwrap()).collect();
        assert_eq!(got, [0, -8, 15, 0, -2048, 0, -262144, i64::from(i32::MIN)]);
        assert_eq!(r.read_long().unwrap(), 0, "an int is widened");
    }

    #[test]
    fn strings_span_or_join() {
        let mut r = Reader::new(b"\x05hello", 10);
        assert_eq!(r.read_string().unwrap(), Some(StrValue::Span(11..16)));
        let mut r = Reader::new(b"R\x00\x02abS\x00\x01c", 0);
        assert_eq!(r.read_string().unwrap(), Some(StrValue::Joined(b"abc".to_vec())));
        let mut r = Reader::new(b"N", 0);
        assert_eq!(r.read_string().unwrap(), None);
        // "é" is one unit in two bytes; a surrogate pair (CESU-8) is two units in six bytes.
        let mut r = Reader::new(b"\x03\xc3\xa9\xed\xa0\xbd\xed\xb8\x80", 0);
        assert_eq!(r.read_string().unwrap(), Some(StrValue::Span(1..9)));
        // A 4-byte UTF-8 emoji counts as two units. A lone surrogate is read as Java reads it, or
        // refused when the reader reads Unicode only (peers other than Java's cannot decode it):
        // high or low, alone or the wrong way round.
        for lone in
            [&b"\x01\xed\xa0\x80"[..], b"\x02\xed\xa0\x80a", b"\x01\xed\xb0\x80", b"\x02\xed\xb8\x80\xed\xa0\xbd"]
        {
            assert!(Reader::new(lone, 0).read_string().is_ok(), "{lone:x?}");
            let strict = Reader::new(lone, 0).unicode_only().read_string();
            assert!(matches!(strict, Err(HessianError::Invalid { .. })), "{lone:x?}");
        }
        assert!(Reader::new(b"\x03\xc3\xa9\xed\xa0\xbd\xed\xb8\x80", 0).unicode_only().read_string().is_ok());
        assert!(Reader::new(b"\x02\xf0\x9f\x98\x80", 0).read_string().is_ok());
        assert!(Reader::new(b"\x01\xf0\x9f\x98\x80", 0).read_string().is_err());
    }

    #[test]
    fn truncation_and_bad_bytes_are_errors() {
        assert!(matches!(Reader::new(b"\x05hel", 0).read_string(), Err(HessianError::Truncated { .. })));
        assert!(matches!(Reader::new(b"\x02\xff\xff", 0).read_string(), Err(HessianError::Invalid { .. })));
        assert!(matches!(Reader::new(b"T", 0).read_int(), Err(HessianError::Unexpected { code: b'T', .. })));
        assert!(Reader::new(b"R\x00\x01aT", 0).read_string().is_err());
    }
}
