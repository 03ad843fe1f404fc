//! Finding where a message ends by skipping its struct, for unframed transport.
//!
//! The scan is check-then-parse and resumable: each step (a field header, a value, a container
//! header) either completes or leaves the position untouched, and the scanner keeps its position
//! and an explicit stack between calls, so when more bytes arrive it continues where it stopped
//! instead of scanning the message again from the start. The stack also bounds nesting without
//! recursion, and container sizes are checked against a limit.

use metaprotocol_core::CodecError;

use crate::protocol::Protocol;

/// Thrift type ids of the binary protocol.
mod ty {
    pub const STOP: u8 = 0;
    pub const BOOL: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const I16: u8 = 6;
    pub const I32: u8 = 8;
    pub const I64: u8 = 10;
    pub const STRING: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const MAP: u8 = 13;
    pub const SET: u8 = 14;
    pub const LIST: u8 = 15;
    pub const UUID: u8 = 16;
}

/// The compact protocol's type ids, mapped to the binary ones.
pub(crate) fn compact_type(t: u8) -> Option<u8> {
    Some(match t {
        1 | 2 => ty::BOOL,
        3 => ty::BYTE,
        4 => ty::I16,
        5 => ty::I32,
        6 => ty::I64,
        7 => ty::DOUBLE,
        8 => ty::STRING,
        9 => ty::LIST,
        10 => ty::SET,
        11 => ty::MAP,
        12 => ty::STRUCT,
        13 => ty::UUID,
        _ => return None,
    })
}

#[derive(Clone, Copy, Debug)]
enum Frame {
    /// Inside a struct, before a field header.
    Struct,
    /// Inside a list or set: `remaining` values of type `elem`.
    Elems { elem: u8, remaining: u32 },
    /// Inside a map: `remaining` entries; `value_next` when the key of the current one is done.
    Map { key: u8, value: u8, remaining: u32, value_next: bool },
}

/// A resumable scan over one message body.
#[derive(Clone, Debug)]
pub struct Skipper {
    protocol: Protocol,
    stack: Vec<Frame>,
    pos: usize,
    max_depth: usize,
    max_container: u32,
}

/// Not enough bytes yet.
struct NeedMore;

enum Step {
    Done(usize),
    Err(CodecError),
}

impl Skipper {
    /// A scan of the struct that starts at `start`.
    pub fn new(protocol: Protocol, start: usize, max_depth: usize, max_container: u32) -> Self {
        Skipper { protocol, stack: vec![Frame::Struct], pos: start, max_depth, max_container }
    }

    /// Continues over `buf` (the same buffer, possibly grown): the end of the struct when it is
    /// complete, `Ok(None)` when more bytes are needed.
    pub fn run(&mut self, buf: &[u8]) -> Result<Option<usize>, CodecError> {
        loop {
            match self.step(buf) {
                Ok(None) => continue,
                Ok(Some(Step::Done(end))) => return Ok(Some(end)),
                Ok(Some(Step::Err(e))) => return Err(e),
                Err(NeedMore) => return Ok(None),
            }
        }
    }

    fn err(&self, at: usize, what: &'static str) -> Option<Step> {
        Some(Step::Err(CodecError::malformed(at, what)))
    }

    /// One atomic step; `Ok(None)` to continue.
    fn step(&mut self, buf: &[u8]) -> Result<Option<Step>, NeedMore> {
        let Some(top) = self.stack.last().copied() else { return Ok(Some(Step::Done(self.pos))) };
        let mut c = Cursor { buf, pos: self.pos };
        match top {
            Frame::Struct => {
                let Some((field_ty, compact_bool)) = self.field_header(&mut c)? else {
                    self.pos = c.pos;
                    self.stack.pop();
                    return Ok(self.stack.is_empty().then_some(Step::Done(self.pos)));
                };
                if field_ty == u8::MAX {
                    return Ok(self.err(self.pos, "unknown field type"));
                }
                if compact_bool {
                    self.pos = c.pos;
                    return Ok(None);
                }
                self.value(&mut c, field_ty)
            }
            Frame::Elems { elem, remaining } => {
                if remaining == 0 {
                    self.stack.pop();
                    return Ok(None);
                }
                self.value(&mut c, elem)
            }
            Frame::Map { key, value, remaining, value_next } => {
                if remaining == 0 {
                    self.stack.pop();
                    return Ok(None);
                }
                self.value(&mut c, if value_next { value } else { key })
            }
        }
    }

    /// Reads a field header: `None` at STOP, else the (binary-numbered) type, and whether it is a
    /// compact boolean field whose value is in the header.
    fn field_header(&self, c: &mut Cursor<'_>) -> Result<Option<(u8, bool)>, NeedMore> {
        match self.protocol {
            Protocol::Binary => {
                let t = c.u8()?;
                if t == ty::STOP {
                    return Ok(None);
                }
                c.skip(2)?;
                Ok(Some((if valid_binary(t) { t } else { u8::MAX }, false)))
            }
            Protocol::Compact => {
                let b = c.u8()?;
                if b == 0 {
                    return Ok(None);
                }
                if b >> 4 == 0 {
                    c.varint()?;
                }
                let raw = b & 0x0f;
                Ok(Some(match compact_type(raw) {
                    Some(t) => (t, raw == 1 || raw == 2),
                    None => (u8::MAX, false),
                }))
            }
        }
    }

    /// Consumes (atomically) a value of type `t` at the cursor; containers and structs are pushed.
    /// Marks one element consumed in the enclosing container.
    fn value(&mut self, c: &mut Cursor<'_>, t: u8) -> Result<Option<Step>, NeedMore> {
        let binary = self.protocol == Protocol::Binary;
        let push = match t {
            ty::BOOL | ty::BYTE => {
                c.skip(1)?;
                None
            }
            ty::DOUBLE => {
                c.skip(8)?;
                None
            }
            ty::UUID => {
                c.skip(16)?;
                None
            }
            ty::I16 if binary => {
                c.skip(2)?;
                None
            }
            ty::I32 if binary => {
                c.skip(4)?;
                None
            }
            ty::I64 if binary => {
                c.skip(8)?;
                None
            }
            ty::I16 | ty::I32 | ty::I64 => {
                c.varint()?;
                None
            }
            ty::STRING => {
                let len = if binary { c.u32()? as u64 } else { c.varint()? };
                let Ok(len) = usize::try_from(len) else { return Ok(self.err(self.pos, "string length")) };
                c.skip(len)?;
                None
            }
            ty::STRUCT => Some(Frame::Struct),
            ty::LIST | ty::SET => {
                let (elem, size) = if binary {
                    let e = c.u8()?;
                    (if valid_binary(e) { e } else { u8::MAX }, c.u32()?)
                } else {
                    let b = c.u8()?;
                    let size = if b >> 4 == 15 { c.varint()? as u32 } else { u32::from(b >> 4) };
                    (compact_type(b & 0x0f).unwrap_or(u8::MAX), size)
                };
                if elem == u8::MAX || size > self.max_container {
                    return Ok(self.err(self.pos, "invalid list or set header"));
                }
                Some(Frame::Elems { elem, remaining: size })
            }
            ty::MAP => {
                let (key, value, size) = if binary {
                    let (k, v) = (c.u8()?, c.u8()?);
                    let s = c.u32()?;
                    (k, v, s)
                } else {
                    let size = c.varint()? as u32;
                    if size == 0 {
                        (ty::BOOL, ty::BOOL, 0)
                    } else {
                        let kv = c.u8()?;
                        (compact_type(kv >> 4).unwrap_or(u8::MAX), compact_type(kv & 0x0f).unwrap_or(u8::MAX), size)
                    }
                };
                let ok_types = size == 0
                    || (key != u8::MAX && value != u8::MAX && (!binary || (valid_binary(key) && valid_binary(value))));
                if !ok_types || size > self.max_container {
                    return Ok(self.err(self.pos, "invalid map header"));
                }
                Some(Frame::Map { key, value, remaining: size, value_next: false })
            }
            _ => return Ok(self.err(self.pos, "unknown value type")),
        };
        // The value is read: commit, count it in the enclosing container, then enter it if nested.
        self.pos = c.pos;
        if let Some(top) = self.stack.last_mut() {
            match top {
                Frame::Elems { remaining, .. } => *remaining -= 1,
                Frame::Map { remaining, value_next, .. } => {
                    if *value_next {
                        *remaining -= 1;
                    }
                    *value_next = !*value_next;
                }
                Frame::Struct => {}
            }
        }
        if let Some(frame) = push {
            if self.stack.len() >= self.max_depth {
                return Ok(Some(Step::Err(CodecError::TooDeep { offset: self.pos, limit: self.max_depth })));
            }
            self.stack.push(frame);
        }
        Ok(None)
    }
}

pub(crate) fn valid_binary(t: u8) -> bool {
    matches!(t, 2 | 3 | 4 | 6 | 8 | 10 | 11 | 12 | 13 | 14 | 15 | 16)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Result<u8, NeedMore> {
        let b = *self.buf.get(self.pos).ok_or(NeedMore)?;
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<(), NeedMore> {
        let end = self.pos.checked_add(n).ok_or(NeedMore)?;
        if end > self.buf.len() {
            return Err(NeedMore);
        }
        self.pos = end;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, NeedMore> {
        let s: [u8; 4] = self.buf.get(self.pos..self.pos + 4).and_then(|s| s.try_into().ok()).ok_or(NeedMore)?;
        self.pos += 4;
        Ok(u32::from_be_bytes(s))
    }

    /// A varint; an over-long one reads as `u64::MAX`, which every size check then refuses.
    fn varint(&mut self) -> Result<u64, NeedMore> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Ok(u64::MAX)
    }
}
