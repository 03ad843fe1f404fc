//! Reading a map of strings (Dubbo attachments) as ranges of the data.

use std::ops::Range;

use super::reader::{Reader, StrValue};
use super::HessianError;

/// A map value: a string, or the raw encoded span of a value of another type (exposed as is, so
/// that an unusual attachment never fails a request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapValue {
    /// A string (or a null, as an empty span).
    Str(StrValue),
    /// The whole encoded value, for non-string values.
    Raw(Range<usize>),
}

/// One entry of a map: its key and value, plus the frame range of the whole encoded entry, which
/// a re-encoder copies verbatim when the entry is left untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// The key (non-string keys are given as their raw encoding).
    pub key: MapValue,
    /// The value.
    pub value: MapValue,
    /// The encoded key and value together.
    pub encoded: Range<usize>,
}

impl Reader<'_> {
    /// Reads a map (`H`, or `M` with a type) and calls `entry` for each pair in order; a null is
    /// an empty map. Returns the frame range of the whole map.
    pub fn read_map(&mut self, mut entry: impl FnMut(MapEntry)) -> Result<Range<usize>, HessianError> {
        let start = self.position();
        if self.map_open()? {
            while !self.map_close()? {
                let at = self.position();
                let key = self.map_value()?;
                let value = self.map_value()?;
                entry(MapEntry { key, value, encoded: at..self.position() });
            }
        }
        Ok(start..self.position())
    }

    /// Opens a map: consumes `H`, or `M` and the map's type, and returns true; consumes a null
    /// (an empty map, with nothing more to read) and returns false.
    pub(crate) fn map_open(&mut self) -> Result<bool, HessianError> {
        let start = self.position();
        if self.read_null() {
            return Ok(false);
        }
        match self.byte("map")? {
            b'H' => {}
            b'M' => {
                // The map's Java type, such as java.util.HashMap: a type name or a type reference.
                if self.at_string() {
                    self.skip_string()?;
                } else {
                    self.read_int()?;
                }
            }
            code => return Err(HessianError::Unexpected { expected: "map", code, offset: start }),
        }
        Ok(true)
    }

    /// Inside an open map: consumes the closing `Z` and returns true, or returns false when an
    /// entry follows.
    #[inline]
    pub(crate) fn map_close(&mut self) -> Result<bool, HessianError> {
        match self.peek() {
            Some(b'Z') => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(HessianError::Truncated { what: "map end", offset: self.position() }),
        }
    }

    #[inline]
    fn map_value(&mut self) -> Result<MapValue, HessianError> {
        match self.ascii_string() {
            Some(range) => Ok(MapValue::Str(StrValue::Span(range))),
            None => self.map_value_general(),
        }
    }

    /// A map key or value that is not a one-chunk ASCII string.
    pub(crate) fn map_value_general(&mut self) -> Result<MapValue, HessianError> {
        if self.at_string() {
            let s = self.read_string()?;
            return Ok(MapValue::Str(s.unwrap_or(StrValue::Joined(Vec::new()))));
        }
        if self.peek() == Some(b'N') {
            self.pos += 1;
            let at = self.position();
            return Ok(MapValue::Str(StrValue::Span(at..at)));
        }
        Ok(MapValue::Raw(self.skip_value()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_string_pairs_and_exposes_other_values_raw() {
        let data = b"H\x04path\x0eorg.demo.Hello\x07timeout\xc8\x64\x05empty\x4eZ";
        let mut entries = Vec::new();
        let range = Reader::new(data, 100).read_map(|e| entries.push(e)).unwrap();
        assert_eq!(range, 100..100 + data.len());
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].key, MapValue::Str(StrValue::Span(102..106)));
        assert_eq!(entries[0].value, MapValue::Str(StrValue::Span(107..121)));
        assert_eq!(entries[1].value, MapValue::Raw(129..131));
        assert!(matches!(&entries[2].value, MapValue::Str(StrValue::Span(r)) if r.is_empty()));
        assert_eq!(entries[0].encoded, 101..121);
    }

    #[test]
    fn typed_and_null_maps() {
        let mut n = 0;
        Reader::new(b"M\x11java.util.HashMap\x01a\x01bZ", 0).read_map(|_| n += 1).unwrap();
        assert_eq!(n, 1);
        assert_eq!(Reader::new(b"N", 0).read_map(|_| n += 1).unwrap(), 0..1);
        assert!(Reader::new(b"H\x01a", 0).read_map(|_| {}).is_err());
        assert!(Reader::new(b"\x90", 0).read_map(|_| {}).is_err());
    }
}
