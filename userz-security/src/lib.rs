//! # userz-security
//!
//! The security primitives of the Userz engine, all pure functions or small
//! state machines over the ports of `userz-core`:
//!
//! - ingest limits and streaming body caps ([`ingest`], [`body_limit`]);
//! - the injection pre-filter, Unicode handling and untrusted-report wrapping
//!   ([`prefilter`], [`unicode`], [`wrap`]) and the default classifiers
//!   ([`classifier`]);
//! - envelope encryption of org secrets ([`envelope`]), `sk_`/`pub_` keys
//!   ([`api_key`]), widget tokens ([`widget_auth`]) and dashboard sessions
//!   ([`session`]);
//! - inbound webhook verifiers per provider and the outbound signer
//!   ([`webhooks`]; each provider behind its own cargo feature);
//! - the diff guardrail evaluator ([`guardrail`]);
//! - HMAC-SHA256 signing and constant-time verification for every caller ([`mac`]).
//!
//! ```
//! use userz_security::guardrail::{Change, Guardrails};
//!
//! let refused = Guardrails::default().check(&[Change::file(".github/workflows/ci.yml")]);
//! assert_eq!(refused[0].rule, ".github/workflows/**");
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod api_key;
pub mod body_limit;
pub mod classifier;
pub(crate) mod encoding;
pub mod envelope;
pub mod guardrail;
pub mod ingest;
pub mod mac;
pub mod prefilter;
pub mod session;
pub mod unicode;
pub mod webhooks;
pub mod widget_auth;
pub mod wrap;

/// Plaintext secret types, defined in `userz-core` so that ports can carry them.
pub use userz_core::secret;
