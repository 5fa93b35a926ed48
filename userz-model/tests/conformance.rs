//! `OpenAiCompatible` and `Anthropic` against the shared model conformance
//! suite (`userz_testkit::conformance::model`), each over the scripted model
//! server in its own wire format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::Value;
use userz_core::ports::model::ModelProvider;
use userz_fakes::model_server::ScriptedModelServer;
use userz_model::{Anthropic, OpenAiCompatible, Pricing, SecretString, Transport};
use userz_testkit::conformance::model::{ModelAdapter, ModelCapabilities, ModelSetup};

const CAPS: ModelCapabilities = ModelCapabilities { tool_calls: true };

fn usage(response: &Value, input: &str, output: &str) -> (u64, u64) {
    (response["usage"][input].as_u64().unwrap(), response["usage"][output].as_u64().unwrap())
}

/// OpenAI Chat Completions.
struct OpenAi;

impl ModelAdapter for OpenAi {
    fn path(&self) -> &'static str {
        "/v1/chat/completions"
    }
    fn connect(&self, server: &ScriptedModelServer, key: Option<&str>, setup: ModelSetup) -> Arc<dyn ModelProvider> {
        let mut p =
            OpenAiCompatible::new(&format!("{}/v1", server.base_url()), key.map(SecretString::from), Transport::Tcp)
                .unwrap();
        if let Some((i, o)) = setup.pricing {
            p = p.with_pricing(Pricing::new(i, o));
        }
        if let Some(cap) = setup.max_response_bytes {
            p = p.with_max_response_bytes(cap);
        }
        Arc::new(p)
    }
    fn reported_usage(&self, response: &Value) -> (u64, u64) {
        usage(response, "prompt_tokens", "completion_tokens")
    }
}

/// Anthropic Messages.
struct AnthropicMessages;

impl ModelAdapter for AnthropicMessages {
    fn path(&self) -> &'static str {
        "/v1/messages"
    }
    fn connect(&self, server: &ScriptedModelServer, key: Option<&str>, setup: ModelSetup) -> Arc<dyn ModelProvider> {
        let mut p = Anthropic::new(&server.base_url(), key.map(SecretString::from), Transport::Tcp).unwrap();
        if let Some((i, o)) = setup.pricing {
            p = p.with_pricing(Pricing::new(i, o));
        }
        if let Some(cap) = setup.max_response_bytes {
            p = p.with_max_response_bytes(cap);
        }
        Arc::new(p)
    }
    fn reported_usage(&self, response: &Value) -> (u64, u64) {
        usage(response, "input_tokens", "output_tokens")
    }
}

mod openai_compatible {
    userz_testkit::model_conformance_tests!(super::OpenAi, super::CAPS);
}

mod anthropic {
    userz_testkit::model_conformance_tests!(super::AnthropicMessages, super::CAPS);
}
