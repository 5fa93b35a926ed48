//! The reference server pointed at the real local model server (llama-cpp-python
//! serving SmolLM2-135M-Instruct at `USERZ_LLAMA_URL`, started by
//! `scripts/services.sh`): with `classifier = "layered"` a report submitted over
//! HTTP is labelled by the heuristic *and* the model, over the OpenAI wire
//! format with the `max_tokens` field llama.cpp honours. The model is tiny, so
//! the label itself is not judged; the test proves the configuration and the
//! wire path of the offline demo.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use userz_core::domain::feedback::{FeedbackDecider, FeedbackState};
use userz_engine::CommandBus;
use userz_server::config::{ClassifierKind, MaxTokensFieldKind, ModelApiKind, ModelConfig};
use userz_server::{start, Config};
use userz_testkit::services::require;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_labelled_by_the_local_model_through_the_reference_server() {
    let Some(url) = require("USERZ_LLAMA_URL") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        classifier: ClassifierKind::Layered,
        model: Some(ModelConfig {
            api: ModelApiKind::Openai,
            base_url: url,
            model: "smollm2-135m-instruct".into(),
            api_key_env: None,
            max_tokens_field: Some(MaxTokensFieldKind::MaxTokens),
            guided: false,
        }),
        ..Config::default()
    };
    // Runs are not the point here (the model cannot call tools).
    config.sandbox.enabled = false;
    let server = start(config).await.unwrap();
    let demo = server.demo.clone().unwrap();

    // Submitted over HTTP exactly as the printed curl line does.
    let line = server.curl_line().unwrap();
    let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id: userz_core::ids::FeedbackId = body["id"].as_str().expect("201 with an id").parse().unwrap();

    // The 2-core machine may be busy compiling: allow the model its time.
    let deadline = Instant::now() + Duration::from_secs(240);
    let classification = loop {
        let (state, _) = server
            .engine()
            .unwrap()
            .bus()
            .load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(id))
            .await
            .unwrap();
        let FeedbackState::Exists(fb) = state else { panic!("feedback {id} exists") };
        assert_eq!(fb.org, demo.org);
        if let Some(c) = fb.classification {
            break c;
        }
        assert!(Instant::now() < deadline, "feedback {id} not classified in 240 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The heuristic passed it on and the model answered (or failed closed);
    // either way the model was asked, which is what the name records.
    assert!(
        classification.classifier.contains("model/") && classification.classifier.contains("smollm2-135m-instruct"),
        "the model took part: {classification:?}"
    );
    server.shutdown();
}
