//! Thrift transports: detection, and the THeader transport's header block.
//!
//! THeader frame layout (all big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | length of the rest of the frame |
//! | 4 | 2 | magic `0x0fff` |
//! | 6 | 2 | flags |
//! | 8 | 4 | sequence id |
//! | 12 | 2 | header size in 4-byte words |
//! | 14 | n | varint protocol id, varint transform count and ids, info sections (varint type 1: varint count, then varint-length key and value strings), zero padding |
//! | 14 + n | .. | the message in the header's protocol |

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use metaprotocol_core::{ByteReader, CodecError, KeyValues};

use crate::protocol::{put_varint, read_varint, varint_len, Protocol};

/// The THeader magic, after the frame length.
pub const HEADER_MAGIC: u16 = 0x0fff;
/// Offset of the THeader flags.
pub const HEADER_FLAGS_AT: usize = 6;
/// Offset of the THeader sequence id.
pub const HEADER_SEQID_AT: usize = 8;
/// Offset of the THeader header block.
pub const HEADER_BLOCK_AT: usize = 14;
/// The largest THeader header block: its size is a `u16` count of 4-byte words.
const MAX_BLOCK: usize = u16::MAX as usize * 4;
/// Info section type of key/value headers.
const INFO_KEYVALUE: u64 = 1;
/// Info section type of persistent key/value headers.
const INFO_PKEYVALUE: u64 = 2;

/// A Thrift transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// A 4-byte length, then the message.
    Framed,
    /// The message alone; its end is found by skipping it.
    Unframed,
    /// THeader: a length, a header block with key/values, then the message.
    Header,
}

impl Transport {
    /// Detects the transport from a connection's first bytes, as Envoy does: `Ok(None)` until
    /// enough bytes are there to tell.
    pub fn detect(buf: &[u8]) -> Result<Option<Transport>, CodecError> {
        let Some(&first) = buf.first() else { return Ok(None) };
        if first == 0x80 || first == crate::protocol::COMPACT_PROTOCOL_ID {
            return Ok(Some(Transport::Unframed));
        }
        let (Some(a), Some(b)) = (buf.get(4), buf.get(5)) else { return Ok(None) };
        if [*a, *b] == HEADER_MAGIC.to_be_bytes() {
            return Ok(Some(Transport::Header));
        }
        if *a == 0x80 || *a == crate::protocol::COMPACT_PROTOCOL_ID {
            return Ok(Some(Transport::Framed));
        }
        Err(CodecError::malformed(
            0,
            "not a Thrift message (unknown transport; set `transport` and `lax_binary` for lax binary)",
        ))
    }

    /// The transport of a whole frame that a framed or THeader connection cut from its stream
    /// (a 4-byte length first): THeader when the magic follows the length, framed otherwise.
    pub fn of_length_prefixed(frame: &[u8]) -> Transport {
        if frame.get(4..6) == Some(&HEADER_MAGIC.to_be_bytes()[..]) {
            Transport::Header
        } else {
            Transport::Framed
        }
    }
}

/// What the fixed part of a THeader header block says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderBlock {
    /// The flags.
    pub flags: u16,
    /// The payload's protocol.
    pub protocol: Protocol,
    /// Where the info sections lie within the frame (after the protocol id and transforms, up
    /// to the payload); read them with [`read_info`].
    pub info: Range<usize>,
    /// Where the payload (the message) starts.
    pub payload_at: usize,
}

/// Parses the fixed part of the THeader block of `frame` (which starts with the 4-byte length):
/// magic, flags, protocol id and transforms. The info sections are only located; [`read_info`]
/// reads them, so a decoder can record the message's own fields first.
pub fn read_header_block(frame: &[u8]) -> Result<HeaderBlock, CodecError> {
    let mut r = ByteReader::with_base(frame.get(4..).unwrap_or(&[]), 4);
    if r.u16_be("THeader magic")? != HEADER_MAGIC {
        return Err(CodecError::malformed(4, "bad THeader magic"));
    }
    let flags = r.u16_be("THeader flags")?;
    r.skip(4, "THeader sequence id")?;
    let words = usize::from(r.u16_be("THeader header size")?);
    let payload_at = HEADER_BLOCK_AT + words * 4;
    let block = frame
        .get(HEADER_BLOCK_AT..payload_at)
        .ok_or_else(|| CodecError::malformed(12, "THeader header size past the frame"))?;
    let mut h = ByteReader::with_base(block, HEADER_BLOCK_AT);
    let proto_id = read_varint(&mut h, "THeader protocol id")?;
    let protocol = Protocol::from_header_id(proto_id)
        .ok_or_else(|| CodecError::Unsupported(format!("THeader protocol id {proto_id}").into()))?;
    let transforms = read_varint(&mut h, "THeader transform count")?;
    if transforms > 0 {
        let id = read_varint(&mut h, "THeader transform id").unwrap_or(0);
        return Err(CodecError::Unsupported(
            format!("THeader transform {id} (zlib and other transforms are not implemented)").into(),
        ));
    }
    Ok(HeaderBlock { flags, protocol, info: h.position()..payload_at, payload_at })
}

/// Reads the info sections of `block` and pushes each key/value onto `kvs` as spans of its frame
/// (`kvs` must be a map over the same frame, see [`KeyValues::over`]).
pub fn read_info(block: &HeaderBlock, kvs: &mut KeyValues) -> Result<(), CodecError> {
    let frame = kvs.frame().clone();
    let bytes = frame
        .get(block.info.clone())
        .ok_or_else(|| CodecError::malformed(block.info.start, "THeader info outside the frame"))?;
    let mut h = ByteReader::with_base(bytes, block.info.start);
    while !h.is_at_end() {
        match read_varint(&mut h, "THeader info type")? {
            0 => break, // padding
            INFO_KEYVALUE | INFO_PKEYVALUE => {
                let count = read_varint(&mut h, "THeader info count")?;
                for _ in 0..count {
                    let key = read_string(&mut h)?;
                    let value = read_string(&mut h)?;
                    kvs.push(kvs.span(key)?, kvs.span(value)?);
                }
            }
            other => return Err(CodecError::Unsupported(format!("THeader info type {other}").into())),
        }
    }
    Ok(())
}

fn read_string(r: &mut ByteReader<'_>) -> Result<Range<usize>, CodecError> {
    let len = usize::try_from(read_varint(r, "header string length")?).map_err(|_| r.error("header string length"))?;
    r.take_range(len, "header string")
}

/// The size of the header block [`put_header_prefix`] writes for `protocol` and `info`,
/// padding included.
pub fn header_block_len(protocol: Protocol, info: &KeyValues) -> usize {
    let mut n = varint_len(protocol.header_id()) + 1;
    if !info.is_empty() {
        n += varint_len(INFO_KEYVALUE) + varint_len(info.len() as u64);
        for (k, v) in info.iter() {
            n += varint_len(k.len() as u64) + k.len() + varint_len(v.len() as u64) + v.len();
        }
    }
    n.next_multiple_of(4)
}

/// The size of the frame prefix [`put_header_prefix`] writes (length, fixed fields, block).
pub fn header_prefix_len(protocol: Protocol, info: &KeyValues) -> usize {
    HEADER_BLOCK_AT + header_block_len(protocol, info)
}

/// Writes a THeader frame prefix: length, magic, flags, sequence id and header block (with
/// `info`), for a payload of `payload_len` bytes that the caller appends. Checks every size
/// first: on error nothing is written.
pub fn put_header_prefix(
    dst: &mut BytesMut,
    flags: u16,
    seqid: i32,
    protocol: Protocol,
    info: &KeyValues,
    payload_len: usize,
) -> Result<(), CodecError> {
    let block = header_block_len(protocol, info);
    if block > MAX_BLOCK {
        return Err(CodecError::Encode("THeader header block over 256 KiB".into()));
    }
    let words = u16::try_from(block / 4).map_err(|_| CodecError::Encode("THeader header block over 256 KiB".into()))?;
    let rest = (HEADER_BLOCK_AT - 4 + block).checked_add(payload_len).and_then(|n| u32::try_from(n).ok());
    let rest = rest.ok_or(CodecError::Encode("THeader frame over 4 GiB".into()))?;
    dst.reserve(HEADER_BLOCK_AT + block);
    dst.put_u32(rest);
    dst.put_u16(HEADER_MAGIC);
    dst.put_u16(flags);
    dst.put_i32(seqid);
    dst.put_u16(words);
    let start = dst.len();
    put_varint(dst, protocol.header_id());
    put_varint(dst, 0);
    if !info.is_empty() {
        put_varint(dst, INFO_KEYVALUE);
        put_varint(dst, info.len() as u64);
        for (k, v) in info.iter() {
            put_varint(dst, k.len() as u64);
            dst.put_slice(k);
            put_varint(dst, v.len() as u64);
            dst.put_slice(v);
        }
    }
    while dst.len() - start < block {
        dst.put_u8(0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn header_block_round_trips() {
        let mut info = KeyValues::new();
        info.push_bytes(Bytes::from_static(b"x-tag"), Bytes::from_static(b"blue"));
        info.push_bytes(Bytes::from_static(b"batchjob"), Bytes::from_static(b"true"));
        let mut f = BytesMut::new();
        put_header_prefix(&mut f, 1, 77, Protocol::Compact, &info, 3).unwrap();
        assert_eq!(f.len(), header_prefix_len(Protocol::Compact, &info));
        f.put_slice(b"abc");
        let frame = f.freeze();
        let h = read_header_block(&frame).unwrap();
        assert_eq!((h.flags, h.protocol), (1, Protocol::Compact));
        let mut got = KeyValues::over(frame.clone(), 2);
        read_info(&h, &mut got).unwrap();
        assert_eq!(got, info);
        assert_eq!(&frame[h.payload_at..], b"abc");
        assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
    }

    #[test]
    fn an_oversized_block_writes_nothing() {
        let mut info = KeyValues::new();
        info.push_bytes(Bytes::from_static(b"big"), Bytes::from(vec![b'x'; MAX_BLOCK]));
        let mut f = BytesMut::new();
        assert!(put_header_prefix(&mut f, 0, 1, Protocol::Binary, &info, 0).is_err());
        assert!(f.is_empty());
    }

    #[test]
    fn detection() {
        assert_eq!(Transport::detect(&[0x80, 1]).unwrap(), Some(Transport::Unframed));
        assert_eq!(Transport::detect(&[0, 0, 0, 9]).unwrap(), None);
        assert_eq!(Transport::detect(&[0, 0, 0, 9, 0x82, 0x21]).unwrap(), Some(Transport::Framed));
        assert_eq!(Transport::detect(&[0, 0, 0, 9, 0x0f, 0xff]).unwrap(), Some(Transport::Header));
        assert!(Transport::detect(b"GET / HTTP/1.1").is_err());
        assert_eq!(Transport::of_length_prefixed(&[0, 0, 0, 9, 0x0f, 0xff]), Transport::Header);
        assert_eq!(Transport::of_length_prefixed(&[0, 0, 0, 9, 0x80, 0x01]), Transport::Framed);
    }
}
