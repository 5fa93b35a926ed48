//! Pure security primitives (ingest limits, injection pre-filter, wrapping,
//! envelope encryption, API keys, tokens, webhooks, sessions).

// Issue 3 part B: secrets, keys, tokens, webhooks, sessions.
pub mod api_key;
pub(crate) mod encoding;
pub mod envelope;
pub mod secret;
pub mod session;
pub mod webhooks;
pub mod widget_auth;
