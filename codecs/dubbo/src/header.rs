//! The 16-byte Dubbo header: magic, flags, status, request id, body length.

use bytes::{BufMut, BytesMut};
use metaprotocol_core::{check_frame_size, CodecError};

/// The magic number that opens every frame.
pub const MAGIC: [u8; 2] = [0xda, 0xbb];
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Flag: the message is a request.
pub const FLAG_REQUEST: u8 = 0x80;
/// Flag: the request expects a response.
pub const FLAG_TWO_WAY: u8 = 0x40;
/// Flag: the message is an event (heartbeat).
pub const FLAG_EVENT: u8 = 0x20;
/// Mask of the serialization id in the flag byte.
pub const SERIALIZATION_MASK: u8 = 0x1f;
/// Serialization id of Hessian 2.
pub const HESSIAN2: u8 = 2;
/// Offset of the request id.
pub const ID_OFFSET: usize = 4;
/// Offset of the body length.
pub const LEN_OFFSET: usize = 12;
/// The largest frame Dubbo can describe: the header plus the largest `i32` body length. It is
/// below [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT), so every offset in a frame
/// fits the layout's `u32`s.
pub const MAX_FRAME_SIZE: usize = HEADER_LEN + i32::MAX as usize;

/// Response status codes.
pub mod status {
    /// OK.
    pub const OK: u8 = 20;
    /// Client-side timeout.
    pub const CLIENT_TIMEOUT: u8 = 30;
    /// Server-side timeout.
    pub const SERVER_TIMEOUT: u8 = 31;
    /// Bad request.
    pub const BAD_REQUEST: u8 = 40;
    /// Bad response.
    pub const BAD_RESPONSE: u8 = 50;
    /// Service not found.
    pub const SERVICE_NOT_FOUND: u8 = 60;
    /// Service error.
    pub const SERVICE_ERROR: u8 = 70;
    /// Server error.
    pub const SERVER_ERROR: u8 = 80;
    /// Client error.
    pub const CLIENT_ERROR: u8 = 90;
    /// Server thread pool exhausted.
    pub const SERVER_THREADPOOL_EXHAUSTED: u8 = 100;
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The flag byte.
    pub flags: u8,
    /// The status byte (responses).
    pub status: u8,
    /// The request id.
    pub request_id: u64,
    /// The body length.
    pub body_len: usize,
}

impl Header {
    /// True for requests.
    pub fn is_request(&self) -> bool {
        self.flags & FLAG_REQUEST != 0
    }
    /// True for two-way requests.
    pub fn is_two_way(&self) -> bool {
        self.flags & FLAG_TWO_WAY != 0
    }
    /// True for events (heartbeats).
    pub fn is_event(&self) -> bool {
        self.flags & FLAG_EVENT != 0
    }
    /// The serialization id.
    pub fn serialization(&self) -> u8 {
        self.flags & SERIALIZATION_MASK
    }
    /// Whole frame length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len
    }
}

/// Parses the header at the start of `src`: `Ok(None)` while fewer than 16 bytes are there (after
/// checking the magic bytes that are), an error for a bad magic, a negative body length or a frame
/// over `max_frame_size`.
#[inline]
pub fn parse(src: &[u8], max_frame_size: usize) -> Result<Option<Header>, CodecError> {
    for (i, (got, want)) in src.iter().zip(MAGIC.iter()).enumerate() {
        if got != want {
            return Err(CodecError::malformed(i, "bad magic: not a Dubbo frame"));
        }
    }
    let Some(h) = src.get(..HEADER_LEN) else { return Ok(None) };
    let mut id = [0u8; 8];
    id.copy_from_slice(h.get(ID_OFFSET..ID_OFFSET + 8).unwrap_or(&[0; 8]));
    let mut len = [0u8; 4];
    len.copy_from_slice(h.get(LEN_OFFSET..HEADER_LEN).unwrap_or(&[0; 4]));
    let body_len = i32::from_be_bytes(len);
    if body_len < 0 {
        return Err(CodecError::malformed(LEN_OFFSET, "negative body length"));
    }
    check_frame_size(HEADER_LEN as u64 + body_len as u64, max_frame_size)?;
    Ok(Some(Header {
        flags: h.get(2).copied().unwrap_or(0),
        status: h.get(3).copied().unwrap_or(0),
        request_id: u64::from_be_bytes(id),
        body_len: body_len as usize,
    }))
}

/// Writes a header; fails for a body over 2 GiB, which Dubbo cannot describe.
pub fn write(dst: &mut BytesMut, flags: u8, status: u8, request_id: u64, body_len: usize) -> Result<(), CodecError> {
    put(dst, flags, status, request_id, body_length(body_len)?);
    Ok(())
}

/// `body_len` as the header's `i32` field.
pub fn body_length(body_len: usize) -> Result<i32, CodecError> {
    i32::try_from(body_len).map_err(|_| CodecError::Encode("Dubbo body over 2 GiB".into()))
}

/// Writes a header whose body length is already checked.
pub fn put(dst: &mut BytesMut, flags: u8, status: u8, request_id: u64, body_len: i32) {
    dst.put_slice(&MAGIC);
    dst.put_u8(flags);
    dst.put_u8(status);
    dst.put_u64(request_id);
    dst.put_i32(body_len);
}

/// The decimal text of small numbers without allocating (status codes, body kinds, ids).
pub fn small_number(n: u8) -> &'static [u8] {
    const NUMBERS: [&str; 101] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19",
        "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37",
        "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49", "50", "51", "52", "53", "54", "55",
        "56", "57", "58", "59", "60", "61", "62", "63", "64", "65", "66", "67", "68", "69", "70", "71", "72", "73",
        "74", "75", "76", "77", "78", "79", "80", "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91",
        "92", "93", "94", "95", "96", "97", "98", "99", "100",
    ];
    NUMBERS.get(usize::from(n)).map_or(b"other", |s| s.as_bytes())
}
