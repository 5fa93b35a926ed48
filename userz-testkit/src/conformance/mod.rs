//! Conformance suites: one `pub async fn` per behaviour and a `run_all` per port.
//!
//! Every adapter's `tests/conformance.rs` calls the `run_all` of each port it
//! implements. Checks use fresh stream, key and queue names, so one adapter
//! instance (even a shared server) can run them all. A check panics with a
//! message naming the contract clause it found broken.

pub mod blob;
pub mod cache;
pub mod event_store;
pub mod rate_limit;
pub mod read_model;
pub mod work_queue;

/// A unique name for one check's data.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
