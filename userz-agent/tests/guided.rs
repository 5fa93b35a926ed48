//! Guided turns (`ModelEndpoint::guided`): the files shown up front, one
//! named tool a turn with paths narrowed to the workspace, a failed or
//! skipped turn asked again, a call to a tool not offered never run.

mod common;

use std::sync::Arc;

use common::{calls, done, Fixture, ScriptedModel};
use serde_json::json;
use userz_agent::run_agent;
use userz_core::agent::AgentStop;
use userz_core::ports::model::Role;

#[tokio::test]
async fn guided_turns_write_stage_and_commit_with_the_tool_named_each_turn() {
    let fx = Fixture::new();
    let mut task = fx.task();
    task.model.guided = true;
    let model = Arc::new(ScriptedModel::new(vec![
        // Not offered this turn: answered with an error, not run.
        calls(&[("git_commit", json!({"message": "too early"}))]),
        // No call at all: the turn is asked again.
        done("I think the fix is to return the text."),
        calls(&[("write_file", json!({"path": "src/app.js", "content": "function save() {\n  return 1;\n}\n"}))]),
        calls(&[("git_add", json!({"paths": ["."]}))]),
        calls(&[("git_commit", json!({"message": "Make save return a value"}))]),
    ]));
    let outcome = run_agent(&task, model.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.result.stop, AgentStop::Completed);
    assert_eq!((outcome.result.steps, outcome.result.commits), (5, 1));

    let requests = model.requests();
    let chosen: Vec<_> = requests.iter().map(|r| r.tool_choice.clone().unwrap_or_default()).collect();
    assert_eq!(chosen, ["write_file", "write_file", "write_file", "git_add", "git_commit"]);
    for r in &requests {
        assert_eq!(r.tools.len(), 1, "one tool a turn");
        assert_eq!(Some(&r.tools[0].name), r.tool_choice.as_ref());
    }
    assert_eq!(requests[0].tools[0].parameters["properties"]["path"]["enum"], json!(["README.md", "src/app.js"]));
    // The files are shown (contents included) after the task.
    let shown = &requests[0].messages[2];
    assert_eq!(shown.role, Role::User);
    assert!(shown.content.contains("--- src/app.js\nfunction save() {\n  return null;\n}\n"), "{}", shown.content);
    // The early commit was refused without running.
    let first_result = outcome.messages.iter().find(|m| m.role == Role::Tool).unwrap_or_else(|| panic!("no result"));
    assert!(first_result.is_error && first_result.content.contains("not_offered"), "{}", first_result.content);

    let repo = fx.repo();
    let head = repo.head().unwrap_or_else(|e| panic!("{e}")).peel_to_commit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.message().ok(), Some("Make save return a value\n"));
    assert_eq!(head.parent_count(), 1, "exactly one commit: the early one never ran");
}

#[tokio::test]
async fn a_failed_commit_starts_over_from_the_write() {
    let fx = Fixture::new();
    let mut task = fx.task();
    task.model.guided = true;
    let same = "function save() {\n  return null;\n}\n";
    let model = Arc::new(ScriptedModel::new(vec![
        // Writes what is already there: nothing to commit.
        calls(&[("write_file", json!({"path": "src/app.js", "content": same}))]),
        calls(&[("git_add", json!({"paths": ["src/app.js"]}))]),
        calls(&[("git_commit", json!({"message": "No-op"}))]),
        calls(&[("write_file", json!({"path": "src/app.js", "content": "function save() {}\n"}))]),
        calls(&[("git_add", json!({"paths": ["src/app.js"]}))]),
        calls(&[("git_commit", json!({"message": "Save does something"}))]),
    ]));
    let outcome = run_agent(&task, model.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(outcome.result.stop, AgentStop::Completed, "{:?}", outcome.messages);
    assert_eq!(outcome.result.commits, 1);
    let chosen: Vec<_> = model.requests().iter().map(|r| r.tool_choice.clone().unwrap_or_default()).collect();
    assert_eq!(chosen, ["write_file", "git_add", "git_commit", "write_file", "git_add", "git_commit"]);
}

#[tokio::test]
async fn guided_turns_need_their_tools_enabled() {
    let fx = Fixture::new();
    let mut task = fx.task();
    task.model.guided = true;
    task.tools = vec!["read_file".into(), "write_file".into()];
    let model = Arc::new(ScriptedModel::new(vec![calls(&[(
        "write_file",
        json!({"path": "README.md", "content": "# fixed\n"}),
    )])]));
    let outcome = run_agent(&task, model).await.unwrap_or_else(|e| panic!("{e}"));
    match outcome.result.stop {
        AgentStop::Failed { reason } => assert!(reason.contains("git_add"), "{reason}"),
        other => panic!("expected a failure naming the missing tool, got {other:?}"),
    }
}
