//! The [`ModelProvider`] port: one chat-completion request to a language model,
//! with optional tool calling.
//!
//! The types are provider-neutral; adapters translate them to a wire format
//! (OpenAI-compatible Chat Completions, Anthropic Messages) and back.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Trusted instructions.
    System,
    /// The task (and untrusted data inside its wrapper).
    User,
    /// The model.
    Assistant,
    /// A tool result answering one tool call.
    Tool,
}

impl Role {
    /// The wire name (`system`, `user`, `assistant`, `tool`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call (echoed in the result).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as parsed JSON (an object for well-formed calls; a string
    /// holding the raw text when the model sent something that does not parse).
    pub arguments: serde_json::Value,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author.
    pub role: Role,
    /// Text content (may be empty for an assistant turn that only calls tools).
    pub content: String,
    /// Tool calls of an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a [`Role::Tool`] message: whether the tool failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl ChatMessage {
    fn text(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None, is_error: false }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::text(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::text(Role::User, content)
    }
    /// An assistant message, with the tool calls it made.
    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self { tool_calls, ..Self::text(Role::Assistant, content) }
    }
    /// The result of tool call `id`.
    pub fn tool_result(id: impl Into<String>, content: impl Into<String>, is_error: bool) -> Self {
        Self { tool_call_id: Some(id.into()), is_error, ..Self::text(Role::Tool, content) }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name (`[a-zA-Z0-9_-]{1,64}`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// A completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// Model id.
    pub model: String,
    /// Conversation (a leading [`Role::System`] message is the system prompt).
    pub messages: Vec<ChatMessage>,
    /// Output cap.
    pub max_tokens: u32,
    /// Tools offered (empty: a plain completion, as the classifier uses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// The one tool (of `tools`) the model must call this turn; providers
    /// that decode against the tool's schema then return well-formed
    /// arguments. `None`: the model chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<String>,
}

impl CompletionRequest {
    /// A request without tools.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>, max_tokens: u32) -> Self {
        Self { model: model.into(), messages, max_tokens, tools: Vec::new(), temperature: None, tool_choice: None }
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its turn.
    EndTurn,
    /// It wants tool results.
    ToolUse,
    /// It hit `max_tokens`.
    MaxTokens,
    /// Anything else the provider reported (content filter, …), by its name.
    Other(String),
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Text.
    pub content: String,
    /// Tool calls requested.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Cost in micro-USD (from the adapter's price table; 0 when unpriced).
    pub cost_micros: u64,
}

/// A language-model endpoint (OpenAI-compatible, Anthropic, …).
///
/// # Contract
/// - One call is one request; the provider key is added by the adapter (or the
///   egress proxy), never by the caller.
/// - Token counts are the provider's own figures; cost is computed from them.
/// - A provider error is `Error::Effect { port: "model", retryable, .. }`
///   carrying the provider's status and message; 429 and 5xx are retryable.
#[async_trait]
pub trait ModelProvider: Send + Sync + Debug {
    /// Completes a conversation.
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion>;
    /// Provider name for usage records (`openai`, `anthropic`, …).
    fn provider_name(&self) -> &str;
}
