//! Rate limits of the API: per `sk_` key, per public submitter (App + client
//! IP) and per private submitter (App + user token `sub`).
//!
//! The buckets live behind the [`RateLimiter`] port
//! ([`ApiState::with_rate_limiter`](crate::ApiState::with_rate_limiter)); by
//! default they are the engine's in-process [`LocalRateLimiter`]
//! (`userz_engine::LocalRateLimiter`), which is what G18's ephemeral cache holds
//! for them anyway: losing them on restart only refills every bucket. A
//! deployment running several HTTP replicas behind one address passes a shared
//! limiter (Redis) or gives each replica its share of the limit.
//!
//! The three kinds share one limiter; their keys are namespaced
//! (`api_key:…`, `public_per_ip:…`, `private_per_user:…`), so a key prefix and
//! an IP can never draw from the same bucket.
//!
//! [`LocalRateLimiter`]: userz_engine::LocalRateLimiter

pub use userz_core::ports::rate_limit::{RateDecision, RateLimit, RateLimiter};

/// Capacity and refill of one kind of bucket (the port's [`RateLimit`]).
pub type BucketConfig = RateLimit;

/// `Retry-After` in whole seconds (at least 1) for a refused check.
pub(crate) fn retry_after_secs(retry_after: std::time::Duration) -> u64 {
    u64::try_from(retry_after.as_millis().div_ceil(1000)).unwrap_or(u64::MAX).max(1)
}
