//! Re-encoding an attachment map with a mutation applied: untouched entries are copied as their
//! original encoded bytes (whatever their type), set entries are written as Hessian strings.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{CodecError, Mutation, MutationOp};

use crate::hessian::{self, MapValue, Reader, StrValue};

enum Entry {
    /// An entry kept as it was encoded (frame range of key and value).
    Original(Range<usize>),
    /// An entry set by the mutation.
    Set(Bytes),
}

/// The attachment map at `frame[range]` after `mutation`, encoded as an untyped Hessian map.
/// `has_map` is false when the body has no map (the range then holds only bytes to be replaced).
/// Returns `None` when the map ends up empty and there was none before.
pub fn rewrite(
    frame: &Bytes,
    range: Range<usize>,
    has_map: bool,
    mutation: &Mutation,
    max_depth: usize,
) -> Result<Option<BytesMut>, CodecError> {
    let mut entries: Vec<(Vec<u8>, Entry)> = Vec::new();
    if has_map && !range.is_empty() {
        let data = frame.get(range.clone()).unwrap_or(&[]);
        Reader::new(data, range.start).with_max_depth(max_depth).read_map(|e| {
            let key = match e.key {
                MapValue::Str(StrValue::Span(r)) | MapValue::Raw(r) => frame.get(r).unwrap_or(&[]).to_vec(),
                MapValue::Str(StrValue::Joined(v)) => v,
            };
            entries.push((key, Entry::Original(e.encoded)));
        })?;
    }
    for op in mutation.ops() {
        match op {
            MutationOp::Set { key, value } => match entries.iter().position(|(k, _)| k.eq_ignore_ascii_case(key)) {
                Some(i) => {
                    if let Some(slot) = entries.get_mut(i) {
                        slot.1 = Entry::Set(value.clone());
                    }
                    let mut seen = 0;
                    entries.retain(|(k, _)| {
                        if k.eq_ignore_ascii_case(key) {
                            seen += 1;
                            seen == 1
                        } else {
                            true
                        }
                    });
                }
                None => entries.push((key.to_vec(), Entry::Set(value.clone()))),
            },
            MutationOp::Remove { key } => entries.retain(|(k, _)| !k.eq_ignore_ascii_case(key)),
        }
    }
    if entries.is_empty() && !has_map {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(range.len() + 64);
    hessian::write_map_start(&mut out);
    for (key, entry) in &entries {
        match entry {
            Entry::Original(r) => out.extend_from_slice(frame.get(r.clone()).unwrap_or(&[])),
            Entry::Set(value) => {
                hessian::write_string(&mut out, key)?;
                hessian::write_string(&mut out, value)?;
            }
        }
    }
    hessian::write_map_end(&mut out);
    Ok(Some(out))
}
