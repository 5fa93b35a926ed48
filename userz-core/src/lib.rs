//! # userz-core
//!
//! The heart of the Userz engine: domain types, pure deciders, the engine that
//! drives them, the port traits adapters implement, and the pure security
//! primitives. It performs no I/O of its own: every effect goes through a port.
//!
//! - [`domain`]: one [`Decider`](decider::Decider) per aggregate (organization,
//!   App, Repo, feedback, agent run, pull request, timer).
//! - [`engine`]: the [`CommandBus`](engine::CommandBus) (expected-version appends,
//!   conflict retries, idempotent command ids, snapshots, upcasting), the pipeline
//!   process manager, workers, durable timers and projections.
//! - [`ports`]: the traits adapters implement, each with a `# Contract`.
//! - [`guardrail`], [`security`]: pure security primitives.
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
pub mod decider;
pub mod domain;
pub mod engine;
pub mod error;
pub mod event;
pub mod guardrail;
pub mod ids;
pub mod ports;
pub mod review;
pub mod security;
pub mod sensitive;
pub mod time;

pub use error::{Error, Result};
pub use event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
pub use sensitive::Sensitive;
pub use time::{Clock, SystemClock, Timestamp};
