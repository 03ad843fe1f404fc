//! Which header fields may share bytes: the fields the proxy writes (request id, lengths, header
//! length) never with each other nor with the fields that tell frames apart (magic, type,
//! heartbeat marker), and exposed fields never on what the proxy rewrites.

use metaprotocol_core::ConfigError;

use crate::field::{ranges_overlap, Field};
use crate::spec::{invalid, Condition, Frame, Magic, SectionLen};

/// Fields the proxy writes must not share a byte with each other or with the fields that tell
/// frames apart; exposed fields must not lie on what rewrites change.
pub(crate) fn check(
    at: &str,
    frame: &Frame,
    request_id: &Field,
    kind: &Field,
    heartbeat: Option<&Condition>,
    magic: Option<&Magic>,
) -> Result<(), ConfigError> {
    let mut written: Vec<(String, std::ops::Range<usize>)> = vec![("request_id".into(), request_id.range())];
    for (i, f) in frame.length.fields.iter().enumerate() {
        written.push((format!("{at}.length (field {i})"), f.range()));
    }
    if let Some(h) = &frame.header_length {
        written.push((format!("{at}.header_length"), h.field.range()));
    }
    for (i, s) in frame.sections.iter().enumerate() {
        if let SectionLen::Field(f) = s.len {
            if !frame.length.fields.contains(&f) {
                written.push((format!("{at}.sections[{i}].length"), f.range()));
            }
        }
    }
    for (i, (a, ra)) in written.iter().enumerate() {
        for (b, rb) in written.iter().skip(i + 1) {
            if ranges_overlap(ra, rb) {
                return Err(invalid(a, format!("overlaps {b} (bytes {ra:?} and {rb:?})")));
            }
        }
        let mut read_only = vec![("message_type".to_string(), kind.range())];
        if let Some(h) = heartbeat {
            read_only.push(("message_type.heartbeat".into(), h.field.range()));
        }
        if let Some(m) = magic {
            read_only.push(("magic".into(), m.offset..m.offset + m.len));
        }
        for (b, rb) in &read_only {
            if ranges_overlap(ra, rb) {
                return Err(invalid(a, format!("overlaps {b} (bytes {ra:?} and {rb:?})")));
            }
        }
    }
    for (i, k) in frame.fields.iter().enumerate() {
        let r = k.range.0..k.range.1;
        if let Some((b, _)) = written.iter().find(|(_, rb)| ranges_overlap(&r, rb)) {
            return Err(invalid(
                &format!("{at}.fields[{i}]"),
                format!("`{}` overlaps {b}, which the proxy rewrites", k.key),
            ));
        }
    }
    Ok(())
}
