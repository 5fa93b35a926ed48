//! Issue 5 end to end, every part real except the model: a report goes
//! through the engine, the real `userz-agent` binary runs in the process
//! sandbox (bubblewrap, cgroups, seccomp, Landlock, loop-mounted workspace),
//! talks to a scripted OpenAI-compatible model server only through the run's
//! egress proxy (which adds the key), edits and commits; the host reads the
//! commits as untrusted data, checks the guardrails and hands over to the VCS
//! step (a branch pushed to a local bare repository). A second report whose
//! agent touches `.github/workflows/ci.yml` ends `pr_failed` naming that file
//! and rule, and nothing is pushed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use userz_core::agent::ModelApi;
use userz_core::domain::common::Actor;
use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::repo::Provider;
use userz_core::domain::run::RunStatus;
use userz_core::ports::Limits;
use userz_core::Clock;
use userz_egress::ModelRoute;
use userz_engine::blobs::Blobs;
use userz_engine::projections::audit_log;
use userz_engine::secrets::put_secret;
use userz_engine::{CommandBus, Engine, EngineConfig, EngineDeps};
use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
use userz_git::GitChangeReader;
use userz_sandbox_process::{AgentModel, ProcessSandbox, ProcessSandboxConfig};
use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};
use userz_store_memory::MemoryStores;
use userz_testkit::doubles::ScriptedClassifier;
use userz_testkit::git_fixture::git;
use userz_testkit::scenarios::{seed_with_provider, submit, test_config, wait_run, wait_status};
use userz_vcs_git::GitBranchProvider;

/// The org's own model key, sealed in its secrets and decrypted per run.
const KEY: &str = "sk-e2e-org-model-key-0123456789abcdef";
/// The deployment's fallback key configured in the sandbox: must not be used
/// for an org that set its own.
const DEPLOYMENT_KEY: &str = "sk-e2e-deployment-key-fedcba9876543210";

fn bare_repo(tmp: &Path) -> std::path::PathBuf {
    let seed = tmp.join("seed");
    std::fs::create_dir_all(seed.join("src")).unwrap();
    git(tmp, &["init", "-q", seed.to_str().unwrap()]);
    std::fs::write(seed.join("src/app.js"), "function save() {\n  return null;\n}\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "seed"]);
    let bare = tmp.join("web.git");
    git(tmp, &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()]);
    bare
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_to_sandboxed_agent_to_guardrails_to_branch_push() {
    if !common::host_ready() {
        return;
    }
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path());
    let server = ScriptedModelServer::start_requiring_key(
        [
            ScriptedTurn::tool_call("read_file", json!({"path": "src/app.js"})),
            ScriptedTurn::tool_call(
                "edit_file",
                json!({"path": "src/app.js", "old_text": "return null;", "new_text": "return store(document);"}),
            ),
            ScriptedTurn::tool_call("git_add", json!({"paths": ["src/app.js"]})),
            ScriptedTurn::tool_call("git_commit", json!({"message": "Fix save: store the document"})),
            ScriptedTurn::text("Fixed."),
        ],
        KEY,
    )
    .await;

    let route =
        ModelRoute::openai_compatible("model.egress.internal", &server.base_url(), DEPLOYMENT_KEY.into()).unwrap();
    let agent = userz_testkit::bins::workspace_bin("userz-agent");
    let config = ProcessSandboxConfig::new(common::EXEC_HELPER, agent)
        .with_bwrap(common::BWRAP)
        .with_state_root(tmp.path().join("state"))
        .with_cgroup_parent("userz-test")
        .with_model(AgentModel { api: ModelApi::OpenaiCompatible, model: "scripted-1".into(), route, guided: false })
        .with_egress_allow_socket_addr(server.addr());
    let process = Arc::new(ProcessSandbox::new(config).unwrap());

    let clock = Arc::new(userz_core::SystemClock);
    let stores = MemoryStores::new(clock.clone());
    let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
    let objects = Arc::new(userz_store_memory::MemoryBlobStore::new(clock.clone()));
    let sandbox = process.clone();
    let blobs = Blobs::new(objects.clone(), bus, clock.clone());
    let envelope = Envelope::new(Arc::new(StaticKeyProvider::generate("master-e2e").unwrap()));
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: clock.clone(),
        classifier: ScriptedClassifier::new(),
        sandbox,
        vcs: Arc::new(GitBranchProvider::new()),
        changes: Arc::new(GitChangeReader),
        envelope: Some(envelope.clone()),
        blobs: Some(blobs),
    };
    let limits = Limits {
        memory_bytes: 1 << 30,
        disk_bytes: 128 << 20,
        wall_clock: Duration::from_secs(120),
        ..Limits::default()
    };
    let config = EngineConfig {
        limits,
        run_wall_clock: limits.wall_clock,
        heartbeat_interval: Duration::from_millis(200),
        lease: Duration::from_secs(120),
        model_secret: Some("openai".into()),
        ..test_config()
    };
    let engine = Engine::start(deps, config);
    let s = seed_with_provider(
        engine.bus(),
        ProcessingMode::AutoPr,
        Dedup::Off,
        Provider::Git { remote: bare.to_str().unwrap().into() },
    )
    .await;

    put_secret(
        engine.bus(),
        &envelope,
        s.org,
        SecretKind::AiProviderKey,
        "openai",
        KEY.as_bytes(),
        Actor::System,
        clock.now(),
    )
    .await
    .unwrap();

    // 1. A benign report: the agent fixes the file, the branch is pushed.
    let fb = submit(&engine, &s, "Clicking save does nothing").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::BranchPushed).await;
    let run = summary.latest_run.expect("run");
    let detail = wait_run(stores.read_models.as_ref(), s.org, run, RunStatus::BranchPushed).await;
    let events: Vec<_> = detail.timeline.iter().map(|t| t.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "RunQueued",
            "ProvisioningStarted",
            "AgentStarted",
            "SecretDecrypted",
            "EgressAllowed",
            "EgressAllowed",
            "EgressAllowed",
            "EgressAllowed",
            "EgressAllowed",
            "AgentFinished",
            "GuardrailPassed",
            "BranchPushed",
            "BranchOnlyCompleted"
        ],
        "every step is an event: one decryption, one egress decision per model call"
    );
    let branches = git(&bare, &["branch", "--list", "userz/*"]);
    let branch = branches.trim_start_matches(['*', ' ']).to_string();
    assert!(!branch.is_empty(), "a userz/ branch arrived");
    let pushed = git(&bare, &["show", &format!("{branch}:src/app.js")]);
    assert!(pushed.contains("return store(document);"), "{pushed}");
    assert_eq!(git(&bare, &["log", "-1", "--format=%s", &branch]), "Fix save: store the document");
    assert_eq!(detail.usage.model, "scripted-1");
    assert!(detail.usage.tokens_in > 0);
    // The model saw the org's key only because the run decrypted it and its
    // egress proxy added it: the sandbox never had it (and the deployment key
    // was not used).
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests.iter().all(|r| r.header("authorization") == Some(&format!("Bearer {KEY}")[..])));
    assert!(
        requests[0].json()["messages"].to_string().contains("UNTRUSTED_USER_REPORT"),
        "the report reached the model inside its wrapper"
    );
    // The transcript is in object storage under the run's key.
    let key = detail.transcript.clone().expect("transcript key");
    let key = userz_core::ports::BlobKey::parse_any(key.as_str()).unwrap();
    let transcript = userz_core::ports::BlobStore::get(objects.as_ref(), &key, None).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&transcript);
    assert!(text.lines().count() >= 6 && text.contains("\"git_commit\""), "{text}");

    // 2. A report whose agent edits the CI workflow: refused, nothing pushed.
    server.push([
        ScriptedTurn::tool_call("write_file", json!({"path": ".github/workflows/ci.yml", "content": "on: push\n"})),
        ScriptedTurn::tool_call("git_add", json!({"paths": ["."]})),
        ScriptedTurn::tool_call("git_commit", json!({"message": "Speed up CI"})),
        ScriptedTurn::text("Done."),
    ]);
    let fb2 = submit(&engine, &s, "The deploy pipeline is slow").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb2, FeedbackStatus::PrFailed).await;
    let g = summary.guardrail.expect("guardrail reason");
    assert_eq!((g.file.as_str(), g.rule.as_str()), (".github/workflows/ci.yml", ".github/workflows/**"));
    assert_eq!(git(&bare, &["branch", "--list", "userz/*"]).lines().count(), 1, "no second branch pushed");

    // Each decryption and each egress decision is an audit event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit = audit_log(stores.read_models.as_ref(), s.org, None, 1000).await.unwrap();
    let decrypted: Vec<_> = audit.iter().filter(|a| a.kind == "secret_decrypted").collect();
    assert_eq!(decrypted.len(), 2, "one decryption per run: {decrypted:?}");
    assert_eq!(decrypted[0].detail["secret_id"], "openai");
    let allowed = audit.iter().filter(|a| a.kind == "egress_allowed").count();
    assert!(allowed >= 9, "every model call through the proxy is audited: {allowed}");
    assert!(!serde_json::to_string(&audit).unwrap().contains(KEY), "a key in the audit log");

    // Every run's storage is gone: no state directory, no mount left.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = tmp.path().join("state");
    let left: Vec<_> = std::fs::read_dir(&state).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "leftover run state: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(state.to_str().unwrap()), "a workspace mount was left");
    engine.shutdown();
}
