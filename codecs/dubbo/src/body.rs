//! Dubbo bodies: what a request or response carries after the header, read into metadata and
//! the layout offsets that encoding needs.
//!
//! A request body is a sequence of Hessian values: Dubbo protocol version, service path, service
//! version, method name, parameter-type descriptor (`Ljava/lang/String;I`), one value per
//! parameter, then the attachment map. A response body with status 20 starts with an int body
//! kind (0 exception, 1 value, 2 null; 3, 4, 5 the same followed by attachments); with another
//! status it is an error message string.

use bytes::Bytes;
use metaprotocol_core::{CodecError, KeyValues, Layout, MessageType, Metadata, ResponseStatus};

use crate::header::{small_number, status, Header, HEADER_LEN};
use crate::hessian::{MapValue, Reader, StrValue};

/// Layout slot: the flag byte.
pub const SLOT_FLAGS: usize = 0;
/// Layout slot: where the attachment map starts (the body's end when there is none).
pub const SLOT_ATTACH_START: usize = 1;
/// Layout slot: where the attachment map ends.
pub const SLOT_ATTACH_END: usize = 2;
/// Layout slot: 1 when the body was read and may be re-encoded (Hessian 2, not an event, a
/// request or a status-20 response).
pub const SLOT_MUTABLE: usize = 3;
/// Layout slot: where the response body kind starts.
pub const SLOT_KIND_START: usize = 4;
/// Layout slot: where it ends.
pub const SLOT_KIND_END: usize = 5;
/// Layout slot: the response body kind.
pub const SLOT_KIND: usize = 6;
/// Layout slot: 1 when the body holds an attachment map (at `SLOT_ATTACH_START..SLOT_ATTACH_END`).
pub const SLOT_HAS_MAP: usize = 7;

/// Response body kinds.
pub mod kind {
    /// An exception.
    pub const EXCEPTION: i32 = 0;
    /// A value.
    pub const VALUE: i32 = 1;
    /// A null value.
    pub const NULL_VALUE: i32 = 2;
    /// An exception, then attachments.
    pub const EXCEPTION_WITH_ATTACHMENTS: i32 = 3;
    /// A value, then attachments.
    pub const VALUE_WITH_ATTACHMENTS: i32 = 4;
    /// A null value, then attachments.
    pub const NULL_VALUE_WITH_ATTACHMENTS: i32 = 5;
}

fn text(frame: &Bytes, s: StrValue) -> Bytes {
    match s {
        StrValue::Span(r) => frame.slice(r),
        StrValue::Joined(v) => Bytes::from(v),
    }
}

fn map_bytes(frame: &Bytes, v: MapValue) -> Bytes {
    match v {
        MapValue::Str(s) => text(frame, s),
        MapValue::Raw(r) => frame.slice(r),
    }
}

/// Number of parameters in a JVM descriptor such as `Ljava/lang/String;[I`.
pub fn count_parameters(desc: &[u8]) -> Option<usize> {
    let mut n = 0;
    let mut it = desc.iter().copied();
    while let Some(mut c) = it.next() {
        while c == b'[' {
            c = it.next()?;
        }
        match c {
            b'Z' | b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' => {}
            b'L' => {
                it.by_ref().find(|&b| b == b';')?;
            }
            _ => return None,
        }
        n += 1;
    }
    Some(n)
}

/// Reads the attachment map at the reader's position (if the body has one) into `kvs`, and
/// records its place in `layout`.
fn read_attachments(
    r: &mut Reader<'_>,
    frame: &Bytes,
    kvs: &mut KeyValues,
    layout: &mut Layout,
) -> Result<(), CodecError> {
    let start = r.position();
    let end = if r.is_at_end() {
        start
    } else {
        // Bytes after the map are tolerated (and forwarded): some peers pad bodies.
        layout.set(SLOT_HAS_MAP, 1);
        r.read_map(|e| kvs.push(map_bytes(frame, e.key), map_bytes(frame, e.value)))?.end
    };
    layout.set(SLOT_ATTACH_START, start as u32);
    layout.set(SLOT_ATTACH_END, end as u32);
    Ok(())
}

/// Metadata of a request (`header.is_request()`, Hessian 2, not an event).
pub fn request(frame: &Bytes, header: &Header, max_depth: usize) -> Result<(Metadata, Layout), CodecError> {
    let body = frame.get(HEADER_LEN..).unwrap_or(&[]);
    let mut r = Reader::new(body, HEADER_LEN).with_max_depth(max_depth);
    let field = |r: &mut Reader<'_>, what: &'static str| -> Result<Bytes, CodecError> {
        let at = r.position();
        match r.read_string() {
            Ok(Some(s)) => Ok(text(frame, s)),
            Ok(None) => Ok(Bytes::new()),
            Err(e) => Err(CodecError::malformed(at, format!("request {what}: {e}"))),
        }
    };
    let dubbo_version = field(&mut r, "Dubbo version")?;
    let path = field(&mut r, "service path")?;
    let version = field(&mut r, "service version")?;
    let method = field(&mut r, "method name")?;
    let at = r.position();
    let types = field(&mut r, "parameter types")?;
    let params =
        count_parameters(&types).ok_or_else(|| CodecError::malformed(at, "invalid parameter type descriptor"))?;
    for _ in 0..params {
        r.skip_value()?;
    }
    // Five fields from the body plus a typical attachment map, in one allocation.
    let mut kvs = KeyValues::with_capacity(16);
    kvs.push(Bytes::from_static(b"interface"), path.clone());
    kvs.push(Bytes::from_static(b"method"), method.clone());
    kvs.push(Bytes::from_static(b"version"), version);
    kvs.push(Bytes::from_static(b"dubbo_version"), dubbo_version);
    kvs.push(Bytes::from_static(b"parameter_types"), types);
    let mut layout = Layout::new().with(SLOT_FLAGS, u32::from(header.flags)).with(SLOT_MUTABLE, 1);
    read_attachments(&mut r, frame, &mut kvs, &mut layout)?;
    let metadata = Metadata {
        message_type: if header.is_two_way() { MessageType::Request } else { MessageType::Oneway },
        request_id: header.request_id,
        header_size: HEADER_LEN as u32,
        body_size: header.body_len as u32,
        service: Some(path),
        method: Some(method),
        kvs,
        ..Metadata::default()
    };
    Ok((metadata, layout))
}

/// Metadata of a response (Hessian 2, not an event).
pub fn response(frame: &Bytes, header: &Header, max_depth: usize) -> Result<(Metadata, Layout), CodecError> {
    let body = frame.get(HEADER_LEN..).unwrap_or(&[]);
    let mut r = Reader::new(body, HEADER_LEN).with_max_depth(max_depth);
    let mut kvs = KeyValues::with_capacity(4);
    kvs.push(Bytes::from_static(b"status"), Bytes::from_static(small_number(header.status)));
    let mut layout = Layout::new().with(SLOT_FLAGS, u32::from(header.flags));
    let mut metadata = Metadata {
        message_type: MessageType::Response,
        request_id: header.request_id,
        header_size: HEADER_LEN as u32,
        body_size: header.body_len as u32,
        ..Metadata::default()
    };
    if header.status != status::OK {
        // The body is the error message.
        metadata.message_type = MessageType::Error;
        metadata.response_status = ResponseStatus::Error;
        if let Ok(Some(msg)) = r.read_string() {
            kvs.push(Bytes::from_static(b"error_message"), text(frame, msg));
        }
        metadata.kvs = kvs;
        return Ok((metadata, layout));
    }
    let kind_start = r.position();
    let kind = r.read_int()?;
    layout.set(SLOT_KIND_START, kind_start as u32);
    layout.set(SLOT_KIND_END, r.position() as u32);
    layout.set(SLOT_KIND, kind as u32);
    layout.set(SLOT_MUTABLE, 1);
    let kind_text = u8::try_from(kind)
        .ok()
        .filter(|k| *k <= 5)
        .ok_or_else(|| CodecError::malformed(kind_start, "unknown response body kind"))?;
    kvs.push(Bytes::from_static(b"body_kind"), Bytes::from_static(small_number(kind_text)));
    match kind {
        kind::EXCEPTION | kind::EXCEPTION_WITH_ATTACHMENTS => {
            metadata.response_status = ResponseStatus::BusinessException;
            r.skip_value()?;
        }
        kind::VALUE | kind::VALUE_WITH_ATTACHMENTS => {
            r.skip_value()?;
        }
        _ => {}
    }
    if kind >= kind::EXCEPTION_WITH_ATTACHMENTS {
        read_attachments(&mut r, frame, &mut kvs, &mut layout)?;
    } else {
        // No attachments: a mutation inserts the map after the value. Bytes after the value (dubbo-py
        // writes a stray null after a null value) are forwarded as they are, and replaced by the map
        // when one is inserted.
        layout.set(SLOT_ATTACH_START, r.position() as u32);
        layout.set(SLOT_ATTACH_END, frame.len() as u32);
    }
    metadata.kvs = kvs;
    Ok((metadata, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts() {
        assert_eq!(count_parameters(b""), Some(0));
        assert_eq!(count_parameters(b"Ljava/lang/String;"), Some(1));
        assert_eq!(count_parameters(b"IJ[Ljava/lang/String;[[ZLorg/demo/User;"), Some(5));
        assert_eq!(count_parameters(b"Ljava/lang/String"), None);
        assert_eq!(count_parameters(b"Q"), None);
        assert_eq!(count_parameters(b"["), None);
    }
}
