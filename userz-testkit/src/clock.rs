//! A clock tests drive by hand.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use userz_core::{Clock, Timestamp};

/// A [`Clock`] that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// Starts at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { now: AtomicI64::new(start.as_millis()) }
    }

    /// Starts at 2026-01-01T00:00:00Z.
    pub fn at_2026() -> Self {
        Self::new(Timestamp::from_millis(1_767_225_600_000))
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the time (never backwards).
    pub fn set(&self, to: Timestamp) {
        self.now.fetch_max(to.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.load(Ordering::SeqCst))
    }
}

/// How a conformance check moves time for the adapter under test.
#[derive(Debug, Clone)]
pub enum TimeControl {
    /// The adapter reads this manual clock: checks advance it.
    Manual(std::sync::Arc<ManualClock>),
    /// The adapter uses real time (e.g. server-side TTLs): checks sleep.
    Real,
}

impl TimeControl {
    /// Lets `by` pass for the adapter.
    pub async fn advance(&self, by: Duration) {
        match self {
            TimeControl::Manual(c) => c.advance(by),
            TimeControl::Real => tokio::time::sleep(by).await,
        }
    }

    /// A duration suitable for TTL/lease checks: short for real time.
    pub fn unit(&self) -> Duration {
        match self {
            TimeControl::Manual(_) => Duration::from_secs(60),
            TimeControl::Real => Duration::from_millis(1200),
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `limit` of real time.
///
/// # Panics
/// When the limit passes, naming `what` was awaited.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
