//! The [`Cache`] port: ephemeral, rebuildable state.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// Ephemeral key/value state: sessions, rate-limit buckets, replay guards,
/// snapshots. Nothing here may be the only copy of anything.
///
/// # Contract
/// - A key set with a TTL reads as absent once the TTL has elapsed on the
///   adapter's clock; without a TTL it lives until deleted (or evicted).
/// - `set_if_absent` is atomic: of any number of concurrent callers for an absent
///   key exactly one gets `true`. An expired key counts as absent.
/// - `incr` is atomic; a missing key starts at 0; the TTL is applied only when the
///   call creates the key. It returns the new value.
/// - `delete` returns whether a live key was removed.
#[async_trait]
pub trait Cache: Send + Sync + Debug {
    /// Reads a live key.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Writes a key, replacing any value and TTL.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()>;
    /// Writes only if absent; returns whether it wrote.
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool>;
    /// Adds `delta` atomically and returns the new value.
    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64>;
    /// Removes a key.
    async fn delete(&self, key: &str) -> Result<bool>;
}
