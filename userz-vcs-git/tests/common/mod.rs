//! Shared setup: a local bare repository seeded with one commit on `main`
//! (made with the `git` CLI, as a user's machine would).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use userz_core::ids::{OrgId, RepoId};
use userz_core::ports::{RepoTarget, VcsProvider};
use userz_testkit::conformance::vcs::VcsForge;
pub use userz_testkit::git_fixture::git;
use userz_vcs_git::GitBranchProvider;

/// A bare repository `r.git` under `tmp` with one commit on `main`.
pub fn seeded_bare(tmp: &Path) -> PathBuf {
    let seed = tmp.join("seed");
    git(tmp, &["init", "-q", seed.to_str().expect("utf8")]);
    std::fs::write(seed.join("a.txt"), "a\n").expect("write");
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "seed"]);
    let bare = tmp.join("r.git");
    git(tmp, &["clone", "-q", "--bare", seed.to_str().expect("utf8"), bare.to_str().expect("utf8")]);
    bare
}

pub fn target(bare: &Path, base_branch: Option<&str>) -> RepoTarget {
    RepoTarget {
        org: OrgId::new(),
        repo: RepoId::new(),
        location: bare.to_str().expect("utf8").into(),
        base_branch: base_branch.map(str::to_string),
        provider: userz_core::domain::repo::Provider::Git { remote: bare.to_str().expect("utf8").into() },
    }
}

/// The branch-only provider over a local bare repository, as the VCS
/// conformance suite drives it.
pub struct Forge {
    pub tmp: tempfile::TempDir,
    pub bare: PathBuf,
}

pub async fn forge() -> Forge {
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = seeded_bare(tmp.path());
    Forge { tmp, bare }
}

impl VcsForge for Forge {
    fn provider(&self) -> Arc<dyn VcsProvider> {
        Arc::new(GitBranchProvider::new())
    }
    fn fresh_provider(&self) -> Arc<dyn VcsProvider> {
        Arc::new(GitBranchProvider::new())
    }
    fn target(&self, base_branch: Option<&str>) -> RepoTarget {
        target(&self.bare, base_branch)
    }
    fn branch_head(&self, branch: &str) -> Option<String> {
        let repo = git2::Repository::open_bare(&self.bare).unwrap();
        let head = repo.find_branch(branch, git2::BranchType::Local).ok()?.get().target()?;
        Some(head.to_string())
    }
    fn branch_log(&self, branch: &str) -> Vec<String> {
        git(&self.bare, &["log", "--format=%s", branch]).lines().map(str::to_string).collect()
    }
    fn remote_url(&self) -> String {
        self.bare.display().to_string()
    }
    fn server_root(&self) -> PathBuf {
        self.bare.clone()
    }
    fn server_error_log(&self) -> String {
        String::new()
    }
}
