//! The branch-only provider against a local bare repository.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use userz_core::ids::{FeedbackId, OrgId, RepoId, RunId};
use userz_core::ports::{PrRequest, RepoTarget, VcsProvider};
use userz_core::Error;
use userz_vcs_git::GitBranchProvider;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Fixture", "-c", "user.email=fixture@example.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn pushes_the_branch_and_opens_no_pr() {
    let tmp = tempfile::tempdir().expect("tmp");
    let seed = tmp.path().join("seed");
    git(tmp.path(), &["init", "-q", seed.to_str().expect("utf8")]);
    std::fs::write(seed.join("a.txt"), "a\n").expect("write");
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "seed"]);
    let bare = tmp.path().join("r.git");
    git(tmp.path(), &["clone", "-q", "--bare", seed.to_str().expect("utf8"), bare.to_str().expect("utf8")]);

    let provider = GitBranchProvider::new();
    assert!(!provider.capabilities().pull_requests);
    let target = RepoTarget {
        org: OrgId::new(),
        repo: RepoId::new(),
        location: bare.to_str().expect("utf8").into(),
        base_branch: Some("main".into()),
        provider: userz_core::domain::repo::Provider::Git { remote: bare.to_str().expect("utf8").into() },
    };
    let dir = tmp.path().join("ws");
    std::fs::create_dir(&dir).expect("mkdir");
    let run = RunId::new();
    let ws = provider.prepare_workspace(&target, run, "userz/demo", false, &dir).await.expect("prepared");
    std::fs::write(dir.join("a.txt"), "fixed\n").expect("write");
    git(&dir, &["commit", "-qam", "fix"]);
    let pushed = provider.push(&target, &ws).await.expect("pushed");
    assert_eq!(pushed.branch, "userz/demo");
    assert_eq!(git(&bare, &["rev-parse", "userz/demo"]), pushed.head_commit);
    // Pushing the same head again succeeds (port contract).
    assert_eq!(provider.push(&target, &ws).await.expect("again").head_commit, pushed.head_commit);

    let pr = PrRequest {
        target: target.clone(),
        branch: "userz/demo".into(),
        title: "t".into(),
        body: "b".into(),
        run,
        feedback: FeedbackId::new(),
    };
    assert!(matches!(provider.open_or_update_pr(&pr).await, Err(Error::Unsupported(_))));

    let missing = RepoTarget { location: tmp.path().join("nope.git").display().to_string(), ..target };
    let dir2 = tmp.path().join("ws2");
    std::fs::create_dir(&dir2).expect("mkdir");
    let err = provider.prepare_workspace(&missing, RunId::new(), "userz/x", false, &dir2).await.expect_err("missing");
    assert!(err.to_string().contains("clone"), "{err}");
}
