//! Skipping any Hessian 2 value without allocating (except for the class-definition table, which
//! the stream's later objects need).

use smallvec::SmallVec;

use super::reader::Reader;
use super::HessianError;

/// A container being skipped: how many values it still holds.
#[derive(Clone, Copy, Debug)]
enum Open {
    /// A list or object with this many values left.
    Count(u32),
    /// A list (`group` 1) or map (`group` 2) closed by `Z`; `left` values of the current entry
    /// are still to come (0 between entries, where a `Z` may end it).
    UntilEnd { group: u8, left: u8 },
}

/// Containers held inline before the skipper's stack moves to the heap: deeper than any object
/// graph a real Dubbo peer sends.
const INLINE_DEPTH: usize = 32;

impl Reader<'_> {
    /// Skips one whole value of any type, including class definitions that precede it, and
    /// returns the frame range it occupied.
    ///
    /// Nesting is walked with an explicit stack, not by recursion, so however deep the input and
    /// however high `max_depth`, the thread's stack does not grow with it.
    pub fn skip_value(&mut self) -> Result<std::ops::Range<usize>, HessianError> {
        let start = self.pos;
        let mut open: SmallVec<[Open; INLINE_DEPTH]> = SmallVec::new();
        let mut root_read = false;
        loop {
            // Find the slot the next value fills, closing containers that are complete.
            match open.last_mut() {
                None if root_read => break,
                None => root_read = true,
                Some(Open::Count(0)) => {
                    open.pop();
                    continue;
                }
                Some(Open::Count(n)) => *n -= 1,
                Some(Open::UntilEnd { group, left }) => {
                    if *left == 0 {
                        match self.peek() {
                            Some(b'Z') => {
                                self.pos += 1;
                                open.pop();
                                continue;
                            }
                            Some(_) => *left = *group,
                            None => {
                                return Err(HessianError::Truncated {
                                    what: "list or map end",
                                    offset: self.position(),
                                })
                            }
                        }
                    }
                    *left -= 1;
                }
            }
            if let Some(container) = self.skip_head()? {
                if open.len() >= self.max_depth {
                    return Err(HessianError::TooDeep { limit: self.max_depth, offset: self.position() });
                }
                open.push(container);
            }
        }
        let end = self.pos;
        Ok(self.base + start..self.base + end)
    }

    /// Skips the start of one value: all of a scalar, or the header of a container, which it
    /// returns for [`Reader::skip_value`] to walk.
    fn skip_head(&mut self) -> Result<Option<Open>, HessianError> {
        let until_end = |group| Some(Open::UntilEnd { group, left: 0 });
        loop {
            let code = self.byte("value")?;
            let container = match code {
                // Class definition: name, field count, field names; a value follows.
                b'C' => {
                    self.skip_string()?;
                    let fields = self.read_count("class field count")?;
                    for _ in 0..fields {
                        self.skip_string()?;
                    }
                    self.classes.push(fields);
                    continue;
                }
                // Strings.
                0x00..=0x1f | 0x30..=0x33 | b'R' | b'S' => {
                    self.pos -= 1;
                    self.skip_string()?;
                    None
                }
                // Binary.
                0x20..=0x2f | 0x34..=0x37 | b'A' | b'B' => {
                    self.pos -= 1;
                    self.skip_binary()?;
                    None
                }
                // Fixed-size scalars.
                b'N' | b'T' | b'F' | 0x5b | 0x5c | 0x80..=0xbf | 0xd8..=0xef => None,
                0xc0..=0xcf | 0xf0..=0xff | 0x5d => self.skip_bytes(1, "number").map(|_| None)?,
                0xd0..=0xd7 | 0x38..=0x3f | 0x5e => self.skip_bytes(2, "number").map(|_| None)?,
                b'I' | 0x59 | 0x5f | 0x4b => self.skip_bytes(4, "number or date").map(|_| None)?,
                b'D' | b'L' | 0x4a => self.skip_bytes(8, "number or date").map(|_| None)?,
                // Value reference.
                0x51 => self.read_int().map(|_| None)?,
                // Lists.
                0x55 => {
                    self.skip_type()?;
                    until_end(1)
                }
                b'V' => {
                    self.skip_type()?;
                    Some(Open::Count(self.read_count("list length")?))
                }
                0x57 => until_end(1),
                0x58 => Some(Open::Count(self.read_count("list length")?)),
                0x70..=0x77 => {
                    self.skip_type()?;
                    Some(Open::Count(u32::from(code - 0x70)))
                }
                0x78..=0x7f => Some(Open::Count(u32::from(code - 0x78))),
                // Maps.
                b'M' => {
                    self.skip_type()?;
                    until_end(2)
                }
                b'H' => until_end(2),
                // Objects.
                b'O' => {
                    let index = self.read_count("class index")?;
                    Some(self.object(index as usize)?)
                }
                0x60..=0x6f => Some(self.object(usize::from(code - 0x60))?),
                _ => {
                    self.pos -= 1;
                    return Err(self.invalid("a byte that starts no Hessian 2 value"));
                }
            };
            return Ok(container);
        }
    }

    /// Skips a string (any form, chunked or not).
    #[inline]
    pub fn skip_string(&mut self) -> Result<(), HessianError> {
        match self.ascii_string() {
            Some(_) => Ok(()),
            None => self.skip_string_general(),
        }
    }

    #[cold]
    fn skip_string_general(&mut self) -> Result<(), HessianError> {
        loop {
            let at = self.position();
            let code = self.byte("string")?;
            let (chars, last) = match code {
                0x00..=0x1f => (usize::from(code), true),
                0x30..=0x33 => ((usize::from(code - 0x30) << 8) + usize::from(self.byte("string length")?), true),
                b'S' => (self.u16_be("string length")?, true),
                b'R' => (self.u16_be("string length")?, false),
                _ => return Err(HessianError::Unexpected { expected: "string", code, offset: at }),
            };
            self.skip_utf8_chars(chars)?;
            if last {
                return Ok(());
            }
        }
    }

    fn skip_binary(&mut self) -> Result<(), HessianError> {
        loop {
            let at = self.position();
            let code = self.byte("binary")?;
            let (len, last) = match code {
                0x20..=0x2f => (usize::from(code - 0x20), true),
                0x34..=0x37 => ((usize::from(code - 0x34) << 8) + usize::from(self.byte("binary length")?), true),
                b'B' => (self.u16_be("binary length")?, true),
                b'A' => (self.u16_be("binary length")?, false),
                _ => return Err(HessianError::Unexpected { expected: "binary chunk", code, offset: at }),
            };
            self.skip_bytes(len, "binary data")?;
            if last {
                return Ok(());
            }
        }
    }

    /// Skips a list or map type: a type name (string) or a type reference (int).
    fn skip_type(&mut self) -> Result<(), HessianError> {
        if self.at_string() {
            self.skip_string()
        } else {
            self.read_int().map(|_| ()).map_err(|_| self.invalid("a list or map type that is neither string nor int"))
        }
    }

    /// Reads a non-negative int used as a count or index.
    fn read_count(&mut self, what: &'static str) -> Result<u32, HessianError> {
        let at = self.position();
        let n = self.read_int()?;
        u32::try_from(n).map_err(|_| HessianError::Invalid { what, offset: at })
    }

    /// An object of class `index`: as many values as the class has fields.
    fn object(&self, index: usize) -> Result<Open, HessianError> {
        let fields = *self.classes.get(index).ok_or_else(|| self.invalid("an object refers to an undefined class"))?;
        Ok(Open::Count(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::super::reader::Reader;
    use super::super::HessianError;

    fn skip_all(bytes: &[u8]) -> Result<usize, HessianError> {
        let mut r = Reader::new(bytes, 0);
        let mut n = 0;
        while !r.is_at_end() {
            r.skip_value()?;
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn skips_examples_from_the_spec() {
        // Class definition then two objects of that class, the second through the compact form.
        let objects = b"C\x0bexample.Car\x92\x05color\x05model\x60\x03red\x08corvette\x60\x05green\x05civic";
        assert_eq!(skip_all(objects).unwrap(), 2);
        // Typed fixed list of ints, untyped variable list, map with a nested list, a reference.
        let lists = b"V\x04[int\x92\x90\x91\x57\x90\x91Z\x48\x91\x03fee\x92\x78Z\x51\x90";
        assert_eq!(skip_all(lists).unwrap(), 4);
        // Chunked binary, dates, doubles in every form.
        let misc = b"A\x00\x01xB\x00\x02yz\x4b\x00\xe3\x83\x8f\x4a\x00\x00\x00\xd0\x4b\x92\x90\x00\x5b\x5c\x5d\x80\x5e\x00\x80\x5f\x00\x00\x00\x01D\x40\x28\x80\x00\x00\x00\x00\x00";
        assert_eq!(skip_all(misc).unwrap(), 9);
    }

    #[test]
    fn hostile_input_gives_errors() {
        // An object of a class never defined.
        assert!(matches!(skip_all(b"\x60"), Err(HessianError::Invalid { .. })));
        // A list claiming two billion elements ends at the data's end.
        assert!(matches!(skip_all(b"\x58I\x7f\xff\xff\xff\x90"), Err(HessianError::Truncated { .. })));
        // A negative length.
        assert!(matches!(skip_all(b"\x58\x8f"), Err(HessianError::Invalid { .. })));
        // Deep nesting stops at the limit instead of exhausting the stack.
        let deep = vec![0x57u8; 100_000];
        assert!(matches!(skip_all(&deep), Err(HessianError::TooDeep { limit: 64, .. })));
        // Within a high limit, nesting costs heap, not the thread's stack: 200,000 levels on a
        // test thread's 2 MiB stack, well-formed and cut short.
        let n = 200_000;
        let mut nested = vec![0x57u8; n];
        nested.extend(std::iter::repeat_n(b'Z', n));
        let mut r = Reader::new(&nested, 0).with_max_depth(usize::MAX);
        assert_eq!(r.skip_value().unwrap(), 0..2 * n);
        let mut r = Reader::new(&nested[..n + 10], 0).with_max_depth(usize::MAX);
        assert!(matches!(r.skip_value(), Err(HessianError::Truncated { .. })));
        // Maps nest in keys and values, objects in fields.
        let mut r = Reader::new(b"H\x91HZ\x92\x90Z", 0).with_max_depth(2);
        assert_eq!(r.skip_value().unwrap(), 0..7);
        let mut r = Reader::new(b"H\x91HHZZZ", 0).with_max_depth(2);
        assert!(matches!(r.skip_value(), Err(HessianError::TooDeep { limit: 2, .. })));
        // Reserved codes.
        for code in [0x40u8, 0x45, 0x47, 0x50, b'Z'] {
            assert!(skip_all(&[code]).is_err(), "{code:#x}");
        }
    }
}
