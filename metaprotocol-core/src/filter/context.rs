//! [`RequestContext`]: everything filters and the router share about one request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::codec::LocalReply;
use crate::filter::Attributes;
use crate::metadata::Metadata;
use crate::mutation::Mutation;
use crate::route::{Destination, Route};

/// Where a request goes: the matched route and the destination picked from it.
#[derive(Clone, Debug)]
pub struct RouteDecision {
    /// The route that matched (its timeout, retries, mutations and mirror apply).
    pub route: Arc<Route>,
    /// The cluster and optional subset to send to.
    pub destination: Destination,
}

/// The state of one request as it passes the filter chain and the router.
#[derive(Debug)]
pub struct RequestContext {
    /// The request's metadata. Filters may change it; changes affect routing, not the wire (use
    /// `request_mutation` for that).
    pub request: Metadata,
    /// Key/value changes written into the request when it is forwarded.
    pub request_mutation: Mutation,
    /// The response's metadata, once one arrived: set for response filters (boxed, so that a
    /// request's context stays small when no filter looks at responses).
    pub response: Option<Box<Metadata>>,
    /// Key/value changes written into the response before it reaches the client.
    pub response_mutation: Mutation,
    /// The routing decision. A filter may set it to bypass the route table; otherwise the router
    /// fills it in.
    pub route: Option<RouteDecision>,
    /// The local reply sent instead of an upstream response, if any.
    pub local_reply: Option<LocalReply>,
    /// Typed values left by filters for later filters.
    pub attributes: Attributes,
    /// The client's address, when known.
    pub downstream_addr: Option<SocketAddr>,
    /// When the request was decoded.
    pub started_at: Instant,
}

impl RequestContext {
    /// A context for a freshly decoded request.
    pub fn new(request: Metadata) -> Self {
        RequestContext::starting_at(request, Instant::now())
    }

    /// A context for a request decoded at `started_at` (a proxy reads the clock once per batch of
    /// requests, not once per request).
    pub fn starting_at(request: Metadata, started_at: Instant) -> Self {
        RequestContext {
            request,
            request_mutation: Mutation::new(),
            response: None,
            response_mutation: Mutation::new(),
            route: None,
            local_reply: None,
            attributes: Attributes::new(),
            downstream_addr: None,
            started_at,
        }
    }

    /// Sets the client address.
    #[must_use]
    pub fn with_downstream(mut self, addr: SocketAddr) -> Self {
        self.downstream_addr = Some(addr);
        self
    }
}
