//! [`Message`]: a decoded frame, its metadata and the codec's typed layout of it.

use bytes::Bytes;

use crate::metadata::Metadata;

/// One decoded message: its [`Metadata`], the original frame bytes and the codec's layout `L`
/// (its [`Codec::Layout`](crate::Codec::Layout)): where in the frame the parts it may re-encode
/// lie, and which wire variant the message uses.
///
/// The frame is the exact byte range the message occupied on the wire. It is shared, not copied:
/// metadata values are ranges of it, and an encode with no mutation writes it out by reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<L> {
    /// What the codec decoded. `request_id` may be changed through
    /// [`Codec::rewrite_request_id`](crate::Codec::rewrite_request_id); the encoder writes it.
    pub metadata: Metadata,
    frame: Bytes,
    layout: L,
    wire_request_id: u64,
}

impl<L> Message<L> {
    /// A message decoded from `frame`. The request id in `metadata` is taken to be the one the frame
    /// carries on the wire.
    pub fn new(metadata: Metadata, frame: Bytes, layout: L) -> Self {
        let wire_request_id = metadata.request_id;
        Message { metadata, frame, layout, wire_request_id }
    }

    /// The original frame, exactly as received (or as the codec built it, for replies).
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The codec's layout of [`frame`](Self::frame).
    pub fn layout(&self) -> &L {
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

    /// Moves the key/values out, leaving the message with only what encoding needs (frame, layout,
    /// message type, request id): the proxy keeps the metadata for filters and logs, and the
    /// message stays cheap to clone for retries and mirrors.
    pub fn take_metadata(&mut self) -> Metadata {
        let light = Metadata::new(self.metadata.message_type, self.metadata.request_id);
        std::mem::replace(&mut self.metadata, light)
    }
}
