//! The [`ModelProvider`] port (filled in by the agent work).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text content.
    pub content: String,
}

/// A completion request without tools (classification, consolidation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// Model id.
    pub model: String,
    /// Conversation.
    pub messages: Vec<ChatMessage>,
    /// Output cap.
    pub max_tokens: u32,
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Text.
    pub content: String,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Cost in micro-USD.
    pub cost_micros: u64,
}

/// A language-model endpoint (OpenAI-compatible, Anthropic, …).
///
/// # Contract
/// - One call is one request; the provider key is added by the adapter (or the
///   egress proxy), never by the caller.
/// - Token counts and cost are the provider's own figures.
#[async_trait]
pub trait ModelProvider: Send + Sync + Debug {
    /// Completes a conversation.
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion>;
}
