//! The browser test of issue 7, in real headless Chromium (Debian `chromium`
//! driven by npm `playwright-core`, both installed by `scripts/services.sh`):
//!
//! 1. the demo page loads the widget; a console error is logged; feedback is
//!    submitted through the widget (with a screenshot uploaded through
//!    `upload-url`);
//! 2. the dashboard is signed into with the e-mailed single-use link (real
//!    SMTP sink), the report is on the queue, and its run page reaches
//!    `branch_pushed` live (the demo repository uses the branch-only provider);
//! 3. a second report, whose agent writes `.github/workflows/ci.yml`, ends
//!    `pr_failed` and the run page shows that file and the rule.
//!
//! Everything server-side is real (reference server, SQLite, process sandbox
//! with the real agent binary, egress proxy, guardrails, git push) except the
//! model, which is the testkit's scripted OpenAI-compatible server so the runs
//! are deterministic. Screenshots are saved under `tests/browser/artifacts/`
//! (or `USERZ_ARTIFACTS_DIR`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use userz_core::domain::feedback::FeedbackStatus;
use userz_engine::projections::feedback_summary;
use userz_fakes::model_server::{Gate, ScriptedModelServer, ScriptedTurn};
use userz_server::config::{ModelApiKind, ModelConfig, SmtpConfig};
use userz_server::{start, Config};
use userz_testkit::services::require;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn host_can_sandbox() -> bool {
    let root = nix_is_root();
    let bwrap = Path::new("/usr/bin/bwrap").is_file();
    if root && bwrap {
        return true;
    }
    if std::env::var("USERZ_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("skipping: the process sandbox needs root and bubblewrap (USERZ_ALLOW_SKIP=1)");
        return false;
    }
    panic!("the browser test runs agents in the process sandbox: it needs root and /usr/bin/bwrap");
}

fn nix_is_root() -> bool {
    // uid 0 owns /proc/self when we are root.
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_to_dashboard_to_live_run_and_guardrail_refusal_in_headless_chromium() {
    let (Some(chromium), Some(node_path), Some(smtp), Some(maildir)) = (
        require("USERZ_CHROMIUM"),
        require("USERZ_NODE_PATH"),
        require("USERZ_SMTP_ADDR"),
        require("USERZ_SMTP_MAILDIR"),
    ) else {
        return;
    };
    if !host_can_sandbox() {
        return;
    }
    // Run 1 fixes src/app.js; run 2 touches the CI workflow. Each run's first
    // model answer waits for its gate, which opens once the browser has the
    // run page open with its event stream connected: what the page shows
    // after that arrived live.
    let gates = [Gate::new(), Gate::new()];
    let model = ScriptedModelServer::start([
        ScriptedTurn::tool_call("read_file", json!({"path": "src/app.js"})).gated(&gates[0]),
        ScriptedTurn::tool_call(
            "edit_file",
            json!({"path": "src/app.js", "old_text": "return null;", "new_text": "return localStorage.setItem('doc', value());"}),
        ),
        ScriptedTurn::tool_call("git_add", json!({"paths": ["src/app.js"]})),
        ScriptedTurn::tool_call("git_commit", json!({"message": "Save: store the document"})),
        ScriptedTurn::text("Fixed."),
        ScriptedTurn::tool_call("write_file", json!({"path": ".github/workflows/ci.yml", "content": "on: push\n"}))
            .gated(&gates[1]),
        ScriptedTurn::tool_call("git_add", json!({"paths": ["."]})),
        ScriptedTurn::tool_call("git_commit", json!({"message": "Retry in CI"})),
        ScriptedTurn::text("Done."),
    ])
    .await;
    let agent = userz_testkit::bins::workspace_bin("userz-agent");
    let tmp = tempfile::tempdir().unwrap();
    let email = format!("owner-{}@example.test", uuid::Uuid::new_v4().simple());
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: tmp.path().join("data"),
        admin_email: email.clone(),
        model: Some(ModelConfig {
            api: ModelApiKind::Openai,
            base_url: model.base_url(),
            model: "scripted-1".into(),
            api_key_env: None,
            max_tokens_field: None,
            guided: false,
        }),
        smtp: Some(SmtpConfig { addr: smtp, from: "Userz <userz@example.test>".into() }),
        ..Config::default()
    };
    config.sandbox.bin_dir = agent.parent().map(Path::to_path_buf);
    // This test exercises the widget and dashboard; the process backend keeps
    // its agent run quick (the microVM backend has its own end-to-end test).
    config.sandbox.backend = userz_server::config::SandboxBackendKind::Process;
    config.sandbox.memory_mib = 1024;
    config.sandbox.disk_mib = 256;
    config.sandbox.wall_clock_secs = 120;
    let server = start(config).await.unwrap();
    assert_eq!(server.sandbox_unavailable, None, "the sandbox is usable here");
    let demo = server.demo.clone().expect("first start creates the demo");

    let artifacts = std::env::var("USERZ_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("tests/browser/artifacts"));
    let mut child = Command::new("node")
        .arg("tests/browser/flow.mjs")
        .current_dir(repo_root())
        .env("USERZ_CHROMIUM", chromium)
        .env("USERZ_NODE_PATH", node_path)
        .env("USERZ_BASE_URL", &server.public_url)
        .env("USERZ_SMTP_MAILDIR", maildir)
        .env("USERZ_SIGNIN_EMAIL", &email)
        .env("USERZ_ARTIFACTS_DIR", &artifacts)
        .env("USERZ_RUN_TIMEOUT_MS", "120000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/services.sh installs it)");
    // Forward the flow's log, opening a run's gate when its page is open.
    let stderr = child.stderr.take().unwrap();
    let opener = {
        let gates = gates.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if let Some(rest) = line.strip_prefix("userz-flow: run-page-open ") {
                    match rest.split(' ').next() {
                        Some("first") => gates[0].open(),
                        Some("second") => gates[1].open(),
                        _ => {}
                    }
                }
            }
        })
    };
    // Bounded: the flow has its own timeouts; this is the backstop.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the browser flow did not finish in 300 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success(), "browser flow failed (screenshots in {}); stdout:\n{out}", artifacts.display());
    let result: Value = serde_json::from_str(out.lines().last().expect("a result line")).unwrap();
    opener.join().unwrap();
    assert!(gates.iter().all(Gate::is_open), "both run pages were opened before their runs went on");

    // What the browser saw: each run page opened while its run was still in
    // progress, and the final status arrived over the event stream, with no
    // reload.
    for run in ["firstRun", "secondRun"] {
        assert_eq!(result[run]["terminalAtOpen"], "false", "{result}");
        assert!(result[run]["statusAtOpen"].is_string(), "{result}");
        assert_eq!(result[run]["notReloaded"], true, "{result}");
        assert_eq!(result[run]["liveAtEnd"], "ended", "{result}");
    }
    assert_eq!(result["firstRun"]["status"], "branch_pushed", "{result}");
    let timeline: Vec<&str> =
        result["firstRun"]["timeline"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(timeline.contains(&"GuardrailPassed") && timeline.contains(&"BranchPushed"), "{timeline:?}");
    // The uploaded screenshot is shown on the feedback page (decoded as an
    // image of the viewport's width); the second report has none.
    assert_eq!(result["firstRun"]["attachmentImages"], json!([1280]), "{result}");
    assert_eq!(result["secondRun"]["attachmentImages"], json!([]), "{result}");
    // The transcript the agent wrote, read back from blob storage.
    let tools: Vec<&str> =
        result["firstRun"]["transcriptTools"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(tools, ["read_file", "edit_file", "git_add", "git_commit"], "{result}");
    assert_eq!(result["secondRun"]["status"], "pr_failed", "{result}");
    assert_eq!(result["secondRun"]["guardrailFile"], ".github/workflows/ci.yml", "{result}");
    assert_eq!(result["secondRun"]["guardrailRule"], ".github/workflows/**", "{result}");

    // What the server recorded for the same ids.
    let read_models = server.stores.read_models.clone();
    for (key, want) in [("first", FeedbackStatus::BranchPushed), ("second", FeedbackStatus::PrFailed)] {
        let id = result[key].as_str().unwrap().parse().unwrap();
        let row = feedback_summary(read_models.as_ref(), demo.org, id).await.unwrap().expect("listed for the demo org");
        assert_eq!(row.status, want, "{key}: {row:?}");
    }
    // The widget sent the console error with the first report.
    let first: userz_core::ids::FeedbackId = result["first"].as_str().unwrap().parse().unwrap();
    let (state, _) = server
        .engine()
        .unwrap()
        .bus()
        .load::<userz_core::domain::feedback::FeedbackDecider>(&userz_engine::CommandBus::stream::<
            userz_core::domain::feedback::FeedbackDecider,
        >(first))
        .await
        .unwrap();
    let userz_core::domain::feedback::FeedbackState::Exists(fb) = state else { panic!("feedback exists") };
    assert!(
        fb.content.console_logs.expose().iter().any(|e| e.level == "error" && e.message.contains("userz-browser-test")),
        "console error captured"
    );
    assert_eq!(fb.content.attachments.len(), 1, "the screenshot was uploaded and attached");
    // Only one branch reached the repository: the refused run pushed nothing.
    let repo = git2::Repository::open_bare(&demo.repository).unwrap();
    let branches = repo.branches(Some(git2::BranchType::Local)).unwrap().count();
    assert_eq!(branches, 2, "main and one userz/ branch");
    server.shutdown();
}
