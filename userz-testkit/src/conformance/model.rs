//! [`ModelProvider`] conformance, driven by the scripted model server
//! (`userz_fakes::model_server::ScriptedModelServer`, which answers in the
//! wire format of the path it is called on).
//!
//! An adapter implements [`ModelAdapter`] (how to point it at a server and
//! where its wire format reports usage), then runs every check with
//! [`model_conformance_tests!`](crate::model_conformance_tests) (one test per
//! check) or [`run_all`]. What it cannot do it states in
//! [`ModelCapabilities`]; a check a flag waives says so on stderr.
//!
//! Wire-format details (field names, headers, the provider's own error
//! kinds) stay in the adapter's own tests.

use std::sync::Arc;

use serde_json::{json, Value};
use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider, StopReason, ToolSpec};
use userz_core::Error;
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};

/// What an adapter cannot do.
#[derive(Debug, Clone, Copy)]
pub struct ModelCapabilities {
    /// Offers tools and returns the model's tool calls. `false` waives the
    /// tool-call round trip.
    pub tool_calls: bool,
}

/// How the suite wants a provider configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelSetup {
    /// Micro-USD per million input and output tokens, if priced.
    pub pricing: Option<(u64, u64)>,
    /// The response-size cap, if not the default.
    pub max_response_bytes: Option<usize>,
}

/// The adapter under test.
pub trait ModelAdapter: Send + Sync {
    /// The request path of its wire format on the server (e.g.
    /// `/v1/chat/completions`, `/v1/messages`).
    fn path(&self) -> &'static str;
    /// A provider calling `server`, sending `key` when given.
    fn connect(&self, server: &ScriptedModelServer, key: Option<&str>, setup: ModelSetup) -> Arc<dyn ModelProvider>;
    /// `(input, output)` tokens as the wire format's response body reports them.
    fn reported_usage(&self, response: &Value) -> (u64, u64);
}

/// Runs every check.
pub async fn run_all(a: &dyn ModelAdapter, caps: &ModelCapabilities) {
    plain_completion_returns_text_end_turn_usage_and_cost(a, caps).await;
    tool_calls_round_trip_with_their_results(a, caps).await;
    stop_reasons_are_mapped(a, caps).await;
    error_statuses_map_to_retryable_or_permanent_effects(a, caps).await;
    a_wrong_key_is_a_permanent_error_that_never_shows_the_key(a, caps).await;
    an_unusable_body_is_a_permanent_error(a, caps).await;
    an_oversize_response_is_refused_at_the_cap(a, caps).await;
}

/// One `#[tokio::test]` per model check, for an adapter's tests:
/// `model_conformance_tests!(adapter, caps);`.
#[macro_export]
macro_rules! model_conformance_tests {
    ($adapter:expr, $caps:expr $(,)?) => {
        $crate::model_conformance_tests!(@each $adapter, $caps;
            plain_completion_returns_text_end_turn_usage_and_cost,
            tool_calls_round_trip_with_their_results,
            stop_reasons_are_mapped,
            error_statuses_map_to_retryable_or_permanent_effects,
            a_wrong_key_is_a_permanent_error_that_never_shows_the_key,
            an_unusable_body_is_a_permanent_error,
            an_oversize_response_is_refused_at_the_cap,
        );
    };
    (@each $adapter:expr, $caps:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::conformance::model::$check(&$adapter, &$caps).await;
            }
        )*
    };
}

fn request() -> CompletionRequest {
    CompletionRequest::new("model-under-test", vec![ChatMessage::system("Be brief."), ChatMessage::user("hello")], 64)
}

/// `(message, retryable)` of a model effect error; panics on anything else.
#[track_caller]
pub fn effect(err: Error) -> (String, bool) {
    match err {
        Error::Effect { port, message, retryable } => {
            assert_eq!(port, "model");
            (message, retryable)
        }
        other => panic!("expected a model effect error, got {other:?}"),
    }
}

async fn complete_err(p: &dyn ModelProvider, req: &CompletionRequest) -> Error {
    match p.complete(req).await {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

/// A plain completion: the text, `EndTurn`, no tool calls, the provider's own
/// token counts and the cost priced from them; one request on the wire
/// format's path.
pub async fn plain_completion_returns_text_end_turn_usage_and_cost(a: &dyn ModelAdapter, _caps: &ModelCapabilities) {
    let server = ScriptedModelServer::start([ScriptedTurn::text("Hello there.")]).await;
    let p = a.connect(&server, None, ModelSetup { pricing: Some((3_000_000, 15_000_000)), ..ModelSetup::default() });
    let c = p.complete(&request()).await.unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!(c.content, "Hello there.");
    assert_eq!(c.stop, StopReason::EndTurn);
    assert!(c.tool_calls.is_empty(), "{c:?}");
    let exchanges = server.requests();
    assert_eq!(exchanges.len(), 1, "one call is one request");
    assert_eq!((exchanges[0].path.as_str(), exchanges[0].status), (a.path(), 200));
    let (tokens_in, tokens_out) = a.reported_usage(&exchanges[0].response_json());
    assert!(tokens_in > 0 && tokens_out > 0, "the server reported usage");
    assert_eq!((c.tokens_in, c.tokens_out), (tokens_in, tokens_out), "token counts are the provider's own");
    assert_eq!(c.cost_micros, (tokens_in * 3_000_000 + tokens_out * 15_000_000).div_ceil(1_000_000));
    // Unpriced: the same counts, no cost.
    let server = ScriptedModelServer::start([ScriptedTurn::text("Hello there.")]).await;
    let c =
        a.connect(&server, None, ModelSetup::default()).complete(&request()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.cost_micros, 0);
}

fn read_file() -> ToolSpec {
    ToolSpec {
        name: "read_file".into(),
        description: "Reads a file.".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }
}

/// Tool calls come back with distinct ids and parsed arguments and stop as
/// `ToolUse`; their results (one a failure) go back with those ids and the
/// model ends its turn.
pub async fn tool_calls_round_trip_with_their_results(a: &dyn ModelAdapter, caps: &ModelCapabilities) {
    if !caps.tool_calls {
        eprintln!("model conformance: tool_calls_round_trip_with_their_results waived (tool_calls: false)");
        return;
    }
    let server = ScriptedModelServer::start([
        ScriptedTurn::tool_calls([("read_file", json!({"path": "a.js"})), ("read_file", json!({"path": "b.js"}))]),
        ScriptedTurn::text("Fixed."),
    ])
    .await;
    let p = a.connect(&server, None, ModelSetup::default());
    let mut req = request();
    req.tools = vec![read_file()];
    let first = p.complete(&req).await.unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!(first.stop, StopReason::ToolUse);
    assert_eq!(first.tool_calls.len(), 2, "{first:?}");
    assert_eq!(first.tool_calls[0].name, "read_file");
    assert_eq!(first.tool_calls[0].arguments, json!({"path": "a.js"}));
    assert_eq!(first.tool_calls[1].arguments, json!({"path": "b.js"}));
    let (id_a, id_b) = (first.tool_calls[0].id.clone(), first.tool_calls[1].id.clone());
    assert!(!id_a.is_empty() && id_a != id_b, "distinct call ids: {id_a:?} {id_b:?}");

    req.messages.push(ChatMessage::assistant(first.content.clone(), first.tool_calls.clone()));
    req.messages.push(ChatMessage::tool_result(&id_a, "contents of a", false));
    req.messages.push(ChatMessage::tool_result(&id_b, "no such file", true));
    let second = p.complete(&req).await.unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!((second.content.as_str(), second.stop), ("Fixed.", StopReason::EndTurn));
    let exchanges = server.requests();
    assert_eq!(exchanges.len(), 2);
    let body = String::from_utf8_lossy(&exchanges[1].body).into_owned();
    for needle in [id_a.as_str(), id_b.as_str(), "contents of a", "no such file", "read_file"] {
        assert!(body.contains(needle), "the results request lacks {needle:?}: {body}");
    }
}

/// A completion cut at `max_tokens` stops as `MaxTokens`.
pub async fn stop_reasons_are_mapped(a: &dyn ModelAdapter, _caps: &ModelCapabilities) {
    let server = ScriptedModelServer::start([ScriptedTurn::Truncated("cut".into()), ScriptedTurn::text("done")]).await;
    let p = a.connect(&server, None, ModelSetup::default());
    let c = p.complete(&request()).await.unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!((c.content.as_str(), c.stop), ("cut", StopReason::MaxTokens));
    let c = p.complete(&request()).await.unwrap_or_else(|e| panic!("complete: {e}"));
    assert_eq!(c.stop, StopReason::EndTurn);
}

/// 429 and 5xx (and an exhausted script's 500) are retryable, other 4xx are
/// not; each message names the status and the provider's message.
pub async fn error_statuses_map_to_retryable_or_permanent_effects(a: &dyn ModelAdapter, _caps: &ModelCapabilities) {
    for (status, retryable) in [(429, true), (500, true), (503, true), (400, false), (404, false)] {
        let server = ScriptedModelServer::start([ScriptedTurn::error(status, "scripted failure")]).await;
        let p = a.connect(&server, None, ModelSetup::default());
        let (message, r) = effect(complete_err(p.as_ref(), &request()).await);
        assert_eq!(r, retryable, "HTTP {status}: {message}");
        assert!(message.contains(&format!("HTTP {status}")) && message.contains("scripted failure"), "{message}");
    }
    let server = ScriptedModelServer::start([ScriptedTurn::text("only one")]).await;
    let p = a.connect(&server, None, ModelSetup::default());
    p.complete(&request()).await.unwrap_or_else(|e| panic!("complete: {e}"));
    let (message, retryable) = effect(complete_err(p.as_ref(), &request()).await);
    assert!(retryable && message.contains("HTTP 500") && message.contains("script exhausted"), "{message}");
}

/// A wrong key is a permanent 401 whose error (and the provider's `Debug`)
/// never shows the key, even though the server echoes it.
pub async fn a_wrong_key_is_a_permanent_error_that_never_shows_the_key(
    a: &dyn ModelAdapter,
    _caps: &ModelCapabilities,
) {
    const KEY: &str = "sk-conformance-wrong-key-5e6f7a8b";
    let server = ScriptedModelServer::start_requiring_key([ScriptedTurn::text("unused")], "sk-the-right-one").await;
    let p = a.connect(&server, Some(KEY), ModelSetup::default());
    let err = complete_err(p.as_ref(), &request()).await;
    assert!(server.requests()[0].response.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the fake echoes it");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
    let (message, retryable) = effect(err);
    assert!(!retryable);
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(!format!("{p:?}").contains(KEY));
}

/// A 200 whose body is not JSON is a permanent error saying so.
pub async fn an_unusable_body_is_a_permanent_error(a: &dyn ModelAdapter, _caps: &ModelCapabilities) {
    let server = ScriptedModelServer::start([ScriptedTurn::raw(200, "text/html", "<html>gateway</html>")]).await;
    let p = a.connect(&server, None, ModelSetup::default());
    let (message, retryable) = effect(complete_err(p.as_ref(), &request()).await);
    assert!(!retryable);
    assert!(message.contains("not JSON"), "{message}");
}

/// A response over the configured cap is refused, permanently, naming the
/// cap and the setting.
pub async fn an_oversize_response_is_refused_at_the_cap(a: &dyn ModelAdapter, _caps: &ModelCapabilities) {
    let server = ScriptedModelServer::start([ScriptedTurn::text("x".repeat(10_000))]).await;
    let p = a.connect(&server, None, ModelSetup { max_response_bytes: Some(4096), ..ModelSetup::default() });
    let (message, retryable) = effect(complete_err(p.as_ref(), &request()).await);
    assert!(!retryable);
    assert!(message.contains("4096-byte cap") && message.contains("max_response_bytes"), "{message}");
}
