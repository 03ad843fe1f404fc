//! # metaprotocol-thrift
//!
//! The Thrift protocol for metaproxy, registered as `thrift`: binary (strict, or lax when
//! enabled) and compact protocols over framed, unframed (buffered) and header (THeader)
//! transports, detected per connection or fixed by the options.
//!
//! * Metadata: `method`, `service` (for multiplexed `Service:method` names), the sequence id as
//!   request id, the message type (call, one-way, reply, exception; a reply carrying a declared
//!   exception has status business exception), and THeader info headers as key/values. Every
//!   value is a range of the frame: decoding copies nothing.
//! * Each message carries its own [`ThriftLayout`]: its [`Framing`] (transport, with the THeader
//!   flags and payload offset), its [`Protocol`](protocol::Protocol) (THeader may change it from
//!   one message to the next), and where its sequence id and method name lie.
//! * Untouched messages pass through byte for byte, without re-serializing anything.
//! * Mutations rewrite a THeader header block (fixing the sizes) and leave the payload uncopied.
//!   Framed and unframed transports cannot carry headers: there a mutation is counted in a debug
//!   log and the message goes through unchanged.
//! * Sequence-id rewrite for multiplexing: binary patches 4 bytes; compact rewrites the varint,
//!   whose length may change, and the frame length with it. The new head is built in the
//!   [`WireBuf`](metaprotocol_core::WireBuf)'s scratch space.
//! * Local replies are TApplicationExceptions built directly in the request's own framing and
//!   protocol (from its layout, never from what the connection decoded last): no route is
//!   UNKNOWN_METHOD, a bad request PROTOCOL_ERROR, anything else (no healthy upstream, timeout,
//!   upstream reset, ...) INTERNAL_ERROR, as Envoy's `thrift_proxy` answers; see
//!   [`app_error_type`].
//! * A call on a framed or THeader transport whose header parses but whose body cannot be a
//!   struct (empty, an unknown first field type, no final STOP) is a
//!   [`CodecError::BadRequest`](metaprotocol_core::CodecError::BadRequest), which
//!   [`malformed_reply`](metaprotocol_core::Codec::malformed_reply) answers with PROTOCOL_ERROR.
//! * Limits: maximum frame size, nesting depth and container size; no input can panic.
//!
//! THeader transforms (zlib and others) are refused with a clear error.

#![forbid(unsafe_code)]

mod codec;
mod factory;
mod layout;
pub mod protocol;
mod reply;
mod skip;
pub mod transport;

pub use codec::ThriftCodec;
pub use factory::{ProtocolOption, ThriftCodecFactory, ThriftOptions, TransportOption, MIN_FRAME_SIZE};
pub use layout::{Framing, Span, ThriftLayout};
pub use reply::{app_error, app_error_type};
