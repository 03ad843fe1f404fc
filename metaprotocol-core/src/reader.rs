//! [`ByteReader`]: a bounds-checked cursor for codec authors.
//!
//! Every read checks the remaining length and returns [`CodecError`] instead of panicking, and every
//! error carries the offset where it happened. Parse into offsets with it, then cut the frame with
//! `Bytes::slice` (as hyper's HTTP/1 parser does), so that metadata shares the frame's memory.

use std::ops::Range;

use crate::error::CodecError;

/// A read position over a byte slice. Offsets are reported relative to `base`, so a reader over a
/// sub-slice still names positions within the whole frame.
#[derive(Clone, Debug)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> ByteReader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        ByteReader { buf, pos: 0, base: 0 }
    }

    /// A reader at the start of `buf`, which itself starts at `base` within the frame.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        ByteReader { buf, pos: 0, base }
    }

    /// The current position within the frame (`base` + bytes consumed).
    pub fn position(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte has been read.
    pub fn is_at_end(&self) -> bool {
        self.remaining() == 0
    }

    /// A [`CodecError::Malformed`] at the current position.
    pub fn error(&self, reason: &'static str) -> CodecError {
        CodecError::malformed(self.position(), reason)
    }

    /// Consumes `n` bytes and returns their range within the frame (for `Bytes::slice`).
    pub fn take_range(&mut self, n: usize, what: &'static str) -> Result<Range<usize>, CodecError> {
        let start = self.pos;
        let end = start.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| self.error(what))?;
        self.pos = end;
        Ok(self.base + start..self.base + end)
    }

    /// Consumes `n` bytes and returns them.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let start = self.pos;
        let end = start.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| self.error(what))?;
        self.pos = end;
        self.buf.get(start..end).ok_or_else(|| self.error(what))
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), CodecError> {
        self.take(n, what).map(|_| ())
    }

    /// The next byte, not consumed.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let b = self.peek_u8().ok_or_else(|| self.error(what))?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads a big-endian `u16`.
    pub fn u16_be(&mut self, what: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32_be(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64_be(&mut self, what: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Reads `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
}

/// Checks a declared frame length against the maximum; call it as soon as the length is known,
/// before reserving or buffering the body.
pub fn check_frame_size(declared: u64, max: usize) -> Result<usize, CodecError> {
    usize::try_from(declared).ok().filter(|&n| n <= max).ok_or(CodecError::FrameTooLarge { declared, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_offsets() {
        let data = [0u8, 1, 0, 0, 0, 2, 9, 9];
        let mut r = ByteReader::with_base(&data, 10);
        assert_eq!(r.u16_be("a").unwrap(), 1);
        assert_eq!(r.u32_be("b").unwrap(), 2);
        assert_eq!(r.position(), 16);
        assert_eq!(r.take_range(2, "c").unwrap(), 16..18);
        let err = r.u8("past the end").unwrap_err();
        assert_eq!(err.offset(), Some(18));
        assert!(err.to_string().contains("past the end"));
    }

    #[test]
    fn huge_take_does_not_overflow() {
        let mut r = ByteReader::new(&[1, 2, 3]);
        r.skip(1, "x").unwrap();
        assert!(r.take(usize::MAX, "len").is_err());
        assert_eq!(r.remaining(), 2);
    }

    #[test]
    fn frame_size_check() {
        assert_eq!(check_frame_size(10, 10).unwrap(), 10);
        assert_eq!(check_frame_size(11, 10), Err(CodecError::FrameTooLarge { declared: 11, max: 10 }));
        assert!(check_frame_size(u64::MAX, usize::MAX).is_err() || usize::BITS == 64);
    }
}
