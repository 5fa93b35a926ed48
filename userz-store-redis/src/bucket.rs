//! The [`RateLimiter`] port as one atomic Redis script: [`RedisRateLimiter`],
//! and [`TokenBucket`], one fixed bucket shape over it.
//!
//! DESIGN §2: each org API key gets ~600 requests a minute as a bucket of 100
//! tokens refilled at 10 a second; an empty bucket answers `429 rate_limited`
//! with `Retry-After`. The bucket is a hash `{units, ts}`; the script refills it
//! for the time elapsed since `ts`, takes the cost if it can, and otherwise says
//! how long until it could. Running it as one script makes concurrent takes from
//! many servers exact: no token is handed out twice.
//!
//! "Now" comes from the caller's [`Clock`] (not the server's `TIME`), so the
//! limiter can be driven by a manual clock in tests; a bucket's time never moves
//! backwards even if callers' clocks disagree slightly.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use userz_core::ports::rate_limit::{self, RateLimit, RateLimiter, RateLimiterCapabilities};
use userz_core::{Clock, Result, SystemClock};

pub use userz_core::ports::RateDecision;

use crate::map_err;

/// KEYS[1] bucket; ARGV: capacity, refill per minute, cost, now (ms).
/// Returns {allowed (0/1), retry-after ms, tokens left (rounded down)}.
///
/// Integer arithmetic only, as in the engine's in-process limiter: one token is
/// 60 000 units and a bucket gains `refill per minute` units per millisecond,
/// so every value is a whole number (exact in Lua's doubles) and the two
/// limiters give the same answers.
const BUCKET_SCRIPT: &str = r"
local unit = 60000
local capacity = tonumber(ARGV[1]) * unit
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3]) * unit
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'units', 'ts')
local units = tonumber(state[1])
local ts = tonumber(state[2])
if units == nil or ts == nil then
  units = capacity
  ts = now
end
if now > ts then
  units = units + (now - ts) * rate
  ts = now
end
units = math.min(capacity, units)
local allowed = 0
local retry = 0
if units >= cost then
  units = units - cost
  allowed = 1
else
  retry = math.max(1, math.ceil((cost - units) / rate))
end
redis.call('HSET', KEYS[1], 'units', string.format('%d', units), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return {allowed, retry, math.floor(units / unit)}
";

/// The [`RateLimiter`] port on Redis (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: ConnectionManager,
    prefix: String,
    clock: Arc<dyn Clock>,
    script: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Buckets stored as `<prefix>bucket:<key>` (`prefix` is used verbatim).
    pub fn new(conn: ConnectionManager, prefix: String) -> Self {
        Self { conn, prefix, clock: Arc::new(SystemClock), script: Arc::new(redis::Script::new(BUCKET_SCRIPT)) }
    }

    /// The clock that says how much has refilled (default: the system clock).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, limit: RateLimit, cost: u32) -> Result<RateDecision> {
        rate_limit::validate(limit, cost)?;
        let mut conn = self.conn.clone();
        let (allowed, retry_ms, remaining): (i64, i64, i64) = self
            .script
            .key(format!("{}bucket:{key}", self.prefix))
            .arg(limit.capacity)
            .arg(limit.refill_per_minute)
            .arg(cost)
            .arg(self.clock.now().as_millis())
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(if allowed == 1 {
            RateDecision::Allowed { remaining: u32::try_from(remaining).unwrap_or(0) }
        } else {
            RateDecision::Limited { retry_after: Duration::from_millis(u64::try_from(retry_ms).unwrap_or(1)) }
        })
    }

    fn capabilities(&self) -> RateLimiterCapabilities {
        RateLimiterCapabilities::shared()
    }
}

/// The shape of a bucket, per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucketConfig {
    /// Most tokens a bucket holds (the burst).
    pub capacity: u32,
    /// Tokens added per second.
    pub refill_per_sec: u32,
}

impl Default for TokenBucketConfig {
    /// The org API key limit: capacity 100, refill 10/s (~600 requests a minute).
    fn default() -> Self {
        Self { capacity: 100, refill_per_sec: 10 }
    }
}

impl From<TokenBucketConfig> for RateLimit {
    fn from(c: TokenBucketConfig) -> Self {
        RateLimit { capacity: c.capacity, refill_per_minute: c.refill_per_sec.saturating_mul(60) }
    }
}

/// One bucket shape on a [`RedisRateLimiter`]: `take(key)` instead of
/// `check(key, limit, 1)`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limiter: RedisRateLimiter,
    config: TokenBucketConfig,
}

impl TokenBucket {
    /// Buckets stored as `<prefix>bucket:<key>` (`prefix` is used verbatim).
    pub fn new(conn: ConnectionManager, prefix: String, config: TokenBucketConfig) -> Self {
        Self { limiter: RedisRateLimiter::new(conn, prefix), config }
    }

    /// The clock that says how much has refilled (default: the system clock).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.limiter = self.limiter.with_clock(clock);
        self
    }

    /// Takes one token from `key`'s bucket.
    ///
    /// # Errors
    /// As [`take_n`](Self::take_n).
    pub async fn take(&self, key: &str) -> Result<RateDecision> {
        self.take_n(key, 1).await
    }

    /// Takes `cost` tokens at once, or none.
    ///
    /// # Errors
    /// `Error::Invalid` for a cost above the capacity, which could never
    /// succeed, and a zero refill rate, which would never refill;
    /// `Error::Unavailable` when Redis is unreachable.
    pub async fn take_n(&self, key: &str, cost: u32) -> Result<RateDecision> {
        self.limiter.check(key, self.config.into(), cost).await
    }
}
