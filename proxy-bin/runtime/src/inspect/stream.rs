//! Decoding one direction of a stream with a codec, and finding frames again after a hole.
//!
//! [`StreamDecoder`] buffers what reassembly hands on and decodes messages from it. It is *in
//! sync* when its buffer starts at a frame boundary. It loses sync when the codec refuses the
//! bytes (a decode error), when bytes are missing (a gap: the partial frame before it is
//! discarded), or from the start when the capture began mid-stream. Out of sync, it tries the codec
//! at each following byte, with a fresh decoder each time, until one decodes a whole message there:
//! it is in sync again and says how many bytes it skipped ([`StreamEvent::Resynced`]). A candidate
//! where the codec wants more bytes is waited on (its frame may still arrive); at the end of the
//! stream it is reported as an incomplete message.
//!
//! A strict decoder (raw capture files) instead stops at the first decode error, as `inspect` has
//! always done for them.

use bytes::{Buf, BytesMut};
use metaprotocol_core::CodecError;

use super::codec::{Decoded, StreamCodec};

/// What decoding found, in stream order.
#[derive(Debug)]
pub enum StreamEvent {
    /// A message at stream offset `offset`.
    Message {
        /// Where its frame starts.
        offset: u64,
        /// The message (boxed: metadata is large next to the other events).
        decoded: Box<Decoded>,
    },
    /// The codec refused the bytes at `offset`.
    DecodeError {
        /// Where the refused frame starts.
        offset: u64,
        /// The codec's error.
        error: CodecError,
    },
    /// In sync again at `at` after skipping the bytes from `from` (`at - from` of them, none when
    /// the stream resumed at a frame boundary).
    Resynced {
        /// Where the skipped bytes start.
        from: u64,
        /// Where the first frame decoded.
        at: u64,
    },
    /// Bytes skipped while out of sync in which no frame was found, before a gap or the end.
    Skipped {
        /// Where they start.
        from: u64,
        /// How many.
        bytes: u64,
    },
    /// The start of a message that a gap cut off: discarded.
    Discarded {
        /// Where it starts.
        offset: u64,
        /// Bytes discarded.
        bytes: u64,
    },
    /// The stream ends inside a message.
    Incomplete {
        /// Where the message starts.
        offset: u64,
        /// Bytes of it the stream holds.
        bytes: u64,
    },
}

/// Decodes one direction of a stream.
pub struct StreamDecoder {
    codec: Box<dyn StreamCodec>,
    buf: BytesMut,
    /// The stream offset of `buf`'s first byte.
    offset: u64,
    /// Out of sync since this offset.
    resync_from: Option<u64>,
    strict: bool,
    failed: bool,
}

impl std::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("offset", &self.offset)
            .field("buffered", &self.buf.len())
            .field("resync_from", &self.resync_from)
            .finish()
    }
}

impl StreamDecoder {
    /// A decoder whose stream starts at offset `start`; `in_sync` when that is a frame boundary
    /// (the stream starts at its SYN, or is a whole raw file).
    pub fn new(codec: Box<dyn StreamCodec>, start: u64, in_sync: bool) -> StreamDecoder {
        StreamDecoder {
            codec,
            buf: BytesMut::new(),
            offset: start,
            resync_from: (!in_sync).then_some(start),
            strict: false,
            failed: false,
        }
    }

    /// A decoder for a raw capture file: in sync from offset 0; stops at the first decode error.
    pub fn strict(codec: Box<dyn StreamCodec>) -> StreamDecoder {
        StreamDecoder { strict: true, ..StreamDecoder::new(codec, 0, true) }
    }

    /// Bytes buffered, not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The stream offset of the next byte [`push`](Self::push) expects.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.buf.len() as u64)
    }

    /// Bytes that follow what was pushed so far; decodes what it can.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        self.run(out);
    }

    /// `bytes` bytes the stream does not hold follow what was pushed so far.
    pub fn gap(&mut self, bytes: u64, out: &mut Vec<StreamEvent>) {
        if self.failed {
            return;
        }
        self.report_unsynced(out);
        let held = self.buf.len() as u64;
        if held > 0 {
            out.push(StreamEvent::Discarded { offset: self.offset, bytes: held });
        }
        self.buf.clear();
        self.offset = self.offset.saturating_add(held).saturating_add(bytes);
        self.resync_from = Some(self.offset);
        self.codec = self.codec.fresh();
    }

    /// The stream ended: decodes what is left and reports what does not decode.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.failed {
            return;
        }
        self.run(out);
        self.report_unsynced(out);
        let held = self.buf.len() as u64;
        if held > 0 {
            out.push(StreamEvent::Incomplete { offset: self.offset, bytes: held });
            self.buf.clear();
            self.offset = self.offset.saturating_add(held);
        }
    }

    /// Out of sync with bytes skipped: says so.
    fn report_unsynced(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(from) = self.resync_from {
            if self.offset > from {
                out.push(StreamEvent::Skipped { from, bytes: self.offset - from });
                self.resync_from = Some(self.offset);
            }
        }
    }

    fn skip(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.offset = self.offset.saturating_add(n as u64);
    }

    /// Decodes until the codec wants more bytes. At the end of the stream, what is left is the
    /// incomplete message [`finish`](Self::finish) reports (out of sync: a candidate frame whose
    /// end is missing; a false candidate hides the frames after it, which only the end of a
    /// capture can cause).
    fn run(&mut self, out: &mut Vec<StreamEvent>) {
        while !self.buf.is_empty() {
            let before = self.buf.len();
            match self.codec.decode(&mut self.buf) {
                Ok(Some(decoded)) => {
                    let mut consumed = before.saturating_sub(self.buf.len());
                    if consumed == 0 {
                        // A codec that returns a message without consuming its frame breaks the
                        // contract: skip the frame's bytes here (at least one), or this would loop.
                        consumed = decoded.size.clamp(1, before);
                        self.buf.advance(consumed);
                    }
                    if let Some(from) = self.resync_from.take() {
                        out.push(StreamEvent::Resynced { from, at: self.offset });
                    }
                    out.push(StreamEvent::Message { offset: self.offset, decoded: Box::new(decoded) });
                    self.offset = self.offset.saturating_add(consumed as u64);
                }
                Ok(None) => return,
                Err(error) => {
                    // The codec may have consumed part of the refused bytes; skip at least one.
                    let consumed = before.saturating_sub(self.buf.len());
                    self.offset = self.offset.saturating_add(consumed as u64);
                    if self.resync_from.is_none() {
                        let at = self.offset.saturating_sub(consumed as u64);
                        out.push(StreamEvent::DecodeError { offset: at, error });
                        if self.strict {
                            self.failed = true;
                            self.buf.clear();
                            return;
                        }
                        self.resync_from = Some(at);
                    }
                    self.codec = self.codec.fresh();
                    if consumed == 0 {
                        self.skip(1);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn dubbo() -> Box<dyn StreamCodec> {
        let registry = crate::default_registry().unwrap();
        let protocol = registry.configure_codec("dubbo", &metaprotocol_core::ConfigValue::Null).unwrap();
        <dyn StreamCodec>::of(&*protocol).unwrap()
    }

    fn capture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../codecs/dubbo/fixtures/peers/python3-dubbo.requests.bin"
        ))
        .unwrap()
    }

    fn frame_len(bytes: &[u8]) -> usize {
        16 + u32::from_be_bytes(bytes[12..16].try_into().unwrap()) as usize
    }

    fn describe(events: &[StreamEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                StreamEvent::Message { offset, decoded } => format!("msg@{offset}#{}", decoded.metadata.request_id),
                StreamEvent::DecodeError { offset, .. } => format!("error@{offset}"),
                StreamEvent::Resynced { from, at } => format!("resync {from}->{at}"),
                StreamEvent::Skipped { from, bytes } => format!("skipped {bytes}@{from}"),
                StreamEvent::Discarded { offset, bytes } => format!("discarded {bytes}@{offset}"),
                StreamEvent::Incomplete { offset, bytes } => format!("incomplete {bytes}@{offset}"),
            })
            .collect()
    }

    #[test]
    fn byte_at_a_time_decodes_every_message() {
        let data = capture();
        let mut d = StreamDecoder::new(dubbo(), 0, true);
        let mut events = Vec::new();
        for b in &data {
            d.push(std::slice::from_ref(b), &mut events);
        }
        d.finish(&mut events);
        let ids: Vec<_> = describe(&events);
        assert_eq!(ids.len(), 15, "{ids:?}"); // 13 calls, a heartbeat answer and a heartbeat
        assert!(ids.iter().all(|e| e.starts_with("msg@")), "{ids:?}");
    }

    #[test]
    fn a_stream_starting_inside_a_frame_resynchronises_at_the_next_one() {
        let data = capture();
        let first = frame_len(&data);
        let mut d = StreamDecoder::new(dubbo(), 1000, false);
        let mut events = Vec::new();
        d.push(&data[5..], &mut events);
        d.finish(&mut events);
        let got = describe(&events);
        assert_eq!(got[0], format!("resync 1000->{}", 1000 + first - 5));
        assert_eq!(got[1], format!("msg@{}#1", 1000 + first - 5));
    }

    #[test]
    fn a_gap_inside_a_frame_discards_it_and_resumes_at_the_next() {
        let data = capture();
        let (a, b) = (frame_len(&data), frame_len(&data[frame_len(&data)..]));
        let mut d = StreamDecoder::new(dubbo(), 0, true);
        let mut events = Vec::new();
        d.push(&data[..a + 10], &mut events); // frame 0 and the first 10 bytes of frame 1
        d.gap((b - 10) as u64, &mut events); // the rest of frame 1 is missing
        d.push(&data[a + b..], &mut events);
        d.finish(&mut events);
        let got = describe(&events);
        assert_eq!(got[..3], ["msg@0#0".to_string(), format!("discarded 10@{a}"), format!("resync {0}->{0}", a + b)]);
        assert_eq!(got[3], format!("msg@{}#2", a + b));
    }

    #[test]
    fn garbage_then_a_cut_frame() {
        let data = capture();
        let a = frame_len(&data);
        let mut bytes = b"GARBAGE".to_vec();
        bytes.extend_from_slice(&data[..a + 20]);
        let mut d = StreamDecoder::new(dubbo(), 0, true);
        let mut events = Vec::new();
        d.push(&bytes, &mut events);
        d.finish(&mut events);
        let got = describe(&events);
        assert_eq!(got, ["error@0", "resync 0->7", "msg@7#0", &format!("incomplete 20@{}", 7 + a)]);
    }

    #[test]
    fn strict_stops_at_the_first_error() {
        let mut d = StreamDecoder::strict(dubbo());
        let mut events = Vec::new();
        d.push(b"not dubbo at all, not at all", &mut events);
        d.push(&capture(), &mut events);
        d.finish(&mut events);
        assert_eq!(describe(&events), ["error@0"]);
    }

    /// Breaks the decode contract: says "a 3-byte message" and consumes nothing.
    struct Lazy;

    impl StreamCodec for Lazy {
        fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, CodecError> {
            Ok((buf.len() >= 3).then(|| Decoded { size: 3, metadata: metaprotocol_core::Metadata::default() }))
        }

        fn fresh(&self) -> Box<dyn StreamCodec> {
            Box::new(Lazy)
        }
    }

    #[test]
    fn a_codec_that_consumes_nothing_cannot_hang_the_decoder() {
        let mut d = StreamDecoder::new(Box::new(Lazy), 0, true);
        let mut events = Vec::new();
        d.push(&[0; 10], &mut events);
        d.finish(&mut events);
        assert_eq!(describe(&events), ["msg@0#0", "msg@3#0", "msg@6#0", "incomplete 1@9"]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let data = capture();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200 {
            let mut bytes = data.clone();
            for _ in 0..(round % 7 + 1) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let at = (seed >> 33) as usize % bytes.len();
                bytes[at] = (seed >> 17) as u8;
            }
            let mut d = StreamDecoder::new(dubbo(), 0, round % 2 == 0);
            let mut events = Vec::new();
            for chunk in bytes.chunks(1 + round % 97) {
                d.push(chunk, &mut events);
            }
            d.finish(&mut events);
        }
    }
}
