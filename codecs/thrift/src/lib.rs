//! # metaprotocol-thrift
//!
//! The Thrift protocol for metaproxy, registered as `thrift`: binary (strict, or lax when
//! enabled) and compact protocols over framed, unframed (buffered) and header (THeader)
//! transports, detected per connection or fixed by the options.
//!
//! * Metadata: `method`, `service` (for multiplexed `Service:method` names), the sequence id as
//!   request id, the message type (call, one-way, reply, exception; a reply carrying a declared
//!   exception has status business exception), and THeader info headers as key/values.
//! * Untouched messages pass through byte for byte, without re-serializing anything.
//! * Mutations rewrite a THeader header block (fixing the sizes) and leave the payload uncopied.
//!   Framed and unframed transports cannot carry headers: there a mutation is counted in a debug
//!   log and the message goes through unchanged.
//! * Sequence-id rewrite for multiplexing: binary patches 4 bytes; compact rewrites the varint,
//!   whose length may change, and the frame length with it.
//! * Local replies are TApplicationExceptions in the request's own transport and protocol: no
//!   route is UNKNOWN_METHOD, a bad request PROTOCOL_ERROR, anything else INTERNAL_ERROR.
//! * Limits: maximum frame size, nesting depth and container size; no input can panic.
//!
//! THeader transforms (zlib and others) are refused with a clear error.

#![forbid(unsafe_code)]

mod codec;
mod factory;
pub mod protocol;
mod skip;
pub mod transport;

pub use codec::{app_error, ThriftCodec};
pub use factory::{ProtocolOption, ThriftCodecFactory, ThriftOptions, TransportOption};
