//! Encoding: the frame by reference count when nothing changes; a patched copy of the fixed
//! header when only the request id changes; and with a mutation, a rewritten pairs block, the
//! lengths that cover it fixed in a copy of the fixed header, and every other byte spliced.

use bytes::{BufMut, BytesMut};
use metaprotocol_core::{CodecError, KeyValues, Message, Mutation, Text, WireBuf};
use smallvec::SmallVec;

use crate::decode::walk_pairs;
use crate::field::Field;
use crate::layout::{FramedLayout, PairsSpan};
use crate::spec::{Frame, SectionKind, SectionLen, Spec};

/// Appends `message` to `dst` with `mutation` applied.
pub(crate) fn encode(
    spec: &Spec,
    message: &Message<FramedLayout>,
    mutation: &Mutation,
    dst: &mut WireBuf,
) -> Result<(), CodecError> {
    let layout = message.layout();
    let frame_spec = spec.frame(layout.variant);
    match (mutation.is_empty(), layout.pairs) {
        (false, Some(pairs)) => mutate(spec, frame_spec, message, pairs, mutation, dst),
        (false, None) => {
            tracing::debug!(ops = mutation.len(), "framed: this message has no pairs block; mutation ignored");
            passthrough(spec, frame_spec, message, dst)
        }
        (true, _) => passthrough(spec, frame_spec, message, dst),
    }
}

/// The frame as it came, but for its request id.
fn passthrough(
    spec: &Spec,
    frame_spec: &Frame,
    message: &Message<FramedLayout>,
    dst: &mut WireBuf,
) -> Result<(), CodecError> {
    let frame = message.frame();
    if !message.request_id_changed() {
        dst.push(frame.clone());
        return Ok(());
    }
    let id = id_bytes(spec, message.metadata.request_id)?;
    dst.push_patched(frame, frame_spec.header_size, spec.request_id.offset as usize, id.as_slice())
}

/// The request id as the field's bytes.
fn id_bytes(spec: &Spec, id: u64) -> Result<SmallVec<[u8; 8]>, CodecError> {
    if id > spec.request_id.max() {
        return Err(CodecError::RequestIdOutOfRange { id, max: spec.request_id.max() });
    }
    let (bytes, n) = spec.request_id.encode(id);
    Ok(bytes.get(..n).map(SmallVec::from_slice).unwrap_or_default())
}

/// One entry of the rewritten block: an entry of the frame copied as encoded, or a new one.
enum Planned {
    Raw(usize, usize),
    New(Text, Text),
}

/// Rewrites the pairs block.
fn mutate(
    spec: &Spec,
    frame_spec: &Frame,
    message: &Message<FramedLayout>,
    pairs: PairsSpan,
    mutation: &Mutation,
    dst: &mut WireBuf,
) -> Result<(), CodecError> {
    let frame = message.frame();
    let section = frame_spec.pairs.and_then(|i| frame_spec.sections.get(i));
    let (Some(section), SectionKind::Pairs { prefix }) = (section, section.map_or(SectionKind::Skip, |s| s.kind))
    else {
        return Err(CodecError::Encode("layout names a pairs block its configuration does not have".into()));
    };
    let (prefix_at, start, end) = (pairs.prefix_at as usize, pairs.start as usize, pairs.end as usize);
    if !(frame_spec.header_size <= prefix_at && prefix_at <= start && start <= end && end <= frame.len()) {
        return Err(CodecError::Encode("inconsistent framed layout".into()));
    }
    // The block as key/values over the frame, the mutation applied as the core defines it.
    let mut kvs = KeyValues::over(frame.clone(), 8);
    let mut raw: SmallVec<[(Text, Text, usize, usize); 8]> = SmallVec::new();
    walk_pairs(frame, start, end, prefix, |p| {
        let (k, v) = (kvs.span(p.key.0..p.key.1)?, kvs.span(p.value.0..p.value.1)?);
        kvs.push(k, v);
        raw.push((k, v, p.entry.0, p.entry.1));
        Ok(())
    })
    .map_err(|e| CodecError::Encode(format!("the pairs block does not parse: {e}").into()))?;
    mutation.apply_to(&mut kvs);
    // Entries keep their order through a mutation: walk both lists together.
    let mut plan: SmallVec<[Planned; 8]> = SmallVec::new();
    let mut cursor = 0;
    for (k, v) in kvs.handles() {
        match raw.iter().skip(cursor).position(|(rk, rv, _, _)| (*rk, *rv) == (k, v)) {
            Some(i) => {
                cursor += i + 1;
                let (_, _, a, b) = raw.get(cursor - 1).copied().unwrap_or((k, v, 0, 0));
                plan.push(Planned::Raw(a, b));
            }
            None => plan.push(Planned::New(k, v)),
        }
    }
    let width = usize::from(prefix.width);
    let mut block_len = 0usize;
    for p in &plan {
        block_len += match p {
            Planned::Raw(a, b) => b - a,
            Planned::New(k, v) => {
                check_item(&prefix, kvs.resolve(*k).len())?;
                check_item(&prefix, kvs.resolve(*v).len())?;
                2 * width + kvs.resolve(*k).len() + kvs.resolve(*v).len()
            }
        };
    }
    let delta = block_len as i128 - (end - start) as i128;
    let new_total = frame.len() as i128 + delta;
    if new_total > spec.max_frame_size as i128 {
        return Err(CodecError::Encode("the mutation makes the frame exceed the maximum frame size".into()));
    }
    let head = frame.get(..frame_spec.header_size).unwrap_or_default();
    let id = message.metadata.request_id;
    let header_len = message.layout().header_len as usize;
    let checkpoint = dst.checkpoint();
    let patched = dst.push_built(|b| -> Result<(), CodecError> {
        let at = b.len();
        b.extend_from_slice(head);
        let header = b.get_mut(at..).unwrap_or_default();
        if !spec.request_id.write(header, id) {
            return Err(CodecError::RequestIdOutOfRange { id, max: spec.request_id.max() });
        }
        if let SectionLen::Field(f) = section.len {
            add(&f, header, delta, "the pairs section's length")?;
        }
        if let Some(f) = frame_spec.patch_length.and_then(|i| frame_spec.length.fields.get(i)) {
            add(f, header, delta, "the frame length")?;
        }
        if let Some(h) = &frame_spec.header_length {
            if end <= header_len {
                let unit = i128::from(h.unit);
                if delta % unit != 0 {
                    return Err(CodecError::Encode("the new pairs block does not fill whole header units".into()));
                }
                add(&h.field, header, delta / unit, "the header length")?;
            }
        }
        Ok(())
    });
    if let Err(e) = patched {
        dst.rollback(checkpoint);
        return Err(e);
    }
    dst.push(frame.slice(frame_spec.header_size..prefix_at));
    let written = dst.push_built(|b| -> Result<(), CodecError> {
        if let SectionLen::Prefix(p) = section.len {
            put(b, &p, block_len)?;
        }
        for item in &plan {
            match item {
                Planned::Raw(a, c) => b.extend_from_slice(frame.get(*a..*c).unwrap_or_default()),
                Planned::New(k, v) => {
                    for part in [kvs.resolve(*k), kvs.resolve(*v)] {
                        put(b, &prefix, part.len())?;
                        b.extend_from_slice(part);
                    }
                }
            }
        }
        Ok(())
    });
    if let Err(e) = written {
        dst.rollback(checkpoint);
        return Err(e);
    }
    dst.push(frame.slice(end..));
    Ok(())
}

/// Refuses an item too long for its length prefix (or as long as the null marker).
fn check_item(prefix: &Field, len: usize) -> Result<(), CodecError> {
    if (len as u64) < prefix.max() {
        Ok(())
    } else {
        Err(CodecError::Encode("a key or value is too long for its length prefix".into()))
    }
}

/// Appends `len` as the prefix field's bytes.
fn put(b: &mut BytesMut, prefix: &Field, len: usize) -> Result<(), CodecError> {
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    if len > prefix.max() {
        return Err(CodecError::Encode("a length does not fit its prefix".into()));
    }
    let (bytes, n) = prefix.encode(len);
    b.put_slice(bytes.get(..n).unwrap_or_default());
    Ok(())
}

/// Adds `delta` to the length field `f` of `header`.
fn add(f: &Field, header: &mut [u8], delta: i128, what: &str) -> Result<(), CodecError> {
    let old = f.read(header).ok_or_else(|| CodecError::Encode(format!("{what} lies outside the header").into()))?;
    match u64::try_from(i128::from(old) + delta) {
        Ok(n) if f.write(header, n) => Ok(()),
        _ => Err(CodecError::Encode(format!("{what} does not fit its field after the mutation").into())),
    }
}
