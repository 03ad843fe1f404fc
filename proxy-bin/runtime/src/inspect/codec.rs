//! A configured codec with its type erased, as the inspector uses it: decode only.
//!
//! The registry erases a codec's type behind [`Protocol`], whose one generic entry point for
//! inspection is [`Protocol::inspect`] (it calls [`super::inspect_stream`] with the concrete codec).
//! `<dyn StreamCodec>::of` asks a protocol for its codec through that entry point: it marks the
//! thread's hand-off slot as wanted, calls `inspect`, and `inspect_stream` puts a boxed
//! [`StreamCodec`] there instead of decoding. The inspector then makes one dynamic call per
//! message, which costs nothing next to printing it; the proxy's workers stay generic.
//!
//! (A `Protocol` method returning the boxed decoder would say the same without the thread-local
//! slot; this module is where that change would land.)

use std::cell::RefCell;

use bytes::BytesMut;
use metaprotocol_core::{Codec, CodecError, Metadata};

use crate::plan::Protocol;
use crate::RuntimeError;

/// One decoded message: how many bytes of the stream it took and its metadata.
#[derive(Debug)]
pub struct Decoded {
    /// The frame's length in bytes.
    pub size: usize,
    /// What the codec decoded (the key/values share the frame's memory).
    pub metadata: Metadata,
}

/// A codec's decoder with its type erased.
pub trait StreamCodec: Send {
    /// Decodes one message from the front of `buf`, as [`Codec::decode`] does.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, CodecError>;

    /// A new decoder with the same configuration and no per-connection state.
    fn fresh(&self) -> Box<dyn StreamCodec>;
}

struct Typed<C: Codec>(C);

impl<C: Codec> StreamCodec for Typed<C> {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, CodecError> {
        Ok(self.0.decode(buf)?.map(|message| Decoded { size: message.len(), metadata: message.metadata }))
    }

    fn fresh(&self) -> Box<dyn StreamCodec> {
        Box::new(Typed(self.0.clone()))
    }
}

/// `codec`, type erased.
pub(super) fn boxed<C: Codec>(codec: C) -> Box<dyn StreamCodec> {
    Box::new(Typed(codec))
}

/// The hand-off slot between [`StreamCodec::of`] and [`offer`], per thread.
enum Handoff {
    Wanted,
    Given(Box<dyn StreamCodec>),
}

thread_local! {
    static HANDOFF: RefCell<Option<Handoff>> = const { RefCell::new(None) };
}

/// Called by [`super::inspect_stream`] with the concrete codec: when [`StreamCodec::of`] asked for
/// it on this thread, hands it over and returns true (the caller then decodes nothing).
pub(super) fn offer<C: Codec>(codec: &C) -> bool {
    HANDOFF.with(|slot| {
        let mut slot = slot.borrow_mut();
        if matches!(*slot, Some(Handoff::Wanted)) {
            *slot = Some(Handoff::Given(Box::new(Typed(codec.clone()))));
            true
        } else {
            false
        }
    })
}

impl dyn StreamCodec {
    /// The decoder of a configured protocol.
    pub fn of(protocol: &dyn Protocol) -> Result<Box<dyn StreamCodec>, RuntimeError> {
        HANDOFF.with(|slot| *slot.borrow_mut() = Some(Handoff::Wanted));
        let called = protocol.inspect("", &[], &mut std::io::sink());
        let handed = HANDOFF.with(|slot| slot.borrow_mut().take());
        called?;
        match handed {
            Some(Handoff::Given(codec)) => Ok(codec),
            _ => Err(RuntimeError::InspectCodec { protocol: protocol.name().to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn a_registered_codec_is_handed_over_and_decodes() {
        let registry = crate::default_registry().unwrap();
        let protocol = registry.configure_codec("dubbo", &metaprotocol_core::ConfigValue::Null).unwrap();
        let mut codec = <dyn StreamCodec>::of(&*protocol).unwrap();
        let capture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../codecs/dubbo/fixtures/peers/python3-dubbo.requests.bin"
        ))
        .unwrap();
        let mut buf = BytesMut::from(&capture[..]);
        let first = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.metadata.request_id, 0);
        assert_eq!(first.size, capture.len() - buf.len());
        // The slot is empty again: a plain `inspect` call decodes as before.
        let mut out = Vec::new();
        let summary = protocol.inspect("x", &capture, &mut out).unwrap();
        assert!(summary.messages > 1);
        assert!(!out.is_empty());
    }
}
