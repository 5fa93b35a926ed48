//! [`ScriptedModelServer`]: a real HTTP server on loopback that speaks both
//! OpenAI Chat Completions (`POST /v1/chat/completions`) and Anthropic
//! Messages (`POST /v1/messages`), replaying a scripted conversation.
//!
//! Each request takes the next [`ScriptedTurn`] from the queue and answers it
//! in the wire format of the path it came to. Every exchange (method, path,
//! headers, request body, status, response body) is recorded for assertions.
//! Usage figures are deterministic: `prompt/input` tokens are
//! `ceil(request body bytes / 4)`, `completion/output` tokens
//! `ceil(answer bytes / 4)` where the answer is the text plus each tool call's
//! name and arguments. An exhausted script answers 500 in the provider's
//! error format (`script exhausted`).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
//! let server = ScriptedModelServer::start(vec![
//!     ScriptedTurn::tool_call("read_file", serde_json::json!({"path": "src/lib.rs"})),
//!     ScriptedTurn::text("Done."),
//! ])
//! .await;
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! assert!(server.requests().is_empty());
//! # });
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ScriptedTurn {
    /// Text that ends the turn (`finish_reason: stop` / `stop_reason: end_turn`).
    Text(String),
    /// Tool calls `(name, arguments)` (`tool_calls` / `tool_use`), optionally
    /// with text before them.
    ToolCalls {
        /// Text before the calls (may be empty).
        text: String,
        /// Calls as `(name, arguments)`.
        calls: Vec<(String, Value)>,
    },
    /// Tool calls whose arguments are sent as this exact text (OpenAI:
    /// `function.arguments` verbatim, even when it is not valid JSON;
    /// Anthropic: `input` is the text parsed as JSON, or the text as a JSON string).
    RawToolCalls(Vec<(String, String)>),
    /// Text cut at the output cap (`finish_reason: length` / `stop_reason: max_tokens`).
    Truncated(String),
    /// An error in the provider's own format for `status` (OpenAI
    /// `{"error":{"message","type","param","code"}}`, Anthropic
    /// `{"type":"error","error":{"type","message"}}`).
    Error {
        /// HTTP status.
        status: u16,
        /// The provider's error message.
        message: String,
    },
    /// Exactly this status, content type and body (malformed answers).
    Raw {
        /// HTTP status.
        status: u16,
        /// `Content-Type`.
        content_type: String,
        /// Body.
        body: Bytes,
    },
    /// Waits, then answers with the inner turn (timeouts).
    Delayed(Duration, Box<ScriptedTurn>),
    /// Waits until the [`Gate`] is opened, then answers with the inner turn
    /// (holds a run in a known state while a test looks at it).
    Gated(Gate, Box<ScriptedTurn>),
}

/// A gate a [`ScriptedTurn::Gated`] turn waits on; [`Gate::open`] lets every
/// waiting and later turn through. Cloning shares the gate.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    /// Opens the gate (callable from any thread, also outside a runtime).
    pub fn open(&self) {
        self.0.close();
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        self.0.is_closed()
    }

    async fn wait(&self) {
        // A closed semaphore fails every acquire at once: that is "open".
        let _ = self.0.acquire().await;
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl ScriptedTurn {
    /// A final text answer.
    pub fn text(text: impl Into<String>) -> Self {
        ScriptedTurn::Text(text.into())
    }

    /// One tool call.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Self {
        ScriptedTurn::ToolCalls { text: String::new(), calls: vec![(name.into(), arguments)] }
    }

    /// Several tool calls in one turn.
    pub fn tool_calls<N: Into<String>>(calls: impl IntoIterator<Item = (N, Value)>) -> Self {
        ScriptedTurn::ToolCalls { text: String::new(), calls: calls.into_iter().map(|(n, a)| (n.into(), a)).collect() }
    }

    /// A provider-format error.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        ScriptedTurn::Error { status, message: message.into() }
    }

    /// A raw JSON body with status 200.
    pub fn raw_json(body: Value) -> Self {
        ScriptedTurn::Raw { status: 200, content_type: "application/json".into(), body: Bytes::from(body.to_string()) }
    }

    /// A raw body of any kind.
    pub fn raw(status: u16, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        ScriptedTurn::Raw { status, content_type: content_type.into(), body: body.into() }
    }

    /// This turn after `delay`.
    pub fn delayed(self, delay: Duration) -> Self {
        ScriptedTurn::Delayed(delay, Box::new(self))
    }

    /// This turn once `gate` is open.
    pub fn gated(self, gate: &Gate) -> Self {
        ScriptedTurn::Gated(gate.clone(), Box::new(self))
    }
}

/// Which wire format a request used (from its path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// One recorded exchange.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: Method,
    /// Path (and query).
    pub path: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// Status answered.
    pub status: u16,
    /// Body answered.
    pub response: Bytes,
}

impl RecordedRequest {
    /// The request body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The response body as JSON (`Value::Null` if it is not JSON).
    pub fn response_json(&self) -> Value {
        serde_json::from_slice(&self.response).unwrap_or(Value::Null)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug)]
struct State {
    turns: Mutex<VecDeque<ScriptedTurn>>,
    recorded: Mutex<Vec<RecordedRequest>>,
    key: Option<String>,
    next_id: AtomicU64,
}

/// A scripted model server on `127.0.0.1:<ephemeral>`. Stops when dropped.
#[derive(Debug)]
pub struct ScriptedModelServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl ScriptedModelServer {
    /// Starts a server that replays `turns` and accepts any (or no) key.
    ///
    /// # Panics
    /// If no loopback port can be bound (a test fixture: failing loudly is right).
    pub async fn start(turns: impl IntoIterator<Item = ScriptedTurn>) -> Self {
        Self::start_inner(turns, None).await
    }

    /// Starts a server that answers 401 in the provider's format unless the
    /// request carries `key` (`Authorization: Bearer` for OpenAI, `x-api-key`
    /// for Anthropic). The 401 message echoes the key it got, in full, so
    /// tests can prove a client redacts echoed keys.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start_requiring_key(turns: impl IntoIterator<Item = ScriptedTurn>, key: &str) -> Self {
        Self::start_inner(turns, Some(key.to_owned())).await
    }

    #[allow(clippy::expect_used)]
    async fn start_inner(turns: impl IntoIterator<Item = ScriptedTurn>, key: Option<String>) -> Self {
        // Invariant: a test fixture; not binding loopback is an environment failure.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of a bound listener");
        let state = Arc::new(State {
            turns: Mutex::new(turns.into_iter().collect()),
            recorded: Mutex::new(Vec::new()),
            key,
            next_id: AtomicU64::new(1),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT` (an OpenAI-compatible client appends `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every exchange so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorded.lock().clone()
    }

    /// Appends turns to the script.
    pub fn push(&self, turns: impl IntoIterator<Item = ScriptedTurn>) {
        self.state.turns.lock().extend(turns);
    }

    /// Turns not yet played.
    pub fn remaining(&self) -> usize {
        self.state.turns.lock().len()
    }
}

impl Drop for ScriptedModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let format = match (parts.method.clone(), parts.uri.path()) {
        (Method::POST, "/v1/chat/completions") => Some(WireFormat::OpenAi),
        (Method::POST, "/v1/messages") => Some(WireFormat::Anthropic),
        _ => None,
    };
    let (status, content_type, response) = match format {
        None => (404, "application/json".to_owned(), json!({"error": {"message": "no such route"}}).to_string().into()),
        Some(f) => answer(state, f, &parts.headers, &body).await,
    };
    state.recorded.lock().push(RecordedRequest {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
        status,
        response: response.clone(),
    });
    let mut out = Response::new(Full::new(response));
    *out.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(&content_type) {
        out.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    out
}

async fn answer(state: &State, format: WireFormat, headers: &HeaderMap, body: &Bytes) -> (u16, String, Bytes) {
    const JSON: &str = "application/json";
    if let Some(expected) = &state.key {
        let got = match format {
            WireFormat::OpenAi => headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).to_owned()),
            WireFormat::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned),
        };
        if got.as_deref() != Some(expected.as_str()) {
            let message = match (format, got) {
                (WireFormat::OpenAi, Some(k)) => format!("Incorrect API key provided: {k}."),
                (WireFormat::OpenAi, None) => "You didn't provide an API key.".to_owned(),
                (WireFormat::Anthropic, Some(k)) => format!("invalid x-api-key: {k}"),
                (WireFormat::Anthropic, None) => "x-api-key header is required".to_owned(),
            };
            return (401, JSON.into(), error_body(format, 401, &message));
        }
    }
    let mut turn = state.turns.lock().pop_front();
    loop {
        match turn {
            Some(ScriptedTurn::Delayed(delay, inner)) => {
                tokio::time::sleep(delay).await;
                turn = Some(*inner);
            }
            Some(ScriptedTurn::Gated(gate, inner)) => {
                gate.wait().await;
                turn = Some(*inner);
            }
            other => {
                turn = other;
                break;
            }
        }
    }
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let model = request.get("model").and_then(Value::as_str).unwrap_or("scripted-model").to_owned();
    let tokens_in = tokens(body.len());
    let reply = |text: &str, calls: Vec<(String, CallArgs)>, stop: Stop| {
        let bytes = text.len() + calls.iter().map(|(n, a)| n.len() + a.len()).sum::<usize>();
        let usage = (tokens_in, tokens(bytes));
        let body = match format {
            WireFormat::OpenAi => openai_completion(id, &model, text, &calls, stop, usage),
            WireFormat::Anthropic => anthropic_message(id, &model, text, &calls, stop, usage),
        };
        (200, JSON.to_owned(), Bytes::from(body.to_string()))
    };
    match turn {
        None => (500, JSON.into(), error_body(format, 500, "script exhausted")),
        Some(ScriptedTurn::Text(t)) => reply(&t, Vec::new(), Stop::End),
        Some(ScriptedTurn::Truncated(t)) => reply(&t, Vec::new(), Stop::Length),
        Some(ScriptedTurn::ToolCalls { text, calls }) => {
            reply(&text, calls.into_iter().map(|(n, a)| (n, CallArgs::Json(a))).collect(), Stop::Tools)
        }
        Some(ScriptedTurn::RawToolCalls(calls)) => {
            reply("", calls.into_iter().map(|(n, a)| (n, CallArgs::Raw(a))).collect(), Stop::Tools)
        }
        Some(ScriptedTurn::Error { status, message }) => (status, JSON.into(), error_body(format, status, &message)),
        Some(ScriptedTurn::Raw { status, content_type, body }) => (status, content_type, body),
        // Unwrapped by the loop above.
        Some(ScriptedTurn::Delayed(..) | ScriptedTurn::Gated(..)) => {
            (500, JSON.into(), error_body(format, 500, "nested delay"))
        }
    }
}

enum CallArgs {
    Json(Value),
    Raw(String),
}

impl CallArgs {
    fn as_string(&self) -> String {
        match self {
            CallArgs::Json(v) => v.to_string(),
            CallArgs::Raw(s) => s.clone(),
        }
    }
    fn as_object(&self) -> Value {
        match self {
            CallArgs::Json(v) => v.clone(),
            CallArgs::Raw(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        }
    }
    fn len(&self) -> usize {
        self.as_string().len()
    }
}

#[derive(Clone, Copy)]
enum Stop {
    End,
    Tools,
    Length,
}

fn openai_completion(
    id: u64,
    model: &str,
    text: &str,
    calls: &[(String, CallArgs)],
    stop: Stop,
    (tokens_in, tokens_out): (u64, u64),
) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text.to_owned()) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| {
                json!({
                    "id": format!("call_{id}_{i}"),
                    "type": "function",
                    "function": { "name": name, "arguments": args.as_string() },
                })
            })
            .collect();
    }
    let finish = match stop {
        Stop::End => "stop",
        Stop::Tools => "tool_calls",
        Stop::Length => "length",
    };
    json!({
        "id": format!("chatcmpl-scripted-{id}"),
        "object": "chat.completion",
        "created": 1_700_000_000u64 + id,
        "model": model,
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
        "usage": { "prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out },
        "system_fingerprint": "fp_scripted",
    })
}

fn anthropic_message(
    id: u64,
    model: &str,
    text: &str,
    calls: &[(String, CallArgs)],
    stop: Stop,
    (tokens_in, tokens_out): (u64, u64),
) -> Value {
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        content.push(json!({
            "type": "tool_use",
            "id": format!("toolu_scripted_{id}_{i}"),
            "name": name,
            "input": args.as_object(),
        }));
    }
    let stop_reason = match stop {
        Stop::End => "end_turn",
        Stop::Tools => "tool_use",
        Stop::Length => "max_tokens",
    };
    json!({
        "id": format!("msg_scripted_{id}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": { "input_tokens": tokens_in, "output_tokens": tokens_out },
    })
}

/// The provider's error body for `status`, with the error type each
/// provider documents for it.
fn error_body(format: WireFormat, status: u16, message: &str) -> Bytes {
    let body = match format {
        WireFormat::OpenAi => {
            let (kind, code) = match status {
                401 => ("invalid_request_error", Value::from("invalid_api_key")),
                404 => ("invalid_request_error", Value::from("model_not_found")),
                429 => ("requests", Value::from("rate_limit_exceeded")),
                500..=599 => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
        }
        WireFormat::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({ "type": "error", "error": { "type": kind, "message": message } })
        }
    };
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn post(addr: SocketAddr) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gated_turn_answers_only_once_its_gate_is_open() {
        let gate = Gate::new();
        let server = ScriptedModelServer::start([ScriptedTurn::text("let through").gated(&gate)]).await;
        let pending = tokio::spawn(post(server.addr()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!pending.is_finished(), "answered before the gate opened");
        assert!(!gate.is_open());
        gate.open();
        let answer = tokio::time::timeout(Duration::from_secs(10), pending).await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("let through"), "{answer}");
    }
}
