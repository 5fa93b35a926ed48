//! # userz-core
//!
//! The heart of the Userz engine: ids, events, errors, time, domain types and
//! their pure deciders, and the port traits adapters implement with their plain
//! data types. It has no runtime, no crypto and no I/O: the engine that drives
//! the deciders is `userz-engine`, the security primitives are `userz-security`.
//!
//! - [`domain`]: one [`Decider`](decider::Decider) per aggregate (organization,
//!   App, Repo, feedback, agent run, pull request, timer).
//! - [`ports`]: the traits adapters implement, each with a `# Contract`.
//! - [`credentials`], [`secret`], [`guardrail`]: data the security primitives
//!   produce and the domain records (hashed keys, sealed secrets, plaintext
//!   wrappers that zeroize, change lists and violations).
//!
//! Deciders are plain functions, so a lifecycle rule can be checked without any
//! store:
//!
//! ```
//! use userz_core::decider::Decider;
//! use userz_core::domain::feedback::*;
//! use userz_core::domain::common::{Dedup, ProcessingMode};
//! use userz_core::ids::{AppId, FeedbackId, OrgId};
//! use userz_core::ports::{Classification, Label};
//! use userz_core::Timestamp;
//!
//! let now = Timestamp::from_millis(0);
//! let received = FeedbackEvent::FeedbackReceived {
//!     feedback: FeedbackId::new(), org: OrgId::new(), app: AppId::new(),
//!     content: FeedbackContent::text("Save does nothing"), received_at: now,
//! };
//! let state = FeedbackDecider::replay(&[received, FeedbackEvent::SanitizingStarted {}]);
//! let verdict = Classification { label: Label::Spam, confidence: 0.97, signals: vec![], classifier: "demo".into() };
//! let events = FeedbackDecider::decide(
//!     &FeedbackCommand::Classify { classification: verdict, routing: Routing { mode: ProcessingMode::AutoPr, dedup: Dedup::Off, now } },
//!     &state,
//! ).unwrap();
//! assert!(matches!(events.last(), Some(FeedbackEvent::FeedbackRejected { label: Label::Spam })));
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod agent;
pub mod credentials;
pub mod decider;
pub mod domain;
mod encoding;
pub mod error;
pub mod event;
pub mod guardrail;
pub mod ids;
pub mod ports;
pub mod secret;
pub mod sensitive;
pub mod time;

pub use error::{Error, Result};
pub use event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
pub use sensitive::Sensitive;
pub use time::{Clock, SystemClock, Timestamp};
