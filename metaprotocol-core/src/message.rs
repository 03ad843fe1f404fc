//! [`Message`]: a decoded frame, its metadata and the offsets its codec needs to splice it.

use bytes::Bytes;

use crate::metadata::Metadata;

/// Number of offset slots in a [`Layout`].
pub const LAYOUT_SLOTS: usize = 8;

/// Codec-private positions inside a frame (for example where the attachment map starts), kept so
/// that encoding a mutation re-encodes only the changed part and splices the rest.
///
/// The core gives the slots no meaning; each codec documents its own. It is a fixed array so that a
/// decoded message costs no allocation for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Layout {
    slots: [u32; LAYOUT_SLOTS],
}

impl Layout {
    /// All slots zero.
    pub const fn new() -> Self {
        Layout { slots: [0; LAYOUT_SLOTS] }
    }

    /// Returns the layout with slot `i` set to `value`. Slots past [`LAYOUT_SLOTS`] are ignored.
    #[must_use]
    pub fn with(mut self, i: usize, value: u32) -> Self {
        self.set(i, value);
        self
    }

    /// Sets slot `i` (ignored past [`LAYOUT_SLOTS`]).
    pub fn set(&mut self, i: usize, value: u32) {
        if let Some(s) = self.slots.get_mut(i) {
            *s = value;
        }
    }

    /// Slot `i`, or 0 past [`LAYOUT_SLOTS`].
    pub fn get(&self, i: usize) -> u32 {
        self.slots.get(i).copied().unwrap_or(0)
    }

    /// Slot `i` as a `usize` offset.
    pub fn offset(&self, i: usize) -> usize {
        self.get(i) as usize
    }
}

/// One decoded message: its [`Metadata`], the original frame bytes and the codec's [`Layout`].
///
/// The frame is the exact byte range the message occupied on the wire. It is shared, not copied:
/// metadata values are slices of it, and an encode with no mutation writes it out by reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What the codec decoded. `request_id` may be changed through
    /// [`Codec::rewrite_request_id`](crate::Codec::rewrite_request_id); the encoder writes it.
    pub metadata: Metadata,
    frame: Bytes,
    layout: Layout,
    wire_request_id: u64,
}

impl Message {
    /// A message decoded from `frame`. The request id in `metadata` is taken to be the one the frame
    /// carries on the wire.
    pub fn new(metadata: Metadata, frame: Bytes, layout: Layout) -> Self {
        let wire_request_id = metadata.request_id;
        Message { metadata, frame, layout, wire_request_id }
    }

    /// The original frame, exactly as received.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The codec's offsets into [`frame`](Self::frame).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The request id written in [`frame`](Self::frame).
    pub fn wire_request_id(&self) -> u64 {
        self.wire_request_id
    }

    /// True when `metadata.request_id` differs from the id in the frame, so the encoder must
    /// write the new one.
    pub fn request_id_changed(&self) -> bool {
        self.metadata.request_id != self.wire_request_id
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// True for an empty frame (never produced by a well-behaved codec).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }
}
