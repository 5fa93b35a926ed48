//! The `userz-agent` binary end to end: task file in, transcript and result out.

mod common;

use std::process::Command;

use common::Fixture;
use userz_core::agent::{AgentResult, AgentStop, TranscriptEntry};

#[test]
fn without_a_linked_provider_the_binary_writes_a_model_error_result_and_exits_zero() {
    let fx = Fixture::new();
    let mut task = fx.task();
    // Loopback and a socket that does not exist: a linked provider fails locally too.
    task.model.base_url = "http://127.0.0.1:9".into();
    task.model.unix_socket = Some(fx.out.path().join("absent.sock"));
    let task_file = fx.out.path().join("task.json");
    std::fs::write(&task_file, serde_json::to_vec(&task).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_userz-agent"))
        .arg("--task")
        .arg(&task_file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    let result: AgentResult = serde_json::from_slice(&std::fs::read(fx.result()).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    match &result.stop {
        // Until `userz-model` is linked into `provider()`; afterwards the
        // message is the provider's connection error to the absent socket.
        AgentStop::ModelError { message } => {
            assert!(message.contains("model provider adapters not linked: userz-model missing"), "{message}")
        }
        other => panic!("expected ModelError, got {other:?}"),
    }
    assert_eq!((result.steps, result.commits, result.usage.model.as_str()), (0, 0, "test-model"));
    let entries = fx.transcript_entries();
    assert_eq!(entries, vec![TranscriptEntry::Stopped { stop: result.stop.clone(), steps: 0 }]);
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
