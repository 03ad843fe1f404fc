//! The kv wire format: constants, the fixed header, the header block, and a frame builder.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::{ByteReader, CodecError, KeyValues, MessageType, ResponseStatus};

/// The magic bytes that open every frame.
pub const MAGIC: [u8; 2] = *b"KV";
/// The only version this codec speaks.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header, before the header block.
pub const FIXED_HEADER: usize = 20;
/// Bytes before the length field's coverage starts (magic, version, type, length).
pub const PREFIX: usize = 8;
/// Offset of the message type.
pub const TYPE_OFFSET: usize = 3;
/// Offset of the request id.
pub const ID_OFFSET: usize = 8;
/// Offset of the status.
pub const STATUS_OFFSET: usize = 16;
/// Offset of the header block length.
pub const BLOCK_LEN_OFFSET: usize = 18;

/// The message types of the kv protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KvType {
    /// A request expecting a response.
    Request = 0,
    /// A response.
    Response = 1,
    /// A request expecting no response.
    Oneway = 2,
    /// A heartbeat that asks for a pong.
    Ping = 3,
    /// The answer to a ping.
    Pong = 4,
    /// An error response.
    Error = 5,
}

impl KvType {
    /// Parses the type byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => KvType::Request,
            1 => KvType::Response,
            2 => KvType::Oneway,
            3 => KvType::Ping,
            4 => KvType::Pong,
            5 => KvType::Error,
            _ => return None,
        })
    }

    /// The framework's message type.
    pub fn message_type(self) -> MessageType {
        match self {
            KvType::Request => MessageType::Request,
            KvType::Response => MessageType::Response,
            KvType::Oneway => MessageType::Oneway,
            KvType::Ping => MessageType::Ping,
            KvType::Pong => MessageType::Pong,
            KvType::Error => MessageType::Error,
        }
    }
}

/// Maps the status byte.
pub fn status_from_byte(b: u8) -> Result<ResponseStatus, &'static str> {
    match b {
        0 => Ok(ResponseStatus::Ok),
        1 => Ok(ResponseStatus::Error),
        2 => Ok(ResponseStatus::BusinessException),
        _ => Err("unknown status byte"),
    }
}

/// The status byte for a status.
pub fn status_to_byte(s: ResponseStatus) -> u8 {
    match s {
        ResponseStatus::Ok => 0,
        ResponseStatus::Error => 1,
        ResponseStatus::BusinessException => 2,
    }
}

/// Parses the header block occupying `start..end` of `kvs`'s frame, pushing each entry as spans
/// of the frame (no copy). `kvs` must be a map over the frame ([`KeyValues::over`]).
pub fn parse_block(kvs: &mut KeyValues, start: usize, end: usize) -> Result<(), CodecError> {
    let frame = kvs.frame().clone();
    let block = frame.get(start..end).ok_or_else(|| CodecError::malformed(start, "header block outside the frame"))?;
    let mut r = ByteReader::with_base(block, start);
    while !r.is_at_end() {
        let klen = r.u8("header key length")? as usize;
        if klen == 0 {
            return Err(r.error("empty header key"));
        }
        let key = r.take_range(klen, "header key")?;
        let vlen = r.u16_be("header value length")? as usize;
        let value = r.take_range(vlen, "header value")?;
        kvs.push(kvs.span(key)?, kvs.span(value)?);
    }
    Ok(())
}

/// Appends one header entry and returns where its key and value landed in `dst`; fails, writing
/// nothing, when the key or value is too long for the format.
pub fn put_entry(dst: &mut BytesMut, key: &[u8], value: &[u8]) -> Result<(Range<usize>, Range<usize>), CodecError> {
    let (klen, vlen) = check_entry(key, value)?;
    dst.put_u8(klen);
    let key_at = dst.len();
    dst.put_slice(key);
    dst.put_u16(vlen);
    let value_at = dst.len();
    dst.put_slice(value);
    Ok((key_at..key_at + key.len(), value_at..value_at + value.len()))
}

/// The key and value lengths of an entry, as the format writes them; fails when the key or value
/// is too long for the format (or the key is empty).
pub fn check_entry(key: &[u8], value: &[u8]) -> Result<(u8, u16), CodecError> {
    let klen = u8::try_from(key.len())
        .ok()
        .filter(|&n| n > 0)
        .ok_or(CodecError::Encode("kv header keys are 1 to 255 bytes".into()))?;
    let vlen = u16::try_from(value.len())
        .map_err(|_| CodecError::Encode("kv header values are at most 65535 bytes".into()))?;
    Ok((klen, vlen))
}

/// The encoded size of one header entry.
pub fn entry_len(key: &[u8], value: &[u8]) -> usize {
    3 + key.len() + value.len()
}

/// Writes the fixed header for a frame with a `block_len`-byte header block and `body_len`-byte
/// body; fails, writing nothing, when the sizes do not fit the format.
pub fn put_fixed_header(
    dst: &mut BytesMut,
    kind: KvType,
    request_id: u64,
    status: ResponseStatus,
    block_len: usize,
    body_len: usize,
) -> Result<(), CodecError> {
    let block = u16::try_from(block_len).map_err(|_| CodecError::Encode("kv header block over 65535 bytes".into()))?;
    let length = (FIXED_HEADER - PREFIX)
        .checked_add(block_len)
        .and_then(|n| n.checked_add(body_len))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(CodecError::Encode("kv frame over 4 GiB".into()))?;
    dst.put_slice(&MAGIC);
    dst.put_u8(VERSION);
    dst.put_u8(kind as u8);
    dst.put_u32(length);
    dst.put_u64(request_id);
    dst.put_u8(status_to_byte(status));
    dst.put_u8(0);
    dst.put_u16(block);
    Ok(())
}

/// Builds whole kv frames: what a client or server of the protocol writes.
#[derive(Clone, Debug)]
pub struct FrameBuilder {
    kind: KvType,
    request_id: u64,
    status: ResponseStatus,
    headers: Vec<(Bytes, Bytes)>,
    body: Bytes,
}

impl FrameBuilder {
    /// A frame of type `kind` with id `request_id`, no headers and no body.
    pub fn new(kind: KvType, request_id: u64) -> Self {
        FrameBuilder { kind, request_id, status: ResponseStatus::Ok, headers: Vec::new(), body: Bytes::new() }
    }

    /// A request for `service`/`method`.
    pub fn request(request_id: u64, service: &str, method: &str) -> Self {
        FrameBuilder::new(KvType::Request, request_id).header("service", service).header("method", method)
    }

    /// Adds a header entry.
    #[must_use]
    pub fn header(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((Bytes::copy_from_slice(key.as_ref()), Bytes::copy_from_slice(value.as_ref())));
        self
    }

    /// Sets the status.
    #[must_use]
    pub fn status(mut self, status: ResponseStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The encoded frame.
    pub fn build(&self) -> Result<Bytes, CodecError> {
        let mut block = BytesMut::new();
        for (k, v) in &self.headers {
            put_entry(&mut block, k, v)?;
        }
        let mut out = BytesMut::with_capacity(FIXED_HEADER + block.len() + self.body.len());
        put_fixed_header(&mut out, self.kind, self.request_id, self.status, block.len(), self.body.len())?;
        out.put_slice(&block);
        out.put_slice(&self.body);
        Ok(out.freeze())
    }
}
