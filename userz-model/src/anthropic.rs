//! Anthropic Messages (`POST {base_url}/v1/messages`).

use std::time::Duration;

use async_trait::async_trait;
use http::header::{HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use serde_json::{json, Map, Value};
use userz_core::error::{Error, Result};
use userz_core::ports::model::{ChatMessage, Completion, CompletionRequest, ModelProvider, Role, StopReason, ToolCall};
use userz_security::secret::SecretString;

use crate::common::{count, malformed, redact, status_error, Pricing};
use crate::transport::{self, Transport};
use userz_rest::{Credential, RestClient};

/// The `anthropic-version` header sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Text sent for an assistant turn that had neither text nor tool calls (the
/// API refuses empty content).
const EMPTY_TURN: &str = "(no content)";

/// Anthropic's Messages API.
///
/// `base_url` is the origin (`https://host`, `http://model.egress.internal`);
/// requests go to `{base_url}/v1/messages` with `anthropic-version:
/// 2023-06-01` and, when a key is configured, `x-api-key`.
///
/// Mapping: every [`Role::System`] message joins the top-level `system`
/// string; consecutive tool results (and a user text that follows them) form
/// one user message of `tool_result` blocks then a `text` block; assistant
/// tool calls are `tool_use` blocks. Tool-call arguments that are not a JSON
/// object (raw text from a model that sent broken JSON) are sent as
/// `{"raw_arguments": "<text>"}`, since `input` must be an object.
/// `tokens_in` counts `input_tokens` plus any cache-creation and cache-read
/// input tokens.
#[derive(Debug, Clone)]
pub struct Anthropic {
    http: RestClient,
    key: Option<SecretString>,
    pricing: Pricing,
    name: String,
}

impl Anthropic {
    /// A provider at `base_url`, reached through `transport`.
    ///
    /// # Errors
    /// `Error::Invalid` naming `base_url`, `transport` or `key` (see
    /// [`OpenAiCompatible::new`](crate::OpenAiCompatible::new)).
    pub fn new(base_url: &str, key: Option<SecretString>, transport: Transport) -> Result<Self> {
        transport::check_key(
            key.as_ref().map(|k| Credential::header(HeaderName::from_static("x-api-key"), k.expose_secret())),
        )?;
        Ok(Self {
            http: transport::client(base_url, transport)?,
            key,
            pricing: Pricing::UNPRICED,
            name: "anthropic".into(),
        })
    }

    /// Sets the price table used for [`Completion::cost_micros`].
    pub fn with_pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = pricing;
        self
    }

    /// Sets the whole-request timeout (default 300 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.with_timeout(timeout);
        self
    }

    /// Sets the response body cap (default 8 MiB).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.http = self.http.with_max_body(bytes);
        self
    }

    /// Sets the name reported by [`ModelProvider::provider_name`] (default `anthropic`).
    pub fn with_provider_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Trusts exactly `certs` (instead of the Mozilla roots) for an `https` base URL.
    ///
    /// # Errors
    /// `Error::Invalid` for an `http` base URL or an unusable certificate.
    pub fn with_root_certificates(mut self, certs: Vec<CertificateDer<'static>>) -> Result<Self> {
        self.http = transport::with_roots(self.http, certs)?;
        Ok(self)
    }

    async fn complete_inner(&self, request: &CompletionRequest) -> Result<Completion> {
        let body = serde_json::to_vec(&request_body(request)?)?;
        let headers = vec![(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(ANTHROPIC_VERSION))];
        let credential =
            self.key.as_ref().map(|k| Credential::header(HeaderName::from_static("x-api-key"), k.expose_secret()));
        let response = transport::post_json(&self.http, &self.name, "/v1/messages", credential, headers, body).await?;
        if !response.status.is_success() {
            return Err(status_error(&self.name, &response));
        }
        let v: Value = serde_json::from_slice(&response.body)
            .map_err(|e| malformed(&self.name, format_args!("body is not JSON ({e})")))?;
        parse_response(&v, &self.pricing).map_err(|what| malformed(&self.name, what))
    }
}

#[async_trait]
impl ModelProvider for Anthropic {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion> {
        self.complete_inner(request).await.map_err(|e| redact(e, self.key.as_ref()))
    }

    fn provider_name(&self) -> &str {
        &self.name
    }
}

fn text_block(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

fn tool_input(arguments: &Value) -> Value {
    match arguments {
        Value::Object(_) => arguments.clone(),
        Value::String(raw) => json!({ "raw_arguments": raw }),
        other => json!({ "raw_arguments": other.to_string() }),
    }
}

/// The Messages request body for `request`.
///
/// # Errors
/// `Error::Invalid` for a tool message without `tool_call_id`.
pub fn request_body(request: &CompletionRequest) -> Result<Value> {
    let mut system = Vec::new();
    // (role, blocks); consecutive user-side blocks are merged.
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, blocks: Vec<Value>, merge: bool| match messages.last_mut() {
        Some((last, existing)) if merge && *last == role => existing.extend(blocks),
        _ => messages.push((role, blocks)),
    };
    for m in &request.messages {
        match m.role {
            Role::System => system.push(m.content.as_str()),
            Role::User => {
                if !m.content.is_empty() {
                    push("user", vec![text_block(&m.content)], true);
                }
            }
            Role::Tool => {
                let id = m
                    .tool_call_id
                    .as_deref()
                    .ok_or_else(|| Error::Invalid("model request: a tool message needs `tool_call_id`".to_owned()))?;
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": id,
                    "content": m.content,
                    "is_error": m.is_error,
                });
                push("user", vec![block], true);
            }
            Role::Assistant => push("assistant", assistant_blocks(m), true),
        }
    }
    let mut o = Map::new();
    o.insert("model".into(), request.model.clone().into());
    o.insert("max_tokens".into(), request.max_tokens.into());
    if !system.is_empty() {
        o.insert("system".into(), system.join("\n\n").into());
    }
    let messages = messages.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect();
    o.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
        o.insert("tools".into(), Value::Array(tools));
        if let Some(name) = &request.tool_choice {
            o.insert("tool_choice".into(), json!({ "type": "tool", "name": name }));
        }
    }
    if let Some(t) = request.temperature {
        o.insert("temperature".into(), json!(t));
    }
    Ok(Value::Object(o))
}

fn assistant_blocks(m: &ChatMessage) -> Vec<Value> {
    let mut blocks = Vec::new();
    if !m.content.is_empty() {
        blocks.push(text_block(&m.content));
    }
    for c in &m.tool_calls {
        blocks.push(json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(&c.arguments) }));
    }
    if blocks.is_empty() {
        blocks.push(text_block(EMPTY_TURN));
    }
    blocks
}

fn parse_response(v: &Value, pricing: &Pricing) -> std::result::Result<Completion, String> {
    let blocks = v.get("content").and_then(Value::as_array).ok_or("no `content` array")?;
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                content.push_str(b.get("text").and_then(Value::as_str).ok_or(format!("`content[{i}].text` missing"))?)
            }
            Some("tool_use") => {
                let id = b.get("id").and_then(Value::as_str).ok_or(format!("`content[{i}].id` missing"))?;
                let name = b.get("name").and_then(Value::as_str).ok_or(format!("`content[{i}].name` missing"))?;
                let arguments = b.get("input").cloned().unwrap_or_else(|| Value::Object(Map::new()));
                tool_calls.push(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments });
            }
            // Thinking and other block kinds carry nothing the port models.
            Some(_) => {}
            None => return Err(format!("`content[{i}].type` missing")),
        }
    }
    let stop = match v.get("stop_reason").and_then(Value::as_str) {
        Some("end_turn") | Some("stop_sequence") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
        None if !tool_calls.is_empty() => StopReason::ToolUse,
        None => StopReason::EndTurn,
    };
    let usage = v.get("usage");
    let field = |name: &str| count(usage.and_then(|u| u.get(name)));
    let tokens_in = field("input_tokens") + field("cache_creation_input_tokens") + field("cache_read_input_tokens");
    let tokens_out = field("output_tokens");
    if usage.is_none() {
        tracing::warn!("model response carries no `usage`; counting 0 tokens");
    }
    Ok(Completion {
        content,
        tool_calls,
        stop,
        tokens_in,
        tokens_out,
        cost_micros: pricing.cost_micros(tokens_in, tokens_out),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_tool_results_and_a_following_text_form_one_user_message() {
        let call = |id: &str| ToolCall { id: id.into(), name: "read_file".into(), arguments: json!({"path": id}) };
        let req = CompletionRequest::new(
            "claude",
            vec![
                ChatMessage::system("sys A"),
                ChatMessage::user("task"),
                ChatMessage::assistant("", vec![call("t1"), call("t2")]),
                ChatMessage::tool_result("t1", "one", false),
                ChatMessage::tool_result("t2", "boom", true),
                ChatMessage::user("go on"),
            ],
            100,
        );
        let body = request_body(&req).unwrap();
        assert_eq!(body["system"], "sys A");
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "{body:#}");
        assert_eq!(msgs[2]["role"], "user");
        let blocks = msgs[2]["content"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0], json!({"type":"tool_result","tool_use_id":"t1","content":"one","is_error":false}));
        assert_eq!(blocks[1]["is_error"], true);
        assert_eq!(blocks[2], json!({"type":"text","text":"go on"}));
        assert_eq!(
            msgs[1]["content"][0],
            json!({"type":"tool_use","id":"t1","name":"read_file","input":{"path":"t1"}})
        );
    }

    #[test]
    fn a_named_tool_choice_is_the_tool_form() {
        let spec = userz_core::ports::model::ToolSpec {
            name: "git_commit".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        };
        let mut req = CompletionRequest::new("claude", vec![ChatMessage::user("u")], 10);
        req.tools = vec![spec];
        assert!(request_body(&req).unwrap().get("tool_choice").is_none());
        req.tool_choice = Some("git_commit".into());
        assert_eq!(request_body(&req).unwrap()["tool_choice"], json!({"type": "tool", "name": "git_commit"}));
    }

    #[test]
    fn non_object_arguments_are_wrapped() {
        assert_eq!(tool_input(&Value::String("{bad".into())), json!({"raw_arguments": "{bad"}));
    }
}
