//! Pure security primitives (ingest limits, injection pre-filter, wrapping,
//! envelope encryption, API keys, tokens, webhooks, sessions).
