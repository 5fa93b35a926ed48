//! # userz-core
//!
//! The heart of the Userz engine: domain types, pure deciders, the engine that
//! drives them, the port traits adapters implement, and the pure security
//! primitives. It performs no I/O of its own: every effect goes through a port.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod decider;
pub mod domain;
pub mod engine;
pub mod error;
pub mod event;
pub mod guardrail;
pub mod ids;
pub mod ports;
pub mod security;
pub mod sensitive;
pub mod time;

pub use error::{Error, Result};
pub use event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
pub use sensitive::Sensitive;
pub use time::{Clock, SystemClock, Timestamp};
