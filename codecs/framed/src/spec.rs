//! [`Spec`]: the options compiled into the form decode, encode and replies use, with every check
//! that can be made before a byte arrives (widths, fields inside their header, fields that must
//! not overlap, value lists, reply settings).

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use metaprotocol_core::{ConfigError, MessageType, ReplyKind, FRAME_SIZE_LIMIT};
use smallvec::SmallVec;

use crate::config::{
    ConditionOptions, Counts, Direction, FieldFormat, FieldOptions, FrameOptions, FramedOptions, Num, SectionOptions,
};
use crate::field::{all_ones, Endian, Field};
use crate::overlap;
use crate::reply_spec::{self, ErrorReply, HeartbeatReply};

/// Which layout a frame uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Requests, one-way requests and pings (`frame`).
    Request,
    /// Responses, errors and pongs (`response_frame`, or `frame` when that is not given).
    Response,
}

/// A condition on a header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Condition {
    pub field: Field,
    pub values: SmallVec<[u64; 4]>,
}

impl Condition {
    /// True when `buf` holds the field and its value is one of the values.
    pub fn holds(&self, buf: &[u8]) -> bool {
        self.field.read(buf).is_some_and(|v| self.values.contains(&v))
    }
}

/// The magic bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Magic {
    pub offset: usize,
    pub len: usize,
    pub any_of: Vec<Vec<u8>>,
}

/// The status field and its value classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Status {
    pub field: Field,
    pub ok: SmallVec<[u64; 4]>,
    pub business: SmallVec<[u64; 4]>,
}

/// The frame length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Length {
    pub fields: SmallVec<[Field; 4]>,
    pub counts: Counts,
    pub adjust: i64,
    /// One past the last byte of the length fields (where `counts: rest` starts counting).
    pub end: usize,
}

/// A header whose size a field gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderLength {
    pub field: Field,
    pub unit: u64,
    pub adjust: i64,
}

/// Where a section's length comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SectionLen {
    Field(Field),
    /// A prefix of its own: a field at offset 0 of the section.
    Prefix(Field),
    Rest,
}

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SectionKind {
    Skip,
    Value(&'static str),
    Pairs { prefix: Field },
}

/// One section of the variable part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: Option<String>,
    pub len: SectionLen,
    pub kind: SectionKind,
}

/// A header field exposed as a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyField {
    pub key: &'static str,
    pub field: Field,
    /// The bytes, for `format: bytes`.
    pub range: (usize, usize),
    pub format: FieldFormat,
    pub on: Direction,
}

/// One compiled layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub header_size: usize,
    pub header_length: Option<HeaderLength>,
    pub length: Length,
    pub fields: Vec<KeyField>,
    pub sections: Vec<Section>,
    /// The pairs section, if any.
    pub pairs: Option<usize>,
    /// The frame length field a mutation of the pairs section must fix besides the section's own
    /// length (an index into `length.fields`).
    pub patch_length: Option<usize>,
    /// Keys every message of this layout carries besides its pairs.
    pub static_keys: usize,
}

/// The compiled options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub max_frame_size: usize,
    pub magic: Option<Magic>,
    pub request_id: Field,
    pub kind: Field,
    pub kinds: SmallVec<[(u64, MessageType); 8]>,
    pub heartbeat: Option<Condition>,
    pub status: Option<Status>,
    pub request: Frame,
    pub response: Frame,
    /// Bytes needed to tell a frame's type and variant.
    pub min_header: usize,
    pub service_key: Option<&'static str>,
    pub method_key: Option<&'static str>,
    pub error_reply: ErrorReply,
    pub heartbeat_reply: Option<HeartbeatReply>,
}

impl Spec {
    /// The layout of `variant`.
    pub fn frame(&self, variant: Variant) -> &Frame {
        match variant {
            Variant::Request => &self.request,
            Variant::Response => &self.response,
        }
    }

    /// The message type of a type-field value (before heartbeat and status are applied).
    pub fn message_type(&self, value: u64) -> Option<MessageType> {
        self.kinds.iter().find(|(v, _)| *v == value).map(|(_, t)| *t)
    }

    /// Compiles and checks `options`.
    pub fn compile(options: &FramedOptions) -> Result<Spec, ConfigError> {
        let endian = options.endian;
        let max_frame_size =
            usize::try_from(options.max_frame_size)
                .ok()
                .filter(|&m| m > 0 && m <= FRAME_SIZE_LIMIT)
                .ok_or_else(|| invalid("max_frame_size", format!("must be between 1 and {FRAME_SIZE_LIMIT} bytes")))?;
        let magic = match &options.magic {
            None => None,
            Some(m) => {
                let len = m.any_of.first().map_or(0, |b| b.0.len());
                if len == 0 || m.any_of.iter().any(|b| b.0.len() != len) {
                    return Err(invalid("magic.any_of", "needs at least one byte string, all of one length"));
                }
                Some(Magic { offset: m.offset as usize, len, any_of: m.any_of.iter().map(|b| b.0.clone()).collect() })
            }
        };
        let request_id = field(&options.request_id, endian, "request_id")?;
        if !request_id.is_whole() {
            return Err(invalid("request_id.mask", "the request id must use its whole width"));
        }
        let mt = &options.message_type;
        let kind = field(
            &FieldOptions { offset: mt.offset, width: mt.width, endian: mt.endian, mask: mt.mask },
            endian,
            "message_type",
        )?;
        let kinds = kinds(options, &kind)?;
        let heartbeat = mt.heartbeat.as_ref().map(|c| condition(c, endian, "message_type.heartbeat")).transpose()?;
        let status = match &options.status {
            None => None,
            Some(s) => {
                let f = field(
                    &FieldOptions { offset: s.offset, width: s.width, endian: s.endian, mask: None },
                    endian,
                    "status",
                )?;
                if s.ok.is_empty() {
                    return Err(invalid("status.ok", "needs at least one value"));
                }
                let ok = values(&s.ok, &f, "status.ok")?;
                let business = values(&s.business, &f, "status.business")?;
                if let Some(v) = ok.iter().find(|v| business.contains(v)) {
                    return Err(invalid("status.business", format!("{v} is also an ok value")));
                }
                Some(Status { field: f, ok, business })
            }
        };
        let request = compile_frame(&options.frame, endian, "frame")?;
        let response = match &options.response_frame {
            Some(f) => compile_frame(f, endian, "response_frame")?,
            None => request.clone(),
        };
        let min_header = request.header_size.min(response.header_size);
        let common = [("request_id", Some(request_id)), ("message_type", Some(kind))]
            .into_iter()
            .chain([("message_type.heartbeat", heartbeat.as_ref().map(|h| h.field))]);
        for (name, f) in common {
            if let Some(f) = f {
                if f.end() > min_header {
                    return Err(invalid(
                        name,
                        format!("bytes {:?} lie past the smaller header ({min_header} bytes): it must be read before the layout is known", f.range()),
                    ));
                }
            }
        }
        if let Some(m) = &magic {
            if m.offset + m.len > min_header {
                return Err(invalid("magic", format!("lies past the smaller header ({min_header} bytes)")));
            }
        }
        if let Some(s) = &status {
            if s.field.end() > response.header_size {
                return Err(invalid("status", "lies past the response header"));
            }
        }
        for (name, frame) in [("frame", &request), ("response_frame", &response)] {
            overlap::check(name, frame, &request_id, &kind, heartbeat.as_ref(), magic.as_ref())?;
            if name == "response_frame" || options.response_frame.is_none() {
                if let Some(s) = &status {
                    for (i, l) in frame.length.fields.iter().enumerate() {
                        if l.overlaps(&s.field) || request_id.overlaps(&s.field) {
                            return Err(invalid("status", format!("overlaps the request id or length field {i}")));
                        }
                    }
                    for sec in &frame.sections {
                        if let SectionLen::Field(f) = sec.len {
                            if f.overlaps(&s.field) {
                                return Err(invalid("status", "overlaps a section's length field"));
                            }
                        }
                    }
                }
            }
        }
        if max_frame_size < request.header_size.max(response.header_size) {
            return Err(invalid("max_frame_size", "is smaller than the header"));
        }
        let has_pings = heartbeat.is_some() || kinds.iter().any(|(_, t)| *t == MessageType::Ping);
        if has_pings && options.heartbeat_reply.is_none() {
            return Err(invalid(
                "heartbeat_reply",
                "needed: the configuration gives heartbeat pings, which the proxy answers",
            ));
        }
        let service_key = options.service_key.as_deref().map(intern);
        let method_key = options.method_key.as_deref().map(intern);
        let error_reply = reply_spec::error_reply(&options.error_reply, endian, &request, &response, status.as_ref())?;
        let heartbeat_reply = options
            .heartbeat_reply
            .as_ref()
            .map(|h| reply_spec::heartbeat_reply(h, endian, &request, &response))
            .transpose()?;
        Ok(Spec {
            max_frame_size,
            magic,
            request_id,
            kind,
            kinds,
            heartbeat,
            status,
            request,
            response,
            min_header,
            service_key,
            method_key,
            error_reply,
            heartbeat_reply,
        })
    }
}

/// A [`ConfigError::Invalid`] at `field`.
pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(field, message)
}

/// Compiles an integer field: width 1, 2, 4 or 8, a mask inside it.
pub(crate) fn field(o: &FieldOptions, endian: Endian, at: &str) -> Result<Field, ConfigError> {
    if !matches!(o.width, 1 | 2 | 4 | 8) {
        return Err(invalid(&format!("{at}.width"), format!("{} is not 1, 2, 4 or 8", o.width)));
    }
    let mut f = Field::new(o.offset, o.width, o.endian.unwrap_or(endian));
    if let Some(Num(mask)) = o.mask {
        if mask == 0 || mask & !all_ones(o.width) != 0 {
            return Err(invalid(&format!("{at}.mask"), format!("{mask:#x} is empty or wider than the field")));
        }
        f.mask = mask;
    }
    Ok(f)
}

/// Compiles a condition.
pub(crate) fn condition(c: &ConditionOptions, endian: Endian, at: &str) -> Result<Condition, ConfigError> {
    let f = field(&FieldOptions { offset: c.offset, width: c.width, endian: c.endian, mask: c.mask }, endian, at)?;
    if c.values.is_empty() {
        return Err(invalid(&format!("{at}.values"), "needs at least one value"));
    }
    Ok(Condition { field: f, values: values(&c.values, &f, &format!("{at}.values"))? })
}

/// The values of a list, each fitting in `f`.
fn values(list: &[Num], f: &Field, at: &str) -> Result<SmallVec<[u64; 4]>, ConfigError> {
    list.iter()
        .map(|Num(v)| {
            if *v > f.max() {
                Err(invalid(at, format!("{v} does not fit in the field (at most {})", f.max())))
            } else {
                Ok(*v)
            }
        })
        .collect()
}

/// The value → message type table.
fn kinds(options: &FramedOptions, kind: &Field) -> Result<SmallVec<[(u64, MessageType); 8]>, ConfigError> {
    let mt = &options.message_type;
    let mut out: SmallVec<[(u64, MessageType); 8]> = SmallVec::new();
    for (name, list, t) in [
        ("request", &mt.request, MessageType::Request),
        ("oneway", &mt.oneway, MessageType::Oneway),
        ("response", &mt.response, MessageType::Response),
        ("ping", &mt.ping, MessageType::Ping),
        ("pong", &mt.pong, MessageType::Pong),
    ] {
        for v in values(list, kind, &format!("message_type.{name}"))? {
            if out.iter().any(|(seen, _)| *seen == v) {
                return Err(invalid(&format!("message_type.{name}"), format!("{v} is listed twice")));
            }
            out.push((v, t));
        }
    }
    if !out.iter().any(|(_, t)| matches!(t, MessageType::Request | MessageType::Oneway)) {
        return Err(invalid("message_type", "lists no request or oneway value"));
    }
    if !out.iter().any(|(_, t)| *t == MessageType::Response) {
        return Err(invalid("message_type", "lists no response value"));
    }
    Ok(out)
}

/// Keys live as long as the process: each distinct key name is allocated once, however often a
/// configuration is compiled, so that decoding can hand out `Text::from_static` handles.
pub(crate) fn intern(s: &str) -> &'static str {
    static KEYS: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut keys = KEYS.get_or_init(|| Mutex::new(BTreeSet::new())).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = keys.get(s) {
        return k;
    }
    let k: &'static str = Box::leak(s.to_owned().into_boxed_str());
    keys.insert(k);
    k
}

fn compile_frame(o: &FrameOptions, endian: Endian, at: &str) -> Result<Frame, ConfigError> {
    let header_size = o.header_size as usize;
    if header_size == 0 {
        return Err(invalid(&format!("{at}.header_size"), "must be at least 1"));
    }
    let inside = |f: &Field, name: &str| -> Result<(), ConfigError> {
        if f.end() > header_size {
            Err(invalid(
                &format!("{at}.{name}"),
                format!("bytes {:?} lie past the fixed header of {header_size} bytes", f.range()),
            ))
        } else {
            Ok(())
        }
    };
    let l = &o.length;
    let mut fields: SmallVec<[Field; 4]> = SmallVec::new();
    match (l.offset, l.width, l.sum.is_empty()) {
        (Some(offset), Some(width), true) => fields.push(field(
            &FieldOptions { offset, width, endian: l.endian, mask: None },
            endian,
            &format!("{at}.length"),
        )?),
        (None, None, false) => {
            for (i, s) in l.sum.iter().enumerate() {
                if s.mask.is_some() {
                    return Err(invalid(&format!("{at}.length.sum[{i}].mask"), "length fields take no mask"));
                }
                fields.push(field(s, endian, &format!("{at}.length.sum[{i}]"))?);
            }
        }
        _ => return Err(invalid(&format!("{at}.length"), "give `offset` and `width`, or `sum`, not both")),
    }
    for (i, f) in fields.iter().enumerate() {
        inside(f, &format!("length (field {i})"))?;
        if fields.iter().skip(i + 1).any(|g| g.overlaps(f)) {
            return Err(invalid(&format!("{at}.length"), "summed fields overlap"));
        }
    }
    let end = fields.iter().map(Field::end).max().unwrap_or(0);
    let length = Length { fields, counts: l.counts, adjust: l.adjust, end };
    let header_length = match &o.header_length {
        None => None,
        Some(h) => {
            let f = field(
                &FieldOptions { offset: h.offset, width: h.width, endian: h.endian, mask: None },
                endian,
                &format!("{at}.header_length"),
            )?;
            inside(&f, "header_length")?;
            if h.unit == 0 {
                return Err(invalid(&format!("{at}.header_length.unit"), "must be at least 1"));
            }
            if length.fields.iter().any(|g| g.overlaps(&f)) {
                return Err(invalid(&format!("{at}.header_length"), "overlaps the length field"));
            }
            Some(HeaderLength { field: f, unit: u64::from(h.unit), adjust: h.adjust })
        }
    };
    let mut keys = Vec::new();
    for (i, k) in o.fields.iter().enumerate() {
        let name = format!("fields[{i}]");
        if k.key.is_empty() {
            return Err(invalid(&format!("{at}.{name}.key"), "is empty"));
        }
        let (f, range) = match k.format {
            FieldFormat::Int => {
                let width = u8::try_from(k.width).unwrap_or(0);
                let f = field(
                    &FieldOptions { offset: k.offset, width, endian: k.endian, mask: k.mask },
                    endian,
                    &format!("{at}.{name}"),
                )?;
                (f, (f.range().start, f.range().end))
            }
            FieldFormat::Bytes => {
                if k.mask.is_some() || k.width == 0 {
                    return Err(invalid(
                        &format!("{at}.{name}"),
                        "bytes fields take a width of at least 1 and no mask",
                    ));
                }
                let start = k.offset as usize;
                let f = Field::new(k.offset, 1, endian);
                (f, (start, start.saturating_add(k.width as usize)))
            }
        };
        if range.1 > header_size {
            return Err(invalid(
                &format!("{at}.{name}"),
                format!("bytes {}..{} lie past the fixed header of {header_size} bytes", range.0, range.1),
            ));
        }
        keys.push(KeyField { key: intern(&k.key), field: f, range, format: k.format, on: k.on });
    }
    let mut sections = Vec::new();
    let mut names = BTreeSet::new();
    for (i, s) in o.sections.iter().enumerate() {
        let sec = section(s, endian, &format!("{at}.sections[{i}]"), i + 1 == o.sections.len())?;
        if let SectionLen::Field(f) = &sec.len {
            inside(f, &format!("sections[{i}].length"))?;
        }
        if let Some(n) = &sec.name {
            if !names.insert(n.clone()) {
                return Err(invalid(&format!("{at}.sections[{i}].name"), format!("`{n}` names two sections")));
            }
        }
        sections.push(sec);
    }
    let pairs_list: Vec<usize> = sections
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.kind, SectionKind::Pairs { .. }))
        .map(|(i, _)| i)
        .collect();
    if pairs_list.len() > 1 {
        return Err(invalid(
            &format!("{at}.sections"),
            "at most one section may hold pairs (the block mutations rewrite)",
        ));
    }
    let pairs = pairs_list.first().copied();
    let patch_length = match pairs.and_then(|p| sections.get(p)) {
        None => None,
        Some(sec) => {
            let own = match sec.len {
                SectionLen::Field(f) => length.fields.iter().position(|g| *g == f),
                _ => None,
            };
            match (own, length.fields.len()) {
                // The section's own length is part of the frame length: fixing it fixes both.
                (Some(_), _) => None,
                (None, 1) => Some(0),
                (None, _) => {
                    return Err(invalid(
                        &format!("{at}.length.sum"),
                        "the pairs section's length field must be one of the summed fields, so that a mutation can fix the frame length",
                    ))
                }
            }
        }
    };
    let static_keys = keys.len() + sections.iter().filter(|s| matches!(s.kind, SectionKind::Value(_))).count();
    Ok(Frame { header_size, header_length, length, fields: keys, sections, pairs, patch_length, static_keys })
}

fn section(s: &SectionOptions, endian: Endian, at: &str, last: bool) -> Result<Section, ConfigError> {
    let len = match (&s.length, s.prefix, s.rest) {
        (Some(l), None, false) => SectionLen::Field(field(
            &FieldOptions { offset: l.offset, width: l.width, endian: l.endian, mask: None },
            endian,
            &format!("{at}.length"),
        )?),
        (None, Some(w), false) => SectionLen::Prefix(field(
            &FieldOptions { offset: 0, width: w, endian: None, mask: None },
            endian,
            &format!("{at}.prefix"),
        )?),
        (None, None, true) if last => SectionLen::Rest,
        (None, None, true) => return Err(invalid(at, "only the last section may run to the end of the frame")),
        _ => return Err(invalid(at, "give exactly one of `length`, `prefix` and `rest: true`")),
    };
    let kind = match (&s.key, &s.pairs) {
        (None, None) => SectionKind::Skip,
        (Some(k), None) if !k.is_empty() => SectionKind::Value(intern(k)),
        (Some(_), None) => return Err(invalid(&format!("{at}.key"), "is empty")),
        (None, Some(p)) => {
            if !matches!(p.width, 1 | 2 | 4) {
                return Err(invalid(&format!("{at}.pairs.width"), format!("{} is not 1, 2 or 4", p.width)));
            }
            SectionKind::Pairs { prefix: Field::new(0, p.width, p.endian.unwrap_or(endian)) }
        }
        (Some(_), Some(_)) => return Err(invalid(at, "give `key` or `pairs`, not both")),
    };
    Ok(Section { name: s.name.clone(), len, kind })
}

/// The reply kinds by their configuration names.
pub(crate) fn reply_kind(name: &str) -> Option<ReplyKind> {
    ReplyKind::ALL.into_iter().find(|k| k.as_str() == name)
}
