//! [`ThriftLayout`]: where the parts of a Thrift frame lie, and which wire variant it uses.

use std::ops::Range;

use metaprotocol_core::CodecError;

use crate::protocol::Protocol;
use crate::transport::Transport;

/// How a message is framed on the wire, with what each transport needs to write it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// A 4-byte length, then the message (which starts at byte 4).
    Framed,
    /// The message alone (starting at byte 0).
    Unframed,
    /// THeader: length, magic, flags, sequence id, header block, then the message.
    Header {
        /// The THeader flags, written back unchanged (in replies too).
        flags: u16,
        /// Where the message (the payload) starts: after the header block.
        payload_at: u32,
    },
}

impl Framing {
    /// The transport.
    pub fn transport(self) -> Transport {
        match self {
            Framing::Framed => Transport::Framed,
            Framing::Unframed => Transport::Unframed,
            Framing::Header { .. } => Transport::Header,
        }
    }

    /// Where the message starts within the frame.
    pub fn message_at(self) -> usize {
        match self {
            Framing::Framed => 4,
            Framing::Unframed => 0,
            Framing::Header { payload_at, .. } => payload_at as usize,
        }
    }
}

/// A byte range of a frame. Frames are at most
/// [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT) bytes (the factory refuses a larger
/// `max_frame_size`), so `u32` offsets always fit; [`Span::new`] still checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `range`; fails for a reversed range or an offset beyond `u32`.
    pub fn new(range: Range<usize>) -> Result<Span, CodecError> {
        match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(start), Ok(end)) if start <= end => Ok(Span { start, end }),
            _ => Err(CodecError::malformed(range.start, "offset beyond 4 GiB")),
        }
    }

    /// The range, for indexing the frame with `get`.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The first byte.
    pub fn start(self) -> usize {
        self.start as usize
    }

    /// One past the last byte.
    pub fn end(self) -> usize {
        self.end as usize
    }
}

/// The layout of one Thrift message: its framing and protocol (each message carries its own, so
/// a reply never depends on what else a connection decoded), and where the parts the codec
/// rewrites or answers with lie in its frame.
///
/// Built by decoding (or by the reply builders); read by the encoder and the reply builders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThriftLayout {
    framing: Framing,
    protocol: Protocol,
    seqid: Span,
    method: Span,
}

impl ThriftLayout {
    /// A layout; `seqid` and `method` are ranges of the frame.
    pub(crate) fn new(
        framing: Framing,
        protocol: Protocol,
        seqid: Range<usize>,
        method: Range<usize>,
    ) -> Result<Self, CodecError> {
        Ok(ThriftLayout { framing, protocol, seqid: Span::new(seqid)?, method: Span::new(method)? })
    }

    /// How the message is framed (transport, THeader flags, payload offset).
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.framing.transport()
    }

    /// The message's protocol (per message: THeader names it in each header block).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Where the message starts within the frame.
    pub fn message_at(&self) -> usize {
        self.framing.message_at()
    }

    /// Where the sequence id's encoding lies (4 bytes in binary, a 1 to 5-byte varint in compact).
    pub fn seqid(&self) -> Span {
        self.seqid
    }

    /// Where the method name lies: the wire name after any `Service:` prefix of the multiplexed
    /// protocol. Replies carry this name, as a multiplexing server's do.
    pub fn method(&self) -> Span {
        self.method
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_refuse_what_does_not_fit() {
        assert_eq!(Span::new(3..9).unwrap().range(), 3..9);
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = Span::new(9..3);
        assert!(reversed.is_err());
        if usize::BITS > 32 {
            assert!(Span::new(0..(u32::MAX as usize + 1)).is_err());
        }
    }

    #[test]
    fn framing_knows_where_the_message_starts() {
        assert_eq!(Framing::Framed.message_at(), 4);
        assert_eq!(Framing::Unframed.message_at(), 0);
        let header = Framing::Header { flags: 1, payload_at: 24 };
        assert_eq!((header.message_at(), header.transport()), (24, Transport::Header));
    }
}
