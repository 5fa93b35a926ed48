//! The [`VcsProvider`] and [`ChangeReader`] ports.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::guardrail::Change;
use crate::ids::{FeedbackId, OrgId, RepoId, RunId};

/// Which repository, on which provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoTarget {
    /// Owning org.
    pub org: OrgId,
    /// Repo id.
    pub repo: RepoId,
    /// Provider-specific location (`owner/name`, project id, or remote URL).
    pub location: String,
    /// Base branch (default branch when `None`).
    pub base_branch: Option<String>,
}

/// A host-side checkout prepared for one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// The run it belongs to.
    pub run: RunId,
    /// Directory on the host (empty for test doubles).
    pub path: PathBuf,
    /// Branch the agent commits on.
    pub branch: String,
    /// Commit the branch started from.
    pub base_commit: String,
}

/// A draft PR to open or update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrRequest {
    /// Repo.
    pub target: RepoTarget,
    /// Head branch.
    pub branch: String,
    /// Title.
    pub title: String,
    /// Body (cites feedback id, duplicates, run id, and carries the banner).
    pub body: String,
    /// The run that produced the change.
    pub run: RunId,
    /// The feedback it answers.
    pub feedback: FeedbackId,
}

/// An opened PR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrRef {
    /// Provider number (PR number, MR iid).
    pub number: u64,
    /// Web URL.
    pub url: String,
    /// Whether this call created it (false: an existing open PR was found).
    pub created: bool,
}

/// A pushed branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedBranch {
    /// Branch name.
    pub branch: String,
    /// Head commit pushed.
    pub head_commit: String,
}

/// What a provider offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VcsCapabilities {
    /// Opens pull/merge requests (false: branch-only, runs end `branch_pushed`).
    pub pull_requests: bool,
}

impl VcsCapabilities {
    /// A provider with a PR API.
    pub const fn with_pull_requests() -> Self {
        Self { pull_requests: true }
    }
    /// A branch-only provider.
    pub const fn branch_only() -> Self {
        Self { pull_requests: false }
    }
}

/// Source-control operations run on the host.
///
/// # Contract
/// - `prepare_workspace` clones `target` at its base into `dir` (an empty
///   directory the sandbox allocated),
///   creates `branch` (or checks out the existing remote branch for a revision
///   run), and removes every credential and remote configuration from the copy.
/// - `push` pushes the workspace's branch; pushing the same head again succeeds.
/// - `open_or_update_pr` is idempotent per head branch: if an open PR exists for
///   `branch` it is updated and returned with `created = false`; a retry never
///   opens a second PR.
/// - Tokens never appear in files, arguments, environment or logs.
#[async_trait]
pub trait VcsProvider: Send + Sync + Debug {
    /// Prepares a workspace.
    async fn prepare_workspace(
        &self,
        target: &RepoTarget,
        run: RunId,
        branch: &str,
        existing_branch: bool,
        dir: &Path,
    ) -> Result<Workspace>;
    /// Pushes the branch.
    async fn push(&self, target: &RepoTarget, workspace: &Workspace) -> Result<PushedBranch>;
    /// Opens a draft PR or updates the open one for the branch.
    async fn open_or_update_pr(&self, request: &PrRequest) -> Result<PrRef>;
    /// What this provider offers.
    fn capabilities(&self) -> VcsCapabilities;
}

/// Reads what a run changed, treating the workspace as untrusted data.
///
/// # Contract
/// - The change list is computed from git objects (base commit to branch head),
///   never from what the agent reported, and without running hooks, filters or
///   honouring the workspace's own git configuration.
/// - `discard` deletes the workspace; calling it twice is fine.
#[async_trait]
pub trait ChangeReader: Send + Sync + Debug {
    /// The change list of the run's commits.
    async fn changes(&self, workspace: &Workspace) -> Result<Vec<Change>>;
    /// Deletes the workspace.
    async fn discard(&self, workspace: &Workspace) -> Result<()>;
}
