//! # userz-store-redis
//!
//! The [`Cache`] port on Redis, for deployments that run more than one process
//! and want their ephemeral state (sessions, rate-limit buckets, replay guards,
//! queue hints) shared. Nothing stored here is the only copy of anything
//! (DESIGN G18): losing the Redis data loses nothing that cannot be rebuilt.
//!
//! - `set` / `set_if_absent` are single `SET … [NX] [PX ms]` commands;
//! - `incr` runs a small Lua script, so "create at 0, add, apply the TTL only
//!   when this call created the key" is one atomic step on the server;
//! - TTLs are measured by the Redis server's clock (not the engine's
//!   [`Clock`](userz_core::Clock)): tests of this adapter use real time;
//! - every key is namespaced by an optional prefix (`<prefix>:<key>`), so several
//!   deployments or tests can share one server;
//! - [`RedisRateLimiter`] is the `RateLimiter` port as one atomic script that
//!   returns "allowed" or a retry-after, shared by every replica;
//!   [`TokenBucket`] fixes one bucket shape (capacity 100, refill 10/s by default).
//!
//! One [`redis::aio::ConnectionManager`] is shared by every clone: it pipelines
//! concurrent commands over one connection and reconnects after a failure.
//!
//! ```no_run
//! # async fn demo() -> userz_core::Result<()> {
//! use std::time::Duration;
//! use userz_core::ports::Cache;
//! use userz_store_redis::RedisCacheBuilder;
//!
//! let cache = RedisCacheBuilder::from_env().with_prefix("userz").build().await?;
//! let first = cache.set_if_absent("replay:evt_1", "seen".into(), Some(Duration::from_secs(300))).await?;
//! assert!(first);
//! # Ok(()) }
//! ```

mod bucket;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use userz_core::ports::Cache;
use userz_core::{Error, Result};

pub use bucket::{RateDecision, RedisRateLimiter, TokenBucket, TokenBucketConfig};

/// The environment variable [`RedisCacheBuilder::from_env`] reads.
pub const URL_ENV: &str = "USERZ_REDIS_URL";

/// Used by [`RedisCacheBuilder::from_env`] when [`URL_ENV`] is unset.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// `INCRBY` that applies the TTL (ARGV[2] ms, 0 = none) only when it creates the
/// key. A Lua script runs atomically on the server, so no other client can
/// observe (or race) the key between the existence check and the increment.
const INCR_SCRIPT: &str = r"
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if created and ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return v
";

/// Builds a [`RedisCache`].
#[derive(Debug, Clone)]
pub struct RedisCacheBuilder {
    url: String,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    reconnect_retries: usize,
}

impl RedisCacheBuilder {
    /// A cache on the server at `url` (`redis://host:port/db`, `rediss://…` for TLS
    /// when the `redis` crate is built with a TLS feature).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: String::new(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            reconnect_retries: 3,
        }
    }

    /// Reads the URL from `USERZ_REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub fn from_env() -> Self {
        Self::new(std::env::var(URL_ENV).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_URL.into()))
    }

    /// Namespaces every key as `<prefix>:<key>` (default: no prefix).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one connection attempt may take (default 2 s).
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long a command may wait for its reply before failing with
    /// [`Error::Unavailable`] (default 5 s).
    pub fn with_response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// How many times a (re)connection is retried, with exponential backoff
    /// capped at 1 s, before a call fails (default 3).
    pub fn with_reconnect_retries(mut self, n: usize) -> Self {
        self.reconnect_retries = n;
        self
    }

    /// Connects (failing with [`Error::Unavailable`] when the server cannot be
    /// reached) and prepares the scripts.
    pub async fn build(self) -> Result<RedisCache> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| Error::Invalid(format!("redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(self.reconnect_retries)
            .set_max_delay(1_000);
        let conn = ConnectionManager::new_with_config(client, config).await.map_err(map_err)?;
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}:", self.prefix) };
        Ok(RedisCache { inner: Arc::new(Inner { conn, prefix, incr: redis::Script::new(INCR_SCRIPT) }) })
    }
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    incr: redis::Script,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection manager's Debug would print the server address with any
        // password in the URL: leave it out.
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// The Redis adapter of the [`Cache`] port. Cloning shares the connection.
#[derive(Debug, Clone)]
pub struct RedisCache {
    inner: Arc<Inner>,
}

impl RedisCache {
    /// The key as stored on the server.
    pub fn server_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    /// A handle on the shared connection (cheap to clone), for helpers such as
    /// [`TokenBucket`].
    pub fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// A rate limiter whose buckets live under this cache's prefix.
    pub fn token_bucket(&self, config: TokenBucketConfig) -> TokenBucket {
        TokenBucket::new(self.connection(), self.inner.prefix.clone(), config)
    }

    /// The [`RateLimiter`](userz_core::ports::RateLimiter) port with buckets
    /// under this cache's prefix.
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter::new(self.connection(), self.inner.prefix.clone())
    }
}

/// Milliseconds for `PX`: Redis refuses 0, so a sub-millisecond TTL becomes 1 ms.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

pub(crate) fn map_err(e: redis::RedisError) -> Error {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        Error::Unavailable(format!("redis: {e}"))
    } else if e.kind() == redis::ErrorKind::TypeError {
        Error::Corrupt(format!("redis: {e}"))
    } else {
        Error::Invalid(format!("redis: {e}"))
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut conn = self.inner.conn.clone();
        let v: Option<Vec<u8>> =
            redis::cmd("GET").arg(self.server_key(key)).query_async(&mut conn).await.map_err(map_err)?;
        Ok(v.map(Bytes::from))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let mut conn = self.inner.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.server_key(key)).arg(value.as_ref());
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        cmd.query_async::<()>(&mut conn).await.map_err(map_err)
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let mut conn = self.inner.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.server_key(key)).arg(value.as_ref()).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl));
        }
        // `OK` when it wrote, nil when the key was live.
        let reply: Option<String> = cmd.query_async(&mut conn).await.map_err(map_err)?;
        Ok(reply.is_some())
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let mut conn = self.inner.conn.clone();
        let ttl = ttl.map_or(0, ttl_ms);
        self.inner
            .incr
            .key(self.server_key(key))
            .arg(delta)
            .arg(ttl)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(map_err)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let mut conn = self.inner.conn.clone();
        let n: i64 = redis::cmd("DEL").arg(self.server_key(key)).query_async(&mut conn).await.map_err(map_err)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_one_millisecond() {
        assert_eq!(ttl_ms(Duration::from_micros(10)), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1500)), 1500);
    }

    #[test]
    fn builder_reads_prefix_and_url() {
        let b = RedisCacheBuilder::new("redis://127.0.0.1:1").with_prefix("t");
        assert_eq!(b.prefix, "t");
        assert_eq!(b.url, "redis://127.0.0.1:1");
    }
}
