//! Every request `OpenAiCompatible` sends and every response the scripted
//! server returns, validated against OpenAI's own API description
//! (`contracts/openai.chat-completions.subset.json`, OpenAPI 3.1 / JSON
//! Schema 2020-12).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::{json, Value};
use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider, StopReason, ToolSpec};
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
use userz_model::{MaxTokensField, OpenAiCompatible, Pricing, Transport};

const CONTRACT: &str = include_str!("../../contracts/openai.chat-completions.subset.json");

/// A validator whose root is the whole API description's components with a
/// `$ref` to one schema, so every `#/components/schemas/...` ref resolves
/// inside the document.
fn validator_for(component: &str) -> Validator {
    let doc: Value = serde_json::from_str(CONTRACT).unwrap();
    assert!(doc["components"]["schemas"][component].is_object(), "{component} missing from the contract");
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{component}"),
        "components": doc["components"],
    });
    jsonschema::draft202012::options().build(&root).unwrap()
}

fn request_schema() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| validator_for("CreateChatCompletionRequest"))
}

fn response_schema() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| validator_for("CreateChatCompletionResponse"))
}

#[track_caller]
fn assert_valid(v: &Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what} breaks the contract:\n{}\n{instance:#}", errors.join("\n"));
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "read_file".into(),
            description: "Reads a file of the workspace.".into(),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        },
        ToolSpec {
            name: "search".into(),
            description: "Searches the workspace.".into(),
            parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        },
        ToolSpec {
            name: "edit_file".into(),
            description: "Replaces text in a file.".into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string"}, "old": {"type": "string"}, "new": {"type": "string"}}}),
        },
    ]
}

/// Drives a tool-calling agent loop until the model ends its turn; answers
/// every tool call (the second one of each turn as a failure).
async fn run_conversation(provider: &dyn ModelProvider, temperature: Option<f32>) -> Vec<ChatMessage> {
    let mut messages = vec![
        ChatMessage::system("You are a coding agent."),
        ChatMessage::user("The save button does nothing. Fix it."),
    ];
    for _ in 0..10 {
        let mut request = CompletionRequest::new("gpt-4o-mini", messages.clone(), 512);
        request.tools = tools();
        request.temperature = temperature;
        let completion = provider.complete(&request).await.unwrap();
        messages.push(ChatMessage::assistant(completion.content.clone(), completion.tool_calls.clone()));
        if completion.stop != StopReason::ToolUse {
            return messages;
        }
        for (i, call) in completion.tool_calls.iter().enumerate() {
            messages.push(ChatMessage::tool_result(&call.id, format!("result of {}", call.name), i == 1));
        }
    }
    panic!("the conversation did not end");
}

fn script() -> Vec<ScriptedTurn> {
    vec![
        ScriptedTurn::tool_calls([
            ("read_file", json!({"path": "src/save.js"})),
            ("search", json!({"query": "onSave"})),
        ]),
        ScriptedTurn::ToolCalls {
            text: "The handler is not bound.".into(),
            calls: vec![("edit_file".into(), json!({"path": "src/save.js", "old": "x", "new": "y"}))],
        },
        ScriptedTurn::RawToolCalls(vec![("read_file".into(), r#"{"path": "src/save.js""#.into())]),
        ScriptedTurn::text("Bound the click handler; saving works again."),
    ]
}

#[tokio::test]
async fn every_request_and_response_of_a_tool_calling_conversation_follows_the_contract() {
    for field in [MaxTokensField::MaxCompletionTokens, MaxTokensField::MaxTokens] {
        let server = ScriptedModelServer::start(script()).await;
        let provider = OpenAiCompatible::new(&format!("{}/v1", server.base_url()), None, Transport::Tcp)
            .unwrap()
            .with_max_tokens_field(field)
            .with_pricing(Pricing::new(150_000, 600_000));
        let messages = run_conversation(&provider, Some(0.2)).await;
        assert_eq!(messages.last().unwrap().content, "Bound the click handler; saving works again.");

        let exchanges = server.requests();
        assert_eq!(exchanges.len(), 4);
        for (i, x) in exchanges.iter().enumerate() {
            assert_eq!(x.path, "/v1/chat/completions");
            assert_eq!(x.status, 200, "{}", String::from_utf8_lossy(&x.response));
            assert_valid(request_schema(), &x.json(), &format!("request {i}"));
            assert_valid(response_schema(), &x.response_json(), &format!("response {i}"));
        }

        // The last request carries the whole history in wire form.
        let last = exchanges[3].json();
        let m = last["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "You are a coding agent."}));
        assert_eq!(m[2]["role"], "assistant");
        assert_eq!(m[2]["content"], "", "a tool-call-only turn has empty content (llama.cpp refuses null)");
        assert_eq!(m[2]["tool_calls"][0]["type"], "function");
        let args = m[2]["tool_calls"][0]["function"]["arguments"].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(args).unwrap(), json!({"path": "src/save.js"}));
        assert_eq!(m[3]["role"], "tool");
        assert_eq!(m[3]["tool_call_id"], m[2]["tool_calls"][0]["id"]);
        assert!(m[4]["content"].as_str().unwrap().starts_with(userz_model::TOOL_ERROR_PREFIX));
        assert_eq!(m[5]["content"], "The handler is not bound.");
        // Broken arguments went back exactly as the model sent them.
        assert_eq!(m[7]["tool_calls"][0]["function"]["arguments"], r#"{"path": "src/save.js""#);
        assert_eq!(last["tools"][0]["type"], "function");
        assert_eq!(last["tools"][0]["function"]["name"], "read_file");
        assert!(last["tools"][0]["function"]["parameters"].is_object());
        assert!((last["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
        match field {
            MaxTokensField::MaxCompletionTokens => {
                assert_eq!(last["max_completion_tokens"], 512);
                assert!(last.get("max_tokens").is_none());
            }
            _ => {
                assert_eq!(last["max_tokens"], 512);
                assert!(last.get("max_completion_tokens").is_none());
            }
        }
    }
}

#[tokio::test]
async fn usage_and_cost_come_from_the_providers_counts() {
    let server = ScriptedModelServer::start([ScriptedTurn::text("hello there")]).await;
    let provider = OpenAiCompatible::new(&format!("{}/v1", server.base_url()), None, Transport::Tcp)
        .unwrap()
        .with_pricing(Pricing::new(2_000_000, 8_000_000));
    let c = provider.complete(&CompletionRequest::new("m", vec![ChatMessage::user("hi")], 16)).await.unwrap();
    let usage = &server.requests()[0].response_json()["usage"];
    assert_eq!(c.tokens_in, usage["prompt_tokens"].as_u64().unwrap());
    assert_eq!(c.tokens_out, usage["completion_tokens"].as_u64().unwrap());
    assert!(c.tokens_in > 0 && c.tokens_out > 0);
    assert_eq!(c.cost_micros, (c.tokens_in * 2_000_000 + c.tokens_out * 8_000_000).div_ceil(1_000_000));
    assert_eq!(c.stop, StopReason::EndTurn);
}

#[test]
fn the_validators_reject_malformed_bodies() {
    let good = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert!(request_schema().is_valid(&good), "the minimal request must pass");
    for bad in [
        json!({"model": "m"}),
        json!({"model": "m", "messages": []}),
        json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]}),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "name": "f", "parameters": {}}]}),
        json!({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}),
    ] {
        assert!(!request_schema().is_valid(&bad), "accepted: {bad}");
    }
    let response = json!({
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
            "message": {"role": "assistant", "content": "hi", "refusal": null}}],
    });
    assert!(response_schema().is_valid(&response), "the minimal response must pass");
    let mut no_refusal = response.clone();
    no_refusal["choices"][0]["message"].as_object_mut().unwrap().remove("refusal");
    let mut bad_finish = response.clone();
    bad_finish["choices"][0]["finish_reason"] = json!("done");
    let mut bad_object = response.clone();
    bad_object["object"] = json!("completion");
    for bad in [no_refusal, bad_finish, bad_object, json!({"choices": []})] {
        assert!(!response_schema().is_valid(&bad), "accepted: {bad}");
    }
}
