//! Dubbo bodies: what a request or response carries after the header, read into metadata and
//! the [`DubboLayout`] that encoding and replies need.
//!
//! A request body is a sequence of Hessian values: Dubbo protocol version, service path, service
//! version, method name, parameter-type descriptor (`Ljava/lang/String;I`), one value per
//! parameter, then the attachment map. A response body with status 20 starts with an int body
//! kind (0 exception, 1 value, 2 null; 3, 4, 5 the same followed by attachments); with another
//! status it is an error message string.

use bytes::Bytes;
use metaprotocol_core::{CodecError, KeyValues, Message, MessageType, Metadata, ResponseStatus, Text};

use crate::header::{small_number, status, Header, HEADER_LEN, HESSIAN2};
use crate::hessian::{MapValue, Reader, StrValue};
use crate::layout::{offset, Attachments, Body, DubboLayout, RequestLayout, ResponseKind, ResponseLayout, Span};

/// Key/value entries a request's map starts with room for: the five fields read from the body
/// plus a typical attachment map, so that decoding a request allocates the map once.
pub const REQUEST_KEYS: usize = 16;

/// Key/value entries a response's map starts with room for: as many as the map holds inline.
pub const RESPONSE_KEYS: usize = 4;

/// The message in `frame`, whose header is `header` (its body may be read or not). When the body
/// of a two-way request does not parse, the error is a [`CodecError::BadRequest`] carrying the
/// frame, so that the request can be answered.
///
/// The result is shaped as [`Codec::decode`](metaprotocol_core::Codec::decode)'s (it is always
/// `Some`), so that the message is built where the caller returns it.
pub fn decode(frame: Bytes, header: &Header, max_depth: usize) -> Result<Option<Message<DubboLayout>>, CodecError> {
    if header.is_event() || header.serialization() != HESSIAN2 {
        let (metadata, layout) = if header.is_event() { event(header)? } else { not_decoded(header)? };
        return Ok(Some(Message::new(metadata, frame, layout)));
    }
    if header.is_request() {
        request(frame, header, max_depth)
    } else {
        response(frame, header, max_depth)
    }
}

/// Metadata with the header's fields and an empty key/value map.
pub(crate) fn bare(message_type: MessageType, header: &Header) -> Result<Metadata, CodecError> {
    Ok(Metadata {
        message_type,
        request_id: header.request_id,
        header_size: offset(HEADER_LEN)?,
        body_size: offset(header.body_len)?,
        ..Metadata::default()
    })
}

/// A heartbeat: a two-way event request is a ping (it wants an answer); an event response, or a
/// one-way event request (as `dubbo-py` sends), is a pong.
pub(crate) fn event(header: &Header) -> Result<(Metadata, DubboLayout), CodecError> {
    let ping = header.is_request() && header.is_two_way();
    let mut metadata = bare(if ping { MessageType::Ping } else { MessageType::Pong }, header)?;
    metadata
        .kvs
        .push(Text::from_static("event"), Text::from_static(if header.is_request() { "request" } else { "response" }));
    Ok((metadata, DubboLayout { flags: header.flags, body: Body::Event }))
}

/// Another serialization: header-level metadata only, marked as such; forwarded untouched.
fn not_decoded(header: &Header) -> Result<(Metadata, DubboLayout), CodecError> {
    let message_type = match (header.is_request(), header.is_two_way(), header.status == status::OK) {
        (true, true, _) => MessageType::Request,
        (true, false, _) => MessageType::Oneway,
        (false, _, true) => MessageType::Response,
        (false, _, false) => MessageType::Error,
    };
    let mut m = bare(message_type, header)?;
    if message_type == MessageType::Error {
        m.response_status = ResponseStatus::Error;
    }
    m.kvs.push(Text::from_static("serialization"), Text::from_static_bytes(small_number(header.serialization())));
    m.kvs.push(Text::from_static("body"), Text::from_static("not decoded: serialization is not hessian2"));
    Ok((m, DubboLayout { flags: header.flags, body: Body::NotDecoded }))
}

/// A handle to a string read from the frame (joined chunks are stored in the map).
#[inline]
pub(crate) fn text(kvs: &mut KeyValues, s: Option<StrValue>) -> Result<Text, CodecError> {
    match s {
        Some(StrValue::Span(r)) => kvs.span(r),
        Some(StrValue::Joined(v)) => Ok(kvs.own(Bytes::from(v))),
        None => Ok(Text::EMPTY),
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

/// A map key or value as a handle: a one-chunk ASCII string (the common case) is a range of the
/// frame, read without the general machinery. (The error is taken out in each arm, so that the
/// common arm's handle stays in registers instead of being merged with the other's in memory.)
#[inline(always)]
fn map_piece(r: &mut Reader<'_>, kvs: &mut KeyValues) -> Result<Text, CodecError> {
    Ok(match r.ascii_string() {
        Some(range) => kvs.span(range)?,
        None => map_piece_general(r, kvs)?,
    })
}

#[cold]
#[inline(never)]
fn map_piece_general(r: &mut Reader<'_>, kvs: &mut KeyValues) -> Result<Text, CodecError> {
    match r.map_value_general()? {
        MapValue::Str(s) => text(kvs, Some(s)),
        MapValue::Raw(range) => kvs.span(range),
    }
}

/// Reads the attachment map at the reader's position, if the body has one, into `kvs` through
/// `batch` (what [`Reader::read_map`] reads, entry by entry).
#[inline]
fn read_attachments<const N: usize>(
    r: &mut Reader<'_>,
    kvs: &mut KeyValues,
    batch: &mut Batch<N>,
) -> Result<Attachments, CodecError> {
    let start = r.position();
    if r.is_at_end() {
        return Ok(Attachments::Absent(Span::new(start..start)?));
    }
    // Bytes after the map are tolerated (and forwarded): some peers pad bodies.
    if r.map_open()? {
        while !r.map_close()? {
            let key = map_piece(r, kvs)?;
            let value = map_piece(r, kvs)?;
            batch.add(kvs, key, value);
        }
    }
    Ok(Attachments::Map(Span::new(start..r.position())?))
}

/// Up to `N` entries on their way into a [`KeyValues`], pushed together once a body is read:
/// pushing an entry right after making its handles makes the CPU wait for the handles' stores to
/// reach the cache (the push reads them back in wider pieces than they were written), which cost
/// more than reading the strings.
struct Batch<const N: usize> {
    entries: [(Text, Text); N],
    len: usize,
}

impl<const N: usize> Batch<N> {
    fn new() -> Self {
        Batch { entries: [(Text::EMPTY, Text::EMPTY); N], len: 0 }
    }

    #[inline(always)]
    fn add(&mut self, kvs: &mut KeyValues, key: Text, value: Text) {
        if self.len == N {
            self.flush(kvs);
        }
        if let Some(slot) = self.entries.get_mut(self.len) {
            *slot = (key, value);
            self.len += 1;
        }
    }

    fn flush(&mut self, kvs: &mut KeyValues) {
        for &(key, value) in self.entries.iter().take(self.len) {
            kvs.push(key, value);
        }
        self.len = 0;
    }
}

#[cold]
#[inline(never)]
fn field_error(at: usize, what: &'static str, e: crate::hessian::HessianError) -> CodecError {
    CodecError::malformed(at, format!("request {what}: {e}"))
}

/// One string field of a request: its handle and its encoded span.
#[inline(always)]
fn field(r: &mut Reader<'_>, kvs: &mut KeyValues, what: &'static str) -> Result<(Text, Span), CodecError> {
    let at = r.position();
    Ok(match r.ascii_string() {
        Some(range) => (kvs.span(range)?, Span::new(at..r.position())?),
        None => field_general(r, kvs, what)?,
    })
}

#[cold]
#[inline(never)]
fn field_general(r: &mut Reader<'_>, kvs: &mut KeyValues, what: &'static str) -> Result<(Text, Span), CodecError> {
    let at = r.position();
    match r.read_string() {
        Ok(s) => Ok((text(kvs, s)?, Span::new(at..r.position())?)),
        Err(e) => Err(field_error(at, what, e)),
    }
}

/// The message of a request (`header.is_request()`, Hessian 2, not an event). A two-way request
/// whose body does not parse gives a [`CodecError::BadRequest`].
///
/// The key/value map is filled in place and the message is built where it is returned: the
/// metadata is a few hundred bytes, and moving it through intermediate results costs as much as
/// parsing a string.
pub fn request(frame: Bytes, header: &Header, max_depth: usize) -> Result<Option<Message<DubboLayout>>, CodecError> {
    let (header_size, body_size) = (offset(HEADER_LEN)?, offset(header.body_len)?);
    let mut kvs = KeyValues::over(frame.clone(), REQUEST_KEYS);
    let parts = match request_body(&frame, &mut kvs, max_depth) {
        Ok(parts) => parts,
        Err(e) if header.is_two_way() => return Err(CodecError::bad_request(header.request_id, frame, e)),
        Err(e) => return Err(e),
    };
    let metadata = Metadata {
        message_type: if header.is_two_way() { MessageType::Request } else { MessageType::Oneway },
        request_id: header.request_id,
        stream_id: None,
        response_status: ResponseStatus::Ok,
        header_size,
        body_size,
        service: Some(parts.service),
        method: Some(parts.method),
        kvs,
    };
    Ok(Some(Message::new(metadata, frame, DubboLayout { flags: header.flags, body: Body::Request(parts.layout) })))
}

/// What a request body gives besides its key/values.
struct RequestParts {
    service: Text,
    method: Text,
    layout: RequestLayout,
}

/// Reads a request body into `kvs`: the five fields, then the attachments.
#[inline(always)]
fn request_body(frame: &Bytes, kvs: &mut KeyValues, max_depth: usize) -> Result<RequestParts, CodecError> {
    let body = frame.get(HEADER_LEN..).unwrap_or(&[]);
    // Strings with lone surrogates are refused: the proxy would pass them to providers that cannot
    // decode them and close the connection, failing every request that shares it.
    let mut r = Reader::new(body, HEADER_LEN).with_max_depth(max_depth).unicode_only();
    let (dubbo_version, _) = field(&mut r, kvs, "Dubbo version")?;
    let (path, service) = field(&mut r, kvs, "service path")?;
    let (version, _) = field(&mut r, kvs, "service version")?;
    let (method_name, method) = field(&mut r, kvs, "method name")?;
    let (types, types_span) = field(&mut r, kvs, "parameter types")?;
    let params = count_parameters(kvs.resolve(types))
        .ok_or_else(|| CodecError::malformed(types_span.start as usize, "invalid parameter type descriptor"))?;
    for _ in 0..params {
        r.skip_value()?;
    }
    let mut batch = Batch::<REQUEST_KEYS>::new();
    batch.add(kvs, Text::from_static("interface"), path);
    batch.add(kvs, Text::from_static("method"), method_name);
    batch.add(kvs, Text::from_static("version"), version);
    batch.add(kvs, Text::from_static("dubbo_version"), dubbo_version);
    batch.add(kvs, Text::from_static("parameter_types"), types);
    let attachments = read_attachments(&mut r, kvs, &mut batch)?;
    batch.flush(kvs);
    Ok(RequestParts { service: path, method: method_name, layout: RequestLayout { service, method, attachments } })
}

/// The message of a response (Hessian 2, not an event), built in place like a request's.
pub fn response(frame: Bytes, header: &Header, max_depth: usize) -> Result<Option<Message<DubboLayout>>, CodecError> {
    let (header_size, body_size) = (offset(HEADER_LEN)?, offset(header.body_len)?);
    // Status, body kind and two attachments fit the map's inline entries: no allocation.
    let mut kvs = KeyValues::over(frame.clone(), RESPONSE_KEYS);
    let (message_type, response_status, body) = response_body(&frame, header, &mut kvs, max_depth)?;
    let metadata = Metadata {
        message_type,
        request_id: header.request_id,
        stream_id: None,
        response_status,
        header_size,
        body_size,
        service: None,
        method: None,
        kvs,
    };
    Ok(Some(Message::new(metadata, frame, DubboLayout { flags: header.flags, body })))
}

/// Reads a response body into `kvs`: its message type, outcome and layout.
#[inline(always)]
fn response_body(
    frame: &Bytes,
    header: &Header,
    kvs: &mut KeyValues,
    max_depth: usize,
) -> Result<(MessageType, ResponseStatus, Body), CodecError> {
    let body = frame.get(HEADER_LEN..).unwrap_or(&[]);
    let mut r = Reader::new(body, HEADER_LEN).with_max_depth(max_depth);
    let mut batch = Batch::<RESPONSE_KEYS>::new();
    batch.add(kvs, Text::from_static("status"), Text::from_static_bytes(small_number(header.status)));
    if header.status != status::OK {
        // The body is the error message.
        if let Ok(msg @ Some(_)) = r.read_string() {
            let msg = text(kvs, msg)?;
            batch.add(kvs, Text::from_static("error_message"), msg);
        }
        batch.flush(kvs);
        return Ok((MessageType::Error, ResponseStatus::Error, Body::ErrorMessage));
    }
    let kind_start = r.position();
    let kind = ResponseKind::from_wire(r.read_int()?)
        .ok_or_else(|| CodecError::malformed(kind_start, "unknown response body kind"))?;
    let kind_end = offset(r.position())?;
    batch.add(kvs, Text::from_static("body_kind"), Text::from_static(kind.as_text()));
    if kind.is_exception() || kind.has_value() {
        r.skip_value()?;
    }
    let attachments = if kind.has_attachments() {
        read_attachments(&mut r, kvs, &mut batch)?
    } else {
        // No attachments: a mutation inserts the map after the value. Bytes after the value
        // (dubbo-py writes a stray null after a null value) are forwarded as they are, and
        // replaced by the map when one is inserted.
        Attachments::Absent(Span::new(r.position()..frame.len())?)
    };
    batch.flush(kvs);
    let outcome = if kind.is_exception() { ResponseStatus::BusinessException } else { ResponseStatus::Ok };
    Ok((MessageType::Response, outcome, Body::Response(ResponseLayout { kind, kind_end, attachments })))
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
