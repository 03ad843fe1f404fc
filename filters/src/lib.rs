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
//! [`register_builtin_filters`] registers them all.

#![forbid(unsafe_code)]

pub mod deny;
pub mod local_ratelimit;

use metaprotocol_core::{ConfigError, Registry};

/// Registers every built-in filter in `registry`.
pub fn register_builtin_filters(registry: &mut Registry) -> Result<(), ConfigError> {
    registry.register_filter(deny::DenyFactory)?;
    registry.register_filter(local_ratelimit::LocalRateLimitFactory)?;
    Ok(())
}
