//! Thrift protocols: reading and writing message headers in the binary (strict and lax) and
//! compact encodings.

use bytes::{BufMut, BytesMut};
use metaprotocol_core::{ByteReader, CodecError};

/// Strict binary protocol: the version word's top half.
pub const BINARY_VERSION_1: u32 = 0x8001_0000;
/// Compact protocol id byte.
pub const COMPACT_PROTOCOL_ID: u8 = 0x82;
/// Compact protocol version.
pub const COMPACT_VERSION: u8 = 1;

/// A Thrift protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TBinaryProtocol (strict, or lax when allowed).
    Binary,
    /// TCompactProtocol.
    Compact,
}

impl Protocol {
    /// The protocol id THeader uses (0 binary, 2 compact).
    pub fn header_id(self) -> u64 {
        match self {
            Protocol::Binary => 0,
            Protocol::Compact => 2,
        }
    }

    /// The protocol for a THeader protocol id.
    pub fn from_header_id(id: u64) -> Option<Self> {
        match id {
            0 => Some(Protocol::Binary),
            2 => Some(Protocol::Compact),
            _ => None,
        }
    }

    /// The protocol a message starting with `first` uses (lax binary needs the option).
    pub fn detect(first: u8, lax: bool) -> Option<Self> {
        match first {
            0x80 => Some(Protocol::Binary),
            COMPACT_PROTOCOL_ID => Some(Protocol::Compact),
            0x00..=0x7f if lax => Some(Protocol::Binary),
            _ => None,
        }
    }
}

/// Thrift message types.
pub mod message_type {
    /// A call.
    pub const CALL: u8 = 1;
    /// A reply.
    pub const REPLY: u8 = 2;
    /// An exception (TApplicationException).
    pub const EXCEPTION: u8 = 3;
    /// A one-way call.
    pub const ONEWAY: u8 = 4;
}

/// What a message header holds, with positions relative to the message start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    /// Message type (1 to 4).
    pub kind: u8,
    /// Where the name's bytes are.
    pub name: std::ops::Range<usize>,
    /// The sequence id.
    pub seqid: i32,
    /// Where the sequence id's encoding is.
    pub seqid_at: std::ops::Range<usize>,
    /// Where the header ends (the body struct starts).
    pub end: usize,
}

/// Reads a varint (up to 10 bytes).
pub fn read_varint(r: &mut ByteReader<'_>, what: &'static str) -> Result<u64, CodecError> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let b = r.u8(what)?;
        v |= u64::from(b & 0x7f) << shift.min(63);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(r.error("varint longer than 10 bytes"))
}

/// The number of bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Writes a varint.
pub fn put_varint(dst: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        dst.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    dst.put_u8(v as u8);
}

/// Zigzag-decodes a 32-bit value.
pub fn unzigzag32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Zigzag-encodes a 32-bit value.
pub fn zigzag32(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

/// Parses the message header at the start of `msg`. `lax` accepts the old binary form without a
/// version word.
pub fn read_header(protocol: Protocol, msg: &[u8], lax: bool) -> Result<MessageHeader, CodecError> {
    let mut r = ByteReader::new(msg);
    match protocol {
        Protocol::Binary => {
            let word = r.u32_be("message header")?;
            if word & 0x8000_0000 != 0 {
                if word & 0xffff_0000 != BINARY_VERSION_1 {
                    return Err(CodecError::Unsupported(format!("binary protocol version {:#x}", word >> 16).into()));
                }
                let kind = (word & 0xff) as u8;
                let len = r.u32_be("method name length")? as usize;
                let name = r.take_range(len, "method name")?;
                let at = r.position();
                let seqid = r.u32_be("sequence id")? as i32;
                Ok(MessageHeader { kind, name, seqid, seqid_at: at..at + 4, end: r.position() })
            } else if lax {
                let len = word as usize;
                let name = r.take_range(len, "method name")?;
                let kind = r.u8("message type")?;
                let at = r.position();
                let seqid = r.u32_be("sequence id")? as i32;
                Ok(MessageHeader { kind, name, seqid, seqid_at: at..at + 4, end: r.position() })
            } else {
                Err(CodecError::malformed(0, "binary message without a version (lax binary is not enabled)"))
            }
        }
        Protocol::Compact => {
            if r.u8("protocol id")? != COMPACT_PROTOCOL_ID {
                return Err(CodecError::malformed(0, "not a compact protocol message"));
            }
            let vt = r.u8("version and type")?;
            if vt & 0x1f != COMPACT_VERSION {
                return Err(CodecError::Unsupported(format!("compact protocol version {}", vt & 0x1f).into()));
            }
            let kind = vt >> 5;
            let at = r.position();
            let seqid = read_varint(&mut r, "sequence id")? as u32 as i32;
            let seqid_at = at..r.position();
            let len = read_varint(&mut r, "method name length")? as usize;
            let name = r.take_range(len, "method name")?;
            Ok(MessageHeader { kind, name, seqid, seqid_at, end: r.position() })
        }
    }
    .and_then(|h| match h.kind {
        1..=4 => Ok(h),
        _ => Err(CodecError::malformed(0, "unknown message type")),
    })
}

/// Writes a sequence id in `protocol`'s encoding.
pub fn put_seqid(dst: &mut BytesMut, protocol: Protocol, seqid: i32) {
    match protocol {
        Protocol::Binary => dst.put_i32(seqid),
        Protocol::Compact => put_varint(dst, u64::from(seqid as u32)),
    }
}

/// Writes a strict message header and returns where its parts are, relative to where it
/// started (the same positions [`read_header`] reports for it).
pub fn put_header(dst: &mut BytesMut, protocol: Protocol, kind: u8, name: &[u8], seqid: i32) -> MessageHeader {
    let start = dst.len();
    let (name_at, seqid_at) = match protocol {
        Protocol::Binary => {
            dst.put_u32(BINARY_VERSION_1 | u32::from(kind));
            dst.put_u32(name.len() as u32);
            let name_at = dst.len() - start;
            dst.put_slice(name);
            let seqid_at = dst.len() - start;
            dst.put_i32(seqid);
            (name_at, seqid_at..seqid_at + 4)
        }
        Protocol::Compact => {
            dst.put_u8(COMPACT_PROTOCOL_ID);
            dst.put_u8((kind << 5) | COMPACT_VERSION);
            let seqid_at = dst.len() - start;
            put_varint(dst, u64::from(seqid as u32));
            let seqid_end = dst.len() - start;
            put_varint(dst, name.len() as u64);
            let name_at = dst.len() - start;
            dst.put_slice(name);
            (name_at, seqid_at..seqid_end)
        }
    };
    MessageHeader { kind, name: name_at..name_at + name.len(), seqid, seqid_at, end: dst.len() - start }
}

/// The id of the first field of the struct at the start of `body` (0 = STOP or success), used to
/// tell a declared exception (field id >= 1) from a success in a reply.
pub fn first_field_id(protocol: Protocol, body: &[u8]) -> Result<Option<i16>, CodecError> {
    let mut r = ByteReader::new(body);
    match protocol {
        Protocol::Binary => {
            let ty = r.u8("field type")?;
            if ty == 0 {
                return Ok(None);
            }
            Ok(Some(r.u16_be("field id")? as i16))
        }
        Protocol::Compact => {
            let b = r.u8("field header")?;
            if b == 0 {
                return Ok(None);
            }
            let delta = b >> 4;
            if delta != 0 {
                return Ok(Some(i16::from(delta)));
            }
            Ok(Some(unzigzag32(read_varint(&mut r, "field id")?) as i16))
        }
    }
}

/// Checks that `body` can be a Thrift struct without walking it: at least one byte, a first
/// field header with a known type (or STOP), and a last byte that is STOP, which every struct in
/// both protocols ends with. Cheap enough for every call on framed transports, whose bodies are
/// otherwise forwarded unread; the error names the offset within `body`.
pub fn check_struct_bounds(protocol: Protocol, body: &[u8]) -> Result<(), CodecError> {
    let Some((&first, _)) = body.split_first() else {
        return Err(CodecError::malformed(0, "the message has no argument struct"));
    };
    let known = match protocol {
        Protocol::Binary => first == 0 || crate::skip::valid_binary(first),
        Protocol::Compact => first == 0 || crate::skip::compact_type(first & 0x0f).is_some(),
    };
    if !known {
        return Err(CodecError::malformed(0, "unknown field type in the argument struct"));
    }
    if first != 0 && protocol == Protocol::Binary && body.len() < 4 {
        return Err(CodecError::malformed(0, "argument struct shorter than its first field"));
    }
    match body.last() {
        Some(0) => Ok(()),
        _ => Err(CodecError::malformed(body.len().saturating_sub(1), "the argument struct does not end with STOP")),
    }
}

/// The length of the message header at the start of `buf`, or `None` while it is incomplete
/// (unframed transport has no length to wait for). Does not validate; [`read_header`] does.
pub fn header_len(protocol: Protocol, buf: &[u8], lax: bool) -> Option<usize> {
    // Every read error here means "not enough bytes yet": nothing is validated.
    let mut r = ByteReader::new(buf);
    match protocol {
        Protocol::Binary => {
            let word = r.u32_be("").ok()?;
            if word & 0x8000_0000 != 0 || !lax {
                let len = r.u32_be("").ok()? as usize;
                r.skip(len, "").ok()?;
                r.skip(4, "").ok()?;
            } else {
                r.skip(word as usize, "").ok()?;
                r.skip(5, "").ok()?;
            }
        }
        Protocol::Compact => {
            r.skip(2, "").ok()?;
            read_varint(&mut r, "").ok()?;
            let len = usize::try_from(read_varint(&mut r, "").ok()?).ok()?;
            r.skip(len, "").ok()?;
        }
    }
    Some(r.position())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_in_both_protocols() {
        for p in [Protocol::Binary, Protocol::Compact] {
            for seqid in [0, 1, 127, 128, 300_000, -1, i32::MAX, i32::MIN] {
                let mut b = BytesMut::new();
                let written = put_header(&mut b, p, message_type::CALL, b"Greeter:sayHello", seqid);
                b.put_u8(0);
                let h = read_header(p, &b, false).unwrap();
                assert_eq!(written, h);
                assert_eq!((h.kind, h.seqid), (message_type::CALL, seqid));
                assert_eq!(&b[h.name.clone()], b"Greeter:sayHello");
                assert_eq!(h.end, b.len() - 1);
            }
        }
    }

    #[test]
    fn struct_bounds() {
        for p in [Protocol::Binary, Protocol::Compact] {
            assert!(check_struct_bounds(p, &[0]).is_ok());
            assert!(check_struct_bounds(p, &[]).is_err());
            assert!(check_struct_bounds(p, &[0x7f, 0, 1, 0]).is_err(), "{p:?}: unknown type");
        }
        assert!(check_struct_bounds(Protocol::Binary, &[11, 0, 1, 0, 0, 0, 0, 0]).is_ok());
        assert!(check_struct_bounds(Protocol::Binary, &[11, 0, 1, 0, 0, 0, 1, b'x']).is_err());
        assert!(check_struct_bounds(Protocol::Compact, &[0x18, 1, b'x', 0]).is_ok());
        assert!(check_struct_bounds(Protocol::Compact, &[0x18, 2, b'x']).is_err());
    }

    #[test]
    fn lax_binary_needs_the_option() {
        let mut b = BytesMut::new();
        b.put_u32(5);
        b.put_slice(b"hello");
        b.put_u8(message_type::CALL);
        b.put_i32(9);
        assert!(read_header(Protocol::Binary, &b, false).is_err());
        assert_eq!(read_header(Protocol::Binary, &b, true).unwrap().seqid, 9);
    }

    #[test]
    fn zigzag_and_varints() {
        for v in [0, 1, -1, 63, -64, i32::MAX, i32::MIN] {
            assert_eq!(unzigzag32(zigzag32(v)), v);
        }
        let mut b = BytesMut::new();
        put_varint(&mut b, 300);
        assert_eq!(&b[..], &[0xac, 0x02]);
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(varint_len(v), b.len(), "{v}");
        }
        assert!(read_varint(&mut ByteReader::new(&[0xff; 11]), "x").is_err());
    }
}
