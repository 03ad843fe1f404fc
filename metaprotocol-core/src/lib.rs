//! # metaprotocol-core
//!
//! The contracts of the MetaProtocol framework: what a protocol plugin implements and what the
//! proxy relies on.
//!
//! * [`Codec`]: decodes one message at a time from a connection's bytes into a [`Message`]
//!   ([`Metadata`] + the original frame + the codec's own typed [`Codec::Layout`]) and encodes it
//!   back, applying a [`Mutation`] by re-encoding only what changes and splicing the rest, without
//!   copying; builds protocol-native error replies and heartbeat answers from the request itself.
//! * [`CodecFactory`] and [`FilterFactory`]: plugins registered by name in the runtime's registry,
//!   with `serde` options. Registering a codec factory is where its type is erased.
//! * [`Filter`]: object-safe L7 hooks over a [`RequestContext`], which continue, reply locally with
//!   a [`LocalReply`], drop, or wait on a [`Pending`] future; [`FilterChain`] runs them in order,
//!   synchronously while every filter answers at once.
//! * [`RouteTable`]: pure, allocation-free matching of metadata to a destination, with mutations,
//!   mirroring, hash keys, timeouts and retries.
//! * [`testkit`] (feature `testkit`): the conformance kit every codec must pass.
//!
//! Nothing here does I/O; the `metaproxy-runtime` crate runs these contracts over sockets.

#![forbid(unsafe_code)]

mod codec;
mod error;
pub mod filter;
mod kv;
mod message;
mod metadata;
mod mutation;
mod reader;
mod registry;
pub mod route;
mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use codec::{Codec, LocalReply, ReplyKind, FRAME_SIZE_LIMIT, MAX_RESERVE};
pub use error::{CodecError, ConfigError};
pub use filter::{
    Attributes, ChainOutcome, ChainStep, Filter, FilterAction, FilterChain, FilterResult, Pending, RequestContext,
    Resume, RouteDecision,
};
pub use kv::{KeyValues, Text};
pub use message::Message;
pub use metadata::{MessageType, Metadata, Operation, ResponseStatus};
pub use mutation::{Mutation, MutationOp};
pub use reader::{check_frame_size, ByteReader};
pub use registry::{parse_config, CodecFactory, ConfigValue, FilterFactory};
pub use route::{Destination, Route, RouteTable};
pub use wire::WireBuf;

/// Re-exported so that plugin crates use the same `bytes` version as the core.
pub use bytes;
