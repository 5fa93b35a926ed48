//! The engine's in-process rate limiter against the shared conformance suite.

use std::sync::Arc;

use userz_engine::LocalRateLimiter;
use userz_testkit::conformance::rate_limit;
use userz_testkit::ManualClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiter_conformance() {
    let clock = Arc::new(ManualClock::at_2026());
    rate_limit::run_all(Arc::new(LocalRateLimiter::new(clock.clone())), None, clock).await;
}
