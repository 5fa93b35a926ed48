//! [`LocalRateLimiter`]: the [`RateLimiter`] port in process memory.
//!
//! G18 puts rate-limit buckets in the ephemeral cache. This limiter keeps them
//! in process memory, which is what the cache holds for them anyway: losing them
//! on restart only refills every bucket. It is the default of the HTTP layer;
//! a deployment running several replicas behind one address gives each replica
//! its share of the limit or uses a shared limiter (`userz-store-redis`).
//!
//! Time comes from the injected [`Clock`], so tests drive refills by hand.
//! Integer arithmetic only: one token is `60_000` units and a bucket gains
//! `refill_per_minute` units per millisecond.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use userz_core::ports::rate_limit::{self, RateDecision, RateLimit, RateLimiter, RateLimiterCapabilities};
use userz_core::{Clock, Result};

const UNITS_PER_TOKEN: u64 = 60_000;
/// Above this many buckets, full (idle) buckets are dropped on insert.
const PRUNE_ABOVE: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    last_ms: i64,
    limit: RateLimit,
}

impl Bucket {
    fn capacity_units(limit: RateLimit) -> u64 {
        u64::from(limit.capacity) * UNITS_PER_TOKEN
    }

    /// Units after refilling up to `now` at `limit`'s rate.
    fn refilled(&self, now: i64, limit: RateLimit) -> u64 {
        let elapsed = u64::try_from(now - self.last_ms).unwrap_or(0);
        self.units
            .saturating_add(elapsed.saturating_mul(u64::from(limit.refill_per_minute)))
            .min(Self::capacity_units(limit))
    }
}

/// Token buckets in process memory (see the module docs).
#[derive(Debug)]
pub struct LocalRateLimiter {
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl LocalRateLimiter {
    /// Empty (all full) buckets on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, buckets: Mutex::new(HashMap::new()) }
    }

    fn take(&self, key: &str, limit: RateLimit, cost: u32) -> RateDecision {
        let capacity = Bucket::capacity_units(limit);
        let per_ms = u64::from(limit.refill_per_minute);
        let cost_units = u64::from(cost) * UNITS_PER_TOKEN;
        let now = self.clock.now().as_millis();
        let mut map = self.buckets.lock();
        if !map.contains_key(key) && map.len() >= PRUNE_ABOVE {
            map.retain(|_, b| b.refilled(now, b.limit) < Bucket::capacity_units(b.limit));
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket { units: capacity, last_ms: now, limit });
        b.units = b.refilled(now, limit);
        b.last_ms = b.last_ms.max(now);
        b.limit = limit;
        if b.units >= cost_units {
            b.units -= cost_units;
            RateDecision::Allowed { remaining: u32::try_from(b.units / UNITS_PER_TOKEN).unwrap_or(u32::MAX) }
        } else {
            let missing_ms = (cost_units - b.units).div_ceil(per_ms);
            RateDecision::Limited { retry_after: Duration::from_millis(missing_ms.max(1)) }
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, limit: RateLimit, cost: u32) -> Result<RateDecision> {
        rate_limit::validate(limit, cost)?;
        Ok(self.take(key, limit, cost))
    }

    fn capabilities(&self) -> RateLimiterCapabilities {
        RateLimiterCapabilities::in_process()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use userz_testkit::clock::ManualClock;

    fn secs(d: RateDecision) -> Option<u64> {
        match d {
            RateDecision::Allowed { .. } => None,
            RateDecision::Limited { retry_after } => Some(retry_after.as_millis().div_ceil(1000) as u64),
        }
    }

    #[tokio::test]
    async fn burst_then_exact_refill() {
        let clock = Arc::new(ManualClock::at_2026());
        let rl = LocalRateLimiter::new(clock.clone());
        let l = RateLimit::API_KEY;
        for _ in 0..100 {
            assert!(rl.check("k", l, 1).await.unwrap().is_allowed());
        }
        assert_eq!(secs(rl.check("k", l, 1).await.unwrap()), Some(1));
        clock.advance(Duration::from_secs(1));
        for _ in 0..10 {
            assert!(rl.check("k", l, 1).await.unwrap().is_allowed());
        }
        assert!(!rl.check("k", l, 1).await.unwrap().is_allowed());
        // Other keys have their own bucket.
        assert!(rl.check("other", l, 1).await.unwrap().is_allowed());
    }

    #[tokio::test]
    async fn slow_refill_reports_whole_seconds() {
        let clock = Arc::new(ManualClock::at_2026());
        let rl = LocalRateLimiter::new(clock.clone());
        let l = RateLimit { capacity: 1, refill_per_minute: 6 };
        assert!(rl.check("ip", l, 1).await.unwrap().is_allowed());
        assert_eq!(secs(rl.check("ip", l, 1).await.unwrap()), Some(10));
        clock.advance(Duration::from_secs(10));
        assert!(rl.check("ip", l, 1).await.unwrap().is_allowed());
    }
}
