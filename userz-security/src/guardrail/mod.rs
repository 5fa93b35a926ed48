//! Diff guardrails: the host's post-flight check on what a run changed.
//!
//! The evaluator works on a [`Change`] list computed by the host from git objects.
//! A refusal names the first file and the rule that tripped it. The data types
//! are `userz-core`'s, so ports and events carry them without this crate.

pub use userz_core::guardrail::{Change, ObjectKind, Violation};

mod evaluator;
pub use evaluator::*;
