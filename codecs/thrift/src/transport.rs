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

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::{ByteReader, CodecError, KeyValues};

use crate::protocol::{put_varint, read_varint, Protocol};

/// The THeader magic, after the frame length.
pub const HEADER_MAGIC: u16 = 0x0fff;
/// Offset of the THeader sequence id.
pub const HEADER_SEQID_AT: usize = 8;
/// Offset of the THeader header block.
pub const HEADER_BLOCK_AT: usize = 14;
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
}

/// A parsed THeader header block.
#[derive(Clone, Debug)]
pub struct HeaderBlock {
    /// The flags.
    pub flags: u16,
    /// The payload's protocol.
    pub protocol: Protocol,
    /// The info key/values, slices of the frame.
    pub info: KeyValues,
    /// Where the payload starts.
    pub payload_at: usize,
}

fn read_string(r: &mut ByteReader<'_>, frame: &Bytes) -> Result<Bytes, CodecError> {
    let len = usize::try_from(read_varint(r, "header string length")?).map_err(|_| r.error("header string length"))?;
    Ok(frame.slice(r.take_range(len, "header string")?))
}

/// Parses the THeader block of `frame` (which starts with the 4-byte length).
pub fn read_header_block(frame: &Bytes) -> Result<HeaderBlock, CodecError> {
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
    let mut info = KeyValues::new();
    while !h.is_at_end() {
        match read_varint(&mut h, "THeader info type")? {
            0 => break, // padding
            INFO_KEYVALUE | INFO_PKEYVALUE => {
                let count = read_varint(&mut h, "THeader info count")?;
                for _ in 0..count {
                    let key = read_string(&mut h, frame)?;
                    let value = read_string(&mut h, frame)?;
                    info.push(key, value);
                }
            }
            other => return Err(CodecError::Unsupported(format!("THeader info type {other}").into())),
        }
    }
    Ok(HeaderBlock { flags, protocol, info, payload_at })
}

/// Writes a THeader frame prefix: length, magic, flags, sequence id and header block (with
/// `info`), for a payload of `payload_len` bytes that the caller appends.
pub fn put_header_prefix(
    dst: &mut BytesMut,
    flags: u16,
    seqid: i32,
    protocol: Protocol,
    info: &KeyValues,
    payload_len: usize,
) -> Result<(), CodecError> {
    let mut block = BytesMut::new();
    put_varint(&mut block, protocol.header_id());
    put_varint(&mut block, 0);
    if !info.is_empty() {
        put_varint(&mut block, INFO_KEYVALUE);
        put_varint(&mut block, info.len() as u64);
        for e in info {
            put_varint(&mut block, e.key.len() as u64);
            block.put_slice(&e.key);
            put_varint(&mut block, e.value.len() as u64);
            block.put_slice(&e.value);
        }
    }
    while block.len() % 4 != 0 {
        block.put_u8(0);
    }
    let words =
        u16::try_from(block.len() / 4).map_err(|_| CodecError::Encode("THeader header block over 256 KiB".into()))?;
    let rest = (HEADER_BLOCK_AT - 4 + block.len()).checked_add(payload_len).and_then(|n| u32::try_from(n).ok());
    let rest = rest.ok_or(CodecError::Encode("THeader frame over 4 GiB".into()))?;
    dst.put_u32(rest);
    dst.put_u16(HEADER_MAGIC);
    dst.put_u16(flags);
    dst.put_i32(seqid);
    dst.put_u16(words);
    dst.put_slice(&block);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_round_trips() {
        let mut info = KeyValues::new();
        info.push(Bytes::from_static(b"x-tag"), Bytes::from_static(b"blue"));
        info.push(Bytes::from_static(b"batchjob"), Bytes::from_static(b"true"));
        let mut f = BytesMut::new();
        put_header_prefix(&mut f, 1, 77, Protocol::Compact, &info, 3).unwrap();
        f.put_slice(b"abc");
        let frame = f.freeze();
        let h = read_header_block(&frame).unwrap();
        assert_eq!((h.flags, h.protocol), (1, Protocol::Compact));
        assert_eq!(h.info, info);
        assert_eq!(&frame[h.payload_at..], b"abc");
        assert_eq!(u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
    }

    #[test]
    fn detection() {
        assert_eq!(Transport::detect(&[0x80, 1]).unwrap(), Some(Transport::Unframed));
        assert_eq!(Transport::detect(&[0, 0, 0, 9]).unwrap(), None);
        assert_eq!(Transport::detect(&[0, 0, 0, 9, 0x82, 0x21]).unwrap(), Some(Transport::Framed));
        assert_eq!(Transport::detect(&[0, 0, 0, 9, 0x0f, 0xff]).unwrap(), Some(Transport::Header));
        assert!(Transport::detect(b"GET / HTTP/1.1").is_err());
    }
}
