//! Bad answers, failures and transports of `OpenAiCompatible` beyond the
//! shared model conformance suite (`tests/conformance.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use userz_core::agent::{ModelApi, ModelEndpoint};
use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider, StopReason};
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
use userz_model::{provider_from_endpoint, OpenAiCompatible, SecretString, Transport};

const KEY: &str = "sk-test-9f8e7d6c5b4a39281706";

fn request() -> CompletionRequest {
    CompletionRequest::new("gpt-4o-mini", vec![ChatMessage::user("hello")], 32)
}

fn provider(server: &ScriptedModelServer, key: Option<&str>) -> OpenAiCompatible {
    OpenAiCompatible::new(&format!("{}/v1", server.base_url()), key.map(SecretString::from), Transport::Tcp).unwrap()
}

async fn error_for(turn: ScriptedTurn) -> (String, bool) {
    let server = ScriptedModelServer::start([turn]).await;
    effect(provider(&server, Some(KEY)).complete(&request()).await.unwrap_err())
}

#[tokio::test]
async fn a_body_without_choices_is_a_permanent_error() {
    let (message, retryable) = error_for(ScriptedTurn::raw_json(json!({"id": "x", "object": "chat.completion"}))).await;
    assert!(!retryable);
    assert!(message.contains("choices[0]"), "{message}");
    let (message, _) = error_for(ScriptedTurn::raw_json(json!({"choices": []}))).await;
    assert!(message.contains("choices[0]"), "{message}");
    let (message, _) = error_for(ScriptedTurn::raw_json(json!({"choices": [{"finish_reason": "stop"}]}))).await;
    assert!(message.contains("choices[0].message"), "{message}");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retryable_with_the_providers_message() {
    let (message, retryable) = error_for(ScriptedTurn::error(500, "The server had an error")).await;
    assert!(retryable);
    assert!(message.contains("HTTP 500") && message.contains("server_error: The server had an error"), "{message}");

    let (message, retryable) = error_for(ScriptedTurn::error(429, "Rate limit reached for requests")).await;
    assert!(retryable);
    assert!(message.contains("HTTP 429"), "{message}");
    assert!(message.contains("rate_limit_exceeded") && message.contains("Rate limit reached"), "{message}");

    let (message, retryable) = error_for(ScriptedTurn::raw(502, "text/plain", "")).await;
    assert!(retryable);
    assert!(message.contains("HTTP 502") && message.contains("(empty body)"), "{message}");
}

#[tokio::test]
async fn other_client_errors_are_not_retryable() {
    let (message, retryable) = error_for(ScriptedTurn::error(400, "Invalid 'messages[0].role'")).await;
    assert!(!retryable);
    assert!(message.contains("HTTP 400") && message.contains("invalid_request_error"), "{message}");
    assert!(message.contains("Invalid 'messages[0].role'"), "{message}");
    let (_, retryable) = error_for(ScriptedTurn::error(404, "The model does not exist")).await;
    assert!(!retryable);
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_a_clear_error() {
    // Declared length over the cap.
    let big = json!({"choices": [{"message": {"content": "x".repeat(10_000)}}]});
    let server = ScriptedModelServer::start([ScriptedTurn::raw_json(big)]).await;
    let err = provider(&server, None).with_max_response_bytes(4096).complete(&request()).await.unwrap_err();
    let (message, retryable) = effect(err);
    assert!(!retryable);
    assert!(message.contains("4096-byte cap") && message.contains("max_response_bytes"), "{message}");

    // No declared length: a chunked body that never ends is cut at the cap.
    let addr = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        true,
    )
    .await;
    let p = OpenAiCompatible::new(&format!("http://{addr}/v1"), None, Transport::Tcp)
        .unwrap()
        .with_max_response_bytes(64 * 1024)
        .with_timeout(Duration::from_secs(10));
    let (message, retryable) = effect(p.complete(&request()).await.unwrap_err());
    assert!(!retryable);
    assert!(message.contains("65536-byte cap"), "{message}");
}

#[tokio::test]
async fn tool_call_arguments_that_are_not_json_are_kept_as_text() {
    let server = ScriptedModelServer::start([ScriptedTurn::RawToolCalls(vec![
        ("read_file".into(), r#"{"path": "a.rs"#.into()),
        ("git_status".into(), String::new()),
    ])])
    .await;
    let c = provider(&server, None).complete(&request()).await.unwrap();
    assert_eq!(c.stop, StopReason::ToolUse);
    assert_eq!(c.tool_calls.len(), 2);
    assert_eq!(c.tool_calls[0].arguments, Value::String(r#"{"path": "a.rs"#.into()));
    assert_eq!(c.tool_calls[1].arguments, json!({}));
    assert!(c.tool_calls[0].id.starts_with("call_"));
}

#[tokio::test]
async fn the_key_never_appears_in_errors_even_when_the_provider_echoes_it() {
    // The scripted 401 echoes the key it was given, in full.
    let server = ScriptedModelServer::start_requiring_key([ScriptedTurn::text("unused")], "sk-the-right-one").await;
    let p = provider(&server, Some(KEY));
    let err = p.complete(&request()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(server.requests()[0].response_json()["error"]["message"].as_str().unwrap().contains(KEY));
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("[redacted]") && shown.contains("HTTP 401") && shown.contains("invalid_api_key"), "{shown}");
    let (_, retryable) = effect(err);
    assert!(!retryable);
    assert!(!format!("{p:?}").contains(KEY));

    // Any other error that carries it.
    let (message, _) = error_for(ScriptedTurn::error(400, format!("key {KEY} is not allowed for this model"))).await;
    assert!(!message.contains(KEY), "{message}");
}

#[tokio::test]
async fn the_bearer_key_is_sent_only_when_configured() {
    let server = ScriptedModelServer::start_requiring_key([ScriptedTurn::text("ok")], KEY).await;
    let c = provider(&server, Some(KEY)).complete(&request()).await.unwrap();
    assert_eq!(c.content, "ok");
    assert_eq!(server.requests()[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));

    let server = ScriptedModelServer::start([ScriptedTurn::text("ok")]).await;
    provider(&server, None).complete(&request()).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn connection_failures_and_timeouts_are_retryable() {
    let addr = closed_port().await;
    let p = OpenAiCompatible::new(&format!("http://{addr}/v1"), None, Transport::Tcp).unwrap();
    let (message, retryable) = effect(p.complete(&request()).await.unwrap_err());
    assert!(retryable);
    assert!(message.contains("connection failed"), "{message}");

    let server = ScriptedModelServer::start([ScriptedTurn::text("late").delayed(Duration::from_secs(5))]).await;
    let p = provider(&server, None).with_timeout(Duration::from_millis(200));
    let (message, retryable) = effect(p.complete(&request()).await.unwrap_err());
    assert!(retryable);
    assert!(message.contains("within 200 ms"), "{message}");
}

#[tokio::test]
async fn finish_reasons_map_to_stop_reasons() {
    let server = ScriptedModelServer::start([
        ScriptedTurn::Truncated("cut".into()),
        ScriptedTurn::raw_json(json!({"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]})),
    ])
    .await;
    let p = provider(&server, None);
    assert_eq!(p.complete(&request()).await.unwrap().stop, StopReason::MaxTokens);
    let c = p.complete(&request()).await.unwrap();
    assert_eq!(c.stop, StopReason::Other("content_filter".into()));
    assert_eq!((c.tokens_in, c.tokens_out, c.cost_micros), (0, 0, 0), "no usage: zero, not a crash");
}

#[tokio::test]
async fn plain_http_over_a_unix_socket_uses_the_url_host_only_as_host_header() {
    let server = ScriptedModelServer::start([ScriptedTurn::text("via unix")]).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = unix_front(dir.path(), server.addr()).await;
    let endpoint = ModelEndpoint {
        api: ModelApi::OpenaiCompatible,
        model: "gpt-4o-mini".into(),
        base_url: "http://model.egress.internal/v1".into(),
        unix_socket: Some(socket),
        guided: false,
    };
    let p = provider_from_endpoint(&endpoint).unwrap();
    assert_eq!(p.provider_name(), "openai");
    let c = p.complete(&request()).await.unwrap();
    assert_eq!(c.content, "via unix");
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("host"), Some("model.egress.internal"));
    assert_eq!(r.header("authorization"), None, "the proxy adds the key, never the agent");
}

#[tokio::test]
async fn https_is_verified_against_the_configured_roots() {
    let server = ScriptedModelServer::start([ScriptedTurn::text("over tls")]).await;
    let front = tls_front(server.addr()).await;
    let base = format!("https://localhost:{}/v1", front.port());
    let trusted = OpenAiCompatible::new(&base, Some(KEY.into()), Transport::Tcp)
        .unwrap()
        .with_root_certificates(vec![test_certificate()])
        .unwrap();
    assert_eq!(trusted.complete(&request()).await.unwrap().content, "over tls");
    assert_eq!(server.requests()[0].header("host"), Some(format!("localhost:{}", front.port()).as_str()));

    // The default (public) roots do not know the test certificate.
    let untrusted = OpenAiCompatible::new(&base, None, Transport::Tcp).unwrap();
    let (message, _) = effect(untrusted.complete(&request()).await.unwrap_err());
    assert!(message.contains("TLS"), "{message}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn bad_configuration_is_refused_naming_the_setting() {
    for (url, transport, field) in [
        ("ftp://x/v1", Transport::Tcp, "base_url"),
        ("model.example/v1", Transport::Tcp, "base_url"),
        ("http://user:pw@x/v1", Transport::Tcp, "base_url"),
        ("http://x/v1?k=1", Transport::Tcp, "base_url"),
        ("https://x/v1", Transport::Unix("/tmp/s.sock".into()), "transport"),
    ] {
        let err = OpenAiCompatible::new(url, None, transport).unwrap_err();
        assert!(err.to_string().contains(&format!("`{field}`")), "{url}: {err}");
    }
    let err = OpenAiCompatible::new("http://x/v1", Some("bad\nkey".into()), Transport::Tcp).unwrap_err();
    assert!(err.to_string().contains("`key`") && !err.to_string().contains("bad\nkey"), "{err}");
    let err =
        OpenAiCompatible::new("http://x/v1", None, Transport::Tcp).unwrap().with_root_certificates(vec![]).unwrap_err();
    assert!(err.to_string().contains("`tls`"), "{err}");
}

#[tokio::test]
async fn over_the_egress_socket_the_cap_holds_and_a_missing_socket_is_a_retryable_connection_failure() {
    let addr = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        true,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let socket = unix_front(dir.path(), addr).await;
    let p = OpenAiCompatible::new("http://model.egress.internal/v1", None, Transport::Unix(socket))
        .unwrap()
        .with_max_response_bytes(32 * 1024)
        .with_timeout(Duration::from_secs(10));
    let (message, retryable) = effect(p.complete(&request()).await.unwrap_err());
    assert!(!retryable);
    assert!(message.contains("32768-byte cap"), "{message}");

    let gone = dir.path().join("gone.sock");
    let p = OpenAiCompatible::new("http://model.egress.internal/v1", None, Transport::Unix(gone.clone())).unwrap();
    let (message, retryable) = effect(p.complete(&request()).await.unwrap_err());
    assert!(retryable);
    assert!(message.contains("connection failed") && message.contains(&gone.display().to_string()), "{message}");
}
