//! The review loop end to end with the real GitHub App provider against the
//! GitHub fake and a real git smart-HTTP server, on the memory stores:
//! report → run → draft PR → two diff comments by webhook (one then resolved)
//! → revision request → a second run commits on the same branch with only the
//! unresolved comment in its prompt → the same PR is updated. Also the
//! engine-level idempotency of PR creation across a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{env, Env, INSTALLATION, LOCATION};
use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::pr::{PrCommand, PrDecider, PrEvent, PrState};
use userz_core::domain::repo::Provider;
use userz_core::domain::run::{RunDecider, RunEvent, RunKind, RunStatus};
use userz_core::ids::{PrId, RunId};
use userz_core::ports::sandbox::{Limits, Sandbox, SandboxExit, SandboxOutcome, SandboxSpec, Usage};
use userz_core::Timestamp;
use userz_engine::projections::{pr_by_number, pr_runs, pr_summary};
use userz_engine::review::{ReviewWebhookOutcome, ReviewWebhooks};
use userz_engine::{CommandBus, CommandMeta, Engine, EngineConfig, EngineDeps};
use userz_fakes::vcs_webhooks as wh;
use userz_git::GitChangeReader;
use userz_security::secret::SecretBytes;
use userz_security::webhooks::{GitHubVerifier, ReplayGuard};
use userz_security::wrap::{SECTION_TAG, WRAPPER_TAG};
use userz_store_memory::MemoryStores;
use userz_testkit::doubles::ScriptedClassifier;
use userz_testkit::scenarios::{seed_with_provider, submit, test_config, wait_run, wait_status, StoreSet, WAIT};
use userz_testkit::{eventually, ManualClock};
use userz_vcs_github::{GitHubAppProvider, GitHubReviewPayloads};

const SECRET: &[u8] = b"review-loop-webhook-secret";

/// What one scripted agent run does: write `content` to `file` and commit.
#[derive(Debug, Clone)]
struct Edit {
    file: &'static str,
    content: &'static str,
    message: &'static str,
    cost_micros: u64,
}

/// A sandbox double that really commits in the workspace (git2), records the
/// prompts it was given, and hands out a fresh temp dir per run.
#[derive(Debug)]
struct CommittingSandbox {
    edits: Mutex<Vec<Edit>>,
    prompts: Mutex<Vec<(RunId, String)>>,
    dirs: Mutex<HashMap<RunId, tempfile::TempDir>>,
    released: Mutex<Vec<PathBuf>>,
    /// Revokes every installation token while the agent runs (mid-run revocation).
    revoke_during_run: Mutex<Option<userz_fakes::github_fake::TokenRevoker>>,
}

impl CommittingSandbox {
    fn new(edits: Vec<Edit>) -> Arc<Self> {
        Arc::new(Self {
            edits: Mutex::new(edits),
            prompts: Mutex::new(Vec::new()),
            dirs: Mutex::new(HashMap::new()),
            released: Mutex::new(Vec::new()),
            revoke_during_run: Mutex::new(None),
        })
    }

    fn prompts(&self) -> Vec<(RunId, String)> {
        self.prompts.lock().unwrap().clone()
    }
}

fn commit(path: &Path, edit: &Edit) -> Result<String, git2::Error> {
    let repo = git2::Repository::open(path)?;
    let file = path.join(edit.file);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    }
    std::fs::write(&file, edit.content).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    let mut index = repo.index()?;
    index.add_path(Path::new(edit.file))?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let parent = repo.head()?.peel_to_commit()?;
    let sig = git2::Signature::now("Userz Agent", "agent@userz.invalid")?;
    Ok(repo.commit(Some("HEAD"), &sig, &sig, edit.message, &tree, &[&parent])?.to_string())
}

#[async_trait]
impl Sandbox for CommittingSandbox {
    async fn allocate_workspace(&self, run: RunId, _limits: &Limits) -> userz_core::Result<PathBuf> {
        let dir = tempfile::tempdir().map_err(|e| userz_core::Error::Unavailable(format!("temp dir: {e}")))?;
        let path = dir.path().to_path_buf();
        self.dirs.lock().unwrap().insert(run, dir);
        Ok(path)
    }

    async fn run(&self, spec: &SandboxSpec) -> userz_core::Result<SandboxOutcome> {
        self.prompts.lock().unwrap().push((spec.run, spec.prompt.clone()));
        if let Some(fake) = self.revoke_during_run.lock().unwrap().take() {
            fake.revoke_all_tokens();
        }
        let edit = {
            let mut edits = self.edits.lock().unwrap();
            if edits.is_empty() {
                return Ok(SandboxOutcome::new(SandboxExit::AgentFailed { reason: "no scripted edit left".into() }));
            }
            edits.remove(0)
        };
        let path = spec.workspace.path.clone();
        let e = edit.clone();
        tokio::task::spawn_blocking(move || commit(&path, &e))
            .await
            .map_err(|e| userz_core::Error::Unavailable(e.to_string()))?
            .map_err(|e| userz_core::Error::Unavailable(format!("agent commit: {e}")))?;
        let mut out = SandboxOutcome::new(SandboxExit::Completed);
        out.usage = Usage {
            provider: "scripted".into(),
            model: "scripted-agent".into(),
            tokens_in: 1000,
            tokens_out: 200,
            cost_micros: edit.cost_micros,
        };
        Ok(out)
    }

    async fn release_workspace(&self, run: RunId) -> userz_core::Result<()> {
        if let Some(dir) = self.dirs.lock().unwrap().remove(&run) {
            // The change reader's `discard` may already have removed the workspace.
            let path = dir.path().to_path_buf();
            drop(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| userz_core::Error::Unavailable(format!("remove {}: {e}", path.display())))?;
            }
            self.released.lock().unwrap().push(path);
        }
        Ok(())
    }
}

fn stores() -> (StoreSet, MemoryStores) {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    let set = StoreSet { events: m.events.clone(), read_models: m.read_models.clone(), queue: m.queue.clone(), clock };
    (set, m)
}

fn start(stores: &StoreSet, e: &Env, sandbox: Arc<CommittingSandbox>) -> Engine {
    start_with(stores, e.provider.clone(), sandbox)
}

fn start_with(stores: &StoreSet, provider: GitHubAppProvider, sandbox: Arc<CommittingSandbox>) -> Engine {
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: stores.clock.clone(),
        classifier: ScriptedClassifier::new(),
        sandbox,
        vcs: Arc::new(provider),
        changes: Arc::new(GitChangeReader),
        envelope: None,
        blobs: None,
    };
    Engine::start(deps, test_config())
}

fn github_repo() -> Provider {
    Provider::Github { installation_id: INSTALLATION, full_name: LOCATION.into() }
}

async fn deliver(hooks: &ReviewWebhooks, repo: userz_core::ids::RepoId, event: &str, id: &str, v: &serde_json::Value) {
    let body = serde_json::to_vec(v).unwrap();
    let headers = wh::github_headers(event, id, SECRET, &body);
    let verifier = GitHubVerifier::new(SecretBytes::copy_from(SECRET));
    let out = hooks.handle(&verifier, repo, &headers, &body, Timestamp::from_millis(1_790_000_000_000)).await.unwrap();
    assert!(matches!(out, ReviewWebhookOutcome::Applied { duplicate: false, .. }), "{out:?}");
}

/// The untrusted part of a prompt (between the wrapper's tags).
fn untrusted(prompt: &str) -> &str {
    let open = format!("<{WRAPPER_TAG}>");
    let close = format!("</{WRAPPER_TAG}>");
    let start = prompt.find(&open).expect("wrapper opens") + open.len();
    let end = prompt.rfind(&close).expect("wrapper closes");
    &prompt[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_loop_revises_the_same_branch_and_updates_the_same_pr() {
    let e = env().await;
    for _ in 0..4 {
        e.fake.queue_token(&e.token);
    }
    let (stores, mem) = stores();
    let sandbox = CommittingSandbox::new(vec![
        Edit {
            file: "src/save.ts",
            content: "export const save = () => persist();\n",
            message: "Fix save",
            cost_micros: 41_000,
        },
        Edit {
            file: "src/save.ts",
            content: "export const save = async () => { await persist(); };\n",
            message: "Await persist as requested in review",
            cost_micros: 17_500,
        },
    ]);
    let engine = start(&stores, &e, sandbox.clone());
    let s = seed_with_provider(engine.bus(), ProcessingMode::AutoPr, Dedup::Off, github_repo()).await;

    // Report → run → draft PR on the fake.
    let fb = submit(&engine, &s, "Clicking Save does nothing").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    let first_run = summary.latest_run.unwrap();
    let pulls = e.fake.pulls(LOCATION);
    assert_eq!(pulls.len(), 1);
    assert!(pulls[0].draft, "a draft PR");
    let (number, branch) = (pulls[0].number, pulls[0].head.clone());
    let first_head = e.git.branch_head(LOCATION, &branch).unwrap().unwrap();
    let repo = s.repo;
    let read_models = stores.read_models.clone();
    let pr: PrId = eventually("the PR to be indexed by number", WAIT, || {
        let read_models = read_models.clone();
        async move { pr_by_number(read_models.as_ref(), repo, number).await.ok().flatten() }
    })
    .await;

    // Two diff comments arrive by webhook; the reviewer resolves the first.
    let hooks = ReviewWebhooks::new(engine.bus().clone(), stores.read_models.clone(), ReplayGuard::new(mem.cache))
        .with_payloads(Arc::new(GitHubReviewPayloads));
    let resolved_text = "Rename save to persistAll";
    let open_text = "persist() returns a promise; await it";
    let c1 = wh::github_review_comment_created(LOCATION, number, &branch, 900_001, "src/save.ts", 1, resolved_text);
    let c2 = wh::github_review_comment_created(
        LOCATION,
        number,
        &branch,
        900_002,
        "src/save.ts",
        1,
        &format!("[must_change] {open_text}"),
    );
    deliver(&hooks, repo, "pull_request_review_comment", "delivery-1", &c1).await;
    deliver(&hooks, repo, "pull_request_review_comment", "delivery-2", &c2).await;
    let pr_stream = CommandBus::stream::<PrDecider>(pr);
    let (state, _) = engine.bus().load::<PrDecider>(&pr_stream).await.unwrap();
    let PrState::Exists(p) = state else { panic!("PR") };
    assert_eq!(p.comments.len(), 2);
    let first_comment = p.comments.iter().find(|c| c.body.expose() == resolved_text).unwrap().comment;
    let open_comment = p.comments.iter().find(|c| c.body.expose() == open_text).unwrap().comment;
    engine
        .bus()
        .execute::<PrDecider>(&pr_stream, CommandMeta::new(), &PrCommand::ResolveComment { comment: first_comment })
        .await
        .unwrap();

    // Revision request → second run.
    let revision = RunId::new();
    let out = engine
        .bus()
        .execute::<PrDecider>(&pr_stream, CommandMeta::new(), &PrCommand::RequestRevision { run: revision })
        .await
        .unwrap();
    assert!(
        matches!(&out.events[..], [PrEvent::RevisionRequested { comments, .. }] if comments == &vec![open_comment])
    );
    let detail = wait_run(stores.read_models.as_ref(), s.org, revision, RunStatus::PrOpened).await;
    assert!(matches!(detail.kind, RunKind::Revision { pr: p2, pr_number, .. } if p2 == pr && pr_number == number));
    assert_eq!(detail.branch, branch, "the revision ran on the PR's branch");

    // The branch on the git server has both commits, the revision on top.
    let log = e.git.branch_log(LOCATION, &branch).unwrap();
    assert_eq!(log[..3], ["Await persist as requested in review", "Fix save", "Initial commit"], "{log:?}");
    let head = e.git.branch_head(LOCATION, &branch).unwrap().unwrap();
    assert_ne!(head, first_head);
    let bare = git2::Repository::open_bare(e.git.repo_path(LOCATION)).unwrap();
    let top = bare.find_commit(git2::Oid::from_str(&head).unwrap()).unwrap();
    assert_eq!(top.parent_id(0).unwrap().to_string(), first_head, "second commit on top of the first");

    // The revision's prompt holds only the unresolved comment, inside the wrapper.
    let prompts = sandbox.prompts();
    assert_eq!(prompts.len(), 2);
    assert_eq!((prompts[0].0, prompts[1].0), (first_run, revision));
    let revision_prompt = &prompts[1].1;
    let data = untrusted(revision_prompt);
    assert!(data.contains(&format!("<{SECTION_TAG} name=\"review_comments\">")), "{revision_prompt}");
    assert!(data.contains(open_text), "the unresolved comment is in the untrusted data: {revision_prompt}");
    assert!(data.contains("src/save.ts:1"), "with its position");
    assert!(data.contains("MustChange"), "with its severity");
    assert!(!revision_prompt.contains(resolved_text), "the resolved comment is not handed to the agent");
    assert!(!revision_prompt[..revision_prompt.find(&format!("<{WRAPPER_TAG}>")).unwrap()].contains(open_text));
    assert!(!prompts[0].1.contains("review_comments"), "the first run had no comments");

    // The same PR was updated: one PR on the fake, a PATCH for the revision.
    assert_eq!(e.fake.pulls(LOCATION).len(), 1, "no second PR");
    let exchanges = e.fake.exchanges();
    let creates = exchanges.iter().filter(|x| x.method == "POST" && x.path.ends_with("/pulls")).count();
    let updates = exchanges
        .iter()
        .filter(|x| x.method == "PATCH" && x.path.ends_with(&format!("/pulls/{number}")) && x.status == 200)
        .count();
    assert_eq!((creates, updates), (1, 1), "created once, updated once");
    let run_events = engine.bus().read::<RunDecider>(&CommandBus::stream::<RunDecider>(revision)).await.unwrap();
    assert!(run_events
        .iter()
        .any(|(_, ev)| matches!(ev, RunEvent::PrOpened { number: n, created: false, .. } if *n == number)));

    // The PR's runs in order, with their costs; the revision is complete.
    let org = s.org;
    let read_models = stores.read_models.clone();
    eventually("the PR read model to see the revision complete", WAIT, || {
        let read_models = read_models.clone();
        async move {
            pr_summary(read_models.as_ref(), org, pr)
                .await
                .ok()
                .flatten()
                .filter(|s| s.revision_in_flight.is_none() && s.runs.len() == 2)
        }
    })
    .await;
    let (state, _) = engine.bus().load::<PrDecider>(&pr_stream).await.unwrap();
    let PrState::Exists(p) = state else { panic!("PR") };
    assert_eq!(p.runs, vec![first_run, revision]);
    assert_eq!(p.revision_in_flight, None);
    let runs = pr_runs(stores.read_models.as_ref(), org, pr).await.unwrap().unwrap();
    let listed: Vec<(RunId, bool, RunStatus, u64)> =
        runs.iter().map(|r| (r.run, matches!(r.kind, RunKind::Initial), r.status, r.usage.cost_micros)).collect();
    assert_eq!(
        listed,
        vec![(first_run, true, RunStatus::PrOpened, 41_000), (revision, false, RunStatus::PrOpened, 17_500)]
    );
    // Both workspaces are released (right after each run recorded its PR).
    let sb = &sandbox;
    let released = eventually("both workspaces to be released", WAIT, || async move {
        let released = sb.released.lock().unwrap().clone();
        (released.len() == 2).then_some(released)
    })
    .await;
    assert!(released.iter().all(|p| !p.exists()), "{released:?}");
    engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_github_created_the_pr_finds_it_on_restart() {
    let e = env().await;
    for _ in 0..4 {
        e.fake.queue_token(&e.token);
    }
    let (stores, _mem) = stores();
    e.fake.hang_after_next_create();
    let sandbox = CommittingSandbox::new(vec![Edit {
        file: "src/avatar.ts",
        content: "export const maxBytes = 5_000_000;\n",
        message: "Raise the avatar size limit",
        cost_micros: 9_000,
    }]);
    let first = start(&stores, &e, sandbox.clone());
    let s = seed_with_provider(first.bus(), ProcessingMode::AutoPr, Dedup::Off, github_repo()).await;
    let fb = submit(&first, &s, "Avatar upload fails").await;
    let fake = &e.fake;
    eventually(
        "GitHub to have created the PR",
        WAIT,
        || async move { (fake.pulls(LOCATION).len() == 1).then_some(()) },
    )
    .await;
    // Give the (hanging) step a moment: nothing about the PR can be stored.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let summary =
        userz_engine::projections::feedback_summary(stores.read_models.as_ref(), s.org, fb).await.unwrap().unwrap();
    assert_eq!(summary.status, FeedbackStatus::Running, "the PR is not recorded yet");
    let run = summary.latest_run.unwrap();
    drop(first); // crash: the step dies while GitHub's answer is outstanding

    // A new process: a new provider instance (no cached token), same stores.
    let provider = common::fresh_provider(&e);
    let second = start_with(&stores, provider, CommittingSandbox::new(vec![]));
    stores.clock.advance(test_config().lease + Duration::from_secs(1));
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    assert_eq!(summary.latest_run, Some(run));

    let pulls = e.fake.pulls(LOCATION);
    assert_eq!(pulls.len(), 1, "exactly one PR on GitHub");
    let creates = e.fake.exchanges().iter().filter(|x| x.method == "POST" && x.path.ends_with("/pulls")).count();
    assert_eq!(creates, 1, "the retry did not try to create another PR");
    let events = second.bus().read::<RunDecider>(&CommandBus::stream::<RunDecider>(run)).await.unwrap();
    let opened: Vec<_> = events
        .iter()
        .filter_map(|(_, ev)| match ev {
            RunEvent::PrOpened { number, created, .. } => Some((*number, *created)),
            _ => None,
        })
        .collect();
    assert_eq!(opened, vec![(pulls[0].number, false)], "the existing PR was found");
    let pushes = events.iter().filter(|(_, ev)| matches!(ev, RunEvent::BranchPushed { .. })).count();
    assert_eq!(pushes, 1, "the branch was pushed once and not again");
    assert_eq!(sandbox.prompts().len(), 1, "the agent did not run again");
    second.shutdown();
}

/// The run's installation token is revoked while the agent works: the PR call
/// fails with GitHub's own error (recorded on the run), and the retry mints a
/// fresh token and opens the PR. With no attempts left, the run ends
/// `failed{reason}` naming GitHub's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_revoked_mid_run_is_a_clear_error_and_the_retry_mints_a_fresh_token() {
    for attempts in [4u32, 1] {
        let e = env().await;
        // One token for clone and push (the git server accepts it); the next
        // mint gets a fresh random token.
        e.fake.queue_token(&e.token);
        let (stores, _mem) = stores();
        let sandbox = CommittingSandbox::new(vec![Edit {
            file: "src/export.ts",
            content: "export const csv = true;\n",
            message: "Export as CSV",
            cost_micros: 5_000,
        }]);
        *sandbox.revoke_during_run.lock().unwrap() = Some(e.fake.revoker());
        let deps = EngineDeps {
            events: stores.events.clone(),
            read_models: stores.read_models.clone(),
            queue: stores.queue.clone(),
            clock: stores.clock.clone(),
            classifier: ScriptedClassifier::new(),
            sandbox: sandbox.clone(),
            vcs: Arc::new(e.provider.clone()),
            changes: Arc::new(GitChangeReader),
            envelope: None,
            blobs: None,
        };
        let engine = Engine::start(deps, EngineConfig { max_attempts: attempts, ..test_config() });
        let s = seed_with_provider(engine.bus(), ProcessingMode::AutoPr, Dedup::Off, github_repo()).await;
        let fb = submit(&engine, &s, "Export is missing").await;
        let bus = engine.bus().clone();
        let read_models = stores.read_models.clone();
        let org = s.org;
        let run = eventually("the run to exist", WAIT, || {
            let read_models = read_models.clone();
            async move {
                userz_engine::projections::feedback_summary(read_models.as_ref(), org, fb)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|f| f.latest_run)
            }
        })
        .await;
        let stream = CommandBus::stream::<RunDecider>(run);
        let failure = eventually("the PR step to fail on the revoked token", WAIT, || {
            let bus = bus.clone();
            let stream = stream.clone();
            async move {
                bus.read::<RunDecider>(&stream).await.ok()?.into_iter().find_map(|(_, ev)| match ev {
                    RunEvent::RetryScheduled { step, error, .. } => Some(format!("{step}: {error}")),
                    RunEvent::RunFailed { reason, .. } => Some(reason),
                    _ => None,
                })
            }
        })
        .await;
        assert!(failure.starts_with("open_pr"), "{failure}");
        assert!(failure.contains("401") && failure.contains("Bad credentials"), "GitHub's error is named: {failure}");
        assert!(!failure.contains(&e.token), "the token is not in the recorded error");
        if attempts == 1 {
            let d = wait_run(stores.read_models.as_ref(), org, run, RunStatus::Failed).await;
            assert_eq!(d.failure.as_deref(), Some(failure.as_str()), "failed{{reason}} names GitHub's error");
            assert!(e.fake.pulls(LOCATION).is_empty());
        } else {
            stores.clock.advance(Duration::from_secs(120));
            let d = wait_run(stores.read_models.as_ref(), org, run, RunStatus::PrOpened).await;
            assert!(d.pr_url.is_some());
            let tokens = e.fake.token_requests();
            assert_eq!(tokens.len(), 2, "the retry minted a fresh token: {tokens:?}");
            assert_eq!(e.fake.pulls(LOCATION).len(), 1);
            assert_eq!(sandbox.prompts().len(), 1, "the pushed branch was kept: the agent did not run again");
        }
        engine.shutdown();
    }
}
