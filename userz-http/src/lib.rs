//! # userz-http
//!
//! tower layers and axum routes for the Userz engine's HTTP edge: ingest with a
//! streaming body cap, widget and `sk_` key authentication, rate limits, the
//! `/v1` API, inbound webhooks and signed outbound webhooks. An existing axum or
//! tower service nests the routers; the reference server
//! (`examples/reference-server`) assembles everything.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod outbound;
pub mod upload;
pub mod webhooks;

pub use error::{ApiError, ErrorCode};
