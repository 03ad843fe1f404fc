//! The codec conformance kit: run it from a codec's tests with a few sample frames, and it fails
//! loudly when the codec breaks a [`Codec`] contract.
//!
//! ```ignore
//! use metaprotocol_core::testkit::ConformanceKit;
//!
//! #[test]
//! fn conformance() {
//!     ConformanceKit::new(|| MyCodec::default())
//!         .frame(REQUEST_BYTES)            // each sample is exactly one whole message
//!         .frame(RESPONSE_BYTES)
//!         .removable_key("trace-id")       // a key the samples carry and a mutation may change
//!         .oversized_prefix(HEADER_DECLARING_4_GIB)
//!         .run();
//! }
//! ```
//!
//! What it checks, for every sample:
//!
//! * decoding the frame split in two at every byte offset, and fed one byte at a time, gives the
//!   same message as decoding it whole, with `Ok(None)` and nothing consumed until it is complete;
//! * all samples back to back in one buffer decode one by one, in order;
//! * an encode with an empty mutation gives the frame byte for byte, in chunks that share the
//!   input buffer's memory (no copy);
//! * a mutation round-trips: after decode(encode(message, mutation)) the set keys have their
//!   values, removed keys are gone, every other key keeps its value (but those named with
//!   [`derived_key`](ConformanceKit::derived_key)), and (for a message with a body, unless added
//!   with [`frame_rewritten_whole`](ConformanceKit::frame_rewritten_whole)) the unchanged part of
//!   the frame was spliced from the input rather than copied (samples added with
//!   [`frame_without_kv`](ConformanceKit::frame_without_kv) must instead come out unchanged);
//! * a request-id rewrite shows after decode, and rewriting the original id back restores the
//!   exact frame; an id over the codec's limit is refused;
//! * every [`ReplyKind`](crate::ReplyKind) gives a local reply to each request sample that decodes
//!   as an error response with the request's id; heartbeat samples get a heartbeat reply or none;
//! * truncated samples, samples with bytes overwritten, random garbage and oversized length
//!   prefixes give `Ok(None)` or errors, never panics, and an oversized prefix is refused at once
//!   without reserving its declared size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod checks;
mod robustness;

use std::fmt::Write as _;

use bytes::Bytes;

use crate::codec::Codec;

/// A sample frame and whether its protocol can carry key/value mutations.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub(crate) bytes: Bytes,
    pub(crate) carries_kv: bool,
    pub(crate) must_splice: bool,
}

/// The conformance kit; see the [module docs](self).
pub struct ConformanceKit<F> {
    pub(crate) new_codec: F,
    pub(crate) samples: Vec<Sample>,
    pub(crate) removable_key: Option<String>,
    pub(crate) derived_keys: Vec<String>,
    pub(crate) oversized: Vec<Bytes>,
    pub(crate) expect_splice: bool,
    pub(crate) garbage_rounds: usize,
    pub(crate) seed: u64,
}

impl<C, F> ConformanceKit<F>
where
    C: Codec,
    F: Fn() -> C,
{
    /// A kit that makes a fresh codec with `new_codec` for each check.
    pub fn new(new_codec: F) -> Self {
        ConformanceKit {
            new_codec,
            samples: Vec::new(),
            removable_key: None,
            derived_keys: Vec::new(),
            oversized: Vec::new(),
            expect_splice: true,
            garbage_rounds: 2_000,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Adds a sample: the bytes of exactly one whole message whose key/values can be mutated.
    #[must_use]
    pub fn frame(mut self, bytes: impl Into<Bytes>) -> Self {
        self.samples.push(Sample { bytes: bytes.into(), carries_kv: true, must_splice: true });
        self
    }

    /// Adds a sample whose body is nothing but the block a mutation rewrites (a response with no
    /// value and only attachments, say): the mutation must round-trip, but there is nothing left
    /// to splice.
    #[must_use]
    pub fn frame_rewritten_whole(mut self, bytes: impl Into<Bytes>) -> Self {
        self.samples.push(Sample { bytes: bytes.into(), carries_kv: true, must_splice: false });
        self
    }

    /// Adds a sample whose transport cannot carry key/values (Thrift framed, for instance): the kit
    /// checks that a mutation leaves it byte for byte unchanged instead of round-tripping.
    #[must_use]
    pub fn frame_without_kv(mut self, bytes: impl Into<Bytes>) -> Self {
        self.samples.push(Sample { bytes: bytes.into(), carries_kv: false, must_splice: false });
        self
    }

    /// Names a key that the samples carry and a mutation may replace and remove.
    #[must_use]
    pub fn removable_key(mut self, key: &str) -> Self {
        self.removable_key = Some(key.to_string());
        self
    }

    /// Names a key the codec derives from the encoding itself, which a mutation may change as a
    /// side effect (Dubbo's `body_kind` becomes "with attachments" when attachments are added).
    #[must_use]
    pub fn derived_key(mut self, key: &str) -> Self {
        self.derived_keys.push(key.to_string());
        self
    }

    /// Adds a frame prefix that declares a length over the codec's maximum frame size.
    #[must_use]
    pub fn oversized_prefix(mut self, bytes: impl Into<Bytes>) -> Self {
        self.oversized.push(bytes.into());
        self
    }

    /// Whether a mutated frame must reuse (splice) part of the input; on by default. Turn it off
    /// for a protocol whose every byte lies in the re-encoded part.
    #[must_use]
    pub fn expect_splice(mut self, yes: bool) -> Self {
        self.expect_splice = yes;
        self
    }

    /// How many random garbage buffers to try (default 2,000).
    #[must_use]
    pub fn garbage_rounds(mut self, n: usize) -> Self {
        self.garbage_rounds = n;
        self
    }

    /// Runs every check and returns the failures (empty when the codec conforms).
    pub fn check(&self) -> Vec<String> {
        let mut report = Report::default();
        if self.samples.is_empty() {
            report.fail("setup", "no sample frames were given");
            return report.failures;
        }
        checks::decode_whole(self, &mut report);
        if !report.failures.is_empty() {
            // Every later check assumes the samples decode.
            return report.failures;
        }
        checks::split_at_every_offset(self, &mut report);
        checks::byte_by_byte(self, &mut report);
        checks::back_to_back(self, &mut report);
        checks::passthrough_shares_memory(self, &mut report);
        checks::mutation_round_trip(self, &mut report);
        checks::request_id_rewrite(self, &mut report);
        checks::local_replies(self, &mut report);
        checks::heartbeats(self, &mut report);
        robustness::truncated(self, &mut report);
        robustness::corrupted(self, &mut report);
        robustness::garbage(self, &mut report);
        robustness::oversized(self, &mut report);
        report.failures
    }

    /// Runs every check and panics with the list of failures, if any.
    pub fn run(&self) {
        let failures = self.check();
        if !failures.is_empty() {
            let mut msg = format!("codec conformance: {} failure(s)\n", failures.len());
            for f in &failures {
                let _ = writeln!(msg, "  - {f}");
            }
            panic!("{msg}");
        }
    }
}

/// Failures collected by the checks (at most a few per check, so a report stays readable).
#[derive(Default)]
pub(crate) struct Report {
    failures: Vec<String>,
    per_check: std::collections::HashMap<&'static str, usize>,
}

impl Report {
    pub(crate) fn fail(&mut self, check: &'static str, message: impl Into<String>) {
        let n = self.per_check.entry(check).or_insert(0);
        *n += 1;
        if *n <= 5 {
            self.failures.push(format!("[{check}] {}", message.into()));
        }
    }
}

/// Up to 48 bytes of `b` in hex, for failure messages.
pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    for x in b.iter().take(48) {
        let _ = write!(s, "{x:02x}");
    }
    if b.len() > 48 {
        let _ = write!(s, "..({} bytes)", b.len());
    }
    s
}
