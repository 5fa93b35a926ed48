//! The sealed-credential resolver behind a `VcsRouter`, end to end through
//! the engine: a GitLab repo whose project token exists only as a sealed org
//! secret reaches `pr_opened` with a draft MR on the GitLab fake, while a
//! plain git repo on the same engine ends `branch_pushed`; the event log never
//! holds the plaintext token. Plus the resolver's errors, caching, and the
//! GitHub App key opened from its sealed slot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use userz_core::domain::common::{Actor, Dedup, ProcessingMode};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::repo::Provider;
use userz_core::domain::run::RunStatus;
use userz_core::ids::{OrgId, RepoId, RunId};
use userz_core::ports::sandbox::{Limits, Sandbox, SandboxExit, SandboxOutcome, SandboxSpec, Usage};
use userz_core::ports::{RepoTarget, VcsResolver, VcsRouter};
use userz_core::{Error, Timestamp};
use userz_engine::secrets::put_secret;
use userz_engine::{CommandBus, Engine, EngineDeps};
use userz_fakes::github_fake::{generate_app_key, GitHubFake};
use userz_fakes::gitlab_fake::GitLabFake;
use userz_git::GitChangeReader;
use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};
use userz_server::vcs::{repo_token_slot, GithubAppKey, GithubAppSettings, SealedVcsResolver};
use userz_store_memory::MemoryStores;
use userz_testkit::doubles::ScriptedClassifier;
use userz_testkit::git_http::GitHttpServer;
use userz_testkit::scenarios::{seed_with_provider, submit, test_config, wait_run, wait_status, StoreSet};
use userz_testkit::ManualClock;
use userz_vcs_gitlab::GIT_USER;

const PROJECT: &str = "acme/platform/widgets";
const PLAIN: &str = "acme/plain";

/// A sandbox double whose agent really commits one file in the workspace.
#[derive(Debug, Default)]
struct CommittingSandbox {
    dirs: Mutex<HashMap<RunId, tempfile::TempDir>>,
}

fn commit(path: &Path, run: RunId) -> Result<(), git2::Error> {
    let repo = git2::Repository::open(path)?;
    let file = format!("fix-{}.txt", run.as_uuid().simple());
    std::fs::write(path.join(&file), "fixed\n").map_err(|e| git2::Error::from_str(&e.to_string()))?;
    let mut index = repo.index()?;
    index.add_path(Path::new(&file))?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let parent = repo.head()?.peel_to_commit()?;
    let sig = git2::Signature::now("Userz Agent", "agent@userz.invalid")?;
    repo.commit(Some("HEAD"), &sig, &sig, "Fix", &tree, &[&parent])?;
    Ok(())
}

#[async_trait]
impl Sandbox for CommittingSandbox {
    async fn allocate_workspace(&self, run: RunId, _limits: &Limits) -> userz_core::Result<PathBuf> {
        let dir = tempfile::tempdir().map_err(|e| Error::Unavailable(format!("temp dir: {e}")))?;
        let path = dir.path().to_path_buf();
        self.dirs.lock().unwrap().insert(run, dir);
        Ok(path)
    }

    async fn run(&self, spec: &SandboxSpec) -> userz_core::Result<SandboxOutcome> {
        let (path, run) = (spec.workspace.path.clone(), spec.run);
        tokio::task::spawn_blocking(move || commit(&path, run))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?
            .map_err(|e| Error::Unavailable(format!("agent commit: {e}")))?;
        let mut out = SandboxOutcome::new(SandboxExit::Completed);
        out.usage = Usage {
            provider: "scripted".into(),
            model: "scripted-agent".into(),
            tokens_in: 100,
            tokens_out: 20,
            cost_micros: 1,
        };
        Ok(out)
    }

    async fn release_workspace(&self, run: RunId) -> userz_core::Result<()> {
        self.dirs.lock().unwrap().remove(&run);
        Ok(())
    }
}

fn stores() -> StoreSet {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    StoreSet { events: m.events, read_models: m.read_models, queue: m.queue, clock }
}

fn envelope() -> Envelope {
    Envelope::new(Arc::new(StaticKeyProvider::generate("master-1").unwrap()))
}

fn bus(stores: &StoreSet) -> CommandBus {
    CommandBus::new(stores.events.clone(), stores.read_models.clone())
}

fn now() -> Timestamp {
    Timestamp::from_millis(1_790_000_000_000)
}

fn target(provider: Provider) -> RepoTarget {
    RepoTarget { org: OrgId::new(), repo: RepoId::new(), location: PROJECT.into(), base_branch: None, provider }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_token_from_a_sealed_secret_opens_a_draft_mr_and_never_reaches_the_log() {
    // A self-hosted GitLab under a path prefix, its git behind it.
    let fake = GitLabFake::start("/gitlab").await.unwrap();
    fake.add_project(PROJECT);
    let token = format!("glpat-{}", uuid::Uuid::new_v4().simple());
    fake.add_token(&token);
    let git = GitHttpServer::start_with_user(GIT_USER, &token).await.unwrap();
    git.create_repo(PROJECT).unwrap();
    git.create_repo(PLAIN).unwrap();
    fake.proxy_git_to(&git.git_base()).unwrap();
    fake.link_git_repos(git.root().join("repos"));

    let stores = stores();
    let envelope = envelope();
    let resolver = SealedVcsResolver::new(bus(&stores), envelope.clone()).with_user_agent("userz-tests");
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: stores.clock.clone(),
        classifier: ScriptedClassifier::new(),
        sandbox: Arc::new(CommittingSandbox::default()),
        vcs: Arc::new(VcsRouter::new(Arc::new(resolver))),
        changes: Arc::new(GitChangeReader),
        envelope: None,
        blobs: None,
    };
    let engine = Engine::start(deps, test_config());

    let gl = seed_with_provider(
        engine.bus(),
        ProcessingMode::AutoPr,
        Dedup::Off,
        Provider::Gitlab { base_url: fake.base_url(), project: PROJECT.into() },
    )
    .await;
    // The token goes in only as a sealed org secret, never in the Repo's settings.
    put_secret(
        engine.bus(),
        &envelope,
        gl.org,
        SecretKind::RepoToken,
        &repo_token_slot(gl.repo),
        token.as_bytes(),
        Actor::System,
        now(),
    )
    .await
    .unwrap();
    let plain = seed_with_provider(
        engine.bus(),
        ProcessingMode::AutoPr,
        Dedup::Off,
        Provider::Git { remote: git.repo_path(PLAIN).display().to_string() },
    )
    .await;

    let fb_gl = submit(&engine, &gl, "The save button does nothing on Safari").await;
    let fb_plain = submit(&engine, &plain, "The export menu is cut off").await;
    let rm = stores.read_models.as_ref();
    let s_gl = wait_status(rm, gl.org, fb_gl, FeedbackStatus::PrOpened).await;
    let s_plain = wait_status(rm, plain.org, fb_plain, FeedbackStatus::BranchPushed).await;
    let run_gl = wait_run(rm, gl.org, s_gl.latest_run.unwrap(), RunStatus::PrOpened).await;
    let run_plain = wait_run(rm, plain.org, s_plain.latest_run.unwrap(), RunStatus::BranchPushed).await;

    let mrs = fake.merge_requests(PROJECT);
    assert_eq!(mrs.len(), 1, "one MR");
    assert!(mrs[0].draft && mrs[0].title.starts_with("Draft:"), "a draft MR: {:?}", mrs[0]);
    assert_eq!(mrs[0].source_branch, run_gl.branch);
    assert!(git.branch_head(PROJECT, &run_gl.branch).unwrap().is_some(), "the GitLab branch was pushed");
    assert!(run_plain.pr_url.is_none(), "the plain git run claims no PR");
    assert!(git.branch_head(PLAIN, &run_plain.branch).unwrap().is_some(), "the plain branch was pushed");

    // The plaintext token is nowhere in the event log.
    let events = stores.events.read_all(0, 100_000).await.unwrap();
    // The sealed token is in the log (so the scan below covers it)...
    let stored = events.iter().filter(|e| e.event_type == "SecretStored").count();
    assert_eq!(stored, 1, "the repo token was stored once, sealed");
    // ...and the run's events are there too.
    assert!(events.iter().any(|e| e.event_type == "PrOpened"), "the MR was recorded");
    for e in &events {
        let hay = [e.payload.as_ref(), e.event_type.as_bytes(), e.stream.as_str().as_bytes()];
        assert!(
            hay.iter().all(|h| !h.windows(token.len()).any(|w| w == token.as_bytes())),
            "plaintext token in event {} of {}",
            e.event_type,
            e.stream
        );
    }
    engine.shutdown();
}

#[tokio::test]
async fn missing_repo_token_is_a_clear_error_and_tokens_are_cached_per_repo() {
    let stores = stores();
    let envelope = envelope();
    let bus = bus(&stores);
    let resolver = SealedVcsResolver::new(bus.clone(), envelope.clone());
    let t = target(Provider::Gitlab { base_url: "http://127.0.0.1:9".into(), project: PROJECT.into() });
    match resolver.resolve(&t).await {
        Err(Error::Invalid(m)) => {
            assert_eq!(m, format!("repo {}: no repository token set (SecretKind::RepoToken)", t.repo))
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    // A token sealed for another repo of the same org does not serve this one.
    let other = RepoId::new();
    put_secret(
        &bus,
        &envelope,
        t.org,
        SecretKind::RepoToken,
        &repo_token_slot(other),
        b"glpat-x",
        Actor::System,
        now(),
    )
    .await
    .unwrap();
    assert!(matches!(resolver.resolve(&t).await, Err(Error::Invalid(_))), "slot is per repo");

    put_secret(
        &bus,
        &envelope,
        t.org,
        SecretKind::RepoToken,
        &repo_token_slot(t.repo),
        b"glpat-y",
        Actor::System,
        now(),
    )
    .await
    .unwrap();
    let first = resolver.resolve(&t).await.unwrap();
    let again = resolver.resolve(&t).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "the provider (and its token) is cached per repo");
    assert!(first.capabilities_for(&t).await.unwrap().pull_requests);
    assert!(!format!("{first:?}").contains("glpat-y"), "the token does not show in Debug");
    resolver.forget_repo(t.repo);
    let rebuilt = resolver.resolve(&t).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &rebuilt), "forget_repo drops the cached provider");

    let gh = target(Provider::Github { installation_id: 5, full_name: "acme/widgets".into() });
    match resolver.resolve(&gh).await {
        Err(Error::Invalid(m)) => assert!(m.contains("no GitHub App configured"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let git = target(Provider::Git { remote: "file:///srv/git/web.git".into() });
    assert!(!resolver.resolve(&git).await.unwrap().capabilities_for(&git).await.unwrap().pull_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_key_is_opened_from_its_sealed_slot_per_installation() {
    const APP_ID: &str = "424242";
    const INSTALLATION: u64 = 7_700_001;
    let (private, public) = generate_app_key().expect("openssl must be installed (scripts/services.sh)");
    let fake = GitHubFake::start(APP_ID, &public, INSTALLATION, "acme").await.unwrap();
    fake.add_repo("acme/widgets");
    let token = format!("ghs_{}", uuid::Uuid::new_v4().simple());
    let git = GitHttpServer::start(&token).await.unwrap();
    git.create_repo("acme/widgets").unwrap();
    fake.link_git_repos(git.root().join("repos"));
    fake.queue_token(&token);

    let stores = stores();
    let envelope = envelope();
    let bus = bus(&stores);
    let operator = OrgId::new();
    let settings = GithubAppSettings {
        app_id: APP_ID.into(),
        key: GithubAppKey::Sealed { org: operator, slot: "github-app".into() },
        api_base: Some(fake.base_url()),
        git_base: Some(git.git_base()),
    };
    let resolver = SealedVcsResolver::new(bus.clone(), envelope.clone()).with_github_app(settings);
    let t = RepoTarget {
        org: OrgId::new(),
        repo: RepoId::new(),
        location: "acme/widgets".into(),
        base_branch: Some("main".into()),
        provider: Provider::Github { installation_id: INSTALLATION, full_name: "acme/widgets".into() },
    };
    match resolver.resolve(&t).await {
        Err(Error::Invalid(m)) => assert!(m.contains("no GitHub App private key set"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    put_secret(
        &bus,
        &envelope,
        operator,
        SecretKind::GithubAppPrivateKey,
        "github-app",
        private.as_bytes(),
        Actor::System,
        now(),
    )
    .await
    .unwrap();
    let provider = resolver.resolve(&t).await.unwrap();
    assert!(Arc::ptr_eq(&provider, &resolver.resolve(&t).await.unwrap()), "one provider per installation");
    // The fake verifies the app JWT against the public key: a workspace can
    // only be prepared if the unsealed key is the App's.
    let dir = tempfile::tempdir().unwrap();
    let ws = provider.prepare_workspace(&t, RunId::new(), "userz/t", false, dir.path()).await.unwrap();
    assert_eq!(ws.branch, "userz/t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_repo_without_a_sealed_token_fails_its_run_naming_the_missing_secret() {
    let stores = stores();
    let resolver = SealedVcsResolver::new(bus(&stores), envelope());
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: stores.clock.clone(),
        classifier: ScriptedClassifier::new(),
        sandbox: Arc::new(CommittingSandbox::default()),
        vcs: Arc::new(VcsRouter::new(Arc::new(resolver))),
        changes: Arc::new(GitChangeReader),
        envelope: None,
        blobs: None,
    };
    let engine = Engine::start(deps, test_config());
    // Nothing listens here: the run must fail before any request is made.
    let gl = seed_with_provider(
        engine.bus(),
        ProcessingMode::AutoPr,
        Dedup::Off,
        Provider::Gitlab { base_url: "http://127.0.0.1:9/gitlab".into(), project: PROJECT.into() },
    )
    .await;
    let fb = submit(&engine, &gl, "The save button does nothing on Safari").await;
    let rm = stores.read_models.as_ref();
    let s = wait_status(rm, gl.org, fb, FeedbackStatus::Failed).await;
    let run = wait_run(rm, gl.org, s.latest_run.unwrap(), RunStatus::Failed).await;
    assert_eq!(
        run.failure.as_deref(),
        Some(
            format!("prepare_workspace: invalid: repo {}: no repository token set (SecretKind::RepoToken)", gl.repo)
                .as_str()
        ),
        "a clear, non-retried failure naming the missing secret"
    );
    engine.shutdown();
}
