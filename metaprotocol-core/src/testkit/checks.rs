//! The functional checks of the kit: framing, passthrough, mutation, request ids, replies.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Bytes, BytesMut};

use super::{hex, ConformanceKit, Report};
use crate::codec::{Codec, LocalReply, ReplyKind};
use crate::message::Message;

/// A decoded message of codec `C`.
pub(crate) type Msg<C> = Message<<C as Codec>::Layout>;
use crate::metadata::MessageType;
use crate::mutation::Mutation;
use crate::wire::WireBuf;

const ADDED_KEY: &str = "x-conformance-added";

thread_local! {
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, catching a panic quietly: the kit reports it itself, so the default hook's message
/// (and backtrace) is suppressed on this thread only; panics elsewhere print as usual.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    CATCHING.with(|c| c.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(false));
    r
}

/// Decodes once, turning a panic into an error string.
pub(crate) fn try_decode<C: Codec>(
    codec: &mut C,
    buf: &mut BytesMut,
) -> Result<Result<Option<Msg<C>>, crate::CodecError>, String> {
    catch(|| codec.decode(buf)).map_err(|p| panic_text(&p))
}

pub(crate) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Decodes exactly one message that uses all of `bytes`.
pub(crate) fn decode_exact<C: Codec>(codec: &mut C, bytes: &[u8]) -> Result<Msg<C>, String> {
    let mut buf = BytesMut::from(bytes);
    match try_decode(codec, &mut buf) {
        Err(p) => Err(format!("decode panicked: {p}")),
        Ok(Err(e)) => Err(format!("decode failed: {e}")),
        Ok(Ok(None)) => Err("decode returned Ok(None) for a whole frame".into()),
        Ok(Ok(Some(m))) if !buf.is_empty() => {
            Err(format!("decode left {} of {} bytes unconsumed (frame length {})", buf.len(), bytes.len(), m.len()))
        }
        Ok(Ok(Some(m))) if m.frame()[..] != *bytes => Err("Message::frame differs from the decoded bytes".into()),
        Ok(Ok(Some(m))) => Ok(m),
    }
}

/// Encodes, turning panics and errors into strings.
pub(crate) fn try_encode<C: Codec>(codec: &mut C, msg: &Msg<C>, mutation: &Mutation) -> Result<WireBuf, String> {
    let mut out = WireBuf::new();
    match catch(|| codec.encode(msg, mutation, &mut out)) {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(format!("encode failed: {e}")),
        Err(p) => Err(format!("encode panicked: {}", panic_text(&p))),
    }
}

fn decoded_samples<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>) -> Vec<(usize, Msg<C>)> {
    kit.samples
        .iter()
        .enumerate()
        .filter_map(|(i, s)| decode_exact(&mut (kit.new_codec)(), &s.bytes).ok().map(|m| (i, m)))
        .collect()
}

pub(crate) fn decode_whole<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, s) in kit.samples.iter().enumerate() {
        if let Err(e) = decode_exact(&mut (kit.new_codec)(), &s.bytes) {
            r.fail("decode", format!("sample {i} ({}): {e}", hex(&s.bytes)));
        }
    }
}

/// Offsets at which to split a frame: all of them for small frames, a spread for large ones.
fn split_points(len: usize) -> Vec<usize> {
    if len <= 4096 {
        return (1..len).collect();
    }
    let mut v: Vec<usize> = (1..512).chain(len - 512..len).collect();
    v.extend((512..len - 512).step_by(97));
    v
}

pub(crate) fn split_at_every_offset<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, whole) in decoded_samples(kit) {
        let bytes = &kit.samples[i].bytes;
        for at in split_points(bytes.len()) {
            let mut codec = (kit.new_codec)();
            let mut buf = BytesMut::from(&bytes[..at]);
            match try_decode(&mut codec, &mut buf) {
                Ok(Ok(None)) if buf.len() == at => {}
                Ok(Ok(None)) => {
                    r.fail(
                        "split",
                        format!("sample {i}: Ok(None) on the first {at} bytes consumed {} bytes", at - buf.len()),
                    );
                    continue;
                }
                other => {
                    r.fail(
                        "split",
                        format!(
                            "sample {i}: the first {at} of {} bytes gave {} instead of Ok(None)",
                            bytes.len(),
                            describe(&other)
                        ),
                    );
                    continue;
                }
            }
            buf.extend_from_slice(&bytes[at..]);
            match try_decode(&mut codec, &mut buf) {
                Ok(Ok(Some(m))) if m == whole && buf.is_empty() => {}
                other => r.fail(
                    "split",
                    format!(
                        "sample {i}: split at byte {at}, the rest gave {} (expected the whole message)",
                        describe(&other)
                    ),
                ),
            }
        }
    }
}

pub(crate) fn byte_by_byte<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, whole) in decoded_samples(kit) {
        let bytes = &kit.samples[i].bytes;
        let mut codec = (kit.new_codec)();
        let mut buf = BytesMut::new();
        for (n, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let last = n + 1 == bytes.len();
            match try_decode(&mut codec, &mut buf) {
                Ok(Ok(None)) if !last => {}
                Ok(Ok(Some(m))) if last && m == whole && buf.is_empty() => {}
                other => {
                    r.fail(
                        "byte-by-byte",
                        format!("sample {i}: after {} of {} bytes got {}", n + 1, bytes.len(), describe(&other)),
                    );
                    break;
                }
            }
        }
    }
}

pub(crate) fn back_to_back<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    let wholes = decoded_samples(kit);
    let mut buf = BytesMut::new();
    for s in &kit.samples {
        buf.extend_from_slice(&s.bytes);
    }
    // A partial copy of the first sample at the end must wait for more bytes.
    let tail = &kit.samples[0].bytes[..kit.samples[0].bytes.len() / 2];
    buf.extend_from_slice(tail);
    let mut codec = (kit.new_codec)();
    for (i, whole) in &wholes {
        match try_decode(&mut codec, &mut buf) {
            Ok(Ok(Some(m))) if &m == whole => {}
            other => {
                r.fail(
                    "back-to-back",
                    format!("message {i} of a buffer holding all samples came out as {}", describe(&other)),
                );
                return;
            }
        }
    }
    match try_decode(&mut codec, &mut buf) {
        Ok(Ok(None)) if buf.len() == tail.len() => {}
        other => r.fail(
            "back-to-back",
            format!("a half frame left at the end gave {} (expected Ok(None), nothing consumed)", describe(&other)),
        ),
    }
}

pub(crate) fn passthrough_shares_memory<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, s) in kit.samples.iter().enumerate() {
        let mut codec = (kit.new_codec)();
        let mut buf = BytesMut::from(&s.bytes[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let Ok(Ok(Some(msg))) = try_decode(&mut codec, &mut buf) else { continue };
        match try_encode(&mut codec, &msg, &Mutation::new()) {
            Err(e) => r.fail("passthrough", format!("sample {i}: {e}")),
            Ok(mut out) => {
                let copied = out.chunks_iter().any(|c| !within(c, &range));
                let bytes = out.take_bytes();
                if bytes != s.bytes {
                    r.fail(
                        "passthrough",
                        format!("sample {i}: empty mutation changed the frame: {} -> {}", hex(&s.bytes), hex(&bytes)),
                    );
                } else if copied {
                    r.fail(
                        "passthrough",
                        format!("sample {i}: empty mutation copied the frame instead of sharing the input's memory"),
                    );
                }
            }
        }
    }
}

fn within(chunk: &Bytes, range: &std::ops::Range<usize>) -> bool {
    let p = chunk.as_ptr() as usize;
    range.contains(&p) && p + chunk.len() <= range.end
}

pub(crate) fn mutation_round_trip<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, s) in kit.samples.iter().enumerate() {
        let mut codec = (kit.new_codec)();
        let mut buf = BytesMut::from(&s.bytes[..]);
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        let Ok(Ok(Some(msg))) = try_decode(&mut codec, &mut buf) else { continue };
        let removable = kit.removable_key.as_deref().filter(|k| msg.metadata.kvs.contains(k));
        let mut mutation = Mutation::new();
        mutation.set("X-Conformance-Added", "first").set(ADDED_KEY, "second");
        if let Some(k) = removable {
            mutation.remove(k.to_string());
        }
        let out = match try_encode(&mut codec, &msg, &mutation) {
            Ok(out) => out,
            Err(e) => {
                r.fail("mutation", format!("sample {i}: {e}"));
                continue;
            }
        };
        let spliced = out.chunks_iter().any(|c| within(c, &range));
        let mut out = out;
        let bytes = out.take_bytes();
        if !s.carries_kv {
            if bytes != s.bytes {
                r.fail("mutation", format!("sample {i} (no key/values): a mutation changed the frame"));
            }
            continue;
        }
        if kit.expect_splice && s.must_splice && msg.metadata.body_size > 0 && !spliced {
            r.fail(
                "mutation",
                format!(
                    "sample {i}: the mutated frame shares no memory with the input (re-encoded whole, not spliced)"
                ),
            );
        }
        let after = match decode_exact(&mut (kit.new_codec)(), &bytes) {
            Ok(m) => m,
            Err(e) => {
                r.fail("mutation", format!("sample {i}: the mutated frame does not decode: {e} ({})", hex(&bytes)));
                continue;
            }
        };
        let kvs = &after.metadata.kvs;
        let added: Vec<_> = kvs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(ADDED_KEY.as_bytes())).collect();
        if added.len() != 1 || added[0].1 != b"second" {
            r.fail(
                "mutation",
                format!("sample {i}: after setting `{ADDED_KEY}` twice, found {} entries ({added:?})", added.len()),
            );
        }
        if let Some(k) = removable {
            if kvs.contains(k) {
                r.fail("mutation", format!("sample {i}: removed key `{k}` is still present"));
            }
        }
        for (key, _) in msg.metadata.kvs.iter() {
            let touched = key.eq_ignore_ascii_case(ADDED_KEY.as_bytes())
                || removable.is_some_and(|k| key.eq_ignore_ascii_case(k.as_bytes()))
                || kit.derived_keys.iter().any(|k| key.eq_ignore_ascii_case(k.as_bytes()));
            if !touched && kvs.get_bytes(key) != msg.metadata.kvs.get_bytes(key) {
                r.fail(
                    "mutation",
                    format!(
                        "sample {i}: untouched key `{}` changed from {:?} to {:?}",
                        String::from_utf8_lossy(key),
                        msg.metadata.kvs.get_bytes(key),
                        kvs.get_bytes(key)
                    ),
                );
            }
        }
        let (a, b) = (&msg.metadata, &after.metadata);
        if (a.message_type, a.request_id, a.service(), a.method(), a.response_status)
            != (b.message_type, b.request_id, b.service(), b.method(), b.response_status)
        {
            r.fail("mutation", format!("sample {i}: typed metadata changed: {a:?} -> {b:?}"));
        }
    }
}

pub(crate) fn request_id_rewrite<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, msg) in decoded_samples(kit) {
        let mut codec = (kit.new_codec)();
        let limit = codec.request_id_limit();
        let original = msg.metadata.request_id;
        let new_id = if original == 7 { 11 } else { 7 }.min(limit);
        let mut m = msg.clone();
        match codec.rewrite_request_id(&mut m, new_id) {
            Ok(old) if old == original => {}
            other => {
                r.fail(
                    "request-id",
                    format!("sample {i}: rewrite_request_id({new_id}) returned {other:?}, expected Ok({original})"),
                );
                continue;
            }
        }
        let bytes = match try_encode(&mut codec, &m, &Mutation::new()) {
            Ok(mut out) => out.take_bytes(),
            Err(e) => {
                r.fail("request-id", format!("sample {i}: {e}"));
                continue;
            }
        };
        let mut decoded = match decode_exact(&mut (kit.new_codec)(), &bytes) {
            Ok(d) => d,
            Err(e) => {
                r.fail("request-id", format!("sample {i}: the frame with a new id does not decode: {e}"));
                continue;
            }
        };
        let mut expect = msg.metadata.clone();
        expect.request_id = new_id;
        if decoded.metadata.request_id != new_id {
            r.fail(
                "request-id",
                format!("sample {i}: rewrote the id to {new_id}, decoded {}", decoded.metadata.request_id),
            );
        } else if decoded.metadata.kvs != expect.kvs || decoded.metadata.message_type != expect.message_type {
            r.fail("request-id", format!("sample {i}: rewriting the id changed other metadata"));
        }
        let _ = codec.rewrite_request_id(&mut decoded, original);
        match try_encode(&mut codec, &decoded, &Mutation::new()).map(|mut out| out.take_bytes()) {
            Ok(b) if b == kit.samples[i].bytes => {}
            Ok(_) => r.fail(
                "request-id",
                format!("sample {i}: restoring the original id did not restore the original frame"),
            ),
            Err(e) => r.fail("request-id", format!("sample {i}: {e}")),
        }
        if limit < u64::MAX && codec.rewrite_request_id(&mut m, limit + 1).is_ok() {
            r.fail("request-id", format!("sample {i}: an id over the limit {limit} was accepted"));
        }
    }
}

pub(crate) fn local_replies<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    let samples = decoded_samples(kit);
    let requests: Vec<_> = samples.iter().filter(|(_, m)| m.metadata.message_type == MessageType::Request).collect();
    for (i, req) in requests {
        // The reply must come from the request alone: its metadata is taken away (as the proxy
        // does), and the codec that answers has last decoded another sample (maybe another wire
        // variant), so state left by decoding cannot stand in for the request's own layout.
        let mut light = req.clone();
        let _ = light.take_metadata();
        let other = kit.samples.iter().enumerate().find(|(j, _)| j != i).map(|(_, s)| s.bytes.clone());
        for kind in ReplyKind::ALL {
            let mut codec = (kit.new_codec)();
            if let Some(other) = &other {
                let _ = try_decode(&mut codec, &mut BytesMut::from(&other[..]));
            }
            let reply = LocalReply::new(kind, format!("conformance {kind}"));
            let made = match catch(|| codec.local_reply(&light, &reply)) {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    r.fail("local-reply", format!("sample {i}, {kind}: {e}"));
                    continue;
                }
                Err(p) => {
                    r.fail("local-reply", format!("sample {i}, {kind}: panicked: {}", panic_text(&p)));
                    continue;
                }
            };
            let bytes = match try_encode(&mut codec, &made, &Mutation::new()) {
                Ok(mut out) => out.take_bytes(),
                Err(e) => {
                    r.fail("local-reply", format!("sample {i}, {kind}: {e}"));
                    continue;
                }
            };
            check_reply(r, "local-reply", &format!("sample {i}, {kind}"), kit, &made, &bytes, req.metadata.request_id);
        }
    }
}

/// A reply built by a codec: as encoded it must decode, with a fresh codec, to the same error
/// response it was built as, answering request `id`.
pub(crate) fn check_reply<C: Codec, F: Fn() -> C>(
    r: &mut Report,
    check: &'static str,
    what: &str,
    kit: &ConformanceKit<F>,
    made: &Msg<C>,
    bytes: &[u8],
    id: u64,
) {
    match decode_exact(&mut (kit.new_codec)(), bytes) {
        Ok(m)
            if m.metadata.request_id == id
                && m.metadata.message_type.is_response()
                && m.metadata.response_status != crate::ResponseStatus::Ok =>
        {
            if m.metadata != made.metadata || m.layout() != made.layout() {
                r.fail(
                    check,
                    format!(
                        "{what}: the reply as built differs from the reply as decoded: {:?} vs {:?}",
                        made.metadata, m.metadata
                    ),
                );
            }
        }
        Ok(m) => r.fail(
            check,
            format!(
                "{what}: reply decodes as {:?} id {} status {:?}; expected an error response with id {id}",
                m.metadata.message_type, m.metadata.request_id, m.metadata.response_status
            ),
        ),
        Err(e) => r.fail(check, format!("{what}: the reply does not decode: {e}")),
    }
}

pub(crate) fn heartbeats<C: Codec, F: Fn() -> C>(kit: &ConformanceKit<F>, r: &mut Report) {
    for (i, ping) in decoded_samples(kit).into_iter().filter(|(_, m)| m.metadata.message_type == MessageType::Ping) {
        let mut codec = (kit.new_codec)();
        match catch(|| codec.heartbeat_reply(&ping)) {
            Ok(Ok(pong)) => {
                let bytes = try_encode(&mut codec, &pong, &Mutation::new()).map(|mut o| o.take_bytes());
                match bytes.and_then(|b| decode_exact(&mut (kit.new_codec)(), &b)) {
                    Ok(m)
                        if m.metadata.message_type == MessageType::Pong
                            && m.metadata.request_id == ping.metadata.request_id
                            && m == pong => {}
                    Ok(m) => r.fail(
                        "heartbeat",
                        format!(
                            "sample {i}: the answer to a ping decodes as {:?} id {} (built as {:?})",
                            m.metadata.message_type, m.metadata.request_id, pong.metadata.message_type
                        ),
                    ),
                    Err(e) => r.fail("heartbeat", format!("sample {i}: reply: {e}")),
                }
            }
            Ok(Err(e)) => r.fail("heartbeat", format!("sample {i}: {e}")),
            Err(p) => r.fail("heartbeat", format!("sample {i}: panicked: {}", panic_text(&p))),
        }
    }
}

pub(crate) fn describe<L>(r: &Result<Result<Option<Message<L>>, crate::CodecError>, String>) -> String {
    match r {
        Err(p) => format!("a panic ({p})"),
        Ok(Err(e)) => format!("Err({e})"),
        Ok(Ok(None)) => "Ok(None)".into(),
        Ok(Ok(Some(m))) => {
            format!("Ok(Some({} message, id {}, {} bytes))", m.metadata.message_type, m.metadata.request_id, m.len())
        }
    }
}
