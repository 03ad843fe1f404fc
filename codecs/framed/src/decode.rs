//! Decoding: the magic, the type and the fixed header first (a length over the maximum is refused
//! before the body is buffered), then the whole frame is cut from the read buffer and its fields
//! and sections are read into key/values that are ranges of the frame.

use bytes::{Bytes, BytesMut};
// MAX_RESERVE: the most reserved ahead for a frame not yet whole; larger frames grow the buffer
// as their bytes arrive, so a peer that declares a large frame and sends it slowly holds only
// what it sent.
use metaprotocol_core::{
    check_frame_size, CodecError, KeyValues, Message, MessageType, Metadata, ResponseStatus, Text, MAX_RESERVE,
};

use crate::config::{Counts, Direction, FieldFormat};
use crate::layout::{FramedLayout, PairsSpan};
use crate::spec::{Frame, Magic, SectionKind, SectionLen, Spec, Variant};

/// Decodes one message from the front of `src`, following the `Codec::decode` contract.
pub(crate) fn decode(spec: &Spec, src: &mut BytesMut) -> Result<Option<Message<FramedLayout>>, CodecError> {
    if let Some(m) = &spec.magic {
        check_magic(m, src)?;
    }
    if src.len() < spec.min_header {
        return Ok(None);
    }
    let (base, variant) = classify(spec, src)?;
    let layout = spec.frame(variant);
    if src.len() < layout.header_size {
        src.reserve((layout.header_size - src.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    let total = frame_len(layout, src, spec.max_frame_size)?;
    if src.len() < total {
        src.reserve((total - src.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    let frame = src.split_to(total).freeze();
    parse(spec, frame, base, variant).map(Some)
}

/// Decodes a frame the codec built itself (a reply): the whole of `frame`, nothing else.
pub(crate) fn decode_whole(spec: &Spec, frame: Bytes) -> Result<Message<FramedLayout>, CodecError> {
    let mut buf = BytesMut::from(&frame[..]);
    match decode(spec, &mut buf)? {
        Some(m) if buf.is_empty() => Ok(m),
        _ => Err(CodecError::Encode("a frame built from the configuration does not decode as one whole frame".into())),
    }
}

/// Refuses a frame whose first bytes cannot be any of the magic strings, as soon as they arrive.
fn check_magic(m: &Magic, src: &[u8]) -> Result<(), CodecError> {
    let Some(have) = src.get(m.offset..) else { return Ok(()) };
    let n = have.len().min(m.len);
    let (Some(seen), true) = (have.get(..n), n > 0) else { return Ok(()) };
    if m.any_of.iter().any(|alt| alt.get(..n) == Some(seen)) {
        Ok(())
    } else {
        Err(CodecError::malformed(m.offset, "bad magic"))
    }
}

/// The message type the type field gives, and the layout it uses.
pub(crate) fn classify(spec: &Spec, header: &[u8]) -> Result<(MessageType, Variant), CodecError> {
    let at = spec.kind.offset as usize;
    let value = spec.kind.read(header).ok_or_else(|| CodecError::malformed(at, "header too short"))?;
    let base = spec.message_type(value).ok_or_else(|| CodecError::malformed(at, "unknown message type value"))?;
    let variant = match base {
        MessageType::Request | MessageType::Oneway | MessageType::Ping => Variant::Request,
        _ => Variant::Response,
    };
    Ok((base, variant))
}

/// The whole header's size: the fixed header, or what the header length field says.
pub(crate) fn header_len(layout: &Frame, header: &[u8]) -> Result<usize, CodecError> {
    let Some(h) = &layout.header_length else { return Ok(layout.header_size) };
    let at = h.field.offset as usize;
    let raw = h.field.read(header).ok_or_else(|| CodecError::malformed(at, "header too short"))?;
    let size = i128::from(raw) * i128::from(h.unit) + i128::from(h.adjust);
    if size < layout.header_size as i128 {
        return Err(CodecError::malformed(at, "header length shorter than the fixed header"));
    }
    usize::try_from(size).map_err(|_| CodecError::malformed(at, "header length out of range"))
}

/// The frame's total length, from its fixed header; refused when over `max`.
pub(crate) fn frame_len(layout: &Frame, header: &[u8], max: usize) -> Result<usize, CodecError> {
    let l = &layout.length;
    let mut value: i128 = 0;
    for f in &l.fields {
        let v = f.read(header).ok_or_else(|| CodecError::malformed(f.offset as usize, "header too short"))?;
        value += i128::from(v);
    }
    let base = match l.counts {
        Counts::Rest => l.end,
        Counts::Frame => 0,
        Counts::Body => header_len(layout, header)?,
    };
    let total = base as i128 + value + i128::from(l.adjust);
    let at = l.fields.first().map_or(0, |f| f.offset as usize);
    if total < layout.header_size as i128 {
        return Err(CodecError::malformed(at, "frame length shorter than the header"));
    }
    check_frame_size(u64::try_from(total).unwrap_or(u64::MAX), max)
}

/// Reads a whole frame.
fn parse(spec: &Spec, frame: Bytes, base: MessageType, variant: Variant) -> Result<Message<FramedLayout>, CodecError> {
    let mut message_type = base;
    if spec.heartbeat.as_ref().is_some_and(|h| h.holds(&frame)) {
        message_type = match base {
            MessageType::Request => MessageType::Ping,
            MessageType::Response | MessageType::Oneway => MessageType::Pong,
            other => other,
        };
    }
    let mut response_status = ResponseStatus::Ok;
    if message_type == MessageType::Response {
        if let Some(s) = &spec.status {
            let v = s.field.read(&frame).unwrap_or(0);
            if s.business.contains(&v) {
                response_status = ResponseStatus::BusinessException;
            } else if !s.ok.contains(&v) {
                response_status = ResponseStatus::Error;
                message_type = MessageType::Error;
            }
        }
    }
    let request_id = spec.request_id.read(&frame).unwrap_or(0);
    let layout = spec.frame(variant);
    let header_len = header_len(layout, &frame)?;
    let total = frame.len();
    let mut kvs = KeyValues::over(frame.clone(), layout.static_keys);
    let pairs = match read_body(layout, &frame, variant, &mut kvs) {
        Ok(p) => p,
        Err(e) if message_type == MessageType::Request => return Err(CodecError::bad_request(request_id, frame, e)),
        Err(e) => return Err(e),
    };
    let mut metadata = Metadata::new(message_type, request_id);
    metadata.response_status = response_status;
    metadata.header_size = u32::try_from(header_len).unwrap_or(u32::MAX);
    metadata.body_size = u32::try_from(total.saturating_sub(header_len)).unwrap_or(u32::MAX);
    metadata.service = spec.service_key.and_then(|k| find(&kvs, k));
    metadata.method = spec.method_key.and_then(|k| find(&kvs, k));
    metadata.kvs = kvs;
    let header_len = u32::try_from(header_len).map_err(|_| CodecError::malformed(0, "header beyond 4 GiB"))?;
    let pairs = if message_type.is_heartbeat() { None } else { pairs };
    Ok(Message::new(metadata, frame, FramedLayout { variant, header_len, pairs }))
}

/// The value handle of `key`'s first entry.
fn find(kvs: &KeyValues, key: &str) -> Option<Text> {
    kvs.handles().find(|(k, _)| kvs.resolve(*k).eq_ignore_ascii_case(key.as_bytes())).map(|(_, v)| v)
}

/// Reads the exposed fields and the sections; returns where the pairs block lies.
fn read_body(
    layout: &Frame,
    frame: &Bytes,
    variant: Variant,
    kvs: &mut KeyValues,
) -> Result<Option<PairsSpan>, CodecError> {
    for kf in &layout.fields {
        let applies = match kf.on {
            Direction::All => true,
            Direction::Requests => variant == Variant::Request,
            Direction::Responses => variant == Variant::Response,
        };
        if !applies {
            continue;
        }
        let value = match kf.format {
            FieldFormat::Bytes => kvs.span(kf.range.0..kf.range.1)?,
            FieldFormat::Int => {
                let v = kf.field.read(frame).ok_or_else(|| CodecError::malformed(kf.range.0, "header too short"))?;
                int_text(kvs, v)
            }
        };
        kvs.push(Text::from_static(kf.key), value);
    }
    let total = frame.len();
    let mut pos = layout.header_size;
    let mut pairs = None;
    for s in &layout.sections {
        let (start, len) = match s.len {
            SectionLen::Field(f) => {
                let v = f.read(frame).ok_or_else(|| CodecError::malformed(f.offset as usize, "header too short"))?;
                (pos, usize::try_from(v).unwrap_or(usize::MAX))
            }
            SectionLen::Prefix(p) => {
                let v = frame
                    .get(pos..)
                    .and_then(|rest| p.read(rest))
                    .ok_or_else(|| CodecError::malformed(pos, "section length prefix past the end of the frame"))?;
                (pos + usize::from(p.width), usize::try_from(v).unwrap_or(usize::MAX))
            }
            SectionLen::Rest => (pos, total.saturating_sub(pos)),
        };
        let end = start
            .checked_add(len)
            .filter(|&e| e <= total)
            .ok_or_else(|| CodecError::malformed(pos, "section runs past the end of the frame"))?;
        match s.kind {
            SectionKind::Skip => {}
            SectionKind::Value(key) => {
                let v = kvs.span(start..end)?;
                kvs.push(Text::from_static(key), v);
            }
            SectionKind::Pairs { prefix } => {
                read_pairs(kvs, frame, start, end, prefix)?;
                pairs = Some(PairsSpan { prefix_at: offset(pos)?, start: offset(start)?, end: offset(end)? });
            }
        }
        pos = end;
    }
    Ok(pairs)
}

fn offset(pos: usize) -> Result<u32, CodecError> {
    u32::try_from(pos).map_err(|_| CodecError::malformed(pos, "offset beyond 4 GiB"))
}

/// One pair as it lies in the frame: the key's and the value's byte ranges, and the whole entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawPair {
    pub key: (usize, usize),
    pub value: (usize, usize),
    pub entry: (usize, usize),
}

/// Walks the pairs in `frame[start..end]`: each key and value preceded by a `prefix`-sized length,
/// a length of all ones (-1) standing for a null value (read as empty).
pub(crate) fn walk_pairs(
    frame: &[u8],
    start: usize,
    end: usize,
    prefix: crate::field::Field,
    mut each: impl FnMut(RawPair) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let block = frame.get(..end).ok_or_else(|| CodecError::malformed(start, "pairs past the end of the frame"))?;
    let width = usize::from(prefix.width);
    let null = prefix.max();
    let item = |pos: usize| -> Result<(usize, usize), CodecError> {
        let len = block
            .get(pos..)
            .and_then(|rest| prefix.read(rest))
            .ok_or_else(|| CodecError::malformed(pos, "pair length past the end of its block"))?;
        let from = pos + width;
        if len == null {
            return Ok((from, from));
        }
        let to = usize::try_from(len)
            .ok()
            .and_then(|l| from.checked_add(l))
            .filter(|&t| t <= end)
            .ok_or_else(|| CodecError::malformed(pos, "pair runs past the end of its block"))?;
        Ok((from, to))
    };
    let mut pos = start;
    while pos < end {
        let key = item(pos)?;
        let value = item(key.1)?;
        each(RawPair { key, value, entry: (pos, value.1) })?;
        pos = value.1;
    }
    Ok(())
}

fn read_pairs(
    kvs: &mut KeyValues,
    frame: &[u8],
    start: usize,
    end: usize,
    prefix: crate::field::Field,
) -> Result<(), CodecError> {
    walk_pairs(frame, start, end, prefix, |p| {
        let k = kvs.span(p.key.0..p.key.1)?;
        let v = kvs.span(p.value.0..p.value.1)?;
        kvs.push(k, v);
        Ok(())
    })
}

/// Decimal text of every byte value, so that small integer fields cost no allocation.
static DECIMAL: [[u8; 3]; 256] = decimal_table();

// Runs at compile time over 0..256 only (`get_mut` is not const): nothing here sees peer bytes.
#[allow(clippy::indexing_slicing)]
const fn decimal_table() -> [[u8; 3]; 256] {
    let mut t = [[0u8; 3]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, d, u) = ((i / 100) as u8, ((i / 10) % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            [b'0' + h, b'0' + d, b'0' + u]
        } else if i >= 10 {
            [b'0' + d, b'0' + u, 0]
        } else {
            [b'0' + u, 0, 0]
        };
        i += 1;
    }
    t
}

/// The decimal text of `v`: a static string below 256, else owned bytes.
fn int_text(kvs: &mut KeyValues, v: u64) -> Text {
    let len = if v >= 100 {
        3
    } else if v >= 10 {
        2
    } else {
        1
    };
    match usize::try_from(v).ok().and_then(|i| DECIMAL.get(i)).and_then(|d| d.get(..len)) {
        Some(s) => Text::from_static_bytes(s),
        None => kvs.own(Bytes::from(v.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_integers_are_static_text() {
        let mut kvs = KeyValues::new();
        for v in [0u64, 7, 10, 99, 100, 255, 256, 70_000] {
            let t = int_text(&mut kvs, v);
            assert_eq!(kvs.resolve(t), v.to_string().as_bytes());
        }
    }
}
