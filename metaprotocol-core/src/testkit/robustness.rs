//! The robustness checks of the kit: hostile input must give errors, never panics.

use bytes::BytesMut;

use super::checks::{describe, try_decode, try_encode, Msg};
use super::{hex, ConformanceKit, Report};
use crate::codec::Codec;
use crate::error::CodecError;
use crate::mutation::Mutation;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Decodes everything decodable from `bytes`; reports panics and inconsistent consumption.
fn drain<C: Codec>(codec: &mut C, bytes: &[u8], r: &mut Report, check: &'static str, what: &str) {
    drain_with(codec, bytes, r, check, what, &mut |_| {});
}

/// After a decode error: a malformed reply, if the codec makes one, must not panic, must be built
/// from the error alone, and must answer the bad request by its id.
fn malformed<C: Codec>(codec: &mut C, error: &CodecError, r: &mut Report, check: &'static str, what: &str) {
    let reply = match super::checks::catch(|| codec.malformed_reply(error)) {
        Ok(reply) => reply,
        Err(p) => {
            r.fail(check, format!("{what}: malformed_reply panicked: {}", super::checks::panic_text(&p)));
            return;
        }
    };
    let Some(reply) = reply else { return };
    let CodecError::BadRequest { request_id, .. } = error else {
        r.fail(check, format!("{what}: malformed_reply answered an error that names no request: {error}"));
        return;
    };
    if reply.metadata.request_id != *request_id || !reply.metadata.message_type.is_response() {
        r.fail(check, format!("{what}: the malformed reply does not answer request {request_id}"));
    }
    if let Err(e) = try_encode(codec, &reply, &Mutation::new()) {
        r.fail(check, format!("{what}: the malformed reply does not encode: {e}"));
    }
}

fn drain_with<C: Codec>(
    codec: &mut C,
    bytes: &[u8],
    r: &mut Report,
    check: &'static str,
    what: &str,
    seen: &mut dyn FnMut(&Msg<C>),
) {
    let mut buf = BytesMut::from(bytes);
    for _ in 0..64 {
        let before = buf.len();
        match try_decode(codec, &mut buf) {
            Err(p) => {
                r.fail(check, format!("{what}: decode panicked: {p} (input {})", hex(bytes)));
                return;
            }
            Ok(Err(e)) => {
                malformed(codec, &e, r, check, what);
                return;
            }
            Ok(Ok(None)) => {
                if buf.len() != before {
                    r.fail(check, format!("{what}: Ok(None) consumed {} bytes", before - buf.len()));
                }
                return;
            }
            Ok(Ok(Some(m))) => {
                seen(&m);
                if before - buf.len() != m.len() {
                    r.fail(
                        check,
                        format!("{what}: consumed {} bytes for a {}-byte frame", before - buf.len(), m.len()),
                    );
                    return;
                }
                let mut mutation = Mutation::new();
                mutation.set("x-conformance-added", "1");
                for mu in [Mutation::new(), mutation] {
                    if let Err(e) = try_encode(codec, &m, &mu) {
                        if e.contains("panicked") {
                            r.fail(check, format!("{what}: {e} (input {})", hex(bytes)));
                            return;
                        }
                    }
                }
                // An error is allowed (some messages cannot be answered); a panic is not.
                let reply = crate::LocalReply::new(crate::ReplyKind::BadRequest, "x");
                if m.metadata.message_type == crate::MessageType::Request {
                    if let Err(p) = super::checks::catch(|| codec.local_reply(&m, &reply)) {
                        r.fail(check, format!("{what}: local_reply panicked: {}", super::checks::panic_text(&p)));
                        return;
                    }
                }
                if m.metadata.message_type == crate::MessageType::Ping {
                    if let Err(p) = super::checks::catch(|| codec.heartbeat_reply(&m)) {
                        r.fail(check, format!("{what}: heartbeat_reply panicked: {}", super::checks::panic_text(&p)));
                        return;
                    }
                }
            }
        }
    }
}

pub(crate) fn truncated<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    // Every proper prefix must wait for more bytes; `split` already checks Ok(None) exactly, here
    // the codec is also handed the prefix and then told nothing more comes (no panic on drop).
    for (i, s) in kit.samples.iter().enumerate() {
        for cut in [0, 1, s.bytes.len() / 2, s.bytes.len().saturating_sub(1)] {
            let mut codec = (kit.new_codec)();
            let mut buf = BytesMut::from(&s.bytes[..cut]);
            match try_decode(&mut codec, &mut buf) {
                Ok(Ok(None)) => {}
                other => r.fail("truncated", format!("sample {i} cut to {cut} bytes gave {}", describe(&other))),
            }
        }
    }
}

pub(crate) fn corrupted<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, s) in kit.samples.iter().enumerate() {
        let positions: Vec<usize> = if s.bytes.len() <= 1024 {
            (0..s.bytes.len()).collect()
        } else {
            (0..s.bytes.len()).step_by(s.bytes.len() / 1024 + 1).collect()
        };
        for pos in positions {
            let orig = s.bytes[pos];
            for v in [0x00, 0xff, 0x7f, 0x80, orig ^ 0x80, orig.wrapping_add(1), orig.wrapping_sub(1)] {
                if v == orig {
                    continue;
                }
                let mut bytes = s.bytes.to_vec();
                bytes[pos] = v;
                drain(
                    &mut (kit.new_codec)(),
                    &bytes,
                    r,
                    "corrupted",
                    &format!("sample {i} with byte {pos} set to {v:#04x}"),
                );
            }
        }
    }
}

pub(crate) fn garbage<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    let mut rng = Rng(kit.seed);
    for round in 0..kit.garbage_rounds {
        let len = (rng.next() % 512) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half the rounds start with a real sample's first bytes, to get past magic checks.
        if round % 2 == 1 {
            let s = &kit.samples[round / 2 % kit.samples.len()].bytes;
            let keep = s.len().min(1 + (rng.next() as usize % 24));
            bytes.splice(0..0, s[..keep].iter().copied());
        }
        drain(&mut (kit.new_codec)(), &bytes, r, "garbage", &format!("round {round}"));
    }
}

pub(crate) fn oversized<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, prefix) in kit.oversized.iter().enumerate() {
        let mut codec = (kit.new_codec)();
        let max = codec.max_frame_size();
        let mut buf = BytesMut::from(&prefix[..]);
        match try_decode(&mut codec, &mut buf) {
            Ok(Err(_)) => {
                let mut codec = (kit.new_codec)();
                let mut buf = BytesMut::from(&prefix[..]);
                // Directly, or as the source of a `BadRequest` that names the request to answer.
                let too_large = match codec.decode(&mut buf) {
                    Err(CodecError::FrameTooLarge { .. }) => true,
                    Err(CodecError::BadRequest { source, .. }) => matches!(*source, CodecError::FrameTooLarge { .. }),
                    _ => false,
                };
                if !too_large {
                    r.fail("oversized", format!("prefix {i}: refused, but not with CodecError::FrameTooLarge"));
                }
            }
            other => r.fail(
                "oversized",
                format!(
                    "prefix {i} ({}) over the maximum of {max} bytes gave {} instead of an error",
                    hex(prefix),
                    describe(&other)
                ),
            ),
        }
        if buf.capacity() > prefix.len().max(64 * 1024) {
            r.fail(
                "oversized",
                format!("prefix {i}: the decoder reserved {} bytes for a frame it should refuse", buf.capacity()),
            );
        }
    }
}
