//! The reference server on its embedded defaults with the microVM backend,
//! started by an unprivileged user (scripts/microvm-tests.sh runs this as
//! `nobody`): a benign report is classified, the agent runs in a fresh guest
//! with its own kernel (a scripted model behind the real egress proxy), the
//! commits come back as a pack, pass the guardrails, and the branch is pushed
//! to the demo's local git remote. The run's record names the backend and
//! the guest kernel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::ids::FeedbackId;
use userz_engine::projections::{feedback_summary, run_detail, FeedbackSummary};
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
use userz_server::config::{ModelApiKind, ModelConfig, SandboxBackendKind};
use userz_server::{start, Config};

fn post_feedback(addr: SocketAddr, origin: &str, key: &str, text: &str) -> Value {
    let body = json!({ "text": text, "severity": "high" }).to_string();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/feedback HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nOrigin: {origin}\r\n\
         X-Userz-Public-Key: {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 20"), "{resp}");
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn config(tmp: &std::path::Path, model: &ScriptedModelServer, bin_dir: PathBuf) -> Config {
    let (kernel, modules) = common::kernel().unwrap();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.join("data"),
        model: Some(ModelConfig {
            api: ModelApiKind::Openai,
            base_url: model.base_url(),
            model: "scripted-1".into(),
            api_key_env: None,
            max_tokens_field: None,
            guided: false,
        }),
        ..Config::default()
    };
    config.sandbox.backend = SandboxBackendKind::Microvm;
    config.sandbox.kernel = Some(kernel);
    config.sandbox.modules_dir = Some(modules);
    config.sandbox.bin_dir = Some(bin_dir);
    config.sandbox.memory_mib = 512;
    config.sandbox.disk_mib = 64;
    config.sandbox.wall_clock_secs = 240;
    config
}

async fn finished(server: &userz_server::Server, org: userz_core::ids::OrgId, id: FeedbackId) -> FeedbackSummary {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let row = feedback_summary(server.stores.read_models.as_ref(), org, id).await.unwrap();
        let done = |s: FeedbackStatus| {
            matches!(
                s,
                FeedbackStatus::PrOpened
                    | FeedbackStatus::BranchPushed
                    | FeedbackStatus::PrFailed
                    | FeedbackStatus::Failed
                    | FeedbackStatus::Rejected
            )
        };
        if let Some(r) = row.filter(|r| done(r.status)) {
            return r;
        }
        assert!(Instant::now() < deadline, "the report did not finish in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn userz_branches(repository: &std::path::Path) -> Vec<String> {
    let remote = git2::Repository::open_bare(repository).unwrap();
    let names: Vec<String> = remote
        .branches(Some(git2::BranchType::Local))
        .unwrap()
        .flatten()
        .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
        .filter(|n| n.starts_with("userz/"))
        .collect();
    names
}

/// A hostile guest (the escape probe standing in for the agent) returns a
/// corrupted pack for one report and a pack whose commit names a blob as its
/// tree for another: both runs end `failed` with the rule that refused the
/// pack, and nothing is pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_result_packs_fail_the_run_with_the_rule_and_push_nothing() {
    if !common::host_ready() {
        return;
    }
    let model = ScriptedModelServer::start([ScriptedTurn::text("unused")]).await;
    std::fs::create_dir_all(common::cache_dir()).unwrap();
    let tmp = tempfile::Builder::new().prefix("server-").tempdir_in(common::cache_dir()).unwrap();
    // The "agent" of this image is the probe: its --export-pack writes the bad packs.
    let bins = tmp.path().join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::copy(common::probe_binary(), bins.join("userz-agent")).unwrap();
    std::fs::copy(common::init_binary(), bins.join("userz-vm-init")).unwrap();
    let server = start(config(tmp.path(), &model, bins)).await.unwrap();
    assert_eq!(server.sandbox_unavailable, None);
    let demo = server.demo.clone().unwrap();
    for (text, rule) in [
        ("The Save button does nothing (corrupt-pack)", "pack_invalid"),
        ("The Save button loses my text (lying-pack)", "pack_object_kind"),
    ] {
        let created = post_feedback(server.addr, &server.public_url, &demo.public_key, text);
        let id: FeedbackId = created["id"].as_str().unwrap().parse().unwrap();
        let row = finished(&server, demo.org, id).await;
        assert_eq!(row.status, FeedbackStatus::Failed, "{row:?}");
        let failure = row.failure.clone().unwrap_or_default();
        assert!(failure.contains("result pack rejected") && failure.contains(rule), "{text}: {failure}");
    }
    assert!(userz_branches(&demo.repository).is_empty(), "a hostile pack reached the remote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benign_report_becomes_a_pushed_branch_through_a_microvm_run() {
    if !common::host_ready() {
        return;
    }
    let model = ScriptedModelServer::start([
        ScriptedTurn::tool_call("read_file", json!({"path": "src/app.js"})),
        ScriptedTurn::tool_call(
            "edit_file",
            json!({"path": "src/app.js", "old_text": "return null;", "new_text": "return localStorage.setItem('doc', 'x');"}),
        ),
        ScriptedTurn::tool_call("git_add", json!({"paths": ["src/app.js"]})),
        ScriptedTurn::tool_call("git_commit", json!({"message": "Save: store the document"})),
        ScriptedTurn::text("Fixed."),
    ])
    .await;
    std::fs::create_dir_all(common::cache_dir()).unwrap();
    let tmp = tempfile::Builder::new().prefix("server-").tempdir_in(common::cache_dir()).unwrap();
    let (_, modules) = common::kernel().unwrap();
    let agent = userz_testkit::bins::workspace_bin("userz-agent");
    let config = config(tmp.path(), &model, agent.parent().map(PathBuf::from).unwrap());
    let server = start(config).await.unwrap();
    assert_eq!(server.sandbox_unavailable, None);
    let described = server.sandbox_description.clone().unwrap();
    assert!(described.contains("microVM") && described.contains("own guest kernel"), "{described}");
    let demo = server.demo.clone().expect("first start creates the demo");

    let created = post_feedback(server.addr, &server.public_url, &demo.public_key, "The Save button does nothing");
    let id: FeedbackId = created["id"].as_str().unwrap().parse().unwrap();
    let row = finished(&server, demo.org, id).await;
    assert_eq!(row.status, FeedbackStatus::BranchPushed, "{row:?}");

    // The run's record names the backend and the guest kernel.
    let run = row.latest_run.unwrap();
    let detail = run_detail(server.stores.read_models.as_ref(), demo.org, run).await.unwrap().unwrap();
    let sandbox = detail.sandbox.unwrap();
    let release = modules.file_name().unwrap().to_string_lossy().into_owned();
    assert!(sandbox.contains("microVM") && sandbox.contains(&release), "{sandbox}");

    // The branch is on the demo's remote with the agent's edit.
    let branches = userz_branches(&demo.repository);
    assert_eq!(branches.len(), 1, "{branches:?}");
    let remote = git2::Repository::open_bare(&demo.repository).unwrap();
    let branch = remote.find_branch(&branches[0], git2::BranchType::Local).unwrap();
    let tree = branch.get().peel_to_tree().unwrap();
    let blob = tree.get_path(std::path::Path::new("src/app.js")).unwrap().to_object(&remote).unwrap();
    let text = String::from_utf8_lossy(blob.as_blob().unwrap().content()).into_owned();
    assert!(text.contains("localStorage.setItem"), "{text}");
    drop(server);
}
