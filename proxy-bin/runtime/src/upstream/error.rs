//! [`UpstreamError`]: why a request got no answer from the upstream.

use metaprotocol_core::route::RetryOn;
use metaprotocol_core::ReplyKind;

/// A failed upstream call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The connection could not be opened (refused, unreachable, or over the connect timeout).
    #[error("connect to {0} failed: {1}")]
    ConnectFailure(std::net::SocketAddr, String),
    /// The connection closed before the response arrived.
    #[error("upstream connection closed with the request in flight")]
    Reset,
    /// A circuit breaker refused the request.
    #[error("circuit breaker open: {0}")]
    Overflow(&'static str),
    /// The request could not be encoded for the upstream.
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// A try exceeded its per-try timeout.
    #[error("upstream try timed out")]
    PerTryTimeout,
}

impl UpstreamError {
    /// The retry condition this failure matches, if any.
    pub fn retry_on(&self) -> Option<RetryOn> {
        match self {
            UpstreamError::ConnectFailure(..) => Some(RetryOn::ConnectFailure),
            UpstreamError::Reset => Some(RetryOn::Reset),
            UpstreamError::PerTryTimeout => Some(RetryOn::PerTryTimeout),
            _ => None,
        }
    }

    /// The local reply that reports this failure to the client.
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            UpstreamError::Overflow(_) => ReplyKind::OverLimit,
            UpstreamError::PerTryTimeout => ReplyKind::Timeout,
            _ => ReplyKind::InternalError,
        }
    }
}
