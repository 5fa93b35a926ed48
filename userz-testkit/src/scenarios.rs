//! End-to-end engine scenarios, written once and run on every store adapter.
//!
//! Each scenario takes a [`StoreSet`] whose adapters all read the given
//! [`ManualClock`], starts one or more [`Engine`]s with scripted doubles for the
//! effect ports, drives a report through the pipeline and asserts on the read
//! models, the event log and the doubles' recorded calls.

use std::sync::Arc;
use std::time::Duration;

use userz_core::domain::app::{AppCommand, AppDecider, AppSettings};
use userz_core::domain::common::{Actor, Dedup, ProcessingMode};
use userz_core::domain::feedback::{FeedbackCommand, FeedbackContent, FeedbackDecider, FeedbackStatus};
use userz_core::domain::org::{OrgCommand, OrgDecider};
use userz_core::domain::pr::{CommentSeverity, DiffComment, PrCommand, PrDecider, PrState};
use userz_core::domain::repo::{Provider, RepoCommand, RepoDecider};
use userz_core::domain::run::{RunDecider, RunEvent, RunKind, RunStatus};
use userz_core::guardrail::Change;
use userz_core::ids::{AppId, CommentId, FeedbackId, OrgId, PrId, RepoId, RunId, UserId};
use userz_core::ports::EgressRecord;
use userz_core::ports::{EventStore, Label, ReadModelStore, WorkQueue};
use userz_core::Sensitive;
use userz_engine::projections::{audit_log, feedback_summary, pr_by_number, pr_runs, pr_summary, run_detail};
use userz_engine::{CommandBus, CommandMeta, Engine, EngineConfig, EngineDeps, FeedbackSummary, RunDetail, NO_CHANGES};

use crate::clock::{eventually, ManualClock};
use crate::doubles::{AgentScript, ScriptedClassifier, ScriptedRepoHost, ScriptedSandbox, VcsCall};

/// How long a scenario waits (real time) for the pipeline to reach a state.
pub const WAIT: Duration = Duration::from_secs(30);

/// The storage adapters under test, all reading `clock`.
#[derive(Debug, Clone)]
pub struct StoreSet {
    /// Event store.
    pub events: Arc<dyn EventStore>,
    /// Read models.
    pub read_models: Arc<dyn ReadModelStore>,
    /// Work queue.
    pub queue: Arc<dyn WorkQueue>,
    /// The clock the adapters use.
    pub clock: Arc<ManualClock>,
}

/// Engine settings for tests: fast polling, a 30 s lease on the manual clock.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        poll_interval: Duration::from_millis(5),
        lease: Duration::from_secs(30),
        heartbeat_interval: Duration::from_millis(20),
        max_attempts: 4,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        workers: 2,
        ..EngineConfig::default()
    }
}

/// Stores plus scripted doubles.
#[derive(Debug, Clone)]
pub struct Rig {
    /// Stores.
    pub stores: StoreSet,
    /// Classifier double.
    pub classifier: Arc<ScriptedClassifier>,
    /// VCS + change reader double.
    pub host: Arc<ScriptedRepoHost>,
    /// Sandbox double.
    pub sandbox: Arc<ScriptedSandbox>,
}

impl Rig {
    /// A rig over `stores` with a PR-capable host.
    pub fn new(stores: StoreSet) -> Self {
        let host = ScriptedRepoHost::new();
        let sandbox = ScriptedSandbox::new(host.clone());
        Self { stores, classifier: ScriptedClassifier::new(), host, sandbox }
    }

    /// Starts an engine with this rig's doubles.
    pub fn start(&self) -> Engine {
        self.start_with(self.sandbox.clone())
    }

    /// Starts an engine with another sandbox double (same host).
    pub fn start_with(&self, sandbox: Arc<ScriptedSandbox>) -> Engine {
        let deps = EngineDeps {
            events: self.stores.events.clone(),
            read_models: self.stores.read_models.clone(),
            queue: self.stores.queue.clone(),
            clock: self.stores.clock.clone(),
            classifier: self.classifier.clone(),
            sandbox,
            vcs: self.host.clone(),
            changes: self.host.clone(),
            envelope: None,
            blobs: None,
        };
        Engine::start(deps, test_config())
    }
}

/// Ids created by [`seed`].
#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    /// Org.
    pub org: OrgId,
    /// Owner.
    pub owner: UserId,
    /// App.
    pub app: AppId,
    /// Repo.
    pub repo: RepoId,
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Creates an org, an App with `mode` and `dedup`, and a linked git repo.
pub async fn seed(bus: &CommandBus, mode: ProcessingMode, dedup: Dedup) -> Seeded {
    seed_with_provider(bus, mode, dedup, Provider::Git { remote: "file:///srv/git/web.git".into() }).await
}

/// Like [`seed`], with the repo on `provider` (e.g. a real local bare repository).
pub async fn seed_with_provider(bus: &CommandBus, mode: ProcessingMode, dedup: Dedup, provider: Provider) -> Seeded {
    let (org, owner, app, repo) = (OrgId::new(), UserId::new(), AppId::new(), RepoId::new());
    ok(
        bus.execute::<OrgDecider>(
            &CommandBus::stream::<OrgDecider>(org),
            CommandMeta::new(),
            &OrgCommand::Create {
                org,
                name: "Acme".into(),
                owner,
                owner_email: Sensitive::new("owner@acme.test".into()),
            },
        )
        .await,
        "create org",
    );
    let settings = AppSettings { processing_mode: mode, dedup, ..AppSettings::default() };
    let app_stream = CommandBus::stream::<AppDecider>(app);
    ok(
        bus.execute::<AppDecider>(
            &app_stream,
            CommandMeta::new(),
            &AppCommand::Create {
                app,
                org,
                name: "Web".into(),
                public_key: format!("pub_{}", app.as_uuid().simple()),
                settings,
            },
        )
        .await,
        "create app",
    );
    ok(
        bus.execute::<RepoDecider>(
            &CommandBus::stream::<RepoDecider>(repo),
            CommandMeta::new(),
            &RepoCommand::Create {
                repo,
                org,
                app,
                provider,
                base_branch: Some("main".into()),
                branch_prefix: None,
                forbidden_paths: vec!["secrets/**".into()],
            },
        )
        .await,
        "create repo",
    );
    ok(bus.execute::<AppDecider>(&app_stream, CommandMeta::new(), &AppCommand::LinkRepo { repo }).await, "link repo");
    Seeded { org, owner, app, repo }
}

/// Submits a text report.
pub async fn submit(engine: &Engine, s: &Seeded, text: &str) -> FeedbackId {
    ok(engine.submit_feedback(s.org, s.app, FeedbackContent::text(text), None).await, "submit").feedback
}

/// Waits until the feedback list shows `status` for `fb`.
pub async fn wait_status(
    store: &dyn ReadModelStore,
    org: OrgId,
    fb: FeedbackId,
    status: FeedbackStatus,
) -> FeedbackSummary {
    eventually(&format!("{fb} to reach {status}"), WAIT, || async move {
        feedback_summary(store, org, fb).await.ok().flatten().filter(|s| s.status == status)
    })
    .await
}

/// Waits until the run detail shows `status`.
pub async fn wait_run(store: &dyn ReadModelStore, org: OrgId, run: RunId, status: RunStatus) -> RunDetail {
    eventually(&format!("{run} to reach {status}"), WAIT, || async move {
        run_detail(store, org, run).await.ok().flatten().filter(|d| d.status == status)
    })
    .await
}

/// Waits until the pipeline and every projection have processed the whole log.
pub async fn settle(stores: &StoreSet) {
    eventually("the pipeline and projections to catch up", WAIT, || async {
        for name in ["pipeline", "feedback_list", "run_detail", "audit_log", "pending_timers", "pull_requests"] {
            let cp = stores.read_models.checkpoint(name).await.ok()?;
            if !stores.events.read_all(cp, 1).await.ok()?.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await;
    // Give workers a few polls to pick up anything the pipeline just enqueued.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// How many scenarios [`run_all`] runs (each calls `make()` once).
pub const SCENARIO_COUNT: usize = 11;

/// Runs every scenario, each on fresh data in `make()`'s stores.
pub async fn run_all<F>(mut make: F)
where
    F: FnMut() -> StoreSet,
{
    auto_pr_opens_draft_pr(make()).await;
    forbidden_path_ends_pr_failed(make()).await;
    no_changes_fails_the_run(make()).await;
    manual_mode_waits_for_queue(make()).await;
    no_pr_mode_never_runs(make()).await;
    non_benign_labels_are_rejected(make()).await;
    failing_push_is_retried_with_backoff(make()).await;
    crash_mid_run_resumes_with_one_pr(make()).await;
    crash_after_pr_created_finds_it(make()).await;
    deadline_fires_after_restart(make()).await;
    review_comments_drive_a_revision(make()).await;
}

/// `auto_pr`: benign report → run → draft PR.
pub async fn auto_pr_opens_draft_pr(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, "The save button does nothing on Safari").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    assert_eq!(summary.label, Some(Label::Benign));
    let run = summary.latest_run.unwrap_or_else(|| panic!("a run is linked"));
    let detail = wait_run(stores.read_models.as_ref(), s.org, run, RunStatus::PrOpened).await;
    assert_eq!(detail.pr_url, summary.pr_url, "run and feedback agree on the PR");
    assert_eq!(detail.usage.model, "scripted-1");
    assert!(detail.usage.tokens_in > 0 && detail.usage.cost_micros > 0, "usage recorded");
    let events: Vec<_> = detail.timeline.iter().map(|t| t.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "RunQueued",
            "ProvisioningStarted",
            "AgentStarted",
            "AgentFinished",
            "GuardrailPassed",
            "BranchPushed",
            "PrOpened"
        ],
        "every step is an event"
    );
    assert_eq!(rig.classifier.calls(), vec!["The save button does nothing on Safari".to_string()]);
    let calls = rig.sandbox.calls();
    assert_eq!(calls.len(), 1, "one sandbox run");
    assert!(
        calls[0].prompt.contains("<UNTRUSTED_USER_REPORT") && calls[0].prompt.contains("Safari"),
        "report is wrapped"
    );
    let prs = rig.host.prs();
    assert_eq!(prs.len(), 1, "one PR");
    assert!(
        prs[0].body.contains(&fb.to_string()) && prs[0].body.contains(&run.to_string()),
        "body cites feedback and run"
    );
    assert!(prs[0].body.contains("not been reviewed"), "warning banner");
    assert_eq!(rig.host.discarded(), vec![run], "workspace discarded");
    assert!(rig.sandbox.allocated().is_empty(), "workspace storage released");
    let (pr, _) = ok(
        engine.bus().load::<PrDecider>(&CommandBus::stream::<PrDecider>(PrId::derived(run.as_uuid(), "pr"))).await,
        "load pr",
    );
    assert!(matches!(pr, PrState::Exists(p) if p.runs == vec![run]), "PR aggregate records its run");
    settle(&stores).await;
    let audit = ok(audit_log(stores.read_models.as_ref(), s.org, None, 100).await, "audit");
    assert!(audit.iter().any(|a| a.kind == "classifier_label"), "label is audited");
    engine.shutdown();
}

/// A run touching `.github/workflows/` ends `pr_failed` naming file and rule.
pub async fn forbidden_path_ends_pr_failed(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    rig.sandbox.when_prompt_contains(
        "deploy workflow",
        AgentScript {
            changes: vec![Change::file("src/ok.js"), Change::file(".github/workflows/ci.yml")],
            egress: vec![
                EgressRecord { target: "model.egress.internal:80".into(), allowed: true, rule: "model_route".into() },
                EgressRecord { target: "169.254.169.254:80".into(), allowed: false, rule: "denied_address".into() },
            ],
            ..AgentScript::default()
        },
    );
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, "The deploy workflow is flaky").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrFailed).await;
    let g = summary.guardrail.unwrap_or_else(|| panic!("guardrail reason recorded"));
    assert_eq!((g.file.as_str(), g.rule.as_str()), (".github/workflows/ci.yml", ".github/workflows/**"));
    let run = summary.latest_run.unwrap_or_else(|| panic!("run"));
    let detail = wait_run(stores.read_models.as_ref(), s.org, run, RunStatus::PrFailed).await;
    assert_eq!(detail.guardrail.map(|v| v.file), Some(".github/workflows/ci.yml".to_string()));
    assert!(
        !rig.host.calls().iter().any(|c| matches!(c, VcsCall::Push { .. } | VcsCall::OpenOrUpdate { .. })),
        "nothing pushed"
    );
    assert!(rig.host.prs().is_empty());
    assert_eq!(rig.host.discarded(), vec![run], "workspace discarded after a refusal");
    settle(&stores).await;
    let audit = ok(audit_log(stores.read_models.as_ref(), s.org, None, 100).await, "audit");
    assert!(audit.iter().any(|a| a.kind == "guardrail_refused" && a.detail["file"] == ".github/workflows/ci.yml"));
    let denied: Vec<_> = audit.iter().filter(|a| a.kind == "egress_denied").collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].detail["target"], "169.254.169.254:80");
    let allowed: Vec<_> = audit.iter().filter(|a| a.kind == "egress_allowed").collect();
    assert_eq!(allowed.len(), 1, "each decision is audited: {allowed:?}");
    assert_eq!(allowed[0].detail["rule"], "model_route");
    assert!(rig.sandbox.allocated().is_empty(), "workspace storage released after a refusal");
    engine.shutdown();
}

/// A run whose agent committed nothing fails with that reason; nothing is pushed.
pub async fn no_changes_fails_the_run(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    rig.sandbox.when_prompt_contains("nothing to do", AgentScript { changes: vec![], ..AgentScript::default() });
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, "Report with nothing to do").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::Failed).await;
    let run = summary.latest_run.unwrap_or_else(|| panic!("run"));
    let detail = wait_run(stores.read_models.as_ref(), s.org, run, RunStatus::Failed).await;
    assert_eq!(detail.failure.as_deref(), Some(NO_CHANGES));
    assert!(!rig.host.calls().iter().any(|c| matches!(c, VcsCall::Push { .. })), "nothing pushed");
    engine.shutdown();
}

/// `manual`: waits in `awaiting_manual` until queued.
pub async fn manual_mode_waits_for_queue(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::Manual, Dedup::Off).await;
    let fb = submit(&engine, &s, "Typo on the pricing page").await;
    wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::AwaitingManual).await;
    settle(&stores).await;
    assert!(rig.sandbox.calls().is_empty(), "no run before a person queues it");
    ok(
        engine
            .bus()
            .execute::<FeedbackDecider>(
                &CommandBus::stream::<FeedbackDecider>(fb),
                CommandMeta::new(),
                &FeedbackCommand::Queue { by: Actor::User { user: s.owner } },
            )
            .await,
        "queue",
    );
    wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    assert_eq!(rig.sandbox.calls().len(), 1);
    engine.shutdown();
}

/// `no_pr`: collected, never run.
pub async fn no_pr_mode_never_runs(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::NoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, "Please add dark mode").await;
    wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::Sanitized).await;
    settle(&stores).await;
    let summary =
        ok(feedback_summary(stores.read_models.as_ref(), s.org, fb).await, "summary").unwrap_or_else(|| panic!("row"));
    assert_eq!(summary.status, FeedbackStatus::Sanitized, "stays collected");
    assert_eq!(summary.latest_run, None);
    assert!(rig.sandbox.calls().is_empty() && rig.host.calls().is_empty(), "no sandbox, no VCS");
    engine.shutdown();
}

/// Every non-benign label ends `rejected` and never reaches a sandbox.
pub async fn non_benign_labels_are_rejected(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    for label in [Label::Spam, Label::MaliciousInjection, Label::Abuse, Label::OffTopic] {
        let marker = format!("marker-{label}");
        rig.classifier.label_when(&marker, label);
        let fb = submit(&engine, &s, &format!("report {marker}")).await;
        let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::Rejected).await;
        assert_eq!(summary.label, Some(label));
        let queue = engine
            .bus()
            .execute::<FeedbackDecider>(
                &CommandBus::stream::<FeedbackDecider>(fb),
                CommandMeta::new(),
                &FeedbackCommand::Queue { by: Actor::System },
            )
            .await;
        assert_eq!(
            queue.err().and_then(|e| e.rejection().map(|r| r.rule())),
            Some("not_benign"),
            "a rejected report cannot be queued"
        );
    }
    settle(&stores).await;
    assert!(rig.sandbox.calls().is_empty(), "no rejected report reached a sandbox");
    engine.shutdown();
}

/// A failing push is retried with exponential backoff, each retry an event.
pub async fn failing_push_is_retried_with_backoff(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    rig.host.fail_next_pushes(2);
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, "Broken link in footer").await;
    let clock = stores.clock.clone();
    let store = stores.read_models.clone();
    let summary = eventually("the retried run to open its PR", WAIT, || {
        clock.advance(Duration::from_millis(500));
        let store = store.clone();
        async move {
            feedback_summary(store.as_ref(), s.org, fb)
                .await
                .ok()
                .flatten()
                .filter(|s| s.status == FeedbackStatus::PrOpened)
        }
    })
    .await;
    let run = summary.latest_run.unwrap_or_else(|| panic!("run"));
    let events = ok(engine.bus().read::<RunDecider>(&CommandBus::stream::<RunDecider>(run)).await, "read run");
    let retries: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match e {
            RunEvent::RetryScheduled { step, attempt, delay_ms, .. } => Some((step.clone(), *attempt, *delay_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 2, "two failed pushes, two recorded retries: {retries:?}");
    assert!(retries.iter().all(|(step, _, _)| step == "push"));
    assert_eq!((retries[0].1, retries[1].1), (1, 2), "attempts counted");
    assert_eq!((retries[0].2, retries[1].2), (1000, 2000), "backoff doubles");
    assert_eq!(rig.host.prs().len(), 1);
    engine.shutdown();
}

/// The engine dies while the agent runs; a new engine on the same stores
/// finishes the run, and exactly one PR exists.
pub async fn crash_mid_run_resumes_with_one_pr(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    rig.sandbox.hold();
    let first = rig.start();
    let s = seed(first.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&first, &s, "Checkout total is wrong").await;
    let sandbox = rig.sandbox.clone();
    eventually("the first engine's agent to start", WAIT, || {
        let sandbox = sandbox.clone();
        async move { (!sandbox.calls().is_empty()).then_some(()) }
    })
    .await;
    drop(first); // crash: every task stops where it is
    let second_sandbox = ScriptedSandbox::new(rig.host.clone());
    let second = rig.start_with(second_sandbox.clone());
    stores.clock.advance(test_config().lease + Duration::from_secs(1));
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    assert_eq!(rig.host.prs().len(), 1, "exactly one PR");
    assert_eq!(second_sandbox.calls().len(), 1, "the run was resumed in a fresh sandbox");
    let run = summary.latest_run.unwrap_or_else(|| panic!("run"));
    let events = ok(second.bus().read::<RunDecider>(&CommandBus::stream::<RunDecider>(run)).await, "read run");
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|(_, e)| match e {
            RunEvent::ProvisioningStarted { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2], "the resume is recorded");
    second.shutdown();
}

/// The engine dies after the provider created the PR but before the event was
/// stored; the retry finds the PR instead of opening a second one.
pub async fn crash_after_pr_created_finds_it(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    rig.host.hang_after_next_create();
    let first = rig.start();
    let s = seed(first.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&first, &s, "Avatar upload fails").await;
    let host = rig.host.clone();
    eventually("the provider to create the PR", WAIT, || {
        let host = host.clone();
        async move { (host.prs().len() == 1).then_some(()) }
    })
    .await;
    drop(first);
    let second = rig.start();
    stores.clock.advance(test_config().lease + Duration::from_secs(1));
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    assert_eq!(rig.host.prs().len(), 1, "no second PR");
    let opens = rig.host.calls().iter().filter(|c| matches!(c, VcsCall::OpenOrUpdate { .. })).count();
    assert_eq!(opens, 2, "the step was retried");
    let pushes = rig.host.calls().iter().filter(|c| matches!(c, VcsCall::Push { .. })).count();
    assert_eq!(pushes, 1, "the pushed branch was not pushed again");
    let run = summary.latest_run.unwrap_or_else(|| panic!("run"));
    let events = ok(second.bus().read::<RunDecider>(&CommandBus::stream::<RunDecider>(run)).await, "read run");
    assert!(
        events.iter().any(|(_, e)| matches!(e, RunEvent::PrOpened { created: false, .. })),
        "the existing PR was found"
    );
    second.shutdown();
}

/// A deadline set before a crash fires after it: the run ends `timed_out`.
pub async fn deadline_fires_after_restart(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    rig.sandbox.set_default(AgentScript { hang: true, ..AgentScript::default() });
    let first = rig.start();
    let s = seed(first.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&first, &s, "Search is slow").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::Running).await;
    let run = summary.latest_run.unwrap_or_else(|| panic!("run"));
    let detail = wait_run(stores.read_models.as_ref(), s.org, run, RunStatus::Running).await;
    let deadline = detail.deadline_at.unwrap_or_else(|| panic!("deadline recorded"));
    assert_eq!(deadline.as_millis() - detail.queued_at.as_millis(), 20 * 60 * 1000, "20-minute wall clock");
    drop(first);
    let second = rig.start();
    stores.clock.advance(Duration::from_secs(21 * 60));
    let d = wait_run(stores.read_models.as_ref(), s.org, run, RunStatus::TimedOut).await;
    assert!(d.finished_at.is_some());
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::Failed).await;
    assert_eq!(summary.failure.as_deref(), Some("timed_out"));
    assert!(rig.host.prs().is_empty());
    settle(&stores).await;
    let audit = ok(audit_log(stores.read_models.as_ref(), s.org, None, 100).await, "audit");
    assert!(audit.iter().any(|a| a.kind == "run_timed_out"));
    second.shutdown();
}

/// The review loop on the PR aggregate and projections: a PR with two
/// comments (one resolved) gets a revision run on the same branch whose prompt
/// carries only the unresolved comment; the same PR is updated; the PR's runs
/// are listed in order with their costs.
pub async fn review_comments_drive_a_revision(stores: StoreSet) {
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, "Dark mode toggle resets on reload").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    let first = summary.latest_run.unwrap_or_else(|| panic!("run"));
    let number = rig.host.prs()[0].number;
    let store = stores.read_models.clone();
    let repo = s.repo;
    let pr = eventually("the PR to be indexed by (repo, number)", WAIT, || {
        let store = store.clone();
        async move { pr_by_number(store.as_ref(), repo, number).await.ok().flatten() }
    })
    .await;
    assert_eq!(pr, PrId::derived(first.as_uuid(), "pr"));
    let stream = CommandBus::stream::<PrDecider>(pr);
    let comment = |body: &str, severity| DiffComment {
        comment: CommentId::new(),
        path: "src/theme.js".into(),
        line: 12,
        body: Sensitive::new(body.to_string()),
        severity,
        resolved: false,
    };
    let done = comment("Use the existing storage helper", CommentSeverity::Nit);
    let open = comment("Persist the choice before reloading", CommentSeverity::MustChange);
    for c in [&done, &open] {
        let cmd = PrCommand::AddComment { comment: c.clone() };
        ok(engine.bus().execute::<PrDecider>(&stream, CommandMeta::new(), &cmd).await, "add comment");
    }
    let cmd = PrCommand::ResolveComment { comment: done.comment };
    ok(engine.bus().execute::<PrDecider>(&stream, CommandMeta::new(), &cmd).await, "resolve");
    let revision = RunId::new();
    let cmd = PrCommand::RequestRevision { run: revision };
    ok(engine.bus().execute::<PrDecider>(&stream, CommandMeta::new(), &cmd).await, "request revision");
    let detail = wait_run(stores.read_models.as_ref(), s.org, revision, RunStatus::PrOpened).await;
    assert_eq!(detail.branch, rig.host.prs()[0].branch, "same branch");
    let prepared = rig.host.calls().into_iter().find_map(|c| match c {
        VcsCall::Prepare { run, existing, .. } if run == revision => Some(existing),
        _ => None,
    });
    assert_eq!(prepared, Some(true), "the revision continues the existing branch");
    let prs = rig.host.prs();
    assert_eq!(prs.len(), 1, "the same PR");
    assert_eq!(prs[0].runs, vec![first, revision], "updated by the revision");
    let calls = rig.sandbox.calls();
    let prompt = &calls.iter().find(|c| c.run == revision).unwrap_or_else(|| panic!("revision prompt")).prompt;
    assert!(prompt.contains("Persist the choice before reloading"));
    assert!(!prompt.contains("Use the existing storage helper"), "resolved comments stay out");
    let store = stores.read_models.clone();
    let org = s.org;
    let runs = eventually("the PR's runs to be listed", WAIT, || {
        let store = store.clone();
        async move {
            let summary = pr_summary(store.as_ref(), org, pr).await.ok().flatten()?;
            if summary.revision_in_flight.is_some() || summary.unresolved != 1 {
                return None;
            }
            pr_runs(store.as_ref(), org, pr).await.ok().flatten().filter(|r| r.len() == 2)
        }
    })
    .await;
    let listed: Vec<(RunId, RunStatus, u64)> = runs.iter().map(|r| (r.run, r.status, r.usage.cost_micros)).collect();
    assert_eq!(listed, vec![(first, RunStatus::PrOpened, 1_234), (revision, RunStatus::PrOpened, 1_234)]);
    assert!(matches!(runs[1].kind, RunKind::Revision { pr: p, .. } if p == pr));
    // Another org sees nothing.
    assert!(ok(pr_runs(stores.read_models.as_ref(), OrgId::new(), pr).await, "pr runs").is_none());
    engine.shutdown();
}
