//! The [`Codec`] contract: how a protocol plugin turns bytes into [`Message`]s and back.

use std::borrow::Cow;
use std::fmt;

use bytes::BytesMut;

use crate::error::CodecError;
use crate::message::Message;
use crate::mutation::Mutation;
use crate::wire::WireBuf;

/// The largest frame any codec may accept: layouts keep offsets as `u32`, so a codec's
/// [`max_frame_size`](Codec::max_frame_size) must not exceed this (factories refuse larger
/// options at configuration time).
pub const FRAME_SIZE_LIMIT: usize = u32::MAX as usize;

/// The most a decoder reserves ahead for a frame it has not received whole (see
/// [`Codec::decode`]): 64 KiB. Larger frames grow the buffer as their bytes arrive.
pub const MAX_RESERVE: usize = 64 * 1024;

/// Why the proxy answers a request itself instead of forwarding it.
///
/// Codecs map each kind to the protocol's own error (Dubbo status, Thrift `TApplicationException`
/// type). The enum is non-exhaustive: map unknown kinds to the protocol's generic server error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplyKind {
    /// No route matched the request.
    RouteNotFound,
    /// The route names a cluster that does not exist.
    ClusterNotFound,
    /// The cluster has no healthy endpoint.
    NoHealthyUpstream,
    /// The upstream did not answer in time.
    Timeout,
    /// A rate limit or circuit breaker refused the request.
    OverLimit,
    /// The request could not be understood.
    BadRequest,
    /// A filter refused the request (access control).
    Denied,
    /// The upstream connection closed (or failed) with the request in flight.
    UpstreamReset,
    /// Anything else that went wrong inside the proxy.
    InternalError,
}

impl ReplyKind {
    /// A stable snake_case name, for logs and replies.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::RouteNotFound => "route_not_found",
            ReplyKind::ClusterNotFound => "cluster_not_found",
            ReplyKind::NoHealthyUpstream => "no_healthy_upstream",
            ReplyKind::Timeout => "timeout",
            ReplyKind::OverLimit => "over_limit",
            ReplyKind::BadRequest => "bad_request",
            ReplyKind::Denied => "denied",
            ReplyKind::UpstreamReset => "upstream_reset",
            ReplyKind::InternalError => "internal_error",
        }
    }

    /// Every kind, for tests that want to try them all.
    pub const ALL: [ReplyKind; 9] = [
        ReplyKind::RouteNotFound,
        ReplyKind::ClusterNotFound,
        ReplyKind::NoHealthyUpstream,
        ReplyKind::Timeout,
        ReplyKind::OverLimit,
        ReplyKind::BadRequest,
        ReplyKind::Denied,
        ReplyKind::UpstreamReset,
        ReplyKind::InternalError,
    ];
}

impl fmt::Display for ReplyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An answer the proxy (or a filter) sends in place of the upstream's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// Which error this is.
    pub kind: ReplyKind,
    /// A human-readable message, carried in the protocol's error text where it has one.
    pub message: Cow<'static, str>,
}

impl LocalReply {
    /// A reply of `kind` with `message`.
    pub fn new(kind: ReplyKind, message: impl Into<Cow<'static, str>>) -> Self {
        LocalReply { kind, message: message.into() }
    }
}

/// A protocol plugin's wire logic for one connection.
///
/// One codec instance serves one connection and may keep state there (a detected protocol
/// variant, a scratch buffer). The proxy configures one codec per listener through its
/// [`CodecFactory`](crate::CodecFactory) and clones it for every connection, downstream and
/// upstream, so cloning should be cheap (share large read-only options behind an `Arc`).
///
/// # Layout
///
/// [`Layout`](Codec::Layout) is the codec's own per-message type: where in the frame the parts it
/// may re-encode lie (an attachment map, a header block, the request id), and which wire variant
/// the message uses (a Thrift transport and protocol, a Dubbo serialization). Decode fills it in,
/// encode and the reply builders read it; nothing else looks inside. Keep it small and `Copy`-like:
/// it travels with every message.
///
/// # Decoding
///
/// [`decode`](Codec::decode) is called with the connection's read buffer each time bytes arrive,
/// and again after each message it returns, until it returns `Ok(None)`. It follows the contract of
/// `tokio_util::codec::Decoder::decode`:
///
/// * `Ok(Some(message))`: one whole message was removed from the front of `src` (with
///   `src.split_to(len).freeze()`, so that the message's frame and metadata share memory and
///   nothing is copied).
/// * `Ok(None)`: `src` holds no whole message yet. Nothing is consumed. When the frame length is
///   known, reserve what is missing up to [`MAX_RESERVE`]
///   (`src.reserve(missing.min(MAX_RESERVE))`): the buffer then grows with what arrives, not with
///   what a header declares, so a client that declares large frames and sends them slowly (or
///   never) holds only the memory of the bytes it sent. Never consume a partial frame.
/// * `Err(_)`: the stream is corrupt and the connection will be closed. A frame that declares a
///   length over [`max_frame_size`](Codec::max_frame_size) must be refused here as soon as the
///   length is read, before its body is buffered. When a request's frame was cut from the stream
///   and its header read but its body does not parse, return
///   [`CodecError::BadRequest`] carrying the frame, so that
///   [`malformed_reply`](Codec::malformed_reply) can answer it.
///
/// Decoding must not panic on any input: use checked arithmetic for lengths and a nesting limit
/// for recursive structures ([`ByteReader`](crate::ByteReader) helps).
///
/// # Encoding
///
/// [`encode`](Codec::encode) appends a message to a [`WireBuf`]. With an empty [`Mutation`] and an
/// unchanged request id, it pushes [`Message::frame`] itself: a reference count, not a copy. With a
/// mutation, it re-encodes only the part that changes (a header or attachment block, and any length
/// fields that cover it) and pushes slices of the frame for the rest. Keys the protocol cannot carry
/// are ignored (and should be logged at debug level).
///
/// Encoding and the reply builders may rely only on the message's frame, layout, message type and
/// request id: the proxy moves the key/values out of a request
/// ([`Message::take_metadata`]) before forwarding it.
///
/// # Request ids
///
/// To multiplex many downstream requests over one upstream connection the proxy gives each a new
/// id with [`rewrite_request_id`](Codec::rewrite_request_id) before encoding it, and writes the
/// original back into the response the same way.
///
/// # Replies
///
/// [`local_reply`](Codec::local_reply) and [`heartbeat_reply`](Codec::heartbeat_reply) build the
/// answer directly, as a message in the request's own wire variant (read from its layout), with
/// the request's id.
///
/// The crate's `testkit` feature checks all of the above against sample frames.
pub trait Codec: Clone + Send + Sync + 'static {
    /// The codec's per-message layout; see the trait docs.
    type Layout: Clone + fmt::Debug + PartialEq + Send + Sync + 'static;

    /// Decodes one message from the front of `src`; see the trait docs for the contract.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message<Self::Layout>>, CodecError>;

    /// Appends `message` to `dst`, applying `mutation` and the message's current request id.
    fn encode(
        &mut self,
        message: &Message<Self::Layout>,
        mutation: &Mutation,
        dst: &mut WireBuf,
    ) -> Result<(), CodecError>;

    /// The largest frame this codec accepts, in bytes (at most [`FRAME_SIZE_LIMIT`]).
    fn max_frame_size(&self) -> usize;

    /// The largest request id the protocol can carry (`u64::MAX` unless the wire field is narrower).
    fn request_id_limit(&self) -> u64 {
        u64::MAX
    }

    /// Gives `message` the request id `id` (written when it is next encoded) and returns the id it
    /// had. Fails when `id` exceeds [`request_id_limit`](Codec::request_id_limit).
    fn rewrite_request_id(&self, message: &mut Message<Self::Layout>, id: u64) -> Result<u64, CodecError> {
        let max = self.request_id_limit();
        if id > max {
            return Err(CodecError::RequestIdOutOfRange { id, max });
        }
        Ok(std::mem::replace(&mut message.metadata.request_id, id))
    }

    /// A protocol-native error response to `request`, carrying `reply`'s kind and message, in the
    /// request's own wire variant. The response has the request's id and message type
    /// [`Response`](crate::MessageType::Response) or [`Error`](crate::MessageType::Error), and a
    /// response status other than `Ok`.
    fn local_reply(
        &self,
        request: &Message<Self::Layout>,
        reply: &LocalReply,
    ) -> Result<Message<Self::Layout>, CodecError>;

    /// The answer to a [`Ping`](crate::MessageType::Ping): a [`Pong`](crate::MessageType::Pong)
    /// with the ping's id. Only called for pings.
    fn heartbeat_reply(&self, ping: &Message<Self::Layout>) -> Result<Message<Self::Layout>, CodecError>;

    /// After [`decode`](Codec::decode) failed with `error`: a protocol-native error reply to send
    /// before the connection closes. Everything needed comes from the error: a
    /// [`CodecError::BadRequest`] carries the request's frame, whose header parsed. Default: none,
    /// the connection just closes.
    fn malformed_reply(&self, error: &CodecError) -> Option<Message<Self::Layout>> {
        let _ = error;
        None
    }

    /// The proxy gives up on the incomplete frame at the front of `src` (it arrived too slowly,
    /// or would take more memory than the listener allows) for `reason`, a
    /// [`CodecError::Refused`]. Returns the error to answer it with: a [`CodecError::BadRequest`]
    /// naming the request when the bytes received so far say which request it is (a header), so
    /// that [`malformed_reply`](Codec::malformed_reply) answers it before the connection closes.
    /// Default: `reason` as it is (the connection closes without a reply).
    fn refuse_partial(&self, src: &[u8], reason: CodecError) -> CodecError {
        let _ = src;
        reason
    }

    /// Which of the codec's wire variants `message` is in, for codecs that accept several on one
    /// listener (Thrift: transport × protocol, detected per connection). The proxy sends requests
    /// of different variants on different upstream connections: a server speaks one variant and
    /// closes a connection on which another arrives, which would fail every request multiplexed on
    /// it. A number from 0 to 7 (higher bits are ignored). Default: 0 (one variant).
    fn wire_variant(&self, message: &Message<Self::Layout>) -> u8 {
        let _ = message;
        0
    }

    /// A message that tells a client that this server is going away and that it should send its next
    /// requests elsewhere, written to every client connection when the proxy starts to drain
    /// (Dubbo's readonly event). Default: none.
    fn goaway(&self) -> Option<Message<Self::Layout>> {
        None
    }

    /// The request an active health check sends to an upstream: the protocol's own heartbeat, a
    /// two-way [`Ping`](crate::MessageType::Ping) whose answer is a
    /// [`Pong`](crate::MessageType::Pong) with the same request id (Dubbo's heartbeat event). The
    /// checker gives it a request id with [`rewrite_request_id`](Codec::rewrite_request_id) and
    /// encodes it with an empty mutation. Default: none, and health checks of clusters served by
    /// this codec only open a TCP connection.
    fn health_check_request(&self) -> Option<Message<Self::Layout>> {
        None
    }
}
