//! # metaprotocol-dubbo
//!
//! The Dubbo protocol for metaproxy, registered as `dubbo`, over the crate's own zero-copy
//! [`hessian`] 2 reader.
//!
//! * Decoding reads the 16-byte header and, for Hessian 2 bodies, the request's service path,
//!   version, method, parameter types and attachments, or the response's status, body kind and
//!   attachments, into [`Metadata`](metaprotocol_core::Metadata) key/values that are ranges of
//!   the frame. Request keys: `interface`, `method`, `version`, `dubbo_version`,
//!   `parameter_types`, then every attachment (`group` among them). Response keys: `status`,
//!   `body_kind` (or `error_message`), then every attachment. Heartbeats carry `event`; other
//!   serializations carry `serialization` and are forwarded without their body being read. What
//!   encoding and replies need is kept in a typed [`DubboLayout`].
//! * Encoding with a mutation re-writes only the attachment map (untouched entries are copied
//!   as encoded), splices the bytes before it, and fixes the body length; a response gains
//!   attachments by moving to the "with attachments" body kind.
//! * Local replies are Dubbo error responses built from the request's frame and layout alone
//!   (the status of each reply kind is listed in [`reply`]), each with a readable message that
//!   names the operation; two-way heartbeats get a heartbeat response; a two-way request whose
//!   body does not parse gets status 40 (bad request).

#![forbid(unsafe_code)]

mod attachments;
pub mod body;
pub mod build;
mod codec;
mod factory;
pub mod header;
pub mod hessian;
pub mod layout;
pub mod reply;

pub use codec::DubboCodec;
pub use factory::{DubboCodecFactory, DubboOptions, DEFAULT_MAX_FRAME_SIZE, MAX_DEPTH_LIMIT};
pub use layout::{Attachments, Body, DubboLayout, RequestLayout, ResponseKind, ResponseLayout, Span};
