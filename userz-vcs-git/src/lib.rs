//! # userz-vcs-git
//!
//! A branch-only [`VcsProvider`] for any git remote libgit2 reaches without
//! credentials (a local bare repository, `file://`, a self-hosted `git://`
//! server): the workspace is cloned from the remote, and after the guardrails
//! pass the checked head is pushed as the run's branch. There is no pull-request
//! API, so runs end `branch_pushed` — named as such, never reported as a PR.
//!
//! The repository's `location` (from `Provider::Git { remote }`) is the remote.
//! Remotes that need a token belong to the GitHub and GitLab providers.

use std::path::Path;

use async_trait::async_trait;
use userz_core::error::{Error, Result};
use userz_core::ids::RunId;
use userz_core::ports::{PrRef, PrRequest, PushedBranch, RepoTarget, VcsCapabilities, VcsProvider, Workspace};
use userz_git::{prepare_workspace, UntrustedWorkspace};

/// The branch-only provider.
#[derive(Debug, Clone, Default)]
pub struct GitBranchProvider {
    _priv: (),
}

impl GitBranchProvider {
    /// A provider.
    pub fn new() -> Self {
        Self::default()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> userz_git::Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Effect { port: "vcs", message: format!("git task: {e}"), retryable: true })?
        .map_err(Into::into)
}

#[async_trait]
impl VcsProvider for GitBranchProvider {
    async fn prepare_workspace(
        &self,
        target: &RepoTarget,
        run: RunId,
        branch: &str,
        existing_branch: bool,
        dir: &Path,
    ) -> Result<Workspace> {
        let (remote, base, branch, dir) =
            (target.location.clone(), target.base_branch.clone(), branch.to_string(), dir.to_path_buf());
        blocking(move || prepare_workspace(&remote, base.as_deref(), run, &branch, existing_branch, &dir)).await
    }

    async fn push(&self, target: &RepoTarget, workspace: &Workspace) -> Result<PushedBranch> {
        let (remote, ws) = (target.location.clone(), workspace.clone());
        blocking(move || {
            let reader = UntrustedWorkspace::open(&ws)?;
            reader.push_checked_head(&remote)?;
            Ok(PushedBranch { branch: ws.branch.clone(), head_commit: reader.head().to_string() })
        })
        .await
    }

    async fn open_or_update_pr(&self, _request: &PrRequest) -> Result<PrRef> {
        Err(Error::Unsupported("the branch-only git provider opens no pull requests".into()))
    }

    fn capabilities(&self) -> VcsCapabilities {
        VcsCapabilities::branch_only()
    }
}
