//! The [`RateLimiter`] port: token buckets keyed by string.
//!
//! DESIGN §2: each org API key gets ~600 requests a minute as a bucket of 100
//! tokens refilled at 10 a second; an empty bucket answers `429 rate_limited`
//! with `Retry-After`. The shape of a bucket ([`RateLimit`]) travels with each
//! call, so one limiter (one Redis, one process map) serves every kind of limit;
//! callers keep kinds apart by namespacing their keys.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// The shape of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Most tokens a bucket holds (the burst).
    pub capacity: u32,
    /// Tokens added per minute, continuously (600 = one every 100 ms).
    pub refill_per_minute: u32,
}

impl RateLimit {
    /// The `sk_` key limit of DESIGN §2: capacity 100, refill 10/s (600/min).
    pub const API_KEY: RateLimit = RateLimit { capacity: 100, refill_per_minute: 600 };
    /// Default public (per client IP) widget submission limit: burst 20, 60/min.
    pub const PUBLIC_PER_IP: RateLimit = RateLimit { capacity: 20, refill_per_minute: 60 };
    /// Default private (per user token `sub`) submission limit: burst 30, 120/min.
    pub const PRIVATE_PER_USER: RateLimit = RateLimit { capacity: 30, refill_per_minute: 120 };
}

/// The answer of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead: the cost was taken.
    Allowed {
        /// Whole tokens left in the bucket.
        remaining: u32,
    },
    /// Refused: nothing was taken; answer `429 rate_limited` with this `Retry-After`.
    Limited {
        /// When enough tokens will have refilled for the same cost.
        retry_after: Duration,
    },
}

impl RateDecision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, RateDecision::Allowed { .. })
    }
}

/// What an adapter can do; the conformance suite reads these flags instead of
/// skipping checks silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimiterCapabilities {
    /// Buckets are shared by every limiter on the same backend (several
    /// processes or replicas draw from one bucket per key). An in-process
    /// limiter says `false`: each replica then enforces the limit on its own.
    pub shared: bool,
}

impl RateLimiterCapabilities {
    /// Buckets in this process only.
    pub const fn in_process() -> Self {
        Self { shared: false }
    }

    /// Buckets on a backend every handle shares.
    pub const fn shared() -> Self {
        Self { shared: true }
    }
}

/// Token buckets keyed by string.
///
/// # Contract
/// - An unknown key's bucket is full: `limit.capacity` tokens.
/// - `check(key, limit, cost)` takes `cost` tokens if the bucket holds them
///   (`Allowed` with the whole tokens left) and otherwise takes nothing
///   (`Limited` with the time until `cost` tokens will be there, rounded up
///   to the millisecond, never zero).
/// - Buckets refill continuously at `limit.refill_per_minute`, up to
///   `capacity`, measured by the adapter's injected [`Clock`](crate::Clock)
///   (so a manual clock drives refills in tests); a bucket's time never moves
///   backwards.
/// - Keys are independent: checks on one never change another.
/// - Checks are atomic: of any number of concurrent checks at a frozen clock
///   on one full bucket, exactly `capacity / cost` are allowed.
/// - `cost > limit.capacity` (which could never pass) and
///   `refill_per_minute == 0` (which would never refill) are `Error::Invalid`.
/// - Buckets are ephemeral (DESIGN G18): losing them only refills them.
#[async_trait]
pub trait RateLimiter: Send + Sync + Debug {
    /// Takes `cost` tokens from `key`'s bucket of shape `limit`, or none.
    async fn check(&self, key: &str, limit: RateLimit, cost: u32) -> Result<RateDecision>;

    /// What this adapter supports.
    fn capabilities(&self) -> RateLimiterCapabilities;
}

/// Checks every limiter applies before touching a bucket: the `Invalid` cases
/// of the [`RateLimiter`] contract.
///
/// # Errors
/// `Error::Invalid` naming the rule.
pub fn validate(limit: RateLimit, cost: u32) -> Result<()> {
    if cost > limit.capacity {
        return Err(crate::Error::Invalid(format!("cost {cost} exceeds bucket capacity {}", limit.capacity)));
    }
    if limit.refill_per_minute == 0 {
        return Err(crate::Error::Invalid("refill_per_minute must be positive".into()));
    }
    Ok(())
}
