//! [`RateLimiter`] conformance, driven by a manual clock (every adapter takes
//! the engine's clock for its refills).
//!
//! Every check uses fresh keys, so one limiter (even a shared Redis) can run
//! them all.

use std::sync::Arc;
use std::time::Duration;

use userz_core::ports::{RateDecision, RateLimit, RateLimiter};

use super::unique;
use crate::ManualClock;

const API_KEY: RateLimit = RateLimit::API_KEY;

async fn take(limiter: &dyn RateLimiter, key: &str, limit: RateLimit, cost: u32) -> RateDecision {
    limiter.check(key, limit, cost).await.unwrap_or_else(|e| panic!("check {key}: {e}"))
}

/// Runs every check. `clock` is the clock the limiter reads. `second` is
/// another limiter on the same backend; it is required when the limiter says
/// its buckets are shared, and its check is skipped (with a note) otherwise.
pub async fn run_all(limiter: Arc<dyn RateLimiter>, second: Option<Arc<dyn RateLimiter>>, clock: Arc<ManualClock>) {
    burst_then_refill(limiter.as_ref(), &clock).await;
    slow_refill_retry_after(limiter.as_ref(), &clock).await;
    keys_are_independent(limiter.as_ref()).await;
    cost_is_all_or_nothing(limiter.as_ref(), &clock).await;
    unusable_limits_are_invalid(limiter.as_ref()).await;
    each_token_once_under_concurrency(limiter.clone()).await;
    if limiter.capabilities().shared {
        let second = second.unwrap_or_else(|| panic!("a shared limiter must be checked with a second handle"));
        handles_share_buckets(limiter.as_ref(), second.as_ref()).await;
    } else {
        eprintln!("rate limiter conformance: buckets are per process, so no shared-bucket check");
    }
}

/// DESIGN §2: a full bucket of 100, then exactly 10 a second, never above capacity.
pub async fn burst_then_refill(limiter: &dyn RateLimiter, clock: &ManualClock) {
    let k = unique("sk");
    for i in 0..100u32 {
        assert_eq!(take(limiter, &k, API_KEY, 1).await, RateDecision::Allowed { remaining: 99 - i }, "take {i}");
    }
    let limited = take(limiter, &k, API_KEY, 1).await;
    assert_eq!(limited, RateDecision::Limited { retry_after: Duration::from_millis(100) }, "one token takes 100 ms");
    clock.advance(Duration::from_secs(1));
    for i in 0..10u32 {
        assert!(take(limiter, &k, API_KEY, 1).await.is_allowed(), "refilled token {i}");
    }
    assert!(!take(limiter, &k, API_KEY, 1).await.is_allowed(), "only 10 refilled");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        take(limiter, &k, API_KEY, 1).await,
        RateDecision::Allowed { remaining: 99 },
        "refill stops at capacity"
    );
}

/// A slow bucket says how long until the next token.
pub async fn slow_refill_retry_after(limiter: &dyn RateLimiter, clock: &ManualClock) {
    let k = unique("ip");
    let slow = RateLimit { capacity: 1, refill_per_minute: 6 };
    assert!(take(limiter, &k, slow, 1).await.is_allowed());
    assert_eq!(take(limiter, &k, slow, 1).await, RateDecision::Limited { retry_after: Duration::from_secs(10) });
    clock.advance(Duration::from_secs(4));
    assert_eq!(
        take(limiter, &k, slow, 1).await,
        RateDecision::Limited { retry_after: Duration::from_secs(6) },
        "a refused check takes nothing, and the wait shrinks as time passes"
    );
    clock.advance(Duration::from_secs(6));
    assert!(take(limiter, &k, slow, 1).await.is_allowed(), "refilled after 10 s");
}

/// Emptying one key's bucket leaves every other key's full.
pub async fn keys_are_independent(limiter: &dyn RateLimiter) {
    let (a, b) = (unique("a"), unique("b"));
    let tiny = RateLimit { capacity: 2, refill_per_minute: 1 };
    assert!(take(limiter, &a, tiny, 2).await.is_allowed());
    assert!(!take(limiter, &a, tiny, 1).await.is_allowed());
    assert_eq!(take(limiter, &b, tiny, 1).await, RateDecision::Allowed { remaining: 1 }, "b's bucket is its own");
}

/// A cost is taken whole or not at all.
pub async fn cost_is_all_or_nothing(limiter: &dyn RateLimiter, clock: &ManualClock) {
    let k = unique("cost");
    let five = RateLimit { capacity: 5, refill_per_minute: 60 };
    assert_eq!(take(limiter, &k, five, 3).await, RateDecision::Allowed { remaining: 2 });
    assert_eq!(
        take(limiter, &k, five, 3).await,
        RateDecision::Limited { retry_after: Duration::from_secs(1) },
        "one token short: one second at 60/min"
    );
    assert_eq!(take(limiter, &k, five, 2).await, RateDecision::Allowed { remaining: 0 }, "the refusal took nothing");
    clock.advance(Duration::from_secs(5));
    assert_eq!(take(limiter, &k, five, 5).await, RateDecision::Allowed { remaining: 0 }, "a cost of the capacity");
}

/// A cost above the capacity and a zero refill are `Invalid`.
pub async fn unusable_limits_are_invalid(limiter: &dyn RateLimiter) {
    let k = unique("bad");
    let five = RateLimit { capacity: 5, refill_per_minute: 60 };
    let err = limiter.check(&k, five, 6).await.err();
    assert!(matches!(err, Some(userz_core::Error::Invalid(_))), "cost above capacity: {err:?}");
    let never = RateLimit { capacity: 5, refill_per_minute: 0 };
    let err = limiter.check(&k, never, 1).await.err();
    assert!(matches!(err, Some(userz_core::Error::Invalid(_))), "zero refill: {err:?}");
    let empty = RateLimit { capacity: 0, refill_per_minute: 60 };
    let err = limiter.check(&k, empty, 1).await.err();
    assert!(matches!(err, Some(userz_core::Error::Invalid(_))), "zero capacity: {err:?}");
}

/// 8 tasks × 25 takes at a frozen clock get exactly the 100 tokens.
pub async fn each_token_once_under_concurrency(limiter: Arc<dyn RateLimiter>) {
    let k = unique("busy");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let limiter = limiter.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0u32;
            for _ in 0..25 {
                if take(limiter.as_ref(), &k, API_KEY, 1).await.is_allowed() {
                    allowed += 1;
                }
            }
            allowed
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(total, 100, "200 takes at a frozen clock get exactly the 100 tokens");
}

/// Two handles on a shared backend draw from one bucket per key.
pub async fn handles_share_buckets(limiter: &dyn RateLimiter, second: &dyn RateLimiter) {
    let k = unique("shared");
    let two = RateLimit { capacity: 2, refill_per_minute: 1 };
    assert!(take(limiter, &k, two, 1).await.is_allowed());
    assert_eq!(
        take(second, &k, two, 1).await,
        RateDecision::Allowed { remaining: 0 },
        "the second sees the first's take"
    );
    assert!(!take(limiter, &k, two, 1).await.is_allowed(), "and the first sees the second's");
}
