//! # userz-testkit
//!
//! What every adapter and engine test of the Userz workspace shares:
//! - [`conformance`]: one `pub async fn` per contract clause of each storage
//!   port, and a `run_all` per port that every adapter's `tests/conformance.rs`
//!   calls;
//! - [`spec`]: given/when/then specifications for deciders;
//! - [`doubles`]: scripted classifier, sandbox and VCS doubles that record calls;
//! - [`scenarios`]: end-to-end engine scenarios (auto PR, guardrail refusal,
//!   manual mode, crash and restart) written once and run on every store;
//! - [`clock`]: a manual clock and a bounded `eventually` helper;
//! - [`git_http`]: a real git smart-HTTP server (lighttpd + `git http-backend`)
//!   requiring a token.
//!
//! The provider fakes (GitHub, GitLab, Google, the scripted model server,
//! webhook deliveries) live in `userz-fakes`.

pub mod at_rest;
pub mod bins;
pub mod clock;
pub mod conformance;
pub mod crash;
pub mod doubles;
pub mod git_fixture;
pub mod git_http;
pub mod scenarios;
pub mod services;
pub mod spec;

pub use clock::{eventually, ManualClock, TimeControl};
