//! Token buckets for API keys, public submitters (per IP) and private
//! submitters (per user token `sub`).
//!
//! G18 puts rate-limit buckets in the ephemeral cache. This reference
//! implementation keeps them in process memory, which is what the cache holds
//! for them anyway: losing them on restart only refills every bucket. A
//! deployment running several HTTP replicas behind one address should give each
//! replica its share of the limit or put a shared limiter in front.
//!
//! Time comes from the injected [`Clock`], so tests drive refills by hand.
//! Integer arithmetic only: one token is `60_000` units and a bucket gains
//! `refill_per_minute` units per millisecond.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use userz_core::Clock;

const UNITS_PER_TOKEN: u64 = 60_000;
/// Above this many buckets, full (idle) buckets are dropped on insert.
const PRUNE_ABOVE: usize = 100_000;

/// Capacity and refill of one kind of bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketConfig {
    /// Burst size in requests.
    pub capacity: u32,
    /// Sustained rate in requests per minute.
    pub refill_per_minute: u32,
}

impl BucketConfig {
    /// The `sk_` key limit of DESIGN §2: capacity 100, refill 10/s (600/min).
    pub const API_KEY: BucketConfig = BucketConfig { capacity: 100, refill_per_minute: 600 };
    /// Default public (per client IP) submission limit: burst 20, 60/min.
    pub const PUBLIC_PER_IP: BucketConfig = BucketConfig { capacity: 20, refill_per_minute: 60 };
    /// Default private (per token `sub`) submission limit: burst 30, 120/min.
    pub const PRIVATE_PER_USER: BucketConfig = BucketConfig { capacity: 30, refill_per_minute: 120 };
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    units: u64,
    last_ms: i64,
}

/// A set of token buckets keyed by string (key prefix, IP, `app/sub`).
#[derive(Debug)]
pub struct RateLimiter {
    config: BucketConfig,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Buckets of `config` on `clock`.
    pub fn new(config: BucketConfig, clock: Arc<dyn Clock>) -> Self {
        Self { config, clock, buckets: Mutex::new(HashMap::new()) }
    }

    /// The configuration.
    pub fn config(&self) -> BucketConfig {
        self.config
    }

    /// Takes one token from `key`'s bucket. `Err(seconds)`: empty; retry after
    /// that many whole seconds (at least 1).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let capacity = u64::from(self.config.capacity) * UNITS_PER_TOKEN;
        let per_ms = u64::from(self.config.refill_per_minute);
        if capacity == 0 {
            return Err(60);
        }
        let now = self.clock.now().as_millis();
        let mut map = self.buckets.lock();
        if !map.contains_key(key) && map.len() >= PRUNE_ABOVE {
            map.retain(|_, b| {
                let elapsed = u64::try_from(now - b.last_ms).unwrap_or(0);
                b.units.saturating_add(elapsed.saturating_mul(per_ms)) < capacity
            });
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket { units: capacity, last_ms: now });
        let elapsed = u64::try_from(now - b.last_ms).unwrap_or(0);
        b.units = b.units.saturating_add(elapsed.saturating_mul(per_ms)).min(capacity);
        b.last_ms = b.last_ms.max(now);
        if b.units >= UNITS_PER_TOKEN {
            b.units -= UNITS_PER_TOKEN;
            Ok(())
        } else if per_ms == 0 {
            Err(3600)
        } else {
            let missing_ms = (UNITS_PER_TOKEN - b.units).div_ceil(per_ms);
            Err(missing_ms.div_ceil(1000).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;
    use userz_testkit::clock::ManualClock;

    #[test]
    fn burst_then_exact_refill() {
        let clock = Arc::new(ManualClock::at_2026());
        let rl = RateLimiter::new(BucketConfig::API_KEY, clock.clone());
        for _ in 0..100 {
            rl.check("k").unwrap();
        }
        assert_eq!(rl.check("k"), Err(1));
        clock.advance(Duration::from_secs(1));
        for _ in 0..10 {
            rl.check("k").unwrap();
        }
        assert!(rl.check("k").is_err());
        // Other keys have their own bucket.
        rl.check("other").unwrap();
    }

    #[test]
    fn slow_refill_reports_whole_seconds() {
        let clock = Arc::new(ManualClock::at_2026());
        let rl = RateLimiter::new(BucketConfig { capacity: 1, refill_per_minute: 6 }, clock.clone());
        rl.check("ip").unwrap();
        assert_eq!(rl.check("ip"), Err(10));
        clock.advance(Duration::from_secs(10));
        rl.check("ip").unwrap();
    }
}
