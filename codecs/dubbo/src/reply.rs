//! Answers the proxy writes itself: error responses ([`local`], [`malformed`]) and heartbeat
//! answers ([`pong`]), each built directly as a [`Message`] (frame, metadata and layout) from the
//! request's frame and layout alone.
//!
//! | reply kind | Dubbo status |
//! |---|---|
//! | route not found | 60 service not found |
//! | cluster not found | 80 server error |
//! | no healthy upstream | 80 server error |
//! | timeout | 31 server timeout |
//! | over limit | 80 server error |
//! | bad request | 40 bad request |
//! | denied | 80 server error |
//! | upstream reset | 80 server error |
//! | internal error, and any kind added later | 80 server error |
//!
//! This follows Envoy's `dubbo_proxy` router (no route: service not found; unknown cluster, no
//! healthy upstream, connection failures: server error), Envoy's generic proxy (invalid argument:
//! bad request; anything else: server error) and Aeraki's MetaProtocol Dubbo codec (route not
//! found: service not found; anything else: server error), keeping 31 for timeouts, which makes a
//! Java client raise its `TimeoutException`. Over limit is not 100 (thread pool exhausted, what an
//! overloaded Java provider answers): the status table of `python3-dubbo` 0.0.8 stops at 90, and
//! a status-100 reply made its call hang until the client's own timeout (seen with
//! `tests/python_client_error.rs`); every client reads 80. The text of every reply names the kind,
//! so a client can tell them apart.

use std::borrow::Cow;
use std::fmt::Write as _;

use bytes::BytesMut;
use metaprotocol_core::{
    CodecError, KeyValues, LocalReply, Message, MessageType, Metadata, ReplyKind, ResponseStatus, Text,
};

use crate::body;
use crate::header::{
    self, small_number, status, Header, FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN, HESSIAN2, LEN_OFFSET,
    MAX_FRAME_SIZE,
};
use crate::hessian::{self, Reader, StrValue};
use crate::layout::{offset, Body, DubboLayout, Span};

/// The longest reply text, in bytes: longer messages are cut (at a character boundary), so that
/// the text is always one Hessian string chunk.
pub const MAX_TEXT: usize = 4096;

/// The Dubbo status a local reply of `kind` carries; see the [module docs](self).
pub fn status_for(kind: ReplyKind) -> u8 {
    match kind {
        ReplyKind::RouteNotFound => status::SERVICE_NOT_FOUND,
        ReplyKind::Timeout => status::SERVER_TIMEOUT,
        ReplyKind::BadRequest => status::BAD_REQUEST,
        ReplyKind::ClusterNotFound
        | ReplyKind::NoHealthyUpstream
        | ReplyKind::OverLimit
        | ReplyKind::Denied
        | ReplyKind::UpstreamReset
        | ReplyKind::InternalError => status::SERVER_ERROR,
        _ => status::SERVER_ERROR,
    }
}

/// The string value encoded at `span` of `frame` (empty for a null or anything unreadable).
fn string_at(frame: &[u8], span: Span) -> Cow<'_, str> {
    let range = span.range();
    let Some(data) = frame.get(range.clone()) else { return Cow::Borrowed("") };
    match Reader::new(data, range.start).read_string() {
        Ok(Some(StrValue::Span(r))) => String::from_utf8_lossy(frame.get(r).unwrap_or(&[])),
        Ok(Some(StrValue::Joined(v))) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
        Ok(None) | Err(_) => Cow::Borrowed(""),
    }
}

/// The reply text: `metaproxy KIND: MESSAGE (SERVICE/METHOD)`, the operation when known.
fn reply_text(frame: &[u8], operation: Option<(Span, Span)>, reply: &LocalReply) -> String {
    let mut text = format!("metaproxy {}: {}", reply.kind, reply.message);
    if let Some((service, method)) = operation {
        let _ = write!(text, " ({}/{})", string_at(frame, service), string_at(frame, method));
    }
    text
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// An error response (Hessian 2, status `code`) to request `request_id`, carrying `text`: the
/// message [`DubboCodec::decode`](crate::DubboCodec) would make of these bytes.
fn error_response(code: u8, request_id: u64, text: &str) -> Result<Message<DubboLayout>, CodecError> {
    let text = clip(text, MAX_TEXT);
    let mut buf = BytesMut::with_capacity(HEADER_LEN + 3 + text.len());
    header::put(&mut buf, HESSIAN2, code, request_id, 0);
    let content = hessian::write_string_at(&mut buf, text.as_bytes())?
        .ok_or(CodecError::Encode("a reply text longer than one Hessian chunk".into()))?;
    let body_len = buf.len() - HEADER_LEN;
    if let Some(len) = buf.get_mut(LEN_OFFSET..HEADER_LEN) {
        len.copy_from_slice(&header::body_length(body_len)?.to_be_bytes());
    }
    let frame = buf.freeze();
    let mut kvs = KeyValues::over(frame.clone(), 2);
    kvs.push(Text::from_static("status"), Text::from_static_bytes(small_number(code)));
    let message = kvs.span(content)?;
    kvs.push(Text::from_static("error_message"), message);
    let metadata = Metadata {
        message_type: MessageType::Error,
        request_id,
        response_status: ResponseStatus::Error,
        header_size: offset(HEADER_LEN)?,
        body_size: offset(body_len)?,
        kvs,
        ..Metadata::default()
    };
    Ok(Message::new(metadata, frame, DubboLayout { flags: HESSIAN2, body: Body::ErrorMessage }))
}

/// The error response to `request` for `reply`; see [`Codec::local_reply`](metaprotocol_core::Codec::local_reply).
///
/// It is always written in Hessian 2 (serialization id 2), the request's own serialization for
/// every request whose body the codec reads. A request in another serialization also gets a
/// Hessian 2 answer: its error text is a Hessian string, and every Dubbo runtime reads Hessian 2
/// (a client reads an error response's text with the serialization its header names).
pub fn local(request: &Message<DubboLayout>, reply: &LocalReply) -> Result<Message<DubboLayout>, CodecError> {
    let operation = match request.layout().body {
        Body::Request(r) => Some((r.service, r.method)),
        _ => None,
    };
    let text = reply_text(request.frame(), operation, reply);
    error_response(status_for(reply.kind), request.metadata.request_id, &text)
}

/// The pong answering `ping`: an event response with status 20 and a null body, in the ping's
/// serialization.
pub fn pong(ping: &Message<DubboLayout>) -> Result<Message<DubboLayout>, CodecError> {
    let layout = ping.layout();
    if !(layout.is_event() && layout.is_two_way_request()) {
        return Err(CodecError::Unsupported("a heartbeat reply to a message that is not a two-way event".into()));
    }
    let h = Header {
        flags: FLAG_EVENT | layout.serialization(),
        status: status::OK,
        request_id: ping.metadata.request_id,
        body_len: 1,
    };
    let mut buf = BytesMut::with_capacity(HEADER_LEN + 1);
    header::put(&mut buf, h.flags, h.status, h.request_id, 1);
    hessian::write_null(&mut buf);
    let (metadata, layout) = body::event(&h)?;
    Ok(Message::new(metadata, buf.freeze(), layout))
}

/// A heartbeat request (a ping): a two-way event request with a null Hessian 2 body and request
/// id 0, as Dubbo's own `HeartbeatHandler` sends; a provider answers it with an event response
/// with the same id (see [`pong`]). Health checks send it.
pub fn ping() -> Result<Message<DubboLayout>, CodecError> {
    let h =
        Header { flags: FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | HESSIAN2, status: 0, request_id: 0, body_len: 1 };
    let mut buf = BytesMut::with_capacity(HEADER_LEN + 1);
    header::put(&mut buf, h.flags, h.status, h.request_id, 1);
    hessian::write_null(&mut buf);
    let (metadata, layout) = body::event(&h)?;
    Ok(Message::new(metadata, buf.freeze(), layout))
}

/// Dubbo's readonly event: a one-way event request whose body is the string `R`, which a Java
/// provider sends to its clients when it shuts down (`READONLY_EVENT`); clients then stop choosing
/// its address for new requests.
pub fn readonly_event() -> Result<Message<DubboLayout>, CodecError> {
    let h = Header { flags: FLAG_REQUEST | FLAG_EVENT | HESSIAN2, status: 0, request_id: 0, body_len: 2 };
    let mut buf = BytesMut::with_capacity(HEADER_LEN + 2);
    header::put(&mut buf, h.flags, h.status, h.request_id, 2);
    buf.extend_from_slice(&[0x01, b'R']);
    let (metadata, layout) = body::event(&h)?;
    Ok(Message::new(metadata, buf.freeze(), layout))
}

/// The service and method of a request body, when its first four strings read.
fn operation_of(frame: &[u8]) -> Option<(Span, Span)> {
    let mut r = Reader::new(frame.get(HEADER_LEN..)?, HEADER_LEN);
    let mut spans = [Span::default(); 4];
    for span in &mut spans {
        let start = r.position();
        r.read_string().ok()?;
        *span = Span::new(start..r.position()).ok()?;
    }
    let [_, service, _, method] = spans;
    Some((service, method))
}

/// The status-40 reply to a two-way request whose body did not parse (a
/// [`CodecError::BadRequest`]), carrying the parse error; `None` for any other error.
pub fn malformed(error: &CodecError) -> Option<Message<DubboLayout>> {
    let CodecError::BadRequest { request_id, frame, source } = error else { return None };
    let h = header::parse(frame, MAX_FRAME_SIZE).ok()??;
    if !h.is_request() || !h.is_two_way() || h.is_event() {
        return None;
    }
    let operation = if h.serialization() == HESSIAN2 { operation_of(frame) } else { None };
    let reply = LocalReply::new(ReplyKind::BadRequest, source.to_string());
    let text = reply_text(frame, operation, &reply);
    error_response(status::BAD_REQUEST, *request_id, &text).ok()
}
