//! # metaprotocol-framed
//!
//! A configurable framing codec, registered as `framed`: an in-house RPC protocol made of a fixed
//! header (magic, length, request id, type, status), header sections and a payload is described
//! in the listener's `codec:` options, and the proxy routes, multiplexes and answers it with no
//! Rust code. `codecs/framed/README.md` documents every option; `examples/configs/bolt.yaml` and
//! `examples/configs/memcached-binary.yaml` describe SOFA Bolt and the memcached binary protocol.
//!
//! * [`config`]: the options as `serde` reads them ([`FramedOptions`]).
//! * Compiling them (`spec`, `reply_spec`) checks every field against its header, the fields the
//!   proxy writes against each other, the value lists and the reply settings; then a request
//!   built from the configuration must decode, and every error reply to it must decode as an
//!   error response (`selftest`): a configuration that cannot work is refused at `check` time.
//! * Decoding (`decode`) reads the magic, the type, the fixed header and the frame length (a
//!   length over `max_frame_size` is refused before the body is buffered), cuts the frame from
//!   the read buffer, and exposes header fields, sections and key/value pairs as key/values
//!   that are ranges of the frame. The layout ([`FramedLayout`]) keeps where the pairs lie.
//! * Encoding (`encode`) forwards the frame by reference count, patches the request id in a copy
//!   of the fixed header, and for a mutation rewrites the pairs block (untouched pairs copied as
//!   encoded), fixes every length that covers it and splices the rest.
//! * Replies (`reply`, `build`) are built from the request's header as configured, and decoded
//!   before they are returned.

#![forbid(unsafe_code)]

mod build;
mod codec;
pub mod config;
mod decode;
mod encode;
pub mod field;
mod layout;
mod overlap;
mod reply;
mod reply_spec;
mod selftest;
mod spec;

use metaprotocol_core::{CodecFactory, ConfigError, ConfigValue};
use serde::Deserialize;

pub use codec::FramedCodec;
pub use config::{FramedOptions, DEFAULT_MAX_FRAME_SIZE};
pub use layout::{FramedLayout, PairsSpan};
pub use spec::Variant;

/// `protocol: framed`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FramedCodecFactory;

impl CodecFactory for FramedCodecFactory {
    type Codec = FramedCodec;

    fn name(&self) -> &'static str {
        "framed"
    }

    fn configure(&self, options: &ConfigValue) -> Result<FramedCodec, ConfigError> {
        if options.is_null() {
            return Err(ConfigError::invalid(
                "",
                "the framed codec needs options describing the protocol (request_id, message_type, frame, \
                 error_reply, ...): see codecs/framed/README.md",
            ));
        }
        let options = FramedOptions::deserialize(options).map_err(|e| ConfigError::invalid("", e.to_string()))?;
        FramedCodec::new(&options)
    }
}
