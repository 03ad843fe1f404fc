//! The `local_ratelimit` filter: a token bucket shared by all connections of a listener, as in
//! Envoy's local rate limit. A request that finds the bucket empty gets a protocol-native
//! over-limit reply (Dubbo status 100, thread pool exhausted) instead of being forwarded.
//!
//! ```yaml
//! filters:
//!   - name: local_ratelimit
//!     config: { max_tokens: 100, tokens_per_fill: 100, fill_interval: 1s }
//! ```
//!
//! The bucket is a single atomic word updated with compare-and-swap: no lock, no blocking call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metaprotocol_core::{
    parse_config, ConfigError, ConfigValue, Filter, FilterAction, FilterFactory, FilterResult, LocalReply, ReplyKind,
    RequestContext,
};
use serde::Deserialize;

/// Largest bucket (tokens are kept in 24 bits of the atomic word).
pub const MAX_TOKENS: u32 = (1 << 24) - 1;
const TICK_BITS: u32 = 40;
const TICK_MASK: u64 = (1 << TICK_BITS) - 1;

/// The filter's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRateLimitConfig {
    /// Bucket size: the largest burst allowed.
    pub max_tokens: u32,
    /// Tokens added each interval (default: `max_tokens`).
    #[serde(default)]
    pub tokens_per_fill: Option<u32>,
    /// How often tokens are added, such as `1s` or `100ms`.
    pub fill_interval: String,
}

impl Default for LocalRateLimitConfig {
    fn default() -> Self {
        LocalRateLimitConfig { max_tokens: 0, tokens_per_fill: None, fill_interval: "1s".into() }
    }
}

/// A lock-free token bucket.
#[derive(Debug)]
pub struct TokenBucket {
    max_tokens: u32,
    tokens_per_fill: u32,
    fill_interval: Duration,
    start: Instant,
    // tokens << 40 | tick of the last refill
    state: AtomicU64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(max_tokens: u32, tokens_per_fill: u32, fill_interval: Duration) -> Self {
        TokenBucket {
            max_tokens,
            tokens_per_fill,
            fill_interval,
            start: Instant::now(),
            state: AtomicU64::new(u64::from(max_tokens) << TICK_BITS),
        }
    }

    /// Takes a token now; false when the bucket is empty.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    /// Takes a token at time `now` (for tests with a controlled clock).
    pub fn try_acquire_at(&self, now: Instant) -> bool {
        let interval = self.fill_interval.as_nanos().max(1);
        let tick = (now.saturating_duration_since(self.start).as_nanos() / interval) as u64 & TICK_MASK;
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let last = current & TICK_MASK;
            let mut tokens = current >> TICK_BITS;
            let elapsed = tick.saturating_sub(last);
            if elapsed > 0 {
                tokens = tokens
                    .saturating_add(elapsed.saturating_mul(u64::from(self.tokens_per_fill)))
                    .min(u64::from(self.max_tokens));
            }
            if tokens == 0 {
                return false;
            }
            let next = ((tokens - 1) << TICK_BITS) | tick.max(last);
            match self.state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

/// The filter.
#[derive(Debug)]
pub struct LocalRateLimit {
    bucket: TokenBucket,
}

impl LocalRateLimit {
    /// Builds the filter from its configuration.
    pub fn new(config: &LocalRateLimitConfig) -> Result<Self, ConfigError> {
        if config.max_tokens == 0 || config.max_tokens > MAX_TOKENS {
            return Err(ConfigError::invalid("max_tokens", format!("must be between 1 and {MAX_TOKENS}")));
        }
        let per_fill = config.tokens_per_fill.unwrap_or(config.max_tokens);
        if per_fill == 0 {
            return Err(ConfigError::invalid("tokens_per_fill", "must be at least 1"));
        }
        let interval = humantime::parse_duration(&config.fill_interval)
            .map_err(|e| ConfigError::invalid("fill_interval", format!("invalid duration: {e}")))?;
        if interval < Duration::from_millis(1) {
            return Err(ConfigError::invalid("fill_interval", "must be at least 1ms"));
        }
        Ok(LocalRateLimit { bucket: TokenBucket::new(config.max_tokens, per_fill, interval) })
    }
}

impl Filter for LocalRateLimit {
    fn name(&self) -> &str {
        "local_ratelimit"
    }

    fn on_request(&self, _ctx: &mut RequestContext) -> FilterResult {
        if self.bucket.try_acquire() {
            FilterResult::proceed()
        } else {
            FilterAction::Reply(LocalReply::new(ReplyKind::OverLimit, "local rate limit exceeded")).into()
        }
    }
}

/// Registers [`LocalRateLimit`] as `local_ratelimit`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalRateLimitFactory;

impl FilterFactory for LocalRateLimitFactory {
    fn name(&self) -> &'static str {
        "local_ratelimit"
    }

    fn configure(&self, config: &ConfigValue) -> Result<Arc<dyn Filter>, ConfigError> {
        if config.is_null() {
            return Err(ConfigError::invalid("config", "needs max_tokens and fill_interval"));
        }
        let config: LocalRateLimitConfig = parse_config(config)?;
        Ok(Arc::new(LocalRateLimit::new(&config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metaprotocol_core::{MessageType, Metadata};

    #[test]
    fn bucket_refills_per_interval_up_to_the_max() {
        let b = TokenBucket::new(3, 2, Duration::from_secs(1));
        let t0 = b.start;
        assert!((0..3).all(|_| b.try_acquire_at(t0)));
        assert!(!b.try_acquire_at(t0 + Duration::from_millis(999)));
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.try_acquire_at(t1) && b.try_acquire_at(t1));
        assert!(!b.try_acquire_at(t1));
        // A long pause refills to the max, not beyond.
        let t9 = t0 + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| b.try_acquire_at(t9)).count(), 3);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_bucket() {
        let b = Arc::new(TokenBucket::new(1000, 1, Duration::from_secs(3600)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..600).filter(|_| b.try_acquire()).count())
            })
            .collect();
        let taken: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(taken, 1000);
    }

    #[test]
    fn over_limit_requests_get_an_over_limit_reply() {
        let f = LocalRateLimitFactory
            .configure(&serde_json::json!({"max_tokens": 2, "tokens_per_fill": 1, "fill_interval": "1h"}))
            .unwrap();
        let mut outcomes = Vec::new();
        for id in 0..3 {
            let mut ctx = RequestContext::new(Metadata::new(MessageType::Request, id));
            outcomes.push(f.on_request(&mut ctx).into_ready().unwrap());
        }
        assert_eq!(outcomes[0], FilterAction::Continue);
        assert_eq!(outcomes[1], FilterAction::Continue);
        assert!(matches!(&outcomes[2], FilterAction::Reply(r) if r.kind == ReplyKind::OverLimit));
    }

    #[test]
    fn config_is_validated() {
        let bad = [
            serde_json::json!({"max_tokens": 0, "fill_interval": "1s"}),
            serde_json::json!({"max_tokens": 5, "fill_interval": "soon"}),
            serde_json::json!({"max_tokens": 5, "fill_interval": "10us"}),
            serde_json::json!({"max_tokens": 5, "fill_interval": "1s", "burst": 3}),
            serde_json::Value::Null,
        ];
        for b in bad {
            assert!(LocalRateLimitFactory.configure(&b).is_err(), "{b}");
        }
    }
}
