//! [`WireBuf`]: the output of [`Codec::encode`](crate::Codec::encode), a queue of shared byte chunks.
//!
//! Encoders append [`Bytes`]: the original frame, or slices of it around a re-encoded part. Nothing
//! is concatenated; a writer sends the chunks with vectored I/O through the [`Buf`] implementation
//! (`tokio::io::AsyncWriteExt::write_all_buf` uses `chunks_vectored`).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::CodecError;

/// Bytes of scratch space reserved at a time for re-encoded parts (see [`WireBuf::push_built`]).
const SCRATCH: usize = 4096;

/// An ordered queue of byte chunks waiting to be written.
///
/// Small re-encoded parts (a header carrying a rewritten request id, a changed attachment block)
/// are built in the buffer's own scratch space with [`push_built`](WireBuf::push_built) and split
/// off it, so encoding them costs no allocation per message: the scratch space is one allocation
/// per few thousand bytes written, reclaimed once the writer has sent what shares it.
#[derive(Clone, Debug, Default)]
pub struct WireBuf {
    chunks: VecDeque<Bytes>,
    remaining: usize,
    scratch: BytesMut,
}

impl WireBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        WireBuf::default()
    }

    /// Appends a chunk (by reference count, no copy). Empty chunks are skipped.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Builds a chunk with `build`, which appends to an empty scratch buffer, and pushes it. The
    /// scratch space is reused across messages, so this allocates nothing per message.
    pub fn push_built<R>(&mut self, build: impl FnOnce(&mut BytesMut) -> R) -> R {
        if self.scratch.capacity() < SCRATCH / 4 {
            self.scratch.reserve(SCRATCH);
        }
        let result = build(&mut self.scratch);
        let chunk = self.scratch.split().freeze();
        self.push(chunk);
        result
    }

    /// Pushes `frame` with `patch` written over its bytes at `at`, copying only the first
    /// `head_len` bytes (which must cover the patch) into scratch space and splicing the rest: how a
    /// codec writes a rewritten request id that lives in a fixed header.
    pub fn push_patched(&mut self, frame: &Bytes, head_len: usize, at: usize, patch: &[u8]) -> Result<(), CodecError> {
        let end = at.checked_add(patch.len()).filter(|&e| e <= head_len && head_len <= frame.len());
        let (Some(end), Some(head)) = (end, frame.get(..head_len)) else {
            return Err(CodecError::Encode("patch outside the frame's header".into()));
        };
        self.push_built(|buf| {
            let start = buf.len();
            buf.extend_from_slice(head);
            if let Some(slot) = buf.get_mut(start + at..start + end) {
                slot.copy_from_slice(patch);
            }
        });
        self.push(frame.slice(head_len..));
        Ok(())
    }

    /// A mark of what is queued now, for [`rollback`](Self::rollback): what an encoder appends
    /// after it can be taken back (an encode that fails half-way must leave nothing behind).
    pub fn checkpoint(&self) -> usize {
        self.chunks.len()
    }

    /// Drops every chunk pushed since `checkpoint`.
    pub fn rollback(&mut self, checkpoint: usize) {
        while self.chunks.len() > checkpoint {
            if let Some(chunk) = self.chunks.pop_back() {
                self.remaining -= chunk.len();
            }
        }
    }

    /// Copies everything queued into one buffer of its own: the chunks (slices of larger read
    /// buffers, shared with other messages) are released. A writer calls this when a peer stops
    /// reading and its queue grows, so that what it holds stays what it queued.
    pub fn compact(&mut self) {
        if self.chunks.len() > 1 {
            let all = self.take_bytes();
            self.push(all);
        }
    }

    /// Drops every chunk, keeping the queue's allocation (and its scratch space) for reuse (a
    /// connection keeps one `WireBuf` and reuses it, so encoding allocates nothing per message).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.remaining = 0;
    }

    /// Total bytes waiting.
    pub fn len(&self) -> usize {
        self.remaining
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The chunks in order.
    pub fn chunks_iter(&self) -> impl Iterator<Item = &Bytes> {
        self.chunks.iter()
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Removes and returns everything as one contiguous buffer. This copies unless there is a
    /// single chunk; it is meant for tests and tools, not for the forwarding path.
    pub fn take_bytes(&mut self) -> Bytes {
        self.remaining = 0;
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks.pop_front().unwrap_or_default(),
            _ => {
                let total: usize = self.chunks.iter().map(Bytes::len).sum();
                let mut out = BytesMut::with_capacity(total);
                for c in self.chunks.drain(..) {
                    out.extend_from_slice(&c);
                }
                out.freeze()
            }
        }
    }
}

impl Buf for WireBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map(|c| &c[..]).unwrap_or(&[])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of a WireBuf");
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.chunks.front_mut() else { break };
            if cnt < front.len() {
                front.advance(cnt);
                break;
            }
            cnt -= front.len();
            self.chunks.pop_front();
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buf_walks_chunks() {
        let mut w = WireBuf::new();
        w.push(Bytes::from_static(b"abc"));
        w.push(Bytes::new());
        w.push(Bytes::from_static(b"defg"));
        assert_eq!(w.remaining(), 7);
        assert_eq!(w.chunk_count(), 2);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(w.chunks_vectored(&mut slices), 2);
        w.advance(4);
        assert_eq!(w.chunk(), b"efg");
        assert_eq!(w.take_bytes(), Bytes::from_static(b"efg"));
        assert!(w.is_empty());
    }

    #[test]
    fn push_patched_copies_only_the_head() {
        let frame = Bytes::from_static(b"HEAD1234body");
        let mut w = WireBuf::new();
        w.push_patched(&frame, 8, 4, b"9876").unwrap();
        let chunks: Vec<_> = w.chunks_iter().cloned().collect();
        assert_eq!(chunks[1].as_ptr(), frame[8..].as_ptr());
        assert_eq!(&w.take_bytes()[..], b"HEAD9876body");
        assert!(w.push_patched(&frame, 8, 6, b"9876").is_err());
        assert!(w.push_patched(&frame, 20, 0, b"x").is_err());
    }

    #[test]
    fn built_chunks_reuse_scratch_space() {
        let mut w = WireBuf::new();
        w.push_built(|b| b.extend_from_slice(b"warm"));
        let a = w.chunks_iter().next().unwrap().as_ptr() as usize;
        w.push_built(|b| b.extend_from_slice(b"next"));
        let b = w.chunks_iter().nth(1).unwrap().as_ptr() as usize;
        assert_eq!(b, a + 4, "the second chunk follows the first in the same scratch buffer");
        assert_eq!(&w.take_bytes()[..], b"warmnext");
    }

    #[test]
    fn rollback_drops_what_came_after_the_checkpoint() {
        let mut w = WireBuf::new();
        w.push(Bytes::from_static(b"keep"));
        let mark = w.checkpoint();
        w.push(Bytes::from_static(b"half"));
        w.push_built(|b| b.extend_from_slice(b"-built"));
        w.rollback(mark);
        assert_eq!(w.len(), 4);
        w.push(Bytes::from_static(b"more"));
        w.compact();
        assert_eq!(w.chunk_count(), 1);
        assert_eq!(&w.take_bytes()[..], b"keepmore");
    }

    #[test]
    fn take_bytes_concatenates() {
        let mut w = WireBuf::new();
        w.push(Bytes::from_static(b"ab"));
        w.push(Bytes::from_static(b"cd"));
        assert_eq!(&w.take_bytes()[..], b"abcd");
        assert_eq!(w.remaining(), 0);
    }
}
