//! The reply settings compiled and checked: what an error response and a heartbeat answer copy
//! from the request, which constants they set, the status of each reply kind, and where the text
//! goes.

use metaprotocol_core::{ConfigError, ReplyKind};
use smallvec::SmallVec;

use crate::config::{
    CopyOptions, ErrorReplyOptions, FieldOptions, HeartbeatReplyOptions, HexBytes, SetOptions, TextFormat,
};
use crate::field::{Endian, Field};
use crate::spec::{condition, field, invalid, reply_kind, Condition, Frame, SectionKind, Status};

/// Bytes copied from the request's header into the reply's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CopyBytes {
    pub from: usize,
    pub to: usize,
    pub len: usize,
}

/// A constant written into the reply's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SetValue {
    pub field: Field,
    pub value: u64,
}

/// How the text is written: its format and the bytes around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TextEncoding {
    pub format: TextFormat,
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
}

/// Where an error reply's text goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TextSpec {
    /// The section index in the response layout.
    pub section: usize,
    pub encoding: TextEncoding,
    pub overrides: Vec<(Condition, TextEncoding)>,
}

impl TextSpec {
    /// The encoding for a request with header `request`.
    pub fn encoding_for(&self, request: &[u8]) -> &TextEncoding {
        self.overrides.iter().find(|(c, _)| c.holds(request)).map_or(&self.encoding, |(_, e)| e)
    }
}

/// The compiled error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ErrorReply {
    pub set: Vec<SetValue>,
    pub copy: Vec<CopyBytes>,
    pub status: SmallVec<[(ReplyKind, u64); 9]>,
    pub default_status: u64,
    pub text: Option<TextSpec>,
}

impl ErrorReply {
    /// The status value of `kind`.
    pub fn status_of(&self, kind: ReplyKind) -> u64 {
        self.status.iter().find(|(k, _)| *k == kind).map_or(self.default_status, |(_, v)| *v)
    }
}

/// The compiled heartbeat answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeartbeatReply {
    pub set: Vec<SetValue>,
    pub copy: Vec<CopyBytes>,
}

fn sets(list: &[SetOptions], endian: Endian, response: &Frame, at: &str) -> Result<Vec<SetValue>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let at = format!("{at}.set[{i}]");
            let f =
                field(&FieldOptions { offset: s.offset, width: s.width, endian: s.endian, mask: s.mask }, endian, &at)?;
            if f.end() > response.header_size {
                return Err(invalid(&at, "lies past the response header"));
            }
            if s.value.0 > f.max() {
                return Err(invalid(&format!("{at}.value"), format!("{} does not fit in the field", s.value.0)));
            }
            Ok(SetValue { field: f, value: s.value.0 })
        })
        .collect()
}

fn copies(list: &[CopyOptions], request: &Frame, response: &Frame, at: &str) -> Result<Vec<CopyBytes>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("{at}.copy[{i}]");
            let (from, len) = (c.offset as usize, c.width as usize);
            let to = c.to.map_or(from, |t| t as usize);
            if len == 0 {
                return Err(invalid(&at, "copies no byte"));
            }
            if from + len > request.header_size {
                return Err(invalid(&at, "reads past the request header"));
            }
            if to + len > response.header_size {
                return Err(invalid(&at, "writes past the response header"));
            }
            Ok(CopyBytes { from, to, len })
        })
        .collect()
}

/// Compiles `error_reply`.
pub(crate) fn error_reply(
    o: &ErrorReplyOptions,
    endian: Endian,
    request: &Frame,
    response: &Frame,
    status: Option<&Status>,
) -> Result<ErrorReply, ConfigError> {
    let Some(st) = status else {
        return Err(invalid(
            "status",
            "needed: an error reply must carry a status other than ok, so the client (and the proxy) can tell it from success",
        ));
    };
    let mut by_kind = SmallVec::new();
    let mut default_status = None;
    for (name, v) in &o.status {
        let at = format!("error_reply.status.{name}");
        if v.0 > st.field.max() {
            return Err(invalid(&at, format!("{} does not fit in the status field", v.0)));
        }
        if st.ok.contains(&v.0) {
            return Err(invalid(&at, format!("{} is an ok status: the reply would read as a success", v.0)));
        }
        if name == "default" {
            default_status = Some(v.0);
        } else {
            let kind = reply_kind(name).ok_or_else(|| {
                let names: Vec<_> = ReplyKind::ALL.iter().map(|k| k.as_str()).collect();
                invalid(&at, format!("unknown reply kind (known: default, {})", names.join(", ")))
            })?;
            by_kind.push((kind, v.0));
        }
    }
    let default_status = match default_status {
        Some(d) => d,
        None if ReplyKind::ALL.iter().all(|k| by_kind.iter().any(|(b, _)| b == k)) => {
            by_kind.first().map_or(0, |(_, v)| *v)
        }
        None => return Err(invalid("error_reply.status.default", "needed for the reply kinds not listed")),
    };
    let text = match &o.text {
        None => None,
        Some(t) => {
            let section =
                response.sections.iter().position(|s| s.name.as_deref() == Some(t.section.as_str())).ok_or_else(
                    || {
                        invalid(
                            "error_reply.text.section",
                            format!("the response layout has no section named `{}`", t.section),
                        )
                    },
                )?;
            if matches!(response.sections.get(section).map(|s| s.kind), Some(SectionKind::Pairs { .. })) {
                return Err(invalid("error_reply.text.section", "is a pairs section"));
            }
            let mut overrides = Vec::new();
            for (i, ov) in t.overrides.iter().enumerate() {
                let at = format!("error_reply.text.overrides[{i}].when");
                let c = condition(&ov.condition, endian, &at)?;
                if c.field.end() > request.header_size {
                    return Err(invalid(&at, "lies past the request header"));
                }
                overrides.push((c, encoding(ov.format, ov.prefix.as_ref(), ov.suffix.as_ref())));
            }
            Some(TextSpec { section, encoding: encoding(t.format, t.prefix.as_ref(), t.suffix.as_ref()), overrides })
        }
    };
    Ok(ErrorReply {
        set: sets(&o.set, endian, response, "error_reply")?,
        copy: copies(&o.copy, request, response, "error_reply")?,
        status: by_kind,
        default_status,
        text,
    })
}

fn encoding(format: TextFormat, prefix: Option<&HexBytes>, suffix: Option<&HexBytes>) -> TextEncoding {
    TextEncoding {
        format,
        prefix: prefix.map(|b| b.0.clone()).unwrap_or_default(),
        suffix: suffix.map(|b| b.0.clone()).unwrap_or_default(),
    }
}

/// Compiles `heartbeat_reply`.
pub(crate) fn heartbeat_reply(
    o: &HeartbeatReplyOptions,
    endian: Endian,
    request: &Frame,
    response: &Frame,
) -> Result<HeartbeatReply, ConfigError> {
    Ok(HeartbeatReply {
        set: sets(&o.set, endian, response, "heartbeat_reply")?,
        copy: copies(&o.copy, request, response, "heartbeat_reply")?,
    })
}
