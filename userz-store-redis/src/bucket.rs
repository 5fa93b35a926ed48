//! A token-bucket rate limiter as one atomic Redis script.
//!
//! DESIGN §2: each org API key gets ~600 requests a minute as a bucket of 100
//! tokens refilled at 10 a second; an empty bucket answers `429 rate_limited`
//! with `Retry-After`. The bucket is a hash `{tokens, ts}`; the script refills it
//! for the time elapsed since `ts`, takes the cost if it can, and otherwise says
//! how long until it could. Running it as one script makes concurrent takes from
//! many servers exact: no token is handed out twice.
//!
//! "Now" comes from the caller's [`Clock`] (not the server's `TIME`), so the
//! limiter can be driven by a manual clock in tests; a bucket's time never moves
//! backwards even if callers' clocks disagree slightly.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use userz_core::{Clock, Error, Result, SystemClock};

use crate::map_err;

/// KEYS[1] bucket; ARGV: capacity, refill per second, cost, now (ms).
/// Returns {allowed (0/1), retry-after ms, tokens left (rounded down)}.
const BUCKET_SCRIPT: &str = r"
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate / 1000)
  ts = now
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%d', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {allowed, retry, math.floor(tokens)}
";

/// The shape of a bucket.
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

/// The answer of one take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead.
    Allowed {
        /// Whole tokens left in the bucket.
        remaining: u32,
    },
    /// Refused: answer `429 rate_limited` with this `Retry-After`.
    Limited {
        /// When enough tokens will have refilled.
        retry_after: Duration,
    },
}

impl RateDecision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, RateDecision::Allowed { .. })
    }
}

/// A token-bucket rate limiter on Redis (see the module docs).
#[derive(Clone)]
pub struct TokenBucket {
    conn: ConnectionManager,
    prefix: String,
    config: TokenBucketConfig,
    clock: Arc<dyn Clock>,
    script: Arc<redis::Script>,
}

impl std::fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBucket")
            .field("prefix", &self.prefix)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenBucket {
    /// Buckets stored as `<prefix>bucket:<key>` (`prefix` is used verbatim).
    pub fn new(conn: ConnectionManager, prefix: String, config: TokenBucketConfig) -> Self {
        Self { conn, prefix, config, clock: Arc::new(SystemClock), script: Arc::new(redis::Script::new(BUCKET_SCRIPT)) }
    }

    /// The clock that says how much has refilled (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Takes one token from `key`'s bucket.
    pub async fn take(&self, key: &str) -> Result<RateDecision> {
        self.take_n(key, 1).await
    }

    /// Takes `cost` tokens at once, or none.
    ///
    /// Refuses (`Error::Invalid`) a cost above the capacity, which could never
    /// succeed, and a zero refill rate, which would never refill.
    pub async fn take_n(&self, key: &str, cost: u32) -> Result<RateDecision> {
        if cost > self.config.capacity {
            return Err(Error::Invalid(format!("cost {cost} exceeds bucket capacity {}", self.config.capacity)));
        }
        if self.config.refill_per_sec == 0 {
            return Err(Error::Invalid("refill_per_sec must be positive".into()));
        }
        let mut conn = self.conn.clone();
        let (allowed, retry_ms, remaining): (i64, i64, i64) = self
            .script
            .key(format!("{}bucket:{key}", self.prefix))
            .arg(self.config.capacity)
            .arg(self.config.refill_per_sec)
            .arg(cost)
            .arg(self.clock.now().as_millis())
            .invoke_async(&mut conn)
            .await
            .map_err(map_err)?;
        Ok(if allowed == 1 {
            RateDecision::Allowed { remaining: u32::try_from(remaining).unwrap_or(0) }
        } else {
            RateDecision::Limited { retry_after: Duration::from_millis(u64::try_from(retry_ms).unwrap_or(0)) }
        })
    }
}
