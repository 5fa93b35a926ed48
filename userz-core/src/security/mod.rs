//! Pure security primitives (ingest limits, injection pre-filter, wrapping,
//! envelope encryption, API keys, tokens, webhooks, sessions).

// Issue 3 part B: secrets, keys, tokens, webhooks, sessions.
pub mod api_key;
pub mod body_limit;
pub mod classifier;
pub(crate) mod encoding;
pub mod envelope;
pub mod ingest;
pub mod prefilter;
pub mod secret;
pub mod session;
pub mod unicode;
pub mod webhooks;
pub mod widget_auth;
pub mod wrap;
