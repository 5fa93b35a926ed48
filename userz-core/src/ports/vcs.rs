//! The [`VcsProvider`] and [`ChangeReader`] ports.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::repo::Provider;
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
    /// Where the repository lives (the Repo's provider settings). A
    /// [`VcsRouter`] picks the provider adapter from it.
    pub provider: Provider,
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
    /// What this provider offers for `target`. The engine asks this (not
    /// [`capabilities`](Self::capabilities)) before opening a PR, so that a
    /// provider serving several kinds of repository, such as [`VcsRouter`],
    /// can answer per repository. Defaults to `capabilities()`.
    async fn capabilities_for(&self, target: &RepoTarget) -> Result<VcsCapabilities> {
        let _ = target;
        Ok(self.capabilities())
    }
}

/// Picks the [`VcsProvider`] that serves one repository.
///
/// # Contract
/// - `resolve` returns the provider for `target` (typically chosen by
///   `target.provider`); the same target resolves to an equivalent provider
///   on every call, so a retried step talks to the same host.
/// - Credentials the provider needs (repository tokens, App keys) are opened
///   at resolve time and held only in memory; they never appear in the
///   returned error messages.
/// - A repository no provider is configured for fails with
///   [`Error::Invalid`](crate::Error::Invalid) naming the repo and what is missing.
#[async_trait]
pub trait VcsResolver: Send + Sync + Debug {
    /// The provider serving `target`.
    async fn resolve(&self, target: &RepoTarget) -> Result<Arc<dyn VcsProvider>>;
}

/// A [`VcsProvider`] that dispatches every call to the provider its
/// [`VcsResolver`] returns for the call's repository, so that one engine
/// serves repositories on GitHub, GitLab and plain git at once.
///
/// Its own [`capabilities`](VcsProvider::capabilities) cannot know the
/// repository and reports a PR API (some routed repositories may have one);
/// [`capabilities_for`](VcsProvider::capabilities_for) asks the resolved
/// provider, and that is what the engine uses.
#[derive(Debug, Clone)]
pub struct VcsRouter {
    resolver: Arc<dyn VcsResolver>,
}

impl VcsRouter {
    /// A router over `resolver`.
    pub fn new(resolver: Arc<dyn VcsResolver>) -> Self {
        Self { resolver }
    }
}

#[async_trait]
impl VcsProvider for VcsRouter {
    async fn prepare_workspace(
        &self,
        target: &RepoTarget,
        run: RunId,
        branch: &str,
        existing_branch: bool,
        dir: &Path,
    ) -> Result<Workspace> {
        self.resolver.resolve(target).await?.prepare_workspace(target, run, branch, existing_branch, dir).await
    }

    async fn push(&self, target: &RepoTarget, workspace: &Workspace) -> Result<PushedBranch> {
        self.resolver.resolve(target).await?.push(target, workspace).await
    }

    async fn open_or_update_pr(&self, request: &PrRequest) -> Result<PrRef> {
        self.resolver.resolve(&request.target).await?.open_or_update_pr(request).await
    }

    fn capabilities(&self) -> VcsCapabilities {
        VcsCapabilities::with_pull_requests()
    }

    async fn capabilities_for(&self, target: &RepoTarget) -> Result<VcsCapabilities> {
        self.resolver.resolve(target).await?.capabilities_for(target).await
    }
}

/// A [`VcsResolver`] with one fixed provider per kind of repository
/// (GitHub, GitLab, plain git). For deployments whose providers need no
/// per-repository credentials, and for tests.
#[derive(Debug, Clone, Default)]
pub struct ByKindResolver {
    github: Option<Arc<dyn VcsProvider>>,
    gitlab: Option<Arc<dyn VcsProvider>>,
    git: Option<Arc<dyn VcsProvider>>,
}

impl ByKindResolver {
    /// A resolver with no provider yet (every repo fails to resolve).
    pub fn new() -> Self {
        Self::default()
    }
    /// Serves `Provider::Github` repos with `provider`.
    pub fn with_github(mut self, provider: Arc<dyn VcsProvider>) -> Self {
        self.github = Some(provider);
        self
    }
    /// Serves `Provider::Gitlab` repos with `provider`.
    pub fn with_gitlab(mut self, provider: Arc<dyn VcsProvider>) -> Self {
        self.gitlab = Some(provider);
        self
    }
    /// Serves `Provider::Git` repos with `provider`.
    pub fn with_git(mut self, provider: Arc<dyn VcsProvider>) -> Self {
        self.git = Some(provider);
        self
    }
}

/// The stable name of a provider kind (`github`, `gitlab`, `git`).
pub fn provider_kind(provider: &Provider) -> &'static str {
    match provider {
        Provider::Github { .. } => "github",
        Provider::Gitlab { .. } => "gitlab",
        Provider::Git { .. } => "git",
    }
}

#[async_trait]
impl VcsResolver for ByKindResolver {
    async fn resolve(&self, target: &RepoTarget) -> Result<Arc<dyn VcsProvider>> {
        let slot = match target.provider {
            Provider::Github { .. } => &self.github,
            Provider::Gitlab { .. } => &self.gitlab,
            Provider::Git { .. } => &self.git,
        };
        slot.clone().ok_or_else(|| {
            crate::Error::Invalid(format!(
                "repo {}: no VCS provider configured for {} repositories",
                target.repo,
                provider_kind(&target.provider)
            ))
        })
    }
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
    /// The run's commits as a unified diff for people to read (capped by
    /// the adapter); `None` where the adapter offers none.
    async fn diff(&self, _workspace: &Workspace) -> Result<Option<String>> {
        Ok(None)
    }
    /// Deletes the workspace.
    async fn discard(&self, workspace: &Workspace) -> Result<()>;
}
