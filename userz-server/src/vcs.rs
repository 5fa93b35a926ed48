//! The production [`VcsResolver`]: one deployment whose repositories live on
//! GitHub, GitLab (gitlab.com or self-hosted) and plain git remotes at once.
//! Wrap it in a [`VcsRouter`](userz_core::ports::VcsRouter) and hand that to
//! the engine as `EngineDeps::vcs`.
//!
//! Credentials are never in configuration:
//! - **GitLab**: each Repo's project access token is sealed in its org's
//!   secrets with [`put_secret`](userz_engine::secrets::put_secret)
//!   under kind [`SecretKind::RepoToken`] and slot id = the repo id
//!   (`RepoId::to_string()`, see [`repo_token_slot`]). It is opened at the
//!   first resolve of that repo and the built [`GitLabProvider`] is cached per
//!   repo, so the token is held only inside it as a `SecretString`. After
//!   rotating a token call [`SealedVcsResolver::forget_repo`].
//! - **GitHub**: one [`GitHubAppProvider`] per installation, signing with the
//!   deployment's App private key. The key is either sealed (kind
//!   [`SecretKind::GithubAppPrivateKey`] in a configured org and slot, opened
//!   at the first resolve of each installation: [`GithubAppKey::Sealed`]) or
//!   given directly by the host process ([`GithubAppKey::Pem`]).
//! - **Plain git**: one shared branch-only [`GitBranchProvider`] (no credentials).
//!
//! Known gap: opening a repo token is not recorded as a run's
//! `RecordSecretUse` audit event, because a resolver does not know which run
//! it serves (the model key opened by the executor is recorded).
//!
//! It lives in the composition root because it depends on every forge
//! adapter, which adapters and the core must not do.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use userz_core::domain::repo::Provider;
use userz_core::error::{Error, Result};
use userz_core::ids::{OrgId, RepoId};
use userz_core::ports::{RepoTarget, VcsProvider, VcsResolver};
use userz_engine::secrets::open_secret;
use userz_engine::CommandBus;
use userz_security::envelope::{Envelope, SecretKind};
use userz_security::secret::SecretString;
use userz_vcs_git::GitBranchProvider;
use userz_vcs_github::GitHubAppProvider;
use userz_vcs_gitlab::GitLabProvider;

/// The secret slot id holding `repo`'s repository token (kind
/// [`SecretKind::RepoToken`] in the repo's org): the repo id.
pub fn repo_token_slot(repo: RepoId) -> String {
    repo.to_string()
}

/// Where the GitHub App's private key comes from.
#[derive(Debug, Clone)]
pub enum GithubAppKey {
    /// Sealed with `put_secret` in `org`'s secrets as
    /// ([`SecretKind::GithubAppPrivateKey`], `slot`); opened per installation
    /// at its first resolve.
    Sealed {
        /// The org holding the deployment's App key (e.g. an operator org).
        org: OrgId,
        /// Slot id.
        slot: String,
    },
    /// The PEM itself, supplied by the host process (e.g. from its own
    /// secret manager). Held only in memory.
    Pem(SecretString),
}

/// The deployment's GitHub App.
#[derive(Debug, Clone)]
pub struct GithubAppSettings {
    /// App id or client id (the JWT's `iss`).
    pub app_id: String,
    /// The App's private key.
    pub key: GithubAppKey,
    /// REST API base (`None`: the provider's default).
    pub api_base: Option<String>,
    /// Git base URL (`None`: the provider's default).
    pub git_base: Option<String>,
}

#[derive(Debug)]
struct CachedGitLab {
    base_url: String,
    provider: Arc<GitLabProvider>,
}

/// Resolves each Repo to the adapter for its provider, opening sealed
/// credentials at resolve time (see the crate docs).
#[derive(Debug)]
pub struct SealedVcsResolver {
    bus: CommandBus,
    envelope: Envelope,
    github: Option<GithubAppSettings>,
    git: Arc<GitBranchProvider>,
    user_agent: Option<String>,
    gitlab_cache: Mutex<HashMap<RepoId, CachedGitLab>>,
    github_cache: Mutex<HashMap<u64, Arc<GitHubAppProvider>>>,
}

impl SealedVcsResolver {
    /// A resolver reading org secrets through `bus` and `envelope`. GitHub
    /// repos fail to resolve until [`with_github_app`](Self::with_github_app).
    pub fn new(bus: CommandBus, envelope: Envelope) -> Self {
        Self {
            bus,
            envelope,
            github: None,
            git: Arc::new(GitBranchProvider::new()),
            user_agent: None,
            gitlab_cache: Mutex::new(HashMap::new()),
            github_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Serves GitHub repos through `app`.
    pub fn with_github_app(mut self, app: GithubAppSettings) -> Self {
        self.github = Some(app);
        self
    }

    /// The `User-Agent` the GitHub and GitLab clients send.
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// Drops the cached provider of `repo` (call after rotating its token);
    /// the next resolve opens the secret again.
    pub fn forget_repo(&self, repo: RepoId) {
        self.gitlab_cache.lock().remove(&repo);
    }

    /// Drops every cached GitHub provider (call after rotating the App key).
    pub fn forget_github_installations(&self) {
        self.github_cache.lock().clear();
    }

    async fn gitlab(&self, target: &RepoTarget, base_url: &str) -> Result<Arc<dyn VcsProvider>> {
        if let Some(c) = self.gitlab_cache.lock().get(&target.repo) {
            if c.base_url == base_url {
                return Ok(c.provider.clone());
            }
        }
        let slot = repo_token_slot(target.repo);
        let token =
            open_secret(&self.bus, &self.envelope, target.org, SecretKind::RepoToken, &slot).await?.ok_or_else(
                || Error::Invalid(format!("repo {}: no repository token set (SecretKind::RepoToken)", target.repo)),
            )?;
        let mut builder = GitLabProvider::builder(base_url, token);
        if let Some(ua) = &self.user_agent {
            builder = builder.with_user_agent(ua.clone());
        }
        let provider = Arc::new(builder.build().map_err(|e| Error::Invalid(format!("repo {}: {e}", target.repo)))?);
        self.gitlab_cache
            .lock()
            .insert(target.repo, CachedGitLab { base_url: base_url.to_string(), provider: provider.clone() });
        Ok(provider)
    }

    async fn github(&self, target: &RepoTarget, installation_id: u64) -> Result<Arc<dyn VcsProvider>> {
        if let Some(p) = self.github_cache.lock().get(&installation_id) {
            return Ok(p.clone());
        }
        let Some(app) = &self.github else {
            return Err(Error::Invalid(format!("repo {}: no GitHub App configured for this deployment", target.repo)));
        };
        let pem = match &app.key {
            GithubAppKey::Pem(pem) => pem.clone(),
            GithubAppKey::Sealed { org, slot } => {
                let kind = SecretKind::GithubAppPrivateKey;
                let opened = open_secret(&self.bus, &self.envelope, *org, kind, slot).await?;
                opened.ok_or_else(|| {
                    let repo = target.repo;
                    Error::Invalid(format!(
                        "repo {repo}: no GitHub App private key set (SecretKind::GithubAppPrivateKey, org {org}, slot {slot})"
                    ))
                })?
            }
        };
        // The GitHub adapter holds its key as a `secrecy` string.
        let pem = secrecy::SecretString::from(pem.expose_secret().to_owned());
        let mut builder = GitHubAppProvider::builder(app.app_id.clone(), installation_id, pem);
        if let Some(api) = &app.api_base {
            builder = builder.with_api_base(api.clone());
        }
        if let Some(git) = &app.git_base {
            builder = builder.with_git_base(git.clone());
        }
        if let Some(ua) = &self.user_agent {
            builder = builder.with_user_agent(ua.clone());
        }
        let provider = Arc::new(builder.build().map_err(|e| Error::Invalid(format!("repo {}: {e}", target.repo)))?);
        self.github_cache.lock().insert(installation_id, provider.clone());
        Ok(provider)
    }
}

#[async_trait]
impl VcsResolver for SealedVcsResolver {
    async fn resolve(&self, target: &RepoTarget) -> Result<Arc<dyn VcsProvider>> {
        match &target.provider {
            Provider::Gitlab { base_url, .. } => self.gitlab(target, base_url).await,
            Provider::Github { installation_id, .. } => self.github(target, *installation_id).await,
            Provider::Git { .. } => Ok(self.git.clone()),
        }
    }
}
