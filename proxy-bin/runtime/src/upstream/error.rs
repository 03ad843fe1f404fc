//! [`UpstreamError`]: why a try got no answer from the upstream, and how each failure is reported.
//!
//! This is the one boundary where failures become reply kinds ([`UpstreamError::reply_kind`]):
//! the request path never picks a kind itself.

use std::net::SocketAddr;
use std::sync::Arc;

use metaprotocol_core::route::RetryOn;
use metaprotocol_core::{CodecError, ReplyKind};

use super::breaker::Resource;

/// A failed upstream try.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The connection could not be opened (refused or unreachable).
    #[error("connect to {address} failed: {source}")]
    ConnectFailure {
        /// The endpoint.
        address: SocketAddr,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Opening the connection took longer than the cluster's `connect_timeout`.
    #[error("connect to {address} timed out")]
    ConnectTimeout {
        /// The endpoint.
        address: SocketAddr,
    },
    /// The connection closed (or failed) before the response arrived.
    #[error("upstream connection to {address} closed with the request in flight")]
    Reset {
        /// The endpoint.
        address: SocketAddr,
    },
    /// The upstream sent bytes that do not decode; the connection was closed.
    #[error("upstream {address} sent an undecodable response: {source}")]
    BadResponse {
        /// The endpoint.
        address: SocketAddr,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// The cluster (or subset) has no endpoint.
    #[error("cluster `{cluster}` has no endpoint for this request")]
    NoEndpoint {
        /// The cluster.
        cluster: Arc<str>,
    },
    /// A circuit breaker refused the request.
    #[error("cluster `{cluster}`: circuit breaker open ({})", .resource.limit_name())]
    Overflow {
        /// The cluster.
        cluster: Arc<str>,
        /// The exhausted resource.
        resource: Resource,
    },
    /// The request could not be encoded for the upstream.
    #[error("cannot encode the request: {source}")]
    Encode {
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// A try exceeded its per-try timeout.
    #[error("upstream try timed out")]
    PerTryTimeout,
    /// Every connection to the endpoint has too much queued (the upstream does not read).
    #[error("upstream {address} is not reading: too much is queued for it")]
    Backlog {
        /// The endpoint.
        address: SocketAddr,
    },
    /// The proxy closed the connection after the requests on it were answered (it was retired).
    #[error("upstream connection to {address} retired")]
    Retired {
        /// The endpoint.
        address: SocketAddr,
    },
}

impl UpstreamError {
    /// The retry condition this failure matches, if any.
    pub fn retry_on(&self) -> Option<RetryOn> {
        match self {
            UpstreamError::ConnectFailure { .. } | UpstreamError::ConnectTimeout { .. } => {
                Some(RetryOn::ConnectFailure)
            }
            UpstreamError::Reset { .. } | UpstreamError::BadResponse { .. } => Some(RetryOn::Reset),
            UpstreamError::PerTryTimeout => Some(RetryOn::PerTryTimeout),
            _ => None,
        }
    }

    /// The local reply that reports this failure to the client. A request whose every try failed
    /// to connect found no healthy upstream (Envoy's `UH`/`UF`), one whose connection reset was
    /// reset (`UC`).
    pub fn reply_kind(&self) -> ReplyKind {
        match self {
            UpstreamError::ConnectFailure { .. }
            | UpstreamError::ConnectTimeout { .. }
            | UpstreamError::NoEndpoint { .. } => ReplyKind::NoHealthyUpstream,
            UpstreamError::Reset { .. } | UpstreamError::BadResponse { .. } | UpstreamError::Retired { .. } => {
                ReplyKind::UpstreamReset
            }
            UpstreamError::Overflow { .. } | UpstreamError::Backlog { .. } => ReplyKind::OverLimit,
            UpstreamError::PerTryTimeout => ReplyKind::Timeout,
            UpstreamError::Encode { .. } => ReplyKind::BadRequest,
        }
    }
}
