//! Re-encoding an attachment map with a mutation applied: entries the mutation does not touch are
//! copied as their original encoded bytes (whatever their type); the touched ones go through
//! [`Mutation::apply_to`] and are written as Hessian strings.
//!
//! The new map is planned first (what to copy, what to write, and its exact encoded length) so
//! that the header, which carries the body length and precedes the map, can be written before it.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{CodecError, KeyValues, Mutation};
use smallvec::SmallVec;

use crate::body::text;
use crate::hessian::{self, MapValue, Reader, StrValue};
use crate::layout::Attachments;

/// The new attachment map, planned but not yet written.
#[derive(Debug)]
pub(crate) struct Rewrite {
    /// Untouched entries, as encoded spans of the frame.
    kept: SmallVec<[Range<usize>; 8]>,
    /// The touched entries after the mutation.
    touched: KeyValues,
    /// The new map's encoded length.
    len: usize,
}

fn key_bytes<'a>(frame: &'a [u8], key: &'a MapValue) -> &'a [u8] {
    match key {
        MapValue::Str(StrValue::Span(r)) | MapValue::Raw(r) => frame.get(r.clone()).unwrap_or(&[]),
        MapValue::Str(StrValue::Joined(v)) => v,
    }
}

fn handle(kvs: &mut KeyValues, v: MapValue) -> Result<metaprotocol_core::Text, CodecError> {
    match v {
        MapValue::Str(s) => text(kvs, Some(s)),
        MapValue::Raw(r) => kvs.span(r),
    }
}

/// Plans the attachment map of `frame` after `mutation`, encoded as an untyped Hessian map.
/// Returns `None` when the body has no map and the mutation leaves it without one.
pub(crate) fn plan(
    frame: &Bytes,
    attachments: Attachments,
    mutation: &Mutation,
    max_depth: usize,
) -> Result<Option<Rewrite>, CodecError> {
    let mut kept = SmallVec::new();
    let mut touched = KeyValues::over(frame.clone(), 4);
    if let Attachments::Map(span) = attachments {
        let range = span.range();
        let data = frame.get(range.clone()).ok_or(CodecError::Encode("attachment map outside the frame".into()))?;
        let mut failed = None;
        Reader::new(data, range.start).with_max_depth(max_depth).read_map(|e| {
            if !mutation.touches(key_bytes(frame, &e.key)) {
                kept.push(e.encoded);
                return;
            }
            match (handle(&mut touched, e.key), handle(&mut touched, e.value)) {
                (Ok(k), Ok(v)) => touched.push(k, v),
                (Err(err), _) | (_, Err(err)) => failed = Some(err),
            }
        })?;
        if let Some(err) = failed {
            return Err(err);
        }
    }
    mutation.apply_to(&mut touched);
    if kept.is_empty() && touched.is_empty() && !attachments.is_map() {
        return Ok(None);
    }
    // 'H', the copied entries, the written ones, 'Z'.
    let mut len = 2 + kept.iter().map(ExactSizeIterator::len).sum::<usize>();
    for (k, v) in touched.iter() {
        len += hessian::string_len(k)? + hessian::string_len(v)?;
    }
    Ok(Some(Rewrite { kept, touched, len }))
}

impl Rewrite {
    /// The new map's encoded length.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Writes the new map to `dst`, copying the kept entries from `frame`.
    pub(crate) fn write(&self, frame: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        hessian::write_map_start(dst);
        for r in &self.kept {
            dst.extend_from_slice(frame.get(r.clone()).unwrap_or(&[]));
        }
        for (k, v) in self.touched.iter() {
            hessian::write_string(dst, k)?;
            hessian::write_string(dst, v)?;
        }
        hessian::write_map_end(dst);
        if dst.len() - start != self.len {
            return Err(CodecError::Encode("attachment map length differs from its plan".into()));
        }
        Ok(())
    }
}
