//! # userz-http
//!
//! tower layers and axum routes for the Userz engine's HTTP edge: ingest with a
//! streaming body cap, widget and `sk_` key authentication, rate limits, the
//! `/v1` API, inbound webhooks and signed outbound webhooks. An existing axum or
//! tower service nests the routers; the reference server
//! (`examples/reference-server`) assembles everything.
//!
//! The HTTP layer needs only the command bus and the read models: workers can
//! run in another process. It reads the engine's projections (feedback list,
//! run detail, audit log and the directory of tenants), which `Engine::start`
//! runs somewhere against the same stores; tenant and secret writes go through
//! the engine's application layer (`userz_engine::admin`).
//!
//! ```ignore
//! let state = userz_http::ApiState::new(
//!     userz_http::ApiDeps { bus, read_models, clock, envelope: Some(envelope) },
//!     userz_http::ApiConfig::default(),
//! );
//! let app = axum::Router::new().merge(userz_http::api_router(state));
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! ```
//!
//! Serve with `into_make_service_with_connect_info::<SocketAddr>()` so the
//! per-IP limit on public submissions sees client addresses (without it every
//! public submitter shares one bucket).
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod body;
pub mod cors;
pub mod directory;
pub mod error;
pub mod openapi;
pub mod outbound;
pub mod ratelimit;
pub mod routes;
mod state;
pub mod upload;
pub mod webhooks;
mod wire;

/// The feedback widget served at `GET /widget.js`: a dependency-free script
/// that adds a feedback button and form (in a shadow root) to any page,
/// captures recent console output and submits to `POST /v1/feedback`
/// (optionally uploading a screenshot through `upload-url` first). Attributes:
/// `data-userz-key="pub_…"`, `data-userz-endpoint`, `data-userz-user-token`.
pub const WIDGET_JS: &str = include_str!("../assets/widget.js");

pub use auth::{PUBLIC_KEY_HEADER, USER_TOKEN_HEADER};
pub use error::{ApiError, ErrorCode};
pub use routes::{api_router, not_found_fallback, route_table, RouteSpec};
pub use state::{ApiConfig, ApiDeps, ApiState, IngestStats};
