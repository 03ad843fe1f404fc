//! [`Field`]: an integer at a fixed offset of a frame's header (1, 2, 4 or 8 bytes, big or
//! little endian, optionally a bit mask of it), read and written without panicking.

use std::ops::Range;

/// Byte order of an integer field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endian {
    /// Most significant byte first (network order), the default.
    #[default]
    Big,
    /// Least significant byte first.
    Little,
}

/// An unsigned integer field at a fixed offset, as compiled from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// First byte of the field in the frame.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8 (checked when the configuration is compiled).
    pub width: u8,
    /// Byte order.
    pub endian: Endian,
    /// The bits of the field that hold the value (all bits unless a mask was configured).
    pub mask: u64,
}

impl Field {
    /// A whole-width field.
    pub fn new(offset: u32, width: u8, endian: Endian) -> Field {
        Field { offset, width, endian, mask: all_ones(width) }
    }

    /// The byte range the field covers.
    pub fn range(&self) -> Range<usize> {
        let start = self.offset as usize;
        start..start + usize::from(self.width)
    }

    /// One past the field's last byte.
    pub fn end(&self) -> usize {
        self.range().end
    }

    /// The largest value the field holds (after masking and shifting).
    pub fn max(&self) -> u64 {
        self.mask >> self.mask.trailing_zeros().min(63)
    }

    /// True when the field holds its whole width (no mask narrower than the width).
    pub fn is_whole(&self) -> bool {
        self.mask == all_ones(self.width)
    }

    /// Reads the field's raw bytes as an unsigned integer (no mask applied); `None` when `buf` is
    /// too short.
    pub fn read_raw(&self, buf: &[u8]) -> Option<u64> {
        let bytes = buf.get(self.range())?;
        let mut v: u64 = 0;
        match self.endian {
            Endian::Big => {
                for b in bytes {
                    v = (v << 8) | u64::from(*b);
                }
            }
            Endian::Little => {
                for b in bytes.iter().rev() {
                    v = (v << 8) | u64::from(*b);
                }
            }
        }
        Some(v)
    }

    /// Reads the field's value: its masked bits, shifted down.
    pub fn read(&self, buf: &[u8]) -> Option<u64> {
        let raw = self.read_raw(buf)?;
        Some((raw & self.mask) >> self.mask.trailing_zeros().min(63))
    }

    /// Writes `value` into the field's bits, leaving the other bits of its bytes as they are.
    /// Returns false (writing nothing) when `buf` is too short or `value` does not fit.
    pub fn write(&self, buf: &mut [u8], value: u64) -> bool {
        if value > self.max() {
            return false;
        }
        let Some(old) = self.read_raw(buf) else { return false };
        let shift = self.mask.trailing_zeros().min(63);
        let raw = (old & !self.mask) | ((value << shift) & self.mask);
        let Some(bytes) = buf.get_mut(self.range()) else { return false };
        let width = bytes.len();
        for (i, b) in bytes.iter_mut().enumerate() {
            let byte_index = match self.endian {
                Endian::Big => width - 1 - i,
                Endian::Little => i,
            };
            *b = (raw >> (8 * byte_index)) as u8;
        }
        true
    }

    /// The bytes `value` takes in this (whole-width) field, for patching a frame.
    pub fn encode(&self, value: u64) -> ([u8; 8], usize) {
        let mut out = [0u8; 8];
        let width = usize::from(self.width).min(8);
        if let Some(slot) = out.get_mut(..width) {
            for (i, b) in slot.iter_mut().enumerate() {
                let byte_index = match self.endian {
                    Endian::Big => width - 1 - i,
                    Endian::Little => i,
                };
                *b = (value >> (8 * byte_index)) as u8;
            }
        }
        (out, width)
    }

    /// True when the two fields share a byte.
    pub fn overlaps(&self, other: &Field) -> bool {
        ranges_overlap(&self.range(), &other.range())
    }
}

/// True when two byte ranges share a byte.
pub fn ranges_overlap(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// All bits of a `width`-byte integer.
pub fn all_ones(width: u8) -> u64 {
    match width {
        0 => 0,
        w if w >= 8 => u64::MAX,
        w => (1u64 << (8 * u32::from(w))) - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_both_orders() {
        let mut buf = [0u8; 8];
        let be = Field::new(1, 4, Endian::Big);
        assert!(be.write(&mut buf, 0x0102_0304));
        assert_eq!(buf, [0, 1, 2, 3, 4, 0, 0, 0]);
        assert_eq!(be.read(&buf), Some(0x0102_0304));
        let le = Field::new(1, 4, Endian::Little);
        assert_eq!(le.read(&buf), Some(0x0403_0201));
        assert!(le.write(&mut buf, 0x0a0b));
        assert_eq!(buf, [0, 0x0b, 0x0a, 0, 0, 0, 0, 0]);
        assert!(!Field::new(6, 4, Endian::Big).write(&mut buf, 1), "past the end");
        assert!(!Field::new(0, 1, Endian::Big).write(&mut buf, 256), "too large");
        assert_eq!(Field::new(0, 8, Endian::Big).max(), u64::MAX);
        assert_eq!(Field::new(7, 2, Endian::Big).read(&buf), None);
    }

    #[test]
    fn masks_select_bits() {
        let mut buf = [0b1010_0110u8];
        let f = Field { mask: 0b0011_0000, ..Field::new(0, 1, Endian::Big) };
        assert_eq!(f.read(&buf), Some(0b10));
        assert_eq!(f.max(), 3);
        assert!(f.write(&mut buf, 0b01));
        assert_eq!(buf, [0b1001_0110]);
        assert!(!f.write(&mut buf, 4));
        assert!(!f.is_whole());
    }

    #[test]
    fn encodes_patches() {
        let (bytes, n) = Field::new(0, 2, Endian::Little).encode(0x1234);
        assert_eq!(&bytes[..n], &[0x34, 0x12]);
        assert!(Field::new(0, 2, Endian::Big).overlaps(&Field::new(1, 1, Endian::Big)));
        assert!(!Field::new(0, 2, Endian::Big).overlaps(&Field::new(2, 1, Endian::Big)));
    }
}
