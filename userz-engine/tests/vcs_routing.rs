//! Per-repository VCS routing: one engine, repositories on different
//! providers. A branch-only repo ends `branch_pushed`, a PR-capable one
//! `pr_opened`, each having talked only to its own provider.

use std::sync::Arc;

use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::repo::Provider;
use userz_core::domain::run::RunStatus;
use userz_core::ids::{OrgId, RepoId, RunId};
use userz_core::ports::{ByKindResolver, RepoTarget, VcsProvider, VcsResolver, VcsRouter};
use userz_core::Error;
use userz_engine::{Engine, EngineDeps};
use userz_store_memory::MemoryStores;
use userz_testkit::doubles::{ScriptedClassifier, ScriptedRepoHost, ScriptedSandbox, VcsCall};
use userz_testkit::scenarios::{seed_with_provider, submit, test_config, wait_run, wait_status, StoreSet};
use userz_testkit::ManualClock;

fn stores() -> StoreSet {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    StoreSet { events: m.events, read_models: m.read_models, queue: m.queue, clock }
}

fn runs_of(calls: &[VcsCall]) -> Vec<RunId> {
    let mut runs: Vec<RunId> = calls
        .iter()
        .map(|c| match c {
            VcsCall::Prepare { run, .. } | VcsCall::Push { run, .. } | VcsCall::OpenOrUpdate { run, .. } => *run,
        })
        .collect();
    runs.dedup();
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engine_routes_each_repo_to_its_own_provider() {
    let stores = stores();
    // `plain` serves the git repo (no PR API); `forge` the GitHub repo. The
    // sandbox double records each run's changes on `plain`, which is also the
    // engine's change reader, so both runs have something to push.
    let plain = ScriptedRepoHost::branch_only();
    let forge = ScriptedRepoHost::new();
    let resolver = ByKindResolver::new().with_git(plain.clone()).with_github(forge.clone());
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: stores.clock.clone(),
        classifier: ScriptedClassifier::new(),
        sandbox: ScriptedSandbox::new(plain.clone()),
        vcs: Arc::new(VcsRouter::new(Arc::new(resolver))),
        changes: plain.clone(),
        envelope: None,
        blobs: None,
    };
    let engine = Engine::start(deps, test_config());

    let git_repo = seed_with_provider(
        engine.bus(),
        ProcessingMode::AutoPr,
        Dedup::Off,
        Provider::Git { remote: "file:///srv/git/web.git".into() },
    )
    .await;
    let gh_repo = seed_with_provider(
        engine.bus(),
        ProcessingMode::AutoPr,
        Dedup::Off,
        Provider::Github { installation_id: 42, full_name: "acme/web".into() },
    )
    .await;

    let fb_git = submit(&engine, &git_repo, "The save button does nothing on Safari").await;
    let fb_gh = submit(&engine, &gh_repo, "The export menu is cut off on small screens").await;
    let rm = stores.read_models.as_ref();
    let s_git = wait_status(rm, git_repo.org, fb_git, FeedbackStatus::BranchPushed).await;
    let s_gh = wait_status(rm, gh_repo.org, fb_gh, FeedbackStatus::PrOpened).await;
    let run_git = s_git.latest_run.unwrap_or_else(|| panic!("git run linked"));
    let run_gh = s_gh.latest_run.unwrap_or_else(|| panic!("github run linked"));
    let d_git = wait_run(rm, git_repo.org, run_git, RunStatus::BranchPushed).await;
    let d_gh = wait_run(rm, gh_repo.org, run_gh, RunStatus::PrOpened).await;
    assert_eq!(d_git.pr_url, None, "a branch-only run never claims a PR");
    assert_eq!(d_gh.pr_url.as_deref(), Some("https://forge.invalid/pr/1"));

    assert_eq!(runs_of(&plain.calls()), vec![run_git], "the git host saw only the git repo's run");
    assert_eq!(runs_of(&forge.calls()), vec![run_gh], "the forge saw only the GitHub repo's run");
    assert!(
        !plain.calls().iter().any(|c| matches!(c, VcsCall::OpenOrUpdate { .. })),
        "no PR was attempted on the branch-only host"
    );
    assert_eq!(forge.prs().len(), 1, "one PR on the forge");
    assert!(plain.prs().is_empty(), "no PR on the git host");
    engine.shutdown();
}

#[tokio::test]
async fn router_dispatches_capabilities_and_names_unrouted_repos() {
    let plain = ScriptedRepoHost::branch_only();
    let forge = ScriptedRepoHost::new();
    let router = VcsRouter::new(Arc::new(ByKindResolver::new().with_git(plain).with_github(forge)));
    let target = |provider: Provider| RepoTarget {
        org: OrgId::new(),
        repo: RepoId::new(),
        location: "x".into(),
        base_branch: None,
        provider,
    };
    let git = target(Provider::Git { remote: "file:///r.git".into() });
    let gh = target(Provider::Github { installation_id: 1, full_name: "a/b".into() });
    let gl = target(Provider::Gitlab { base_url: "http://127.0.0.1".into(), project: "a/b".into() });
    assert!(!router.capabilities_for(&git).await.unwrap_or_else(|e| panic!("{e}")).pull_requests);
    assert!(router.capabilities_for(&gh).await.unwrap_or_else(|e| panic!("{e}")).pull_requests);
    match router.capabilities_for(&gl).await {
        Err(Error::Invalid(m)) => {
            assert_eq!(m, format!("repo {}: no VCS provider configured for gitlab repositories", gl.repo))
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let resolver = ByKindResolver::new();
    assert!(matches!(resolver.resolve(&gh).await, Err(Error::Invalid(_))), "empty resolver routes nothing");
}
