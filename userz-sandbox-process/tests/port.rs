//! What the process backend does beyond the shared sandbox conformance suite
//! (`tests/conformance.rs`): the agent run (with `userz-escape-probe --task`
//! standing in for `userz-agent`) and its configuration (model route, disk-cap
//! mode, uid range, bubblewrap).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use serde_json::Value;
use userz_core::agent::ModelApi;
use userz_core::ports::sandbox::{Limits, Sandbox, SandboxExit, SandboxSpec};
use userz_core::ports::vcs::Workspace;
use userz_core::Error;
use userz_egress::ModelRoute;
use userz_sandbox_process::{AgentModel, DiskCap};

const KEY: &str = "sk-test-must-never-enter-the-sandbox";

fn model() -> AgentModel {
    AgentModel {
        api: ModelApi::OpenaiCompatible,
        model: "probe-1".into(),
        route: ModelRoute::openai_compatible("model.egress.internal", "http://127.0.0.1:9", KEY.to_string().into())
            .unwrap(),
        guided: false,
    }
}

fn spec(run: &RunGuard, limits: Limits) -> SandboxSpec {
    SandboxSpec {
        run: run.run,
        org: userz_core::ids::OrgId::new(),
        workspace: Workspace {
            run: run.run,
            path: run.workspace.clone(),
            branch: "userz/fix".into(),
            base_commit: "0".repeat(40),
        },
        system_prompt: "system".into(),
        prompt: "fix the bug".into(),
        limits,
        egress_allowlist: vec!["github.com:443".into()],
        model_key: None,
    }
}

#[tokio::test]
async fn agent_run_completes_with_usage_transcript_and_egress_records_and_no_key_inside() {
    let Some(h) = Harness::with(|c| c.with_model(model())) else { return };
    let run = h.run(&limits()).await;
    // As the VCS step leaves it: files owned by the host's root.
    std::fs::create_dir(run.workspace.join("src")).unwrap();
    std::fs::write(run.workspace.join("src/lib.rs"), "fn main() {}").unwrap();
    let out = h.sandbox.run(&spec(&run, limits())).await.unwrap();
    assert_eq!(out.exit, SandboxExit::Completed, "{out:?}");
    let owner = std::fs::metadata(run.workspace.join("src/lib.rs")).unwrap().uid();
    // Handed to the run's uid for the run (the escape suite's write control
    // proves the agent can write there) and back to the host user after it.
    assert_eq!(owner, nix::unistd::geteuid().as_raw(), "checkout not handed back to the host user");
    assert_eq!((out.usage.tokens_in, out.usage.tokens_out, out.usage.model.as_str()), (7, 3, "probe-1"));
    assert!(out.resources.wall_ms > 0);

    let transcript = String::from_utf8(out.transcript.clone().expect("transcript returned").to_vec()).unwrap();
    assert!(!transcript.contains(KEY), "the provider key reached the sandbox");
    let line: Value = serde_json::from_str(transcript.lines().next().unwrap()).unwrap();
    let task = &line["task"];
    assert_eq!(task["model"]["base_url"], "http://model.egress.internal/v1");
    assert_eq!(task["model"]["unix_socket"], "/run/userz/egress.sock");
    assert_eq!(task["workspace"], "/workspace");
    assert_eq!(task["prompt"], "fix the bug");
    let env: Vec<&String> = line["env"].as_object().unwrap().keys().collect();
    assert_eq!(env, ["HOME", "LANG", "PATH"]);

    assert_eq!(out.egress.len(), 1, "{:?}", out.egress);
    assert_eq!(
        (out.egress[0].target.as_str(), out.egress[0].allowed, out.egress[0].rule.as_str()),
        ("denied.example:443", false, "not_allowlisted")
    );

    h.sandbox.release_workspace(run.run).await.unwrap();
}

#[tokio::test]
async fn agent_without_a_result_is_reported_as_failed() {
    let Some(h) = Harness::with(|c| {
        let mut c = c.with_model(model());
        c.agent = "/bin/true".into();
        c
    }) else {
        return;
    };
    let run = h.run(&limits()).await;
    let out = h.sandbox.run(&spec(&run, limits())).await.unwrap();
    match out.exit {
        SandboxExit::AgentFailed { reason } => assert!(reason.contains("agent result missing"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(out.transcript.is_none());
}

#[tokio::test]
async fn agent_run_without_a_model_route_is_unsupported() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let err = h.sandbox.run(&spec(&run, limits())).await.unwrap_err();
    assert!(matches!(&err, Error::Unsupported(m) if m.contains("sandbox.model")), "{err}");
}

#[tokio::test]
async fn unenforced_disk_cap_gives_a_plain_directory() {
    let Some(h) = Harness::with(|c| c.with_disk_cap(DiskCap::Unenforced)) else { return };
    let run = h.run(&limits()).await;
    assert_eq!(std::fs::metadata(&run.workspace).unwrap().dev(), std::fs::metadata(h.state.path()).unwrap().dev());
    h.sandbox.release_workspace(run.run).await.unwrap();
    assert!(!run.workspace.exists());
}

#[tokio::test]
async fn runs_get_distinct_host_uids_in_the_configured_range() {
    let Some(h) = Harness::with(|c| c.with_uid_range(300_000, 2)) else { return };
    let (a, b) = (h.run(&limits()).await, h.run(&limits()).await);
    let (ua, ub) = (h.sandbox.run_uid(&a.run), h.sandbox.run_uid(&b.run));
    assert_ne!(ua, ub);
    assert!([ua, ub].iter().all(|u| (300_000..300_002).contains(u)));
}

#[test]
fn missing_bubblewrap_is_unsupported_naming_the_setting() {
    let state = tempfile::tempdir().unwrap();
    let config = userz_sandbox_process::ProcessSandboxConfig::new(EXEC_HELPER, probe_binary())
        .with_bwrap("/nonexistent/bwrap")
        .with_state_root(state.path());
    let err = userz_sandbox_process::ProcessSandbox::new(config).unwrap_err();
    assert!(matches!(&err, Error::Unsupported(m) if m.contains("sandbox.bwrap")), "{err}");
}
