//! An existing axum service that embeds Userz.
//!
//! The service keeps its own routes and state; [`userz_server::build`]
//! assembles the engine from the same configuration the reference server
//! reads (file + `USERZ_*` variables), starts its workers and projections in
//! this process, and hands back a router with the `/v1` API, webhooks, the
//! dashboard and `/widget.js`, which the service merges into its own.

use axum::routing::get;
use axum::{Json, Router};
use userz_server::{Config, ServerError, Userz};

/// The host service's own routes (stand-ins for a real SaaS backend's).
pub fn host_routes() -> Router {
    Router::new()
        .route("/status", get(|| async { "acme backend" }))
        .route("/api/orders", get(|| async { Json(vec!["order-1", "order-2"]) }))
}

/// The host's routes with Userz merged in, and the running engine (keep it
/// alive as long as the router serves; drop or `shutdown` it to stop the
/// workers).
pub async fn assemble(config: Config, public_url: String) -> Result<(Router, Userz), ServerError> {
    let userz = userz_server::build(config, public_url).await?;
    let app = host_routes().merge(userz.router());
    Ok((app, userz))
}
