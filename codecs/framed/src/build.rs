//! Builds whole frames from a header template: every section empty but one (a reply's text), and
//! every length the layout declares (section lengths, prefixes, the header length, the frame
//! length) set to match. Replies are built this way, and so are the frames the configuration
//! check decodes.

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::CodecError;

use crate::config::Counts;
use crate::field::Field;
use crate::spec::{SectionLen, Spec, Variant};

/// A frame of layout `variant`: `head` (the fixed header, already filled in but for the
/// lengths), then the sections, section `content.0` holding `content.1` and the others empty.
pub(crate) fn build(
    spec: &Spec,
    variant: Variant,
    mut head: BytesMut,
    content: Option<(usize, &[u8])>,
) -> Result<Bytes, CodecError> {
    let layout = spec.frame(variant);
    let header_size = layout.header_size;
    if head.len() != header_size {
        return Err(CodecError::Encode("header template of the wrong size".into()));
    }
    if let Some(h) = &layout.header_length {
        let bytes = header_size as i128 - i128::from(h.adjust);
        let unit = i128::from(h.unit);
        let ok =
            bytes >= 0 && bytes % unit == 0 && u64::try_from(bytes / unit).is_ok_and(|v| h.field.write(&mut head, v));
        if !ok {
            return Err(CodecError::Encode("the header length field cannot describe the fixed header".into()));
        }
    }
    let mut body = BytesMut::new();
    let mut section_fields: Vec<Field> = Vec::new();
    for (i, s) in layout.sections.iter().enumerate() {
        let data = match content {
            Some((j, data)) if j == i => data,
            _ => &[][..],
        };
        let len = data.len() as u64;
        match s.len {
            SectionLen::Field(f) => {
                if !f.write(&mut head, len) {
                    return Err(CodecError::Encode("a section is too long for its length field".into()));
                }
                section_fields.push(f);
            }
            SectionLen::Prefix(p) => {
                if len > p.max() {
                    return Err(CodecError::Encode("a section is too long for its length prefix".into()));
                }
                let (bytes, n) = p.encode(len);
                body.put_slice(bytes.get(..n).unwrap_or_default());
            }
            SectionLen::Rest => {}
        }
        body.put_slice(data);
    }
    let total = header_size + body.len();
    if total > spec.max_frame_size {
        return Err(CodecError::Encode("the frame would exceed the maximum frame size".into()));
    }
    let l = &layout.length;
    let base = match l.counts {
        Counts::Rest => l.end,
        Counts::Frame => 0,
        Counts::Body => header_size,
    };
    let want = total as i128 - base as i128 - i128::from(l.adjust);
    let mut have: i128 = 0;
    let mut free = Vec::new();
    for f in &l.fields {
        if section_fields.contains(f) {
            have += i128::from(f.read(&head).unwrap_or(0));
        } else {
            free.push(*f);
        }
    }
    let mut rest = want - have;
    for f in &free {
        let v = u64::try_from(rest).map_err(|_| CodecError::Encode("the frame length cannot be written".into()))?;
        if !f.write(&mut head, v) {
            return Err(CodecError::Encode("the frame length does not fit its field".into()));
        }
        rest = 0;
    }
    if rest != 0 {
        return Err(CodecError::Encode("the frame length fields cannot describe this frame".into()));
    }
    head.put_slice(&body);
    Ok(head.freeze())
}
