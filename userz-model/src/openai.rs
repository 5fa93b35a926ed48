//! OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`).

use std::time::Duration;

use async_trait::async_trait;
use rustls_pki_types::CertificateDer;
use serde_json::{json, Map, Value};
use userz_core::error::{Error, Result};
use userz_core::ports::model::{ChatMessage, Completion, CompletionRequest, ModelProvider, Role, StopReason, ToolCall};
use userz_security::secret::SecretString;

use crate::common::{count, malformed, redact, status_error, Pricing};
use crate::transport::{self, Transport};
use userz_rest::{Credential, RestClient};

/// Which request field carries [`CompletionRequest::max_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MaxTokensField {
    /// `max_completion_tokens`: the current field of OpenAI's API description
    /// (required by its reasoning models).
    #[default]
    MaxCompletionTokens,
    /// `max_tokens`: deprecated by OpenAI, but the one many compatible servers
    /// (local inference servers, older gateways) read.
    MaxTokens,
}

impl MaxTokensField {
    fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            MaxTokensField::MaxTokens => "max_tokens",
        }
    }
}

/// Prefix of a tool message whose tool failed (Chat Completions has no
/// error flag on tool messages, so the model learns it from the text).
pub const TOOL_ERROR_PREFIX: &str = "[tool error] ";

/// An OpenAI-compatible Chat Completions endpoint.
///
/// `base_url` conventionally ends in `/v1` (`https://host/v1`,
/// `http://model.egress.internal/v1`); requests go to
/// `{base_url}/chat/completions`. With a key, `Authorization: Bearer KEY` is
/// sent; without one (behind the egress proxy's model route, which adds it)
/// no credential header is sent at all.
///
/// ```
/// use userz_model::{OpenAiCompatible, Pricing, Transport};
/// let p = OpenAiCompatible::new("http://model.egress.internal/v1", None, Transport::Unix("/run/egress.sock".into()))
///     .unwrap()
///     .with_pricing(Pricing::new(150_000, 600_000));
/// assert!(!format!("{p:?}").contains("sk-"));
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    http: RestClient,
    key: Option<SecretString>,
    pricing: Pricing,
    max_tokens_field: MaxTokensField,
    name: String,
}

impl OpenAiCompatible {
    /// A provider at `base_url`, reached through `transport`.
    ///
    /// # Errors
    /// `Error::Invalid` naming `base_url`, `transport` or `key` when the URL
    /// is not `http(s)://host[:port][/path]`, `https` is asked over a Unix
    /// socket, or the key is not a valid header value.
    pub fn new(base_url: &str, key: Option<SecretString>, transport: Transport) -> Result<Self> {
        transport::check_key(key.as_ref().map(|k| Credential::bearer(k.expose_secret())))?;
        Ok(Self {
            http: transport::client(base_url, transport)?,
            key,
            pricing: Pricing::UNPRICED,
            max_tokens_field: MaxTokensField::default(),
            name: "openai".to_owned(),
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

    /// Chooses the output-cap field (default `max_completion_tokens`).
    pub fn with_max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = field;
        self
    }

    /// Sets the name reported by [`ModelProvider::provider_name`] (default `openai`).
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
        let body = serde_json::to_vec(&request_body(request, self.max_tokens_field)?)?;
        let credential = self.key.as_ref().map(|k| Credential::bearer(k.expose_secret()));
        let response =
            transport::post_json(&self.http, &self.name, "/chat/completions", credential, Vec::new(), body).await?;
        if !response.status.is_success() {
            return Err(status_error(&self.name, &response));
        }
        let v: Value = serde_json::from_slice(&response.body)
            .map_err(|e| malformed(&self.name, format_args!("body is not JSON ({e})")))?;
        parse_response(&v, &self.pricing).map_err(|what| malformed(&self.name, what))
    }
}

#[async_trait]
impl ModelProvider for OpenAiCompatible {
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion> {
        self.complete_inner(request).await.map_err(|e| redact(e, self.key.as_ref()))
    }

    fn provider_name(&self) -> &str {
        &self.name
    }
}

/// The arguments as the wire's JSON string: a raw string (arguments that did
/// not parse when they came in) is sent back verbatim.
fn arguments_string(arguments: &Value) -> Result<String> {
    match arguments {
        Value::String(raw) => Ok(raw.clone()),
        other => Ok(serde_json::to_string(other)?),
    }
}

fn message_json(m: &ChatMessage) -> Result<Value> {
    Ok(match m.role {
        Role::System | Role::User => json!({ "role": m.role.as_str(), "content": m.content }),
        Role::Assistant => {
            let mut o = Map::new();
            o.insert("role".into(), "assistant".into());
            // A string even when empty beside tool calls: OpenAI takes ""
            // or null there, llama.cpp's server only a string.
            o.insert("content".into(), Value::String(m.content.clone()));
            if !m.tool_calls.is_empty() {
                let calls = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        Ok(json!({
                            "id": c.id,
                            "type": "function",
                            "function": { "name": c.name, "arguments": arguments_string(&c.arguments)? },
                        }))
                    })
                    .collect::<Result<Vec<_>>>()?;
                o.insert("tool_calls".into(), Value::Array(calls));
            }
            Value::Object(o)
        }
        Role::Tool => {
            let id = m
                .tool_call_id
                .as_deref()
                .ok_or_else(|| Error::Invalid("model request: a tool message needs `tool_call_id`".to_owned()))?;
            let content = if m.is_error { format!("{TOOL_ERROR_PREFIX}{}", m.content) } else { m.content.clone() };
            json!({ "role": "tool", "tool_call_id": id, "content": content })
        }
    })
}

/// The Chat Completions request body for `request`.
///
/// # Errors
/// `Error::Invalid` for a tool message without `tool_call_id`.
pub fn request_body(request: &CompletionRequest, field: MaxTokensField) -> Result<Value> {
    let mut o = Map::new();
    o.insert("model".into(), request.model.clone().into());
    let messages = request.messages.iter().map(message_json).collect::<Result<Vec<_>>>()?;
    o.insert("messages".into(), Value::Array(messages));
    o.insert(field.as_str().into(), request.max_tokens.into());
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": { "name": t.name, "description": t.description, "parameters": t.parameters },
                })
            })
            .collect();
        o.insert("tools".into(), Value::Array(tools));
        if let Some(name) = &request.tool_choice {
            o.insert("tool_choice".into(), json!({ "type": "function", "function": { "name": name } }));
        }
    }
    if let Some(t) = request.temperature {
        o.insert("temperature".into(), json!(t));
    }
    Ok(Value::Object(o))
}

/// Parses tool-call arguments: JSON when they parse, `{}` when blank, else
/// the raw text as a JSON string (models do send broken JSON; the caller
/// answers it with a tool error instead of crashing).
pub fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

fn parse_response(v: &Value, pricing: &Pricing) -> std::result::Result<Completion, String> {
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| "no `choices[0]`".to_owned())?;
    let message = choice.get("message").filter(|m| m.is_object()).ok_or("no `choices[0].message` object")?;
    let content = match message.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("`choices[0].message.content` is neither a string nor null".to_owned()),
    };
    let mut tool_calls = Vec::new();
    match message.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (i, call) in calls.iter().enumerate() {
                let id = call.get("id").and_then(Value::as_str).ok_or(format!("`tool_calls[{i}].id` missing"))?;
                let function = call.get("function").ok_or(format!("`tool_calls[{i}].function` missing"))?;
                let name = function
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or(format!("`tool_calls[{i}].function.name` missing"))?;
                let arguments = match function.get("arguments") {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(Value::String(raw)) => parse_arguments(raw),
                    // Some compatible servers send an object instead of a string.
                    Some(other) => other.clone(),
                };
                tool_calls.push(ToolCall { id: id.to_owned(), name: name.to_owned(), arguments });
            }
        }
        Some(_) => return Err("`choices[0].message.tool_calls` is not an array".to_owned()),
    }
    let stop = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("stop") => StopReason::EndTurn,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
        None if !tool_calls.is_empty() => StopReason::ToolUse,
        None => StopReason::EndTurn,
    };
    let usage = v.get("usage");
    let tokens_in = count(usage.and_then(|u| u.get("prompt_tokens")));
    let tokens_out = count(usage.and_then(|u| u.get("completion_tokens")));
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
    fn arguments_that_do_not_parse_are_kept_as_text() {
        assert_eq!(parse_arguments(r#"{"path": "a.rs""#), Value::String(r#"{"path": "a.rs""#.to_owned()));
        assert_eq!(parse_arguments("  "), json!({}));
        assert_eq!(parse_arguments(r#"{"n":1}"#), json!({"n": 1}));
    }

    #[test]
    fn raw_arguments_round_trip_verbatim() {
        let call = ToolCall { id: "c1".into(), name: "f".into(), arguments: Value::String("{broken".into()) };
        let req = CompletionRequest::new("m", vec![ChatMessage::assistant("", vec![call])], 10);
        let body = request_body(&req, MaxTokensField::MaxTokens).unwrap();
        assert_eq!(body["messages"][0]["tool_calls"][0]["function"]["arguments"], "{broken");
        assert_eq!(body["messages"][0]["content"], "");
        assert_eq!(body["max_tokens"], 10);
    }

    #[test]
    fn a_named_tool_choice_is_the_function_form() {
        let spec = userz_core::ports::model::ToolSpec {
            name: "write_file".into(),
            description: "d".into(),
            parameters: json!({"type": "object"}),
        };
        let mut req = CompletionRequest::new("m", vec![ChatMessage::user("u")], 10);
        let body = request_body(&req, MaxTokensField::MaxTokens).unwrap();
        assert!(body.get("tool_choice").is_none(), "{body}");
        req.tools = vec![spec];
        req.tool_choice = Some("write_file".into());
        let body = request_body(&req, MaxTokensField::MaxTokens).unwrap();
        assert_eq!(body["tool_choice"], json!({"type": "function", "function": {"name": "write_file"}}));
    }

    #[test]
    fn a_tool_message_without_an_id_is_refused() {
        let mut m = ChatMessage::tool_result("x", "out", false);
        m.tool_call_id = None;
        let req = CompletionRequest::new("m", vec![m], 10);
        let err = request_body(&req, MaxTokensField::default()).unwrap_err();
        assert!(err.to_string().contains("tool_call_id"), "{err}");
    }
}
