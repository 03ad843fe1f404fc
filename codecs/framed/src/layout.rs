//! [`FramedLayout`]: what the codec remembers about a decoded frame (its
//! [`Codec::Layout`](metaprotocol_core::Codec::Layout)): which layout it uses, where its header
//! ends and where its key/value pairs lie, so that encode can rewrite that block and fix the
//! lengths around it without reading the frame again.

use crate::spec::Variant;

/// Where a frame's block of key/value pairs lies (offsets into the frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PairsSpan {
    /// Where the section starts: its own length prefix, if it has one, else `start`.
    pub prefix_at: u32,
    /// The first byte of the first pair.
    pub start: u32,
    /// One past the last byte of the last pair.
    pub end: u32,
}

/// The framed codec's layout of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FramedLayout {
    /// The layout the frame uses (`frame` or `response_frame`).
    pub variant: Variant,
    /// Bytes before the body: the fixed header, or the size the header length field gives.
    pub header_len: u32,
    /// The pairs block a mutation rewrites; `None` when the layout has none, and for heartbeats
    /// (which are forwarded as they are).
    pub pairs: Option<PairsSpan>,
}
