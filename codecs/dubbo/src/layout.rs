//! [`DubboLayout`]: what the codec remembers about a decoded frame, for encoding it with a
//! mutation and for answering it (the codec's [`Codec::Layout`](metaprotocol_core::Codec::Layout)).
//!
//! Offsets are `u32` positions in the frame: a Dubbo frame is at most 16 bytes of header plus an
//! `i32` body length, so every offset fits.

use std::ops::Range;

use metaprotocol_core::CodecError;

use crate::header::{FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, SERIALIZATION_MASK};

/// A byte range of the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The span `range`; fails for offsets over 4 GiB (which a Dubbo frame cannot reach).
    pub fn new(range: Range<usize>) -> Result<Span, CodecError> {
        Ok(Span { start: offset(range.start)?, end: offset(range.end)? })
    }

    /// The span as a `usize` range, for slicing the frame.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// True when the span holds no byte.
    pub fn is_empty(self) -> bool {
        self.start >= self.end
    }
}

/// `pos` as a `u32` frame offset.
pub(crate) fn offset(pos: usize) -> Result<u32, CodecError> {
    u32::try_from(pos).map_err(|_| CodecError::malformed(pos, "offset beyond 4 GiB"))
}

/// The response body kind: the int that opens a status-20 response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// 0: the method threw; the body holds the exception.
    Exception,
    /// 1: the body holds the return value.
    Value,
    /// 2: the method returned null; no value follows.
    NullValue,
    /// 3: an exception, then attachments.
    ExceptionWithAttachments,
    /// 4: a value, then attachments.
    ValueWithAttachments,
    /// 5: null, then attachments.
    NullValueWithAttachments,
}

impl ResponseKind {
    /// The kind written as `value` on the wire; `None` for a value Dubbo does not define.
    pub fn from_wire(value: i32) -> Option<ResponseKind> {
        Some(match value {
            0 => ResponseKind::Exception,
            1 => ResponseKind::Value,
            2 => ResponseKind::NullValue,
            3 => ResponseKind::ExceptionWithAttachments,
            4 => ResponseKind::ValueWithAttachments,
            5 => ResponseKind::NullValueWithAttachments,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn to_wire(self) -> i32 {
        match self {
            ResponseKind::Exception => 0,
            ResponseKind::Value => 1,
            ResponseKind::NullValue => 2,
            ResponseKind::ExceptionWithAttachments => 3,
            ResponseKind::ValueWithAttachments => 4,
            ResponseKind::NullValueWithAttachments => 5,
        }
    }

    /// The decimal text of the wire value (the `body_kind` key).
    pub fn as_text(self) -> &'static str {
        match self {
            ResponseKind::Exception => "0",
            ResponseKind::Value => "1",
            ResponseKind::NullValue => "2",
            ResponseKind::ExceptionWithAttachments => "3",
            ResponseKind::ValueWithAttachments => "4",
            ResponseKind::NullValueWithAttachments => "5",
        }
    }

    /// True for the kinds followed by an attachment map (3, 4, 5).
    pub fn has_attachments(self) -> bool {
        matches!(
            self,
            ResponseKind::ExceptionWithAttachments
                | ResponseKind::ValueWithAttachments
                | ResponseKind::NullValueWithAttachments
        )
    }

    /// True for the kinds that carry an exception (0, 3): a business exception.
    pub fn is_exception(self) -> bool {
        matches!(self, ResponseKind::Exception | ResponseKind::ExceptionWithAttachments)
    }

    /// True for the kinds that carry a value (1, 4).
    pub fn has_value(self) -> bool {
        matches!(self, ResponseKind::Value | ResponseKind::ValueWithAttachments)
    }

    /// The same kind followed by attachments (0 → 3, 1 → 4, 2 → 5; 3 to 5 unchanged).
    pub fn with_attachments(self) -> ResponseKind {
        match self {
            ResponseKind::Exception => ResponseKind::ExceptionWithAttachments,
            ResponseKind::Value => ResponseKind::ValueWithAttachments,
            ResponseKind::NullValue => ResponseKind::NullValueWithAttachments,
            other => other,
        }
    }
}

/// Where a body's attachment map lies, or where a new one would go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attachments {
    /// The body holds a Hessian map here (bytes after it, if any, are forwarded as they are).
    Map(Span),
    /// The body holds no map: a mutation writes one in place of this span, which is empty at the
    /// end of the body, or holds bytes a peer left after the last value (`dubbo-py` writes a stray
    /// null after a null response value), which the map replaces.
    Absent(Span),
}

impl Attachments {
    /// The span a rewritten map replaces.
    pub fn span(self) -> Span {
        match self {
            Attachments::Map(s) | Attachments::Absent(s) => s,
        }
    }

    /// True when the body holds a map.
    pub fn is_map(self) -> bool {
        matches!(self, Attachments::Map(_))
    }
}

/// A Hessian 2 request body, as far as the codec read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestLayout {
    /// The service path as encoded: a Hessian string value (or null), chunk headers included.
    /// Replies name the operation from it.
    pub service: Span,
    /// The method name as encoded, like `service`.
    pub method: Span,
    /// The attachment map.
    pub attachments: Attachments,
}

/// A status-20 Hessian 2 response body, as far as the codec read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResponseLayout {
    /// The body kind.
    pub kind: ResponseKind,
    /// Where the body kind's int ends (it starts the body, at byte 16).
    pub kind_end: u32,
    /// The attachment map (kinds 3 to 5), or where one would go.
    pub attachments: Attachments,
}

/// What a frame's body holds, as far as the codec read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// A Hessian 2 request, two-way or one-way: mutable.
    Request(RequestLayout),
    /// A Hessian 2 response with status 20: mutable.
    Response(ResponseLayout),
    /// A response with another status: its body is an error message; carries no attachments.
    ErrorMessage,
    /// An event (heartbeat): carries no attachments.
    Event,
    /// A body in another serialization than Hessian 2: not read, forwarded unchanged.
    NotDecoded,
}

/// The Dubbo codec's layout of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DubboLayout {
    /// The header's flag byte: request, two-way and event bits, and the serialization id.
    pub flags: u8,
    /// What the body holds.
    pub body: Body,
}

impl DubboLayout {
    /// The serialization id (the flag byte's low five bits; 2 is Hessian 2).
    pub fn serialization(&self) -> u8 {
        self.flags & SERIALIZATION_MASK
    }

    /// True for requests (the request flag is set).
    pub fn is_request(&self) -> bool {
        self.flags & FLAG_REQUEST != 0
    }

    /// True when the request flag and the two-way flag are set.
    pub fn is_two_way_request(&self) -> bool {
        self.is_request() && self.flags & FLAG_TWO_WAY != 0
    }

    /// True for events (heartbeats).
    pub fn is_event(&self) -> bool {
        self.flags & FLAG_EVENT != 0
    }

    /// True when the body was read and a mutation can rewrite its attachments (a Hessian 2
    /// request, or a status-20 Hessian 2 response).
    pub fn is_mutable(&self) -> bool {
        matches!(self.body, Body::Request(_) | Body::Response(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_kinds_round_trip_and_gain_attachments() {
        for v in 0..6 {
            let k = ResponseKind::from_wire(v).unwrap();
            assert_eq!(k.to_wire(), v);
            assert_eq!(k.as_text(), v.to_string());
            assert!(k.with_attachments().has_attachments());
            assert_eq!(k.with_attachments().to_wire(), if v < 3 { v + 3 } else { v });
        }
        assert_eq!(ResponseKind::from_wire(6), None);
        assert_eq!(ResponseKind::from_wire(-1), None);
    }

    #[test]
    fn spans_convert_checked() {
        assert_eq!(Span::new(3..9).unwrap().range(), 3..9);
        assert!(Span::new(0..usize::MAX).is_err());
        assert!(Span { start: 4, end: 4 }.is_empty());
    }
}
