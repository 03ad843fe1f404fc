//! Which codec decodes a connection, when `--protocol` does not say.
//!
//! In order: the protocol of the listener the connection goes to (`--config`), or of the listener
//! that routes to the cluster whose endpoint it goes to; the codec whose well-known port the
//! server listens on ([`DEFAULT_PORTS`]); else every registered codec is tried on the first bytes
//! of both directions ([`Guess`]): the first (in name order) that decodes a whole message at the
//! start of a stream wins; failing that, once [`GUESS_LIMIT`] bytes are held or the connection
//! ends, the one that finds a message after skipping the fewest bytes.

use super::codec::StreamCodec;
use super::stream::{StreamDecoder, StreamEvent};
use super::tcp::GapCause;
use crate::registry::Registry;

/// Well-known server ports of the built-in protocols.
pub const DEFAULT_PORTS: [(&str, u16); 2] = [("dubbo", 20880), ("thrift", 9090)];

/// The most bytes held per direction while guessing.
pub const GUESS_LIMIT: usize = 64 * 1024;

/// A registered codec with its default options.
pub struct Candidate {
    /// Its registry name.
    pub name: String,
    /// Its decoder.
    pub codec: Box<dyn StreamCodec>,
}

/// Every registered codec that accepts empty options, in name order.
pub fn candidates(registry: &Registry) -> Vec<Candidate> {
    registry
        .codec_names()
        .filter_map(|name| {
            let protocol = registry.configure_codec(name, &metaprotocol_core::ConfigValue::Null).ok()?;
            let codec = <dyn StreamCodec>::of(&*protocol).ok()?;
            Some(Candidate { name: name.to_string(), codec })
        })
        .collect()
}

/// The candidate whose well-known port is `port`.
pub fn by_port(candidates: &[Candidate], port: u16) -> Option<usize> {
    let name = DEFAULT_PORTS.iter().find(|(_, p)| *p == port)?.0;
    candidates.iter().position(|c| c.name == name)
}

/// Something reassembly handed on while the codec was not yet known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Bytes, captured at `ts` (nanoseconds).
    Data {
        /// Capture time.
        ts: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A hole.
    Gap {
        /// Capture time.
        ts: u64,
        /// Where.
        offset: u64,
        /// How long.
        bytes: u64,
        /// Why.
        cause: GapCause,
    },
}

/// The first bytes of a connection's two directions, held while guessing.
#[derive(Debug, Default)]
pub struct Guess {
    /// Per direction, in order.
    pub held: [Vec<Held>; 2],
    bytes: [usize; 2],
}

impl Guess {
    /// Holds `held` for direction `side`.
    pub fn hold(&mut self, side: usize, held: Held) {
        if let (Some(b), Held::Data { bytes, .. }) = (self.bytes.get_mut(side), &held) {
            *b = b.saturating_add(bytes.len());
        }
        if let Some(h) = self.held.get_mut(side) {
            h.push(held);
        }
    }

    /// True when a direction holds [`GUESS_LIMIT`] bytes: time to decide.
    pub fn full(&self) -> bool {
        self.bytes.iter().any(|b| *b >= GUESS_LIMIT)
    }

    /// True when nothing but holes is held.
    pub fn no_data(&self) -> bool {
        self.bytes.iter().all(|b| *b == 0)
    }

    /// The candidate that decodes these bytes: one that finds a message at a stream's start, else
    /// (when `last`) the one that finds a message after skipping the fewest bytes. `starts` is
    /// each direction's first offset and `in_sync` whether it starts at its SYN.
    pub fn pick(&self, candidates: &[Candidate], starts: [u64; 2], in_sync: [bool; 2], last: bool) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, c) in candidates.iter().enumerate() {
            let Some(skipped) = self.trial(c, starts, in_sync) else { continue };
            if skipped == 0 {
                return Some(i);
            }
            if best.is_none_or(|(s, _)| skipped < s) {
                best = Some((skipped, i));
            }
        }
        best.filter(|_| last).map(|(_, i)| i)
    }

    /// Bytes skipped before the first message candidate `c` decodes, over both directions.
    fn trial(&self, c: &Candidate, starts: [u64; 2], in_sync: [bool; 2]) -> Option<u64> {
        let mut best = None;
        for ((held, start), sync) in self.held.iter().zip(starts).zip(in_sync) {
            let mut d = StreamDecoder::new(c.codec.fresh(), start, sync);
            let mut events = Vec::new();
            for h in held {
                match h {
                    Held::Data { bytes, .. } => d.push(bytes, &mut events),
                    Held::Gap { bytes, .. } => d.gap(*bytes, &mut events),
                }
            }
            let mut skipped = 0u64;
            for e in &events {
                match e {
                    StreamEvent::Resynced { from, at } => skipped = skipped.saturating_add(at.saturating_sub(*from)),
                    StreamEvent::Skipped { bytes, .. } | StreamEvent::Discarded { bytes, .. } => {
                        skipped = skipped.saturating_add(*bytes)
                    }
                    StreamEvent::Message { .. } => {
                        best = Some(best.map_or(skipped, |b: u64| b.min(skipped)));
                        break;
                    }
                    _ => {}
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn thrift_request() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../codecs/thrift/fixtures/captures/framed-binary.requests.bin"
        ))
        .unwrap()
    }

    #[test]
    fn every_registered_codec_is_tried_in_turn() {
        let registry = crate::default_registry().unwrap();
        let all = candidates(&registry);
        let names: Vec<_> = all.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"dubbo") && names.contains(&"thrift"), "{names:?}");
        let thrift = all.iter().position(|c| c.name == "thrift").unwrap();
        assert_eq!(by_port(&all, 9090), Some(thrift));
        let mut g = Guess::default();
        g.hold(0, Held::Data { ts: 1, bytes: thrift_request()[..10].to_vec() });
        // 10 bytes are not a whole frame yet: no codec decodes a message.
        assert_eq!(g.pick(&all, [0, 0], [true, true], false), None);
        g.hold(0, Held::Data { ts: 2, bytes: thrift_request()[10..].to_vec() });
        assert_eq!(g.pick(&all, [0, 0], [true, true], false), Some(thrift));
        let mut garbage = Guess::default();
        garbage.hold(1, Held::Data { ts: 1, bytes: b"HTTP/1.1 200 OK\r\n\r\n".to_vec() });
        assert_eq!(garbage.pick(&all, [0, 0], [true, true], true), None);
    }
}
