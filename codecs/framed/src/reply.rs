//! Replies built by the proxy: error responses to requests (local replies and answers to
//! requests whose body does not parse) and heartbeat answers, each built from the request's own
//! header as the configuration says, then decoded, so that a reply is exactly what its bytes say.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use metaprotocol_core::{CodecError, LocalReply, Message, MessageType, ReplyKind};

use crate::build::build;
use crate::config::TextFormat;
use crate::decode::{classify, decode_whole};
use crate::layout::FramedLayout;
use crate::reply_spec::CopyBytes;
use crate::spec::{SectionLen, Spec, Variant};

/// The longest reply text, in bytes.
const MAX_TEXT: usize = 1024;

/// The error response to `request`.
pub(crate) fn local(
    spec: &Spec,
    request: &Message<FramedLayout>,
    reply: &LocalReply,
) -> Result<Message<FramedLayout>, CodecError> {
    error(spec, request.frame(), request.metadata.request_id, reply.kind, &reply.message)
}

/// After a decode error: the error response to a two-way request whose body did not parse.
pub(crate) fn malformed(spec: &Spec, error_: &CodecError) -> Option<Message<FramedLayout>> {
    let CodecError::BadRequest { request_id, frame, source } = error_ else { return None };
    match classify(spec, frame) {
        Ok((MessageType::Request, Variant::Request)) if !spec.heartbeat.as_ref().is_some_and(|h| h.holds(frame)) => {
            error(spec, frame, *request_id, ReplyKind::BadRequest, &source.to_string()).ok()
        }
        _ => None,
    }
}

/// The answer to `ping`.
pub(crate) fn pong(spec: &Spec, ping: &Message<FramedLayout>) -> Result<Message<FramedLayout>, CodecError> {
    let hb = spec
        .heartbeat_reply
        .as_ref()
        .ok_or_else(|| CodecError::Unsupported("no heartbeat_reply is configured".into()))?;
    if ping.metadata.message_type != MessageType::Ping {
        return Err(CodecError::Unsupported("only pings are answered".into()));
    }
    let mut head = template(spec);
    copy(&hb.copy, ping.frame(), &mut head)?;
    for s in &hb.set {
        s.field.write(&mut head, s.value);
    }
    write_id(spec, &mut head, ping.metadata.request_id)?;
    if let Some(s) = &spec.status {
        s.field.write(&mut head, s.ok.first().copied().unwrap_or(0));
    }
    let reply = decode_whole(spec, build(spec, Variant::Response, head, None)?)?;
    if reply.metadata.message_type != MessageType::Pong {
        return Err(CodecError::Encode(
            format!("the heartbeat reply decodes as {}, not pong", reply.metadata.message_type).into(),
        ));
    }
    Ok(reply)
}

/// An error response of `kind` to the request whose frame (or at least fixed header) is
/// `request`, with id `id`.
pub(crate) fn error(
    spec: &Spec,
    request: &[u8],
    id: u64,
    kind: ReplyKind,
    message: &str,
) -> Result<Message<FramedLayout>, CodecError> {
    let er = &spec.error_reply;
    let mut head = template(spec);
    copy(&er.copy, request, &mut head)?;
    for s in &er.set {
        s.field.write(&mut head, s.value);
    }
    write_id(spec, &mut head, id)?;
    if let Some(s) = &spec.status {
        if !s.field.write(&mut head, er.status_of(kind)) {
            return Err(CodecError::Encode("the status does not fit its field".into()));
        }
    }
    let mut text = BytesMut::new();
    let content = match &er.text {
        None => None,
        Some(t) => {
            let limit = match spec.response.sections.get(t.section).map(|s| s.len) {
                Some(SectionLen::Field(f) | SectionLen::Prefix(f)) => usize::try_from(f.max()).unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            let mut s = String::new();
            let _ = write!(s, "metaproxy {kind}: {message}");
            let enc = t.encoding_for(request);
            let room = limit.min(MAX_TEXT + enc.prefix.len() + enc.suffix.len());
            text.put_slice(&enc.prefix);
            put_text(&mut text, &s, enc.format, room.saturating_sub(enc.prefix.len() + enc.suffix.len()));
            text.put_slice(&enc.suffix);
            if text.len() > limit {
                return Err(CodecError::Encode("the reply text's prefix and suffix do not fit its section".into()));
            }
            Some((t.section, &text[..]))
        }
    };
    decode_whole(spec, build(spec, Variant::Response, head, content)?)
}

/// A response header of zeros but for the magic (its first alternative).
fn template(spec: &Spec) -> BytesMut {
    let mut head = BytesMut::zeroed(spec.response.header_size);
    if let Some(m) = &spec.magic {
        if let (Some(slot), Some(first)) = (head.get_mut(m.offset..m.offset + m.len), m.any_of.first()) {
            slot.copy_from_slice(first);
        }
    }
    head
}

fn write_id(spec: &Spec, head: &mut [u8], id: u64) -> Result<(), CodecError> {
    if spec.request_id.write(head, id) {
        Ok(())
    } else {
        Err(CodecError::RequestIdOutOfRange { id, max: spec.request_id.max() })
    }
}

fn copy(list: &[CopyBytes], request: &[u8], head: &mut [u8]) -> Result<(), CodecError> {
    for c in list {
        let from = request.get(c.from..c.from + c.len);
        let to = head.get_mut(c.to..c.to + c.len);
        match (from, to) {
            (Some(from), Some(to)) => to.copy_from_slice(from),
            _ => return Err(CodecError::Encode("a copied field lies outside the request's header".into())),
        }
    }
    Ok(())
}

/// Appends `s` in `format`, at most `limit` bytes in all.
fn put_text(out: &mut BytesMut, s: &str, format: TextFormat, limit: usize) {
    match format {
        TextFormat::Raw => {
            let mut end = s.len().min(limit);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            out.put_slice(s.as_bytes().get(..end).unwrap_or_default());
        }
        TextFormat::HessianString => {
            // `S`, a 16-bit length in characters, the characters: ASCII only, so that characters
            // and bytes are one and the same.
            let n = s.len().min(limit.saturating_sub(3)).min(usize::from(u16::MAX));
            out.put_u8(b'S');
            out.put_u16(u16::try_from(n).unwrap_or(0));
            out.extend(s.bytes().take(n).map(|b| if b.is_ascii() && b != 0 { b } else { b'?' }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_bounded_and_hessian_strings_are_ascii() {
        let mut b = BytesMut::new();
        put_text(&mut b, "héllo", TextFormat::Raw, 2);
        assert_eq!(&b[..], b"h");
        let mut b = BytesMut::new();
        put_text(&mut b, "héllo", TextFormat::HessianString, 100);
        assert_eq!(&b[..], b"S\x00\x06h??llo");
    }
}
