//! TApplicationException replies, built directly as messages in the request's own framing and
//! protocol.

use bytes::{BufMut, BytesMut};
use metaprotocol_core::{CodecError, KeyValues, Message, MessageType, Metadata, ReplyKind, ResponseStatus};

use crate::layout::{Framing, ThriftLayout};
use crate::protocol::{self, message_type, Protocol};
use crate::transport;

/// TApplicationException types (`TApplicationException.TApplicationExceptionType`).
pub mod app_error {
    /// Unknown.
    pub const UNKNOWN: i32 = 0;
    /// The method is not known (no route).
    pub const UNKNOWN_METHOD: i32 = 1;
    /// The message type is not valid here.
    pub const INVALID_MESSAGE_TYPE: i32 = 2;
    /// The reply names another method.
    pub const WRONG_METHOD_NAME: i32 = 3;
    /// The reply's sequence id is not the request's.
    pub const BAD_SEQUENCE_ID: i32 = 4;
    /// The reply has no result.
    pub const MISSING_RESULT: i32 = 5;
    /// Something failed while processing.
    pub const INTERNAL_ERROR: i32 = 6;
    /// The request could not be read.
    pub const PROTOCOL_ERROR: i32 = 7;
}

/// The TApplicationException type the proxy answers `kind` with, as Envoy's `thrift_proxy` does:
/// no route is `UNKNOWN_METHOD`; a request that cannot be read is `PROTOCOL_ERROR`; everything
/// the proxy or the upstream failed at (unknown cluster, no healthy upstream, timeout, over limit,
/// upstream reset, denied, internal error, and kinds added later) is `INTERNAL_ERROR`, the one
/// type Thrift has for a server-side failure. The reply's message says which it was.
pub fn app_error_type(kind: ReplyKind) -> i32 {
    match kind {
        ReplyKind::RouteNotFound => app_error::UNKNOWN_METHOD,
        ReplyKind::BadRequest => app_error::PROTOCOL_ERROR,
        _ => app_error::INTERNAL_ERROR,
    }
}

/// The TApplicationException struct: `message` (field 1, string), `type` (field 2, i32), STOP.
fn put_exception_struct(dst: &mut BytesMut, protocol: Protocol, text: &[u8], kind: i32) {
    match protocol {
        Protocol::Binary => {
            dst.put_u8(11);
            dst.put_i16(1);
            dst.put_u32(text.len() as u32);
            dst.put_slice(text);
            dst.put_u8(8);
            dst.put_i16(2);
            dst.put_i32(kind);
            dst.put_u8(0);
        }
        Protocol::Compact => {
            dst.put_u8(0x18);
            protocol::put_varint(dst, text.len() as u64);
            dst.put_slice(text);
            dst.put_u8(0x15);
            protocol::put_varint(dst, protocol::zigzag32(kind));
            dst.put_u8(0);
        }
    }
}

/// The largest error text a reply carries (longer texts are cut at a character boundary).
const MAX_TEXT: usize = 4096;

fn cut(text: &str) -> &str {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// An exception message answering sequence id `seqid` of method `method`, framed as `framing`
/// says (THeader: the same flags, an empty header block) in `protocol`, with TApplicationException
/// type `kind` and message `text`. The message is built directly: its metadata and layout are
/// exactly what decoding its frame gives.
pub(crate) fn exception(
    framing: Framing,
    protocol: Protocol,
    method: &[u8],
    seqid: i32,
    text: &str,
    kind: i32,
) -> Result<Message<ThriftLayout>, CodecError> {
    let text = cut(text).as_bytes();
    let mut buf = BytesMut::with_capacity(64 + method.len() + text.len());
    let framing = match framing {
        Framing::Framed => {
            buf.put_u32(0); // the length, set below
            Framing::Framed
        }
        Framing::Unframed => Framing::Unframed,
        Framing::Header { flags, .. } => {
            transport::put_header_prefix(&mut buf, flags, seqid, protocol, &KeyValues::new(), 0)?;
            let payload_at = u32::try_from(buf.len()).map_err(|_| CodecError::Encode("THeader prefix".into()))?;
            Framing::Header { flags, payload_at }
        }
    };
    let msg_at = buf.len();
    let header = protocol::put_header(&mut buf, protocol, message_type::EXCEPTION, method, seqid);
    put_exception_struct(&mut buf, protocol, text, kind);
    if framing != Framing::Unframed {
        let rest = u32::try_from(buf.len() - 4).map_err(|_| CodecError::Encode("reply over 4 GiB".into()))?;
        if let Some(len) = buf.get_mut(..4) {
            len.copy_from_slice(&rest.to_be_bytes());
        }
    }
    let frame = buf.freeze();
    let mut kvs = KeyValues::over(frame.clone(), 2);
    let name = msg_at + header.name.start..msg_at + header.name.end;
    let names = crate::codec::record_name(&mut kvs, name)?;
    let header_size = msg_at + header.end;
    let metadata = Metadata {
        message_type: MessageType::Error,
        request_id: crate::codec::wire_id(seqid),
        response_status: ResponseStatus::Error,
        header_size: size(header_size)?,
        body_size: size(frame.len() - header_size)?,
        service: names.service,
        method: Some(names.method),
        kvs,
        ..Metadata::default()
    };
    let seqid_at = msg_at + header.seqid_at.start..msg_at + header.seqid_at.end;
    let layout = ThriftLayout::new(framing, protocol, seqid_at, names.method_range)?;
    Ok(Message::new(metadata, frame, layout))
}

pub(crate) fn size(n: usize) -> Result<u32, CodecError> {
    u32::try_from(n).map_err(|_| CodecError::malformed(0, "frame over 4 GiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_type() {
        for kind in ReplyKind::ALL {
            let t = app_error_type(kind);
            assert!(matches!(t, app_error::UNKNOWN_METHOD | app_error::INTERNAL_ERROR | app_error::PROTOCOL_ERROR));
        }
        assert_eq!(app_error_type(ReplyKind::UpstreamReset), app_error::INTERNAL_ERROR);
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let c = cut(&long);
        assert!(c.len() <= MAX_TEXT && c.chars().all(|ch| ch == 'é'));
        assert_eq!(cut("short"), "short");
    }
}
