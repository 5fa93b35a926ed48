//! What the branch-only provider does beyond the shared VCS conformance
//! suite (`tests/conformance.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use userz_core::ids::RunId;
use userz_core::ports::VcsProvider;
use userz_vcs_git::GitBranchProvider;

#[tokio::test]
async fn a_missing_repository_fails_naming_the_clone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let provider = GitBranchProvider::new();
    assert!(!provider.capabilities().pull_requests);
    let missing = common::target(&tmp.path().join("nope.git"), Some("main"));
    let dir = tmp.path().join("ws2");
    std::fs::create_dir(&dir).expect("mkdir");
    let err = provider.prepare_workspace(&missing, RunId::new(), "userz/x", false, &dir).await.expect_err("missing");
    assert!(err.to_string().contains("clone"), "{err}");
}
