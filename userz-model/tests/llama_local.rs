//! The real OpenAI-compatible provider against a real local model server:
//! llama-cpp-python serving SmolLM2-135M-Instruct at `USERZ_LLAMA_URL`
//! (started by `scripts/services.sh`, `svc_start_llama`). The model is tiny:
//! these tests prove the wire path (request body, response parsing, usage),
//! not answer quality.
//!
//! Findings pinned here:
//! - llama-cpp-python reads `max_tokens` and ignores `max_completion_tokens`
//!   (a request capped only by the latter generates until end of text), so a
//!   deployment pointing at it sets [`MaxTokensField::MaxTokens`].
//! - Its default chat handler accepts a request offering tools but never
//!   answers with tool calls (no function-calling chat format is configured
//!   for this model); the agent needs a tool-capable model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use userz_core::ports::classifier::{Classifier, ClassifierInput, Label};
use userz_core::ports::model::{ChatMessage, CompletionRequest, ModelProvider, StopReason, ToolSpec};
use userz_model::{MaxTokensField, ModelClassifier, OpenAiCompatible, Transport, UNPARSEABLE_SIGNAL};
use userz_testkit::services::require;

/// The server serves one model whatever the request names.
const MODEL: &str = "smollm2-135m-instruct";

fn provider(url: &str) -> OpenAiCompatible {
    OpenAiCompatible::new(url, None, Transport::Tcp)
        .unwrap()
        .with_provider_name("llama.cpp")
        .with_max_tokens_field(MaxTokensField::MaxTokens)
        // Generous: the 2-core machine is shared with compilers during the test run.
        .with_timeout(Duration::from_secs(240))
}

#[tokio::test]
async fn a_chat_completion_returns_text_and_usage_within_the_cap() {
    let Some(url) = require("USERZ_LLAMA_URL") else { return };
    let request = CompletionRequest {
        temperature: Some(0.0),
        tool_choice: None,
        ..CompletionRequest::new(MODEL, vec![ChatMessage::user("Name one colour of the rainbow.")], 12)
    };
    let completion = provider(&url).complete(&request).await.unwrap();
    assert!(!completion.content.trim().is_empty(), "{completion:?}");
    assert!(completion.tool_calls.is_empty());
    assert!(completion.tokens_in > 5, "prompt tokens counted: {completion:?}");
    assert!((1..=12).contains(&completion.tokens_out), "max_tokens honoured: {completion:?}");
    assert!(matches!(completion.stop, StopReason::EndTurn | StopReason::MaxTokens), "{completion:?}");
    assert_eq!(completion.cost_micros, 0, "unpriced provider");
}

#[tokio::test]
async fn the_model_classifier_gets_a_valid_label_over_the_wire() {
    let Some(url) = require("USERZ_LLAMA_URL") else { return };
    let classifier = ModelClassifier::new(Arc::new(provider(&url)), MODEL).with_max_tokens(8);
    let input = ClassifierInput {
        text: "The save button on the settings page does nothing when I click it.".to_owned().into(),
        url: Some("https://app.example.com/settings".into()),
        console: vec!["TypeError: cannot read properties of undefined (reading 'save')".to_owned()].into(),
    };
    let verdict = classifier.classify(&input).await.unwrap();
    eprintln!("SmolLM2 verdict: {verdict:?}");
    assert!(Label::ALL.contains(&verdict.label));
    assert!((0.0..=1.0).contains(&verdict.confidence));
    assert_eq!(verdict.classifier, format!("model/llama.cpp/{MODEL}"));
    // Whatever the tiny model says, anything but one bare label fails closed.
    if verdict.signals.iter().any(|s| s.kind == UNPARSEABLE_SIGNAL) {
        assert_eq!((verdict.label, verdict.confidence), (Label::MaliciousInjection, 0.0));
    }
}

#[tokio::test]
async fn a_request_offering_tools_is_accepted_and_answered() {
    let Some(url) = require("USERZ_LLAMA_URL") else { return };
    let mut request = CompletionRequest::new(
        MODEL,
        vec![ChatMessage::system("You can read files."), ChatMessage::user("Read the file README.md.")],
        16,
    );
    request.temperature = Some(0.0);
    request.tools = vec![ToolSpec {
        name: "read_file".into(),
        description: "Read a file of the workspace".into(),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
    }];
    let completion = provider(&url).complete(&request).await.unwrap();
    // The default chat handler answers in text; should a future server emit
    // tool calls, they must have parsed into named calls.
    assert!(!completion.content.is_empty() || !completion.tool_calls.is_empty(), "{completion:?}");
    for call in &completion.tool_calls {
        assert_eq!(call.name, "read_file");
    }
    assert!(completion.tokens_in > 0 && completion.tokens_out > 0, "{completion:?}");
}
