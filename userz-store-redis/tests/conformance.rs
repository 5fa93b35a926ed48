//! The Redis adapter against the shared cache conformance suite, on the real
//! server `scripts/services.sh` starts (`USERZ_REDIS_URL`). Each test works under
//! its own key prefix, so tests can share the server and run in parallel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use userz_core::ports::{Cache, RateLimiter};
use userz_store_redis::{RateDecision, RedisCache, RedisCacheBuilder, TokenBucketConfig};
use userz_testkit::conformance::{cache, rate_limit};
use userz_testkit::{ManualClock, TimeControl};

/// A cache under a fresh prefix, or `None` when the server is absent and
/// skipping is allowed (`USERZ_ALLOW_SKIP=1`).
async fn cache_under_fresh_prefix() -> Option<RedisCache> {
    let url = userz_testkit::services::require("USERZ_REDIS_URL")?;
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    Some(RedisCacheBuilder::new(url).with_prefix(prefix).build().await.unwrap_or_else(|e| panic!("connect: {e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_conformance() {
    let Some(cache) = cache_under_fresh_prefix().await else { return };
    // Redis measures TTLs with the server's clock: the suite sleeps in real time.
    cache::run_all(Arc::new(cache), TimeControl::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_namespaces_apart() {
    let (Some(a), Some(b)) = (cache_under_fresh_prefix().await, cache_under_fresh_prefix().await) else { return };
    a.set("shared-name", Bytes::from_static(b"from-a"), None).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b.get("shared-name").await.unwrap_or_else(|e| panic!("{e}")), None, "b cannot see a's key");
    assert!(b.set_if_absent("shared-name", Bytes::from_static(b"from-b"), None).await.unwrap_or(false));
    assert_eq!(a.get("shared-name").await.unwrap_or_default(), Some(Bytes::from_static(b"from-a")));
    assert!(a.server_key("shared-name").ends_with(":shared-name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_unavailable() {
    // Port 1 on loopback refuses connections: the builder reports it as retryable.
    let err = RedisCacheBuilder::new("redis://127.0.0.1:1").with_reconnect_retries(0).build().await.err();
    assert!(matches!(err, Some(userz_core::Error::Unavailable(_))), "got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_allows_a_burst_of_100_then_refills_10_per_second() {
    let Some(cache) = cache_under_fresh_prefix().await else { return };
    let clock = Arc::new(ManualClock::at_2026());
    let bucket = cache.token_bucket(TokenBucketConfig::default()).with_clock(clock.clone());
    for i in 0..100u32 {
        let d = bucket.take("sk_live_1").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d, RateDecision::Allowed { remaining: 99 - i }, "take {i}");
    }
    let limited = bucket.take("sk_live_1").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(limited, RateDecision::Limited { retry_after: Duration::from_millis(100) }, "one token takes 100 ms");
    assert!(bucket.take("sk_other").await.unwrap_or_else(|e| panic!("{e}")).is_allowed(), "buckets are per key");

    clock.advance(Duration::from_secs(1));
    for i in 0..10u32 {
        assert!(bucket.take("sk_live_1").await.unwrap_or_else(|e| panic!("{e}")).is_allowed(), "refilled token {i}");
    }
    assert!(!bucket.take("sk_live_1").await.unwrap_or_else(|e| panic!("{e}")).is_allowed(), "only 10 refilled");

    clock.advance(Duration::from_secs(3600));
    let d = bucket.take("sk_live_1").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d, RateDecision::Allowed { remaining: 99 }, "refill stops at capacity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_hands_out_each_token_once_under_concurrency() {
    let Some(cache) = cache_under_fresh_prefix().await else { return };
    let clock = Arc::new(ManualClock::at_2026());
    let bucket = cache.token_bucket(TokenBucketConfig::default()).with_clock(clock);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let bucket = bucket.clone();
        tasks.push(tokio::spawn(async move {
            let mut allowed = 0u32;
            for _ in 0..25 {
                if bucket.take("sk_busy").await.unwrap_or_else(|e| panic!("{e}")).is_allowed() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_refuses_a_cost_above_capacity() {
    let Some(cache) = cache_under_fresh_prefix().await else { return };
    let bucket = cache.token_bucket(TokenBucketConfig { capacity: 5, refill_per_sec: 1 });
    let err = bucket.take_n("k", 6).await.err();
    assert!(matches!(err, Some(userz_core::Error::Invalid(_))), "got {err:?}");
    let d = bucket.take_n("k", 5).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d, RateDecision::Allowed { remaining: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiter_conformance() {
    let Some(url) = userz_testkit::services::require("USERZ_REDIS_URL") else { return };
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let clock = Arc::new(ManualClock::at_2026());
    // Two connections under one prefix: the second handle shares the buckets.
    let mut handles = Vec::new();
    for _ in 0..2 {
        let cache = RedisCacheBuilder::new(url.clone())
            .with_prefix(prefix.clone())
            .build()
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let limiter: Arc<dyn RateLimiter> = Arc::new(cache.rate_limiter().with_clock(clock.clone()));
        handles.push(limiter);
    }
    let second = handles.pop();
    let first = handles.pop().unwrap_or_else(|| unreachable!("two handles were made"));
    rate_limit::run_all(first, second, clock).await;
}
