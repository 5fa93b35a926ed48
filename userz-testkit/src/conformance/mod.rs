//! Conformance suites: one `pub async fn` per behaviour and a `run_all` per port.
//!
//! Every adapter's `tests/conformance.rs` calls the `run_all` of each port it
//! implements (or, for the sandbox, VCS and model ports, the matching
//! `*_conformance_tests!` macro: one test per check). Storage checks use fresh
//! stream, key and queue names, so one adapter instance (even a shared server)
//! can run them all. A check panics with a message naming the contract clause
//! it found broken. What an adapter cannot do it states in the suite's
//! capability flags; a check a flag waives says so, never skips silently.

pub mod blob;
pub mod cache;
pub mod event_store;
pub mod model;
pub mod rate_limit;
pub mod read_model;
pub mod sandbox;
pub mod vcs;
pub mod work_queue;

/// A unique name for one check's data.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
