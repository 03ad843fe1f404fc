//! # kv: a template protocol plugin
//!
//! A small binary RPC protocol, written as the example to copy when adding your own protocol to
//! metaproxy. It shows every part a plugin needs under codec contract v2:
//!
//! * a typed layout, [`KvLayout`]: what the encoder and the reply builders need to know about a
//!   frame (its message type, status and where the body starts), filled in by decoding;
//! * the [`Codec`](metaprotocol_core::Codec), [`KvCodec`]: decode into metadata whose key/values
//!   are spans of the frame, splice on encode (building the changed header in the
//!   [`WireBuf`](metaprotocol_core::WireBuf)'s scratch space), request-id rewrite, error replies
//!   and pongs built directly as messages, and a
//!   [`CodecError::BadRequest`](metaprotocol_core::CodecError::BadRequest) for a request whose
//!   header block is broken, answered by `malformed_reply` from the error alone;
//! * the [`CodecFactory`](metaprotocol_core::CodecFactory), [`KvCodecFactory`], which configures
//!   the codec by name from `serde` options and refuses limits it cannot honour;
//! * the conformance kit in `tests/`, and a `main.rs` that runs the metaproxy CLI with the codec
//!   registered.
//!
//! ## Wire format
//!
//! All integers are big-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `"KV"` (`0x4b 0x56`) |
//! | 2 | 1 | version, `1` |
//! | 3 | 1 | message type: 0 request, 1 response, 2 one-way, 3 ping, 4 pong, 5 error |
//! | 4 | 4 | length: bytes after this field (12 + header block + body) |
//! | 8 | 8 | request id |
//! | 16 | 1 | status: 0 ok, 1 error, 2 business exception |
//! | 17 | 1 | reserved, `0` |
//! | 18 | 2 | header block length |
//! | 20 | n | header block: entries of key length (1 byte, 1..=255), key, value length (2 bytes), value |
//! | 20 + n | .. | body, opaque |
//!
//! The keys `service` and `method` name the operation. Every header entry becomes a routing
//! key/value, and mutations rewrite the header block while the body is forwarded uncopied. A
//! ping asks for a pong with the same id, which the proxy answers itself. Errors the proxy
//! answers with are type error, status error, with headers `error-kind` (the
//! [`ReplyKind`](metaprotocol_core::ReplyKind) name, such as `route_not_found` or
//! `upstream_reset`) and `error-message`.

#![forbid(unsafe_code)]

mod codec;
mod factory;
pub mod wire;

pub use codec::{KvCodec, KvLayout};
pub use factory::{KvCodecFactory, KvOptions};
pub use wire::{FrameBuilder, KvType};
