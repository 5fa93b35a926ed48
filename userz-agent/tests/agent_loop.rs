//! The agent loop against a scripted model: tools run in order, errors become
//! tool results, budgets stop the run, the transcript and result are written.

mod common;

use std::os::unix::fs::symlink;
use std::sync::Arc;

use common::{calls, done, Fixture, ScriptedModel};
use serde_json::json;
use userz_agent::{run_agent, run_agent_with, AgentOptions, ALL_TOOLS};
use userz_core::agent::{AgentResult, AgentStop, TranscriptEntry};
use userz_core::ports::model::{ChatMessage, Role};

fn tool_results(messages: &[ChatMessage]) -> Vec<&ChatMessage> {
    messages.iter().filter(|m| m.role == Role::Tool).collect()
}

fn error_code(m: &ChatMessage) -> String {
    assert!(m.is_error, "expected an error result, got {}", m.content);
    let v: serde_json::Value = serde_json::from_str(&m.content).unwrap_or_else(|e| panic!("{e}: {}", m.content));
    v["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_agent_edits_a_file_and_commits_as_the_task_author() {
    let fx = Fixture::new();
    let model = Arc::new(ScriptedModel::new(vec![
        calls(&[("read_file", json!({"path": "src/app.js"}))]),
        calls(&[
            ("edit_file", json!({"path": "src/app.js", "old_text": "return null;", "new_text": "return save_all();"})),
            ("git_status", json!({})),
            ("git_diff", json!({})),
        ]),
        calls(&[("git_add", json!({"paths": ["src/app.js"]})), ("git_commit", json!({"message": "Fix save"}))]),
        done("Fixed save and committed."),
    ]));
    let outcome = run_agent(&fx.task(), model.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let r = &outcome.result;
    assert_eq!(r.stop, AgentStop::Completed);
    assert_eq!((r.steps, r.commits), (4, 1));
    assert_eq!((r.usage.provider.as_str(), r.usage.model.as_str()), ("scripted", "test-model"));
    assert_eq!((r.usage.tokens_in, r.usage.tokens_out, r.usage.cost_micros), (400, 70, 11));

    // The commit exists on the branch, by the task's author, with the edit.
    let repo = fx.repo();
    let head = repo.head().unwrap_or_else(|e| panic!("{e}")).peel_to_commit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.message().ok(), Some("Fix save\n"));
    assert_eq!(head.author().name().ok(), Some("Userz Agent"));
    assert_eq!(head.author().email().ok(), Some("agent@userz.invalid"));
    assert_eq!(head.committer().email().ok(), Some("agent@userz.invalid"));
    assert_eq!(head.parent_count(), 1);
    let blob = head
        .tree()
        .unwrap_or_else(|e| panic!("{e}"))
        .get_path(std::path::Path::new("src/app.js"))
        .unwrap_or_else(|e| panic!("{e}"))
        .to_object(&repo)
        .unwrap_or_else(|e| panic!("{e}"))
        .peel_to_blob()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::str::from_utf8(blob.content()).unwrap_or_default(), "function save() {\n  return save_all();\n}\n");

    // What the model saw: system + user first, every tool's schema, results in order.
    let requests = model.requests();
    assert_eq!(requests.len(), 4);
    let first = &requests[0];
    assert_eq!(first.messages.iter().map(|m| m.role).collect::<Vec<_>>(), vec![Role::System, Role::User]);
    assert_eq!(first.model, "test-model");
    assert_eq!(first.max_tokens, 1_000);
    assert_eq!(first.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ALL_TOOLS.to_vec());
    assert!(first.tools.iter().all(|t| t.parameters["type"] == "object"));
    let results = tool_results(&outcome.messages);
    assert_eq!(results.len(), 6);
    assert!(results.iter().all(|m| !m.is_error), "{results:?}");
    assert!(results[0].content.contains("return null;"));
    assert_eq!(results[0].tool_call_id.as_deref(), Some("call_0_read_file"));
    assert!(results[2].content.contains(r#""path":"src/app.js""#) && results[2].content.contains("modified"));
    assert!(results[3].content.contains("-  return null;") && results[3].content.contains("+  return save_all();"));
    assert!(results[5].content.contains(&head.id().to_string()));
    // The last request carries the whole conversation so far.
    assert_eq!(requests[3].messages.len(), outcome.messages.len() - 1);

    // Result file matches the returned result.
    let written: AgentResult = serde_json::from_slice(&std::fs::read(fx.result()).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&written, r);
}

#[tokio::test]
async fn the_step_budget_stops_the_loop() {
    let fx = Fixture::new();
    let mut task = fx.task();
    task.budget.max_steps = 2;
    let model = Arc::new(ScriptedModel::new(vec![
        calls(&[("git_status", json!({}))]),
        calls(&[("git_status", json!({}))]),
        calls(&[("git_status", json!({}))]),
        done("never reached"),
    ]));
    let outcome = run_agent(&task, model.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.result.stop, AgentStop::StepBudget);
    assert_eq!(outcome.result.steps, 2);
    assert_eq!(model.requests().len(), 2);
    let entries = fx.transcript_entries();
    assert_eq!(entries.last(), Some(&TranscriptEntry::Stopped { stop: AgentStop::StepBudget, steps: 2 }));
}

#[tokio::test]
async fn the_token_budget_stops_the_loop() {
    let fx = Fixture::new();
    let mut task = fx.task();
    // Each scripted tool turn costs 120 tokens: the budget is spent after three.
    task.budget.max_tokens = 300;
    task.budget.max_output_tokens = 4_000;
    let model = Arc::new(ScriptedModel::new((0..10).map(|_| calls(&[("git_status", json!({}))])).collect()));
    let outcome = run_agent(&task, model.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.result.stop, AgentStop::TokenBudget);
    assert_eq!(outcome.result.steps, 3);
    assert_eq!(outcome.result.usage.tokens_in + outcome.result.usage.tokens_out, 360);
    // The output cap of each call shrinks to what is left of the budget.
    let caps: Vec<u32> = model.requests().iter().map(|r| r.max_tokens).collect();
    assert_eq!(caps, vec![300, 180, 60]);
}

#[tokio::test]
async fn a_model_error_stops_the_run_with_its_message() {
    let fx = Fixture::new();
    let model = Arc::new(ScriptedModel::new(vec![
        calls(&[("git_status", json!({}))]),
        Err("status 500: upstream exploded".into()),
    ]));
    let outcome = run_agent(&fx.task(), model).await.unwrap_or_else(|e| panic!("{e}"));
    match &outcome.result.stop {
        AgentStop::ModelError { message } => assert!(message.contains("upstream exploded"), "{message}"),
        other => panic!("expected ModelError, got {other:?}"),
    }
    assert_eq!(outcome.result.steps, 1);
}

#[tokio::test]
async fn bad_calls_become_error_results_and_the_run_continues() {
    let fx = Fixture::new();
    symlink(fx.outside.path().join("secret.txt"), fx.root().join("planted")).unwrap_or_else(|e| panic!("{e}"));
    symlink(fx.outside.path(), fx.root().join("outdir")).unwrap_or_else(|e| panic!("{e}"));
    let model = Arc::new(ScriptedModel::new(vec![
        calls(&[
            ("run_shell", json!({"command": "id"})),
            ("read_file", json!("{not json")),
            ("read_file", json!({"file": "src/app.js"})),
            ("read_file", json!({"path": "../x"})),
            ("read_file", json!({"path": "/etc/passwd"})),
            ("read_file", json!({"path": "planted"})),
            ("write_file", json!({"path": "outdir/new.txt", "content": "x"})),
            ("git_add", json!({"paths": ["../x"]})),
            ("git_add", json!({"paths": ["/etc/passwd"]})),
            ("git_add", json!({"paths": [".git/config"]})),
            ("git_add", json!({"paths": ["outdir/secret.txt"]})),
            ("git_commit", json!({"message": "nothing staged"})),
        ]),
        calls(&[("read_file", json!({"path": "README.md"}))]),
        done("gave up"),
    ]));
    let outcome = run_agent(&fx.task(), model).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.result.stop, AgentStop::Completed);
    assert_eq!((outcome.result.steps, outcome.result.commits), (3, 0));
    let results = tool_results(&outcome.messages);
    let codes: Vec<String> = results[..12].iter().map(|m| error_code(m)).collect();
    assert_eq!(
        codes,
        vec![
            "unknown_tool",
            "bad_arguments",
            "bad_arguments",
            "parent_component",
            "absolute_path",
            "escapes_workspace",
            "escapes_workspace",
            "parent_component",
            "absolute_path",
            "git_internal",
            "beyond_symlink",
            "empty_commit",
        ]
    );
    // The run went on: the next turn's call succeeded.
    assert!(!results[12].is_error && results[12].content.contains("# app"));
    assert!(!fx.outside.path().join("new.txt").exists());
    // The transcript records each failure with its code.
    let failed: Vec<Option<String>> = fx
        .transcript_entries()
        .into_iter()
        .filter_map(|e| match e {
            TranscriptEntry::ToolCall { ok, error, .. } => {
                assert_eq!(ok, error.is_none());
                Some(error)
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 13);
    assert_eq!(failed[0].as_deref(), Some("unknown_tool"));
    assert_eq!(failed[12], None);
}

#[tokio::test]
async fn only_the_enabled_tools_are_offered_and_allowed() {
    let fx = Fixture::new();
    let mut task = fx.task();
    task.tools = vec!["read_file".into(), "search".into()];
    let model = Arc::new(ScriptedModel::new(vec![
        calls(&[("write_file", json!({"path": "x.txt", "content": "x"})), ("search", json!({"pattern": "save"}))]),
        done("ok"),
    ]));
    let outcome = run_agent(&task, model.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let offered: Vec<String> = model.requests()[0].tools.iter().map(|t| t.name.clone()).collect();
    assert_eq!(offered, vec!["read_file", "search"]);
    let results = tool_results(&outcome.messages);
    assert_eq!(error_code(results[0]), "tool_not_enabled");
    assert!(!fx.root().join("x.txt").exists());
    assert!(results[1].content.contains("src/app.js"));

    // An unknown name in the task's tool list fails the run before any model call.
    task.tools = vec!["read_file".into(), "shell".into()];
    let model = Arc::new(ScriptedModel::new(vec![done("unused")]));
    let outcome = run_agent(&task, model.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    match outcome.result.stop {
        AgentStop::Failed { reason } => assert!(reason.starts_with("unknown_tool"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn a_workspace_that_is_not_a_repository_fails_the_run() {
    let fx = Fixture::new();
    let mut task = fx.task();
    let plain = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    task.workspace = plain.path().to_path_buf();
    let outcome =
        run_agent(&task, Arc::new(ScriptedModel::new(vec![done("unused")]))).await.unwrap_or_else(|e| panic!("{e}"));
    match outcome.result.stop {
        AgentStop::Failed { reason } => assert!(reason.starts_with("not_a_repository"), "{reason}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    // File tools alone need no repository.
    task.tools = vec!["read_file".into()];
    let outcome =
        run_agent(&task, Arc::new(ScriptedModel::new(vec![done("ok")]))).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.result.stop, AgentStop::Completed);
}

#[tokio::test]
async fn tool_results_are_capped_with_a_marker() {
    let fx = Fixture::new();
    let big = "é".repeat(50_000); // 100,000 bytes, multi-byte characters
    std::fs::write(fx.root().join("big.txt"), &big).unwrap_or_else(|e| panic!("{e}"));
    let model = Arc::new(ScriptedModel::new(vec![calls(&[("read_file", json!({"path": "big.txt"}))]), done("ok")]));
    let outcome = run_agent(&fx.task(), model).await.unwrap_or_else(|e| panic!("{e}"));
    let result = tool_results(&outcome.messages)[0];
    assert!(result.content.len() <= 64 * 1024, "{}", result.content.len());
    assert!(result.content.ends_with("[truncated: 100000 bytes total; the rest was cut]"));
    let options = AgentOptions { max_tool_result: 1_000, ..AgentOptions::default() };
    let model = Arc::new(ScriptedModel::new(vec![calls(&[("read_file", json!({"path": "big.txt"}))]), done("ok")]));
    let outcome = run_agent_with(&fx.task(), model, options).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(tool_results(&outcome.messages)[0].content.len() <= 1_000);
    let bytes = fx.transcript_entries().into_iter().find_map(|e| match e {
        TranscriptEntry::ToolCall { result_bytes, .. } => Some(result_bytes),
        _ => None,
    });
    assert_eq!(bytes, Some(tool_results(&outcome.messages)[0].content.len() as u64));
}

#[tokio::test]
async fn the_transcript_is_json_lines_ending_with_stopped() {
    let fx = Fixture::new();
    let content = "x".repeat(5_000);
    let model = Arc::new(ScriptedModel::new(vec![
        calls(&[("write_file", json!({"path": "notes/long.txt", "content": content}))]),
        calls(&[("git_add", json!({"paths": ["."]})), ("git_commit", json!({"message": "Add notes"}))]),
        done("done"),
    ]));
    let outcome = run_agent(&fx.task(), model).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.result.commits, 1);
    let entries = fx.transcript_entries();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| match e {
            TranscriptEntry::ModelTurn { .. } => "model_turn",
            TranscriptEntry::ToolCall { .. } => "tool_call",
            TranscriptEntry::Stopped { .. } => "stopped",
        })
        .collect();
    assert_eq!(kinds, vec!["model_turn", "tool_call", "model_turn", "tool_call", "tool_call", "model_turn", "stopped"]);
    match &entries[0] {
        TranscriptEntry::ModelTurn { step, tool_calls, tokens_in, tokens_out, .. } => {
            assert_eq!(
                (*step, tool_calls.as_slice(), *tokens_in, *tokens_out),
                (1, &["write_file".to_string()][..], 100, 20)
            );
        }
        other => panic!("{other:?}"),
    }
    match &entries[1] {
        TranscriptEntry::ToolCall { step, tool, arguments, ok, error, result_bytes } => {
            assert_eq!((*step, tool.as_str(), *ok, error), (1, "write_file", true, &None));
            assert_eq!(arguments["path"], "notes/long.txt");
            let kept = arguments["content"].as_str().unwrap_or_default();
            assert!(kept.len() < 400 && kept.ends_with("…[5000 bytes]"), "{kept}");
            assert!(*result_bytes > 0);
        }
        other => panic!("{other:?}"),
    }
    match &entries[5] {
        TranscriptEntry::ModelTurn { step, text, tool_calls, .. } => {
            assert_eq!((*step, text.as_str(), tool_calls.is_empty()), (3, "done", true));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(entries[6], TranscriptEntry::Stopped { stop: AgentStop::Completed, steps: 3 });
    let repo = fx.repo();
    let committed = repo.head().unwrap_or_else(|e| panic!("{e}")).peel_to_tree().unwrap_or_else(|e| panic!("{e}"));
    assert!(committed.get_path(std::path::Path::new("notes/long.txt")).is_ok());
}
