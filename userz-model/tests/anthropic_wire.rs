//! `Anthropic` against the scripted server: the exact field names and headers
//! of Anthropic's published Messages API (there is no machine-readable
//! contract in-tree for it), multi-turn tool use, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};
use userz_core::agent::{ModelApi, ModelEndpoint};
use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider, StopReason, ToolSpec};
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
use userz_model::{provider_from_endpoint, Anthropic, Pricing, SecretString, Transport, ANTHROPIC_VERSION};

const KEY: &str = "sk-ant-test-0a1b2c3d4e5f";

fn provider(server: &ScriptedModelServer, key: Option<&str>) -> Anthropic {
    Anthropic::new(&server.base_url(), key.map(SecretString::from), Transport::Tcp).unwrap()
}

fn tool() -> ToolSpec {
    ToolSpec {
        name: "read_file".into(),
        description: "Reads a file.".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[tokio::test]
async fn a_tool_use_conversation_uses_the_messages_api_field_names() {
    let server = ScriptedModelServer::start_requiring_key(
        [
            ScriptedTurn::ToolCalls {
                text: "Let me look.".into(),
                calls: vec![
                    ("read_file".into(), json!({"path": "a.js"})),
                    ("read_file".into(), json!({"path": "b.js"})),
                ],
            },
            ScriptedTurn::text("Fixed."),
        ],
        KEY,
    )
    .await;
    let p = provider(&server, Some(KEY)).with_pricing(Pricing::new(3_000_000, 15_000_000));
    let mut messages = vec![ChatMessage::system("You are a coding agent."), ChatMessage::user("Fix the bug.")];
    let mut request = CompletionRequest::new("claude-sonnet-4-5", messages.clone(), 1024);
    request.tools = vec![tool()];
    let first = p.complete(&request).await.unwrap();
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.content, "Let me look.");
    assert_eq!(first.tool_calls.len(), 2);
    assert_eq!(first.tool_calls[1].arguments, json!({"path": "b.js"}));
    let usage = &server.requests()[0].response_json()["usage"];
    assert_eq!(first.tokens_in, usage["input_tokens"].as_u64().unwrap());
    assert_eq!(first.tokens_out, usage["output_tokens"].as_u64().unwrap());
    assert_eq!(first.cost_micros, (first.tokens_in * 3_000_000 + first.tokens_out * 15_000_000).div_ceil(1_000_000));

    messages.push(ChatMessage::assistant(first.content.clone(), first.tool_calls.clone()));
    messages.push(ChatMessage::tool_result(&first.tool_calls[0].id, "contents of a", false));
    messages.push(ChatMessage::tool_result(&first.tool_calls[1].id, "no such file", true));
    request.messages = messages;
    let second = p.complete(&request).await.unwrap();
    assert_eq!((second.content.as_str(), second.stop), ("Fixed.", StopReason::EndTurn));

    let exchanges = server.requests();
    assert_eq!(exchanges.len(), 2);
    for x in &exchanges {
        assert_eq!(x.path, "/v1/messages");
        assert_eq!(x.status, 200);
        assert_eq!(x.header("anthropic-version"), Some(ANTHROPIC_VERSION));
        assert_eq!(x.header("x-api-key"), Some(KEY));
        assert_eq!(x.header("authorization"), None);
        assert_eq!(x.header("content-type"), Some("application/json"));
    }
    let body = exchanges[1].json();
    assert_eq!(keys(&body), ["max_tokens", "messages", "model", "system", "tools"]);
    assert_eq!(body["system"], "You are a coding agent.", "system is top-level, not a message");
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(
        body["tools"][0],
        json!({"name": "read_file", "description": "Reads a file.", "input_schema": tool().parameters})
    );
    let m = body["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3, "{body:#}");
    assert_eq!(m[0], json!({"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]}));
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"][0], json!({"type": "text", "text": "Let me look."}));
    let tool_use = &m[1]["content"][1];
    assert_eq!(keys(tool_use), ["id", "input", "name", "type"]);
    assert_eq!(tool_use["type"], "tool_use");
    assert_eq!(tool_use["input"], json!({"path": "a.js"}));
    // Both results in one user message.
    assert_eq!(m[2]["role"], "user");
    let results = m[2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(keys(&results[0]), ["content", "is_error", "tool_use_id", "type"]);
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], tool_use["id"]);
    assert_eq!((results[0]["is_error"].clone(), results[1]["is_error"].clone()), (json!(false), json!(true)));
    assert_eq!(results[1]["content"], "no such file");
}

#[tokio::test]
async fn errors_carry_anthropics_type_and_message_and_retryability() {
    for (status, kind, retryable) in [
        (429, "rate_limit_error", true),
        (529, "overloaded_error", true),
        (500, "api_error", true),
        (400, "invalid_request_error", false),
        (404, "not_found_error", false),
    ] {
        let server = ScriptedModelServer::start([ScriptedTurn::error(status, "scripted failure")]).await;
        let req = CompletionRequest::new("claude", vec![ChatMessage::user("hi")], 8);
        let (message, r) = effect(provider(&server, None).complete(&req).await.unwrap_err());
        assert_eq!(r, retryable, "{status}");
        assert!(message.contains(&format!("HTTP {status}: {kind}: scripted failure")), "{message}");
        assert!(message.starts_with("anthropic:"), "{message}");
    }
}

#[tokio::test]
async fn a_wrong_key_is_a_redacted_401() {
    let server = ScriptedModelServer::start_requiring_key([ScriptedTurn::text("unused")], "sk-ant-right").await;
    let req = CompletionRequest::new("claude", vec![ChatMessage::user("hi")], 8);
    let err = provider(&server, Some(KEY)).complete(&req).await.unwrap_err();
    assert!(server.requests()[0].response.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the fake echoes it");
    let (message, retryable) = effect(err);
    assert!(!retryable);
    assert!(!message.contains(KEY) && message.contains("authentication_error"), "{message}");
}

#[tokio::test]
async fn malformed_answers_and_stop_reasons() {
    let server = ScriptedModelServer::start([
        ScriptedTurn::raw(200, "text/plain", "not json"),
        ScriptedTurn::raw_json(json!({"type": "message", "stop_reason": "end_turn"})),
        ScriptedTurn::Truncated("cut".into()),
        ScriptedTurn::raw_json(
            json!({"content": [{"type": "thinking", "thinking": "…"}, {"type": "text", "text": "x"}],
            "stop_reason": "refusal", "usage": {"input_tokens": 5, "cache_read_input_tokens": 7, "output_tokens": 2}}),
        ),
    ])
    .await;
    let p = provider(&server, None);
    let req = CompletionRequest::new("claude", vec![ChatMessage::user("hi")], 8);
    let (m, r) = effect(p.complete(&req).await.unwrap_err());
    assert!(!r && m.contains("not JSON"), "{m}");
    let (m, r) = effect(p.complete(&req).await.unwrap_err());
    assert!(!r && m.contains("`content`"), "{m}");
    assert_eq!(p.complete(&req).await.unwrap().stop, StopReason::MaxTokens);
    let c = p.complete(&req).await.unwrap();
    assert_eq!(
        (c.content.as_str(), c.stop, c.tokens_in, c.tokens_out),
        ("x", StopReason::Other("refusal".into()), 12, 2)
    );
}

#[tokio::test]
async fn the_agent_endpoint_over_a_unix_socket_sends_no_key() {
    let server = ScriptedModelServer::start([ScriptedTurn::text("hi")]).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = unix_front(dir.path(), server.addr()).await;
    let endpoint = ModelEndpoint {
        api: ModelApi::Anthropic,
        model: "claude".into(),
        base_url: "http://model.egress.internal".into(),
        unix_socket: Some(socket),
        guided: false,
    };
    let p = provider_from_endpoint(&endpoint).unwrap();
    assert_eq!(p.provider_name(), "anthropic");
    let req = CompletionRequest::new("claude", vec![ChatMessage::user("hi")], 8);
    assert_eq!(p.complete(&req).await.unwrap().content, "hi");
    let r = &server.requests()[0];
    assert_eq!((r.path.as_str(), r.header("host")), ("/v1/messages", Some("model.egress.internal")));
    assert_eq!(r.header("x-api-key"), None);
    assert_eq!(r.header("anthropic-version"), Some(ANTHROPIC_VERSION));
}
