//! Re-encoding an attachment map with a mutation applied: entries the mutation does not touch are
//! copied as their original encoded bytes (whatever their type); the touched ones go through
//! [`Mutation::apply_to`] and are written as Hessian strings.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{CodecError, KeyValues, Mutation};

use crate::hessian::{self, MapValue, Reader, StrValue};

fn bytes_of(frame: &Bytes, v: MapValue) -> Bytes {
    match v {
        MapValue::Str(StrValue::Span(r)) | MapValue::Raw(r) => frame.slice(r),
        MapValue::Str(StrValue::Joined(v)) => Bytes::from(v),
    }
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
    // Untouched entries, as encoded spans; touched ones, decoded, for the mutation to apply to.
    let mut kept: Vec<Range<usize>> = Vec::new();
    let mut touched = KeyValues::new();
    if has_map && !range.is_empty() {
        let data = frame.get(range.clone()).unwrap_or(&[]);
        Reader::new(data, range.start).with_max_depth(max_depth).read_map(|e| {
            let key = bytes_of(frame, e.key);
            if mutation.touches(&key) {
                touched.push(key, bytes_of(frame, e.value));
            } else {
                kept.push(e.encoded);
            }
        })?;
    }
    mutation.apply_to(&mut touched);
    if kept.is_empty() && touched.is_empty() && !has_map {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(range.len() + 64);
    hessian::write_map_start(&mut out);
    for r in kept {
        out.extend_from_slice(frame.get(r).unwrap_or(&[]));
    }
    for e in &touched {
        hessian::write_string(&mut out, &e.key)?;
        hessian::write_string(&mut out, &e.value)?;
    }
    hessian::write_map_end(&mut out);
    Ok(Some(out))
}
