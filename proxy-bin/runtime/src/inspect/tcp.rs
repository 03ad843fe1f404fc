//! TCP reassembly of one direction of a connection: segments in, the byte stream out, in order.
//!
//! Sequence numbers become 64-bit stream offsets (offset 0 is the byte after the SYN, or the first
//! byte seen when the capture starts mid-stream). In-order data is handed on at once;
//! retransmitted bytes are dropped; out-of-order segments wait in a buffer of at most
//! [`MAX_PENDING`] bytes per direction. A hole in the stream is given up on, and handed on as a
//! [`Delivery::Gap`], when:
//!
//! * the other side acknowledged bytes past it (the receiver has them: the capture missed them,
//!   and no retransmission will come), see [`HalfStream::on_ack`];
//! * the capture cut a packet short (its snap length): the missing bytes are known at once;
//! * the out-of-order buffer is full;
//! * the connection or the capture ends ([`HalfStream::finish`]).

use std::collections::BTreeMap;

/// The most out-of-order bytes buffered per direction of a connection.
pub const MAX_PENDING: usize = 4 << 20;

/// Why a gap was given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapCause {
    /// The receiver acknowledged bytes the capture does not hold.
    NotCaptured,
    /// The capture kept only the start of a packet (snap length).
    SnapLength,
    /// More out-of-order data arrived than the inspector buffers.
    BufferFull,
    /// The connection or the capture ended before the bytes arrived.
    Ended,
}

impl GapCause {
    /// A short explanation for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::NotCaptured => "acknowledged by the receiver but not in the capture",
            GapCause::SnapLength => "cut from the packet by the capture's snap length",
            GapCause::BufferFull => "never arrived while the out-of-order buffer filled up",
            GapCause::Ended => "never arrived before the connection or the capture ended",
        }
    }
}

/// What reassembly hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<'a> {
    /// Bytes at stream offset `offset`.
    Data {
        /// Where they start.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Bytes the capture does not hold.
    Gap {
        /// Where the hole starts.
        offset: u64,
        /// Its length.
        bytes: u64,
        /// Why it was given up on.
        cause: GapCause,
    },
}

/// An out-of-order piece: captured bytes, or bytes known to be lost.
#[derive(Debug)]
enum Piece {
    Data(Vec<u8>),
    Lost(u64),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Data(d) => d.len() as u64,
            Piece::Lost(n) => *n,
        }
    }
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct HalfStream {
    /// The sequence number of stream offset 0.
    base: Option<u32>,
    /// True when the stream starts at a SYN (else the capture started mid-stream).
    from_syn: bool,
    /// The next offset to hand on.
    next: u64,
    pending: BTreeMap<u64, Piece>,
    pending_bytes: usize,
    /// The highest offset the other side acknowledged.
    acked: u64,
    /// Where the FIN is, once seen.
    fin_at: Option<u64>,
    /// Bytes received more than once (retransmissions).
    pub retransmitted: u64,
}

impl HalfStream {
    /// True once any segment set where the stream starts.
    pub fn started(&self) -> bool {
        self.base.is_some()
    }

    /// True when the stream starts at its SYN.
    pub fn from_syn(&self) -> bool {
        self.from_syn
    }

    /// The sequence number of the stream's first byte, once known.
    pub fn base(&self) -> Option<u32> {
        self.base
    }

    /// True once everything up to the FIN has been handed on.
    pub fn closed(&self) -> bool {
        self.fin_at.is_some_and(|f| self.next >= f)
    }

    /// The stream offset of sequence number `seq`, or `None` before the stream's start is known
    /// (or for a sequence number that would lie before offset 0).
    fn offset_of(&self, seq: u32) -> Option<u64> {
        let base = self.base?;
        let next_seq = base.wrapping_add(self.next as u32);
        let rel = i64::from(seq.wrapping_sub(next_seq) as i32);
        u64::try_from(i64::try_from(self.next).ok()?.checked_add(rel)?).ok()
    }

    /// A SYN with sequence number `seq`: the stream starts after it.
    pub fn on_syn(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base = Some(seq.wrapping_add(1));
            self.from_syn = true;
        }
    }

    /// A segment: `payload` at sequence number `seq`, followed by `missing` bytes the capture cut
    /// off, with or without FIN.
    pub fn on_segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        missing: u32,
        fin: bool,
        deliver: &mut dyn FnMut(Delivery<'_>),
    ) {
        if self.base.is_none() {
            if payload.is_empty() && missing == 0 && !fin {
                return;
            }
            self.base = Some(seq);
        }
        let Some(offset) = self.offset_of(seq) else { return };
        let len = (payload.len() as u64).saturating_add(u64::from(missing));
        if fin {
            self.fin_at = Some(offset.saturating_add(len));
        }
        if len > 0 {
            self.accept(offset, payload, u64::from(missing), deliver);
        }
    }

    /// An acknowledgment from the other side: `ack` is the next sequence number it expects.
    pub fn on_ack(&mut self, ack: u32, deliver: &mut dyn FnMut(Delivery<'_>)) {
        let Some(mut at) = self.offset_of(ack) else { return };
        if let Some(fin) = self.fin_at {
            at = at.min(fin);
        }
        if at > self.acked {
            self.acked = at;
            self.give_up_acked(deliver);
        }
    }

    /// The connection or the capture ended: every hole left is a gap, every buffered piece is
    /// handed on.
    pub fn finish(&mut self, deliver: &mut dyn FnMut(Delivery<'_>)) {
        while let Some(&first) = self.pending.keys().next() {
            self.skip_to(first, GapCause::Ended, deliver);
            self.drain(deliver);
        }
    }

    fn accept(&mut self, offset: u64, payload: &[u8], lost: u64, deliver: &mut dyn FnMut(Delivery<'_>)) {
        let end = offset.saturating_add(payload.len() as u64).saturating_add(lost);
        if end <= self.next {
            self.retransmitted = self.retransmitted.saturating_add(end - offset);
            return;
        }
        if offset > self.next {
            self.store(offset, payload, lost, deliver);
            return;
        }
        self.hand_on(offset, payload, lost, deliver);
        self.drain(deliver);
    }

    /// Hands on the part of a piece at or after `next` (`offset <= next < end`).
    fn hand_on(&mut self, offset: u64, payload: &[u8], lost: u64, deliver: &mut dyn FnMut(Delivery<'_>)) {
        let skip = self.next - offset;
        self.retransmitted = self.retransmitted.saturating_add(skip);
        let data_end = offset.saturating_add(payload.len() as u64);
        if let Some(fresh) = usize::try_from(skip).ok().and_then(|s| payload.get(s..)).filter(|f| !f.is_empty()) {
            deliver(Delivery::Data { offset: self.next, bytes: fresh });
            self.next = data_end;
        }
        let end = data_end.saturating_add(lost);
        if end > self.next {
            deliver(Delivery::Gap { offset: self.next, bytes: end - self.next, cause: GapCause::SnapLength });
            self.next = end;
        }
    }

    fn store(&mut self, offset: u64, payload: &[u8], lost: u64, deliver: &mut dyn FnMut(Delivery<'_>)) {
        // Make room first: give up on the oldest holes until the piece fits.
        while self.pending_bytes.saturating_add(payload.len()) > MAX_PENDING {
            let Some(&first) = self.pending.keys().next() else { break };
            self.skip_to(first, GapCause::BufferFull, deliver);
            self.drain(deliver);
        }
        if offset <= self.next {
            // Draining moved `next` up to (or past) this piece.
            return self.accept(offset, payload, lost, deliver);
        }
        if self.pending_bytes.saturating_add(payload.len()) > MAX_PENDING {
            self.skip_to(offset, GapCause::BufferFull, deliver);
            return self.accept(offset, payload, lost, deliver);
        }
        if !payload.is_empty() && self.pending.get(&offset).is_none_or(|p| p.len() < payload.len() as u64) {
            let old = self.pending.insert(offset, Piece::Data(payload.to_vec()));
            self.pending_bytes = self.pending_bytes.saturating_add(payload.len());
            if let Some(Piece::Data(d)) = old {
                self.pending_bytes = self.pending_bytes.saturating_sub(d.len());
            }
        }
        if lost > 0 {
            let at = offset.saturating_add(payload.len() as u64);
            self.pending.entry(at).or_insert(Piece::Lost(lost));
        }
        self.give_up_acked(deliver);
    }

    /// Gives up on holes the other side acknowledged.
    fn give_up_acked(&mut self, deliver: &mut dyn FnMut(Delivery<'_>)) {
        while let Some(&first) = self.pending.keys().next() {
            if first > self.acked || first <= self.next {
                break;
            }
            self.skip_to(first, GapCause::NotCaptured, deliver);
            self.drain(deliver);
        }
    }

    fn skip_to(&mut self, to: u64, cause: GapCause, deliver: &mut dyn FnMut(Delivery<'_>)) {
        if to > self.next {
            deliver(Delivery::Gap { offset: self.next, bytes: to - self.next, cause });
            self.next = to;
        }
    }

    /// Hands on buffered pieces that are now in order.
    fn drain(&mut self, deliver: &mut dyn FnMut(Delivery<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let (offset, piece) = entry.remove_entry();
            let len = piece.len();
            match piece {
                Piece::Data(d) => {
                    self.pending_bytes = self.pending_bytes.saturating_sub(d.len());
                    if offset.saturating_add(len) <= self.next {
                        self.retransmitted = self.retransmitted.saturating_add(len);
                    } else {
                        self.hand_on(offset, &d, 0, deliver);
                    }
                }
                Piece::Lost(n) => {
                    if offset.saturating_add(n) > self.next {
                        self.hand_on(offset, &[], n, deliver);
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

    /// Runs `f` on a fresh half stream and collects what it hands on, as text.
    fn run(f: impl FnOnce(&mut HalfStream, &mut dyn FnMut(Delivery<'_>))) -> Vec<String> {
        let mut out = Vec::new();
        let mut h = HalfStream::default();
        f(&mut h, &mut |d| {
            out.push(match d {
                Delivery::Data { offset, bytes } => format!("{offset}:{}", String::from_utf8_lossy(bytes)),
                Delivery::Gap { offset, bytes, cause } => format!("{offset}:gap{bytes}:{cause:?}"),
            })
        });
        out
    }

    #[test]
    fn in_order_out_of_order_and_retransmitted() {
        let out = run(|h, d| {
            h.on_syn(u32::MAX - 2); // the stream starts at u32::MAX - 1 and wraps around
            h.on_segment(u32::MAX - 1, b"ab", 0, false, d);
            h.on_segment(4, b"gh", 0, false, d); // offset 6: waits
            h.on_segment(0, b"cdef", 0, false, d); // offset 2: fills the hole
            h.on_segment(0, b"cdef", 0, false, d); // retransmission
            h.on_segment(2, b"efgh", 0, true, d); // offsets 4..8: all seen already
        });
        assert_eq!(out, ["0:ab", "2:cdef", "6:gh"]);
    }

    #[test]
    fn a_hole_the_receiver_acknowledged_is_a_gap_at_once() {
        let out = run(|h, d| {
            h.on_syn(99);
            h.on_segment(100, b"one", 0, false, d);
            h.on_segment(110, b"three", 0, false, d); // 103..110 missing
            h.on_ack(115, d);
        });
        assert_eq!(out, ["0:one", "3:gap7:NotCaptured", "10:three"]);
    }

    #[test]
    fn an_ack_seen_before_the_later_segment_still_counts() {
        let out = run(|h, d| {
            h.on_syn(0);
            h.on_segment(1, b"a", 0, false, d);
            h.on_ack(9, d);
            h.on_segment(5, b"efgh", 0, false, d);
        });
        assert_eq!(out, ["0:a", "1:gap3:NotCaptured", "4:efgh"]);
    }

    #[test]
    fn snap_length_cuts_and_the_end_of_the_capture() {
        let out = run(|h, d| {
            h.on_segment(1000, b"abc", 4, false, d); // mid-stream: starts here; 4 bytes cut
            h.on_segment(1007, b"hij", 0, false, d);
            h.on_segment(1020, b"late", 0, false, d);
            h.finish(d);
        });
        assert_eq!(out, ["0:abc", "3:gap4:SnapLength", "7:hij", "10:gap10:Ended", "20:late"]);
    }

    #[test]
    fn the_out_of_order_buffer_is_bounded() {
        let chunk = vec![b'x'; 1 << 20];
        let mut gaps = 0;
        let mut delivered = 0u64;
        let mut h = HalfStream::default();
        h.on_syn(0);
        // Offset 0 never arrives; 6 MiB arrive after it.
        for i in 0..6u32 {
            h.on_segment(2 + i * (1 << 20), &chunk, 0, false, &mut |d| match d {
                Delivery::Gap { cause, .. } => {
                    assert_eq!(cause, GapCause::BufferFull);
                    gaps += 1
                }
                Delivery::Data { bytes, .. } => delivered += bytes.len() as u64,
            });
            assert!(h.pending_bytes <= MAX_PENDING);
        }
        // The fifth megabyte did not fit: the one-byte hole was given up on, everything handed on.
        assert_eq!(gaps, 1);
        assert_eq!(delivered, 6 << 20);
    }
}
