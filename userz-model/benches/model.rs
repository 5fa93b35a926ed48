//! Client overhead of the model adapters: request building, and a full
//! `complete()` round trip to the scripted server on loopback beside a raw
//! hyper POST to the same server (the baseline: what HTTP alone costs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider, ToolCall, ToolSpec};
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
use userz_model::wire::{anthropic_request_body, openai_request_body};
use userz_model::{Anthropic, MaxTokensField, OpenAiCompatible, Transport};

/// A 20-turn tool-calling conversation (~1 KB of text per tool result).
fn conversation() -> CompletionRequest {
    let mut messages = vec![ChatMessage::system("You are a coding agent."), ChatMessage::user("Fix the save button.")];
    for i in 0..20 {
        let call = ToolCall {
            id: format!("call_{i}"),
            name: "read_file".into(),
            arguments: json!({"path": format!("src/f{i}.js")}),
        };
        messages.push(ChatMessage::assistant("", vec![call]));
        messages.push(ChatMessage::tool_result(format!("call_{i}"), "x".repeat(1024), false));
    }
    let mut r = CompletionRequest::new("gpt-4o-mini", messages, 4096);
    r.tools = vec![ToolSpec {
        name: "read_file".into(),
        description: "Reads a file.".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    }];
    r
}

fn bench_wire(c: &mut Criterion) {
    let request = conversation();
    let mut g = c.benchmark_group("model_wire");
    g.bench_function("openai_request_body_20_turns", |b| {
        b.iter(|| serde_json::to_vec(&openai_request_body(&request, MaxTokensField::default()).unwrap()).unwrap())
    });
    g.bench_function("anthropic_request_body_20_turns", |b| {
        b.iter(|| serde_json::to_vec(&anthropic_request_body(&request).unwrap()).unwrap())
    });
    g.finish();
}

fn bench_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = rt.block_on(ScriptedModelServer::start(Vec::new()));
    let addr = server.addr();
    let openai = OpenAiCompatible::new(&format!("{}/v1", server.base_url()), None, Transport::Tcp).unwrap();
    let anthropic = Anthropic::new(&server.base_url(), None, Transport::Tcp).unwrap();
    let small = CompletionRequest::new("m", vec![ChatMessage::user("The save button does nothing.")], 64);
    let body =
        Bytes::from(serde_json::to_vec(&openai_request_body(&small, MaxTokensField::default()).unwrap()).unwrap());

    let mut g = c.benchmark_group("model_round_trip");
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("raw_hyper_post_baseline", |b| {
        b.iter_custom(|iters| {
            server.push((0..iters).map(|_| ScriptedTurn::text("ok")));
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
                    tokio::spawn(conn);
                    let req = http::Request::post("/v1/chat/completions")
                        .header("host", addr.to_string())
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let resp = send.send_request(req).await.unwrap();
                    resp.into_body().collect().await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("openai_complete", |b| {
        b.iter_custom(|iters| {
            server.push((0..iters).map(|_| ScriptedTurn::text("ok")));
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    openai.complete(&small).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("anthropic_complete", |b| {
        b.iter_custom(|iters| {
            server.push((0..iters).map(|_| ScriptedTurn::text("ok")));
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    anthropic.complete(&small).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench_wire, bench_round_trip);
criterion_main!(benches);
