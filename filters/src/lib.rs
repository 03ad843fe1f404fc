//! # metaprotocol-filters
//!
//! Built-in L7 filters, each a [`FilterFactory`](metaprotocol_core::FilterFactory) registered by
//! name:
//!
//! * [`local_ratelimit`]: a token bucket shared by a listener's connections; requests over the
//!   limit get a protocol-native over-limit reply. Never blocks: the bucket is one atomic word.
//! * [`deny`]: refuses requests whose metadata matches a rule (the route matchers' syntax), with a
//!   protocol-native denial.
//!
//! [`builtin_filters`] lists them all, for a registry to register.

#![forbid(unsafe_code)]

pub mod deny;
pub mod local_ratelimit;

use std::sync::Arc;

use metaprotocol_core::FilterFactory;

/// Every built-in filter's factory.
pub fn builtin_filters() -> Vec<Arc<dyn FilterFactory>> {
    vec![Arc::new(deny::DenyFactory), Arc::new(local_ratelimit::LocalRateLimitFactory)]
}
