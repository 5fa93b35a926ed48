//! Pure security primitives (ingest limits, injection pre-filter, wrapping,
//! envelope encryption, API keys, tokens, webhooks, sessions).

pub mod body_limit;
pub mod classifier;
pub mod ingest;
pub mod prefilter;
pub mod unicode;
pub mod wrap;
