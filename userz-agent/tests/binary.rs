//! The `userz-agent` binary end to end: task file in, transcript and result out.

mod common;

use std::process::Command;

use common::Fixture;
use serde_json::json;
use userz_core::agent::{AgentResult, AgentStop, ModelApi, TranscriptEntry};
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};

fn run_binary(task: &userz_core::agent::AgentTask, dir: &std::path::Path) -> AgentResult {
    let task_file = dir.join("task.json");
    std::fs::write(&task_file, serde_json::to_vec(task).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_userz-agent"))
        .arg("--task")
        .arg(&task_file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The binary against a real HTTP model server, in both wire formats: the
/// scripted model edits a file and commits; the commit is in the repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_edits_and_commits_through_a_real_model_endpoint() {
    for api in [ModelApi::OpenaiCompatible, ModelApi::Anthropic] {
        let fx = Fixture::new();
        let server = ScriptedModelServer::start([
            ScriptedTurn::tool_call("read_file", json!({"path": "src/app.js"})),
            ScriptedTurn::tool_call(
                "edit_file",
                json!({"path": "src/app.js", "old_text": "return null;", "new_text": "return save_document();"}),
            ),
            ScriptedTurn::tool_call("git_add", json!({"paths": ["src/app.js"]})),
            ScriptedTurn::tool_call("git_commit", json!({"message": "Fix save"})),
            ScriptedTurn::text("Done: save now stores the document."),
        ])
        .await;
        let mut task = fx.task();
        task.model.api = api;
        task.model.base_url = match api {
            ModelApi::OpenaiCompatible => format!("{}/v1", server.base_url()),
            ModelApi::Anthropic => server.base_url(),
        };
        let dir = fx.out.path().to_path_buf();
        let result =
            tokio::task::spawn_blocking(move || run_binary(&task, &dir)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(result.stop, AgentStop::Completed, "{api:?}");
        assert_eq!((result.steps, result.commits), (5, 1), "{api:?}");
        assert!(result.usage.tokens_in > 0 && result.usage.tokens_out > 0);
        let content = std::fs::read_to_string(fx.root().join("src/app.js")).unwrap_or_else(|e| panic!("{e}"));
        assert!(content.contains("return save_document();"), "{content}");
        let repo = fx.repo();
        let head = repo.head().and_then(|h| h.peel_to_commit()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(head.summary().ok().flatten(), Some("Fix save"));
        assert_eq!(server.requests().len(), 5, "one request per step");
        let entries = fx.transcript_entries();
        assert!(matches!(entries.last(), Some(TranscriptEntry::Stopped { stop: AgentStop::Completed, steps: 5 })));
    }
}

#[test]
fn an_unreachable_model_endpoint_is_a_model_error_result_and_exit_zero() {
    let fx = Fixture::new();
    let mut task = fx.task();
    // A socket that does not exist: the provider fails locally, never touching a network.
    task.model.base_url = "http://model.egress.internal/v1".into();
    task.model.unix_socket = Some(fx.out.path().join("absent.sock"));
    let result = run_binary(&task, fx.out.path());
    match &result.stop {
        AgentStop::ModelError { message } => {
            assert!(message.contains("absent.sock") || message.contains("connect"), "{message}")
        }
        other => panic!("expected ModelError, got {other:?}"),
    }
    assert_eq!(result.commits, 0);
    assert!(matches!(fx.transcript_entries().last(), Some(TranscriptEntry::Stopped { .. })));
    assert!(!fx.out.path().join("result.json.tmp").exists());
}

#[test]
fn the_binary_fails_when_it_cannot_read_the_task_or_write_the_result() {
    let fx = Fixture::new();
    let missing = Command::new(env!("CARGO_BIN_EXE_userz-agent"))
        .args(["--task", "/nonexistent/task.json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("read_task"));

    let bad = fx.out.path().join("bad.json");
    std::fs::write(&bad, r#"{"run": "nope"}"#).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_userz-agent"))
        .arg("--task")
        .arg(&bad)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_task"));

    let mut task = fx.task();
    task.result = fx.out.path().join("no/such/dir/result.json");
    let task_file = fx.out.path().join("task.json");
    std::fs::write(&task_file, serde_json::to_vec(&task).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_userz-agent"))
        .arg("--task")
        .arg(&task_file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("write_result"));
}
