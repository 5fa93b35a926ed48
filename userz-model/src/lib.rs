//! # userz-model
//!
//! Language-model adapters of the Userz engine's
//! [`ModelProvider`](userz_core::ports::model::ModelProvider) port:
//!
//! - [`OpenAiCompatible`]: OpenAI Chat Completions (`POST {base_url}/chat/completions`),
//!   spoken by OpenAI and by most gateways and local inference servers;
//! - [`Anthropic`]: Anthropic Messages (`POST {base_url}/v1/messages`);
//! - [`ModelClassifier`]: the [`Classifier`](userz_core::ports::classifier::Classifier)
//!   port on any provider, with no tools and a strict, fail-closed answer parser.
//!
//! Both adapters call out through the engine's one outbound HTTP client,
//! `userz-rest`: HTTP/1.1 over TCP, TLS (rustls on `ring`, Mozilla roots) or a
//! Unix domain socket ([`Transport::Unix`]: the sandboxed agent reaches
//! the host's egress proxy that way, and the proxy adds the provider key, so
//! the agent's provider has none). Each call is one request on a fresh
//! connection, bounded by a whole-request timeout and a response-size cap.
//!
//! Errors are `Error::Effect { port: "model", message, retryable }`; the
//! message names the provider, the HTTP status and the provider's own error
//! type and message, and never the key (a key echoed by the provider is
//! replaced by `[redacted]`). Connection failures, timeouts, 408, 429 and
//! 5xx are retryable; other 4xx, malformed bodies and oversize responses are
//! not.
//!
//! ```no_run
//! # async fn demo() -> userz_core::error::Result<()> {
//! use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider};
//! use userz_model::{OpenAiCompatible, Pricing, Transport};
//! let provider = OpenAiCompatible::new("http://127.0.0.1:8080/v1", None, Transport::Tcp)?
//!     .with_pricing(Pricing::new(150_000, 600_000));
//! let request = CompletionRequest::new("gpt-4o-mini", vec![ChatMessage::user("Hello")], 64);
//! let completion = provider.complete(&request).await?;
//! println!("{} ({} µ$)", completion.content, completion.cost_micros);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use userz_core::agent::{ModelApi, ModelEndpoint};
use userz_core::error::Result;
use userz_core::ports::model::ModelProvider;

mod anthropic;
mod classifier;
mod common;
mod openai;
mod transport;

pub use anthropic::{Anthropic, ANTHROPIC_VERSION};
pub use classifier::{parse_label, ModelClassifier, DEFAULT_MAX_TOKENS, SYSTEM_PROMPT, UNPARSEABLE_SIGNAL};
pub use common::Pricing;
pub use openai::{parse_arguments, MaxTokensField, OpenAiCompatible, TOOL_ERROR_PREFIX};
pub use transport::{Transport, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
pub use userz_security::secret::SecretString;

/// Wire-format request bodies, for tests and tools that want to see exactly
/// what an adapter sends.
pub mod wire {
    pub use crate::anthropic::request_body as anthropic_request_body;
    pub use crate::openai::request_body as openai_request_body;
}

/// The provider the agent binary uses for `endpoint`: no key (the egress
/// proxy's model route adds it), over the Unix socket when one is set,
/// unpriced (the host prices usage from the token counts).
///
/// # Errors
/// `Error::Invalid` when the base URL is unusable (see [`OpenAiCompatible::new`]).
pub fn provider_from_endpoint(endpoint: &ModelEndpoint) -> Result<Arc<dyn ModelProvider>> {
    let transport = match &endpoint.unix_socket {
        Some(path) => Transport::Unix(path.clone()),
        None => Transport::Tcp,
    };
    Ok(match endpoint.api {
        // Guided endpoints are small local models (llama.cpp's server
        // ignores `max_completion_tokens`); `max_tokens` caps them.
        ModelApi::OpenaiCompatible if endpoint.guided => Arc::new(
            OpenAiCompatible::new(&endpoint.base_url, None, transport)?
                .with_max_tokens_field(MaxTokensField::MaxTokens),
        ),
        ModelApi::OpenaiCompatible => Arc::new(OpenAiCompatible::new(&endpoint.base_url, None, transport)?),
        ModelApi::Anthropic => Arc::new(Anthropic::new(&endpoint.base_url, None, transport)?),
    })
}
