//! # userz-vcs-github
//!
//! The GitHub App [`VcsProvider`] of the Userz engine.
//!
//! - **App authentication**: a JWT signed RS256 with the App's private key
//!   (`iat` 60 s in the past, `exp` 9 minutes ahead — GitHub allows at most
//!   10 — `iss` the app id).
//! - **One narrowed token per run and repository**:
//!   `POST /app/installations/{id}/access_tokens` with `repositories: [name]`
//!   and exactly `contents: write`, `pull_requests: write`, `metadata: read`.
//!   The token and its expiry are held in memory only
//!   ([`SecretString`]); [`GitHubAppProvider::token_expiry`] reports the
//!   recorded expiry. A token GitHub or the git server refuses (expired,
//!   revoked) is dropped, so the next attempt mints a fresh one.
//! - **Clone and push over smart-HTTP** through libgit2 in-process
//!   ([`userz_git`]): the token reaches libgit2 through its credential
//!   callback (`x-access-token` / token) and nowhere else — not in a URL, an
//!   argument, the environment, git config or a file. No `git` program is
//!   started.
//! - **Idempotent draft pull requests**: an open PR for the head branch is
//!   looked up first (`GET /repos/{owner}/{repo}/pulls?head=owner:branch&state=open`)
//!   and updated; only when there is none is one created with `draft: true`.
//!   A create that races another (`422` "already exists") falls back to the
//!   lookup. Revision runs therefore update the same PR.
//! - **Review webhooks**: [`GitHubReviewPayloads`] maps `pull_request` closed
//!   and `pull_request_review_comment` created deliveries to a provider-neutral
//!   [`InboundPrNotice`](userz_core::ports::InboundPrNotice) (the
//!   [`ReviewPayloads`](userz_core::ports::ReviewPayloads) port).
//!
//! Errors are [`userz_core::Error::Effect`] with `port = "vcs"`, naming
//! GitHub's status and message (never a credential); `5xx`, `429`, rate
//! limits and refused tokens are retryable.
//!
//! ```no_run
//! # async fn demo(pem: secrecy::SecretString) -> Result<(), userz_vcs_github::GitHubError> {
//! use userz_vcs_github::GitHubAppProvider;
//! let provider = GitHubAppProvider::builder("123456", 7890, pem)
//!     .with_api_base("https://api.github.com")
//!     .with_git_base("https://github.com")
//!     .build()?;
//! # let _ = provider; Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use time::OffsetDateTime;
use userz_core::error::{Error, Result};
use userz_core::ids::RunId;
use userz_core::ports::{PrRef, PrRequest, PushedBranch, RepoTarget, VcsCapabilities, VcsProvider, Workspace};
use userz_git::{prepare_workspace_with, GitError, HttpCredentials, UntrustedWorkspace};

use userz_rest::{ApiBase, ApiResponse, Credential, RestClient, RestError};

mod review;

pub use review::GitHubReviewPayloads;
pub use review::EVENT_HEADER;

/// The REST API version the provider speaks.
pub const API_VERSION: &str = "2022-11-28";

/// User name GitHub documents for installation tokens over git smart-HTTP.
pub const GIT_USER: &str = "x-access-token";

/// The permissions every installation token is narrowed to.
pub const TOKEN_PERMISSIONS: [(&str, &str); 3] =
    [("contents", "write"), ("pull_requests", "write"), ("metadata", "read")];

/// A token is reused within a run while it has at least this long to live.
const TOKEN_REUSE_MARGIN_SECS: i64 = 5 * 60;

/// Errors of the GitHub provider (converted to [`userz_core::Error`] at the
/// port).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitHubError {
    /// A configuration value is unusable.
    #[error("invalid GitHub provider config {field}: {message}")]
    Config {
        /// Field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The repository location is not `owner/name`.
    #[error("invalid repository location {0:?}: expected owner/name")]
    Location(String),
    /// GitHub answered with an error status.
    #[error("GitHub {operation} returned {status}: {message}")]
    Api {
        /// Operation (GitHub's operation id).
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// GitHub's `message` (and validation error messages).
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
    },
    /// GitHub or the git server refused the installation token (expired or
    /// revoked). The token was dropped; the next attempt mints a fresh one.
    #[error("{operation}: the installation token was refused ({message}); a fresh token is minted on retry")]
    TokenRejected {
        /// Operation.
        operation: &'static str,
        /// The provider's message.
        message: String,
    },
    /// The API could not be reached or answered garbage.
    #[error("GitHub {operation}: {message}")]
    Transport {
        /// Operation.
        operation: &'static str,
        /// Why.
        message: String,
    },
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// Something this build cannot do.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl GitHubError {
    /// Stable code for logs and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            GitHubError::Config { .. } => "github_config",
            GitHubError::Location(_) => "github_location",
            GitHubError::Api { .. } => "github_api_error",
            GitHubError::TokenRejected { .. } => "github_token_rejected",
            GitHubError::Transport { .. } => "github_unreachable",
            GitHubError::Git(e) => e.code(),
            GitHubError::Unsupported(_) => "unsupported",
        }
    }
}

/// Maps the shared client's errors onto this provider's: the API base is
/// configured as `api_base`.
impl From<RestError> for GitHubError {
    fn from(e: RestError) -> Self {
        match e.into_transport() {
            RestError::Config { field, message } => {
                GitHubError::Config { field: if field == userz_rest::FIELD_BASE { "api_base" } else { field }, message }
            }
            RestError::Transport { operation, message } => GitHubError::Transport { operation, message },
            // `send` folds every other failure into `Transport`; a newer
            // variant still reads as a transport failure.
            other => GitHubError::Transport { operation: "http", message: other.to_string() },
        }
    }
}

impl From<GitHubError> for Error {
    fn from(e: GitHubError) -> Self {
        match e {
            GitHubError::Git(g) => g.into(),
            GitHubError::Unsupported(m) => Error::Unsupported(m),
            GitHubError::Config { .. } | GitHubError::Location(_) => Error::Invalid(e.to_string()),
            GitHubError::Api { retryable, .. } => Error::Effect { port: "vcs", message: e.to_string(), retryable },
            GitHubError::TokenRejected { .. } | GitHubError::Transport { .. } => {
                Error::Effect { port: "vcs", message: e.to_string(), retryable: true }
            }
        }
    }
}

/// Builds a [`GitHubAppProvider`].
#[derive(Debug)]
pub struct GitHubAppProviderBuilder {
    app_id: String,
    installation_id: u64,
    private_key_pem: SecretString,
    api_base: String,
    git_base: String,
    user_agent: String,
}

impl GitHubAppProviderBuilder {
    /// The REST API base URL (default `https://api.github.com`; GitHub
    /// Enterprise Server: `https://HOST/api/v3`; tests: the fake's address).
    pub fn with_api_base(mut self, url: impl Into<String>) -> Self {
        self.api_base = url.into();
        self
    }

    /// The git base URL repositories are cloned from as
    /// `{git_base}/{owner}/{name}.git` (default `https://github.com`).
    pub fn with_git_base(mut self, url: impl Into<String>) -> Self {
        self.git_base = url.into();
        self
    }

    /// The `User-Agent` sent to the API (GitHub refuses requests without).
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Checks the configuration (the private key must parse as an RSA PEM).
    pub fn build(self) -> std::result::Result<GitHubAppProvider, GitHubError> {
        if self.app_id.is_empty() || !self.app_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.') {
            return Err(GitHubError::Config { field: "app_id", message: "must be the app id or client id".into() });
        }
        EncodingKey::from_rsa_pem(self.private_key_pem.expose_secret().as_bytes()).map_err(|e| {
            GitHubError::Config { field: "private_key_pem", message: format!("not an RSA private key PEM ({e})") }
        })?;
        let default_headers = vec![
            (::http::header::ACCEPT, ::http::HeaderValue::from_static("application/vnd.github+json")),
            (::http::HeaderName::from_static("x-github-api-version"), ::http::HeaderValue::from_static(API_VERSION)),
        ];
        let api = RestClient::new(ApiBase::parse(&self.api_base, "")?, &self.user_agent, default_headers)?;
        let git_base = self.git_base.trim_end_matches('/').to_string();
        let git_uri: ::http::Uri = git_base
            .parse()
            .map_err(|_| GitHubError::Config { field: "git_base", message: format!("{git_base:?} is not a URL") })?;
        match git_uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(GitHubError::Config { field: "git_base", message: "scheme must be http or https".into() }),
        }
        if git_uri.authority().is_some_and(|a| a.as_str().contains('@')) || git_uri.query().is_some() {
            return Err(GitHubError::Config {
                field: "git_base",
                message: "must not carry user info or a query (credentials never go in URLs)".into(),
            });
        }
        Ok(GitHubAppProvider {
            inner: Arc::new(Inner {
                app_id: self.app_id,
                installation_id: self.installation_id,
                private_key_pem: self.private_key_pem,
                api,
                git_base,
                tokens: Mutex::new(HashMap::new()),
                mint: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

struct CachedToken {
    token: SecretString,
    expires_at: OffsetDateTime,
}

struct Inner {
    app_id: String,
    installation_id: u64,
    private_key_pem: SecretString,
    api: RestClient,
    git_base: String,
    tokens: Mutex<HashMap<(RunId, String), CachedToken>>,
    /// Serialises minting, so concurrent steps of one run share one token.
    mint: tokio::sync::Mutex<()>,
}

/// The GitHub App provider. Cheap to clone.
#[derive(Clone)]
pub struct GitHubAppProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GitHubAppProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubAppProvider")
            .field("app_id", &self.inner.app_id)
            .field("installation_id", &self.inner.installation_id)
            .field("git_base", &self.inner.git_base)
            .finish_non_exhaustive()
    }
}

/// `owner/name`, each part GitHub-safe.
fn split_location(location: &str) -> std::result::Result<(&str, &str), GitHubError> {
    let (owner, name) = location.split_once('/').ok_or_else(|| GitHubError::Location(location.into()))?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s != "."
            && s != ".."
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if ok(owner) && ok(name) {
        Ok((owner, name))
    } else {
        Err(GitHubError::Location(location.into()))
    }
}

fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GitHub's error message: `message` plus each validation error's message.
fn provider_message(body: &Value) -> String {
    let mut msg = body.get("message").and_then(Value::as_str).unwrap_or("no message").to_string();
    let details: Vec<&str> = body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(Value::as_str).or_else(|| e.get("code").and_then(Value::as_str)))
        .collect();
    if !details.is_empty() {
        msg = format!("{msg} ({})", details.join("; "));
    }
    msg
}

fn api_error(operation: &'static str, resp: &ApiResponse) -> GitHubError {
    let message = provider_message(&resp.body);
    let rate_limited = resp.status == 403 && message.to_ascii_lowercase().contains("rate limit");
    GitHubError::Api {
        operation,
        status: resp.status,
        retryable: resp.status >= 500 || resp.status == 429 || rate_limited,
        message,
    }
}

impl GitHubAppProvider {
    /// A builder for App `app_id` (or its client id) installed as
    /// `installation_id`, signing with `private_key_pem` (the App's RSA key;
    /// the caller unseals it).
    pub fn builder(
        app_id: impl Into<String>,
        installation_id: u64,
        private_key_pem: SecretString,
    ) -> GitHubAppProviderBuilder {
        GitHubAppProviderBuilder {
            app_id: app_id.into(),
            installation_id,
            private_key_pem,
            api_base: "https://api.github.com".into(),
            git_base: "https://github.com".into(),
            user_agent: concat!("userz-vcs-github/", env!("CARGO_PKG_VERSION")).into(),
        }
    }

    /// The app JWT: RS256, `iat` 60 s in the past, `exp` 9 minutes ahead,
    /// `iss` the app id.
    fn app_jwt(&self) -> std::result::Result<SecretString, GitHubError> {
        let key = EncodingKey::from_rsa_pem(self.inner.private_key_pem.expose_secret().as_bytes()).map_err(|e| {
            GitHubError::Config { field: "private_key_pem", message: format!("not an RSA private key PEM ({e})") }
        })?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({"iat": now - 60, "exp": now + 9 * 60, "iss": self.inner.app_id});
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
            .map_err(|e| GitHubError::Config { field: "private_key_pem", message: format!("cannot sign ({e})") })?;
        Ok(SecretString::from(jwt))
    }

    /// The expiry GitHub gave the token held for `run` on `owner/name`, if
    /// one is held.
    pub fn token_expiry(&self, run: RunId, location: &str) -> Option<OffsetDateTime> {
        self.inner.tokens.lock().get(&(run, location.to_string())).map(|t| t.expires_at)
    }

    /// Drops the tokens held for `run` (call when the run ends).
    pub fn forget_run(&self, run: RunId) {
        self.inner.tokens.lock().retain(|(r, _), _| *r != run);
    }

    /// The held token while it has more than the reuse margin left.
    fn held_token(&self, run: RunId, location: &str) -> Option<SecretString> {
        let now = OffsetDateTime::now_utc();
        let mut tokens = self.inner.tokens.lock();
        tokens.retain(|_, t| t.expires_at > now);
        let t = tokens.get(&(run, location.to_string()))?;
        ((t.expires_at - now).whole_seconds() > TOKEN_REUSE_MARGIN_SECS).then(|| t.token.clone())
    }

    fn drop_token(&self, run: RunId, location: &str) {
        self.inner.tokens.lock().remove(&(run, location.to_string()));
    }

    /// The installation token for `run` on `owner/name`: the held one while
    /// it has more than five minutes left, else a freshly minted one narrowed
    /// to that repository and the three permissions.
    pub async fn installation_token(
        &self,
        run: RunId,
        location: &str,
    ) -> std::result::Result<SecretString, GitHubError> {
        let (_, name) = split_location(location)?;
        if let Some(t) = self.held_token(run, location) {
            return Ok(t);
        }
        let _minting = self.inner.mint.lock().await;
        if let Some(t) = self.held_token(run, location) {
            return Ok(t);
        }
        let jwt = self.app_jwt()?;
        let permissions: serde_json::Map<String, Value> =
            TOKEN_PERMISSIONS.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        let body = json!({"repositories": [name], "permissions": permissions});
        const OP: &str = "apps/create-installation-access-token";
        let path = format!("/app/installations/{}/access_tokens", self.inner.installation_id);
        let resp = self
            .inner
            .api
            .send(OP, ::http::Method::POST, &path, Some(Credential::bearer(jwt.expose_secret())), Some(&body))
            .await?;
        if resp.status != 201 {
            return Err(api_error(OP, &resp));
        }
        let token = resp.body.get("token").and_then(Value::as_str).filter(|t| !t.is_empty());
        let token =
            token.ok_or_else(|| GitHubError::Transport { operation: OP, message: "no token in the answer".into() })?;
        let token = SecretString::from(token.to_string());
        let expires_at = resp
            .body
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|s| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok())
            .ok_or_else(|| GitHubError::Transport {
                operation: OP,
                message: "no valid expires_at in the answer".into(),
            })?;
        // GitHub may grant less than asked (never more): a token without the
        // three permissions cannot do the run's work, so say so now.
        for (perm, level) in TOKEN_PERMISSIONS {
            let granted = resp.body.get("permissions").and_then(|p| p.get(perm)).and_then(Value::as_str);
            if granted.is_some_and(|g| g != level) {
                return Err(GitHubError::Api {
                    operation: OP,
                    status: resp.status,
                    message: format!("token granted {perm}: {granted:?}, the run needs {level}"),
                    retryable: false,
                });
            }
        }
        tracing::info!(%run, repo = location, expires_at = %expires_at, "minted installation token");
        self.inner.tokens.lock().insert((run, location.to_string()), CachedToken { token: token.clone(), expires_at });
        Ok(token)
    }

    fn remote_url(&self, location: &str) -> std::result::Result<String, GitHubError> {
        let (owner, name) = split_location(location)?;
        let url = format!("{}/{owner}/{name}.git", self.inner.git_base);
        if url.starts_with("https://") && !git2::Version::get().https() {
            return Err(GitHubError::Unsupported(
                "this build's libgit2 has no HTTPS transport; https git remotes cannot be used".into(),
            ));
        }
        Ok(url)
    }

    /// Maps a git failure: a refused credential drops the token.
    fn git_failure(&self, run: RunId, location: &str, op: &'static str, e: GitError) -> GitHubError {
        if userz_git::is_auth_error(&e) {
            self.drop_token(run, location);
            GitHubError::TokenRejected { operation: op, message: e.to_string() }
        } else {
            GitHubError::Git(e)
        }
    }

    /// Sends an API call with the run's token; a `401` drops the token.
    async fn call(
        &self,
        run: RunId,
        location: &str,
        operation: &'static str,
        method: ::http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<ApiResponse, GitHubError> {
        let token = self.installation_token(run, location).await?;
        let resp =
            self.inner.api.send(operation, method, path, Some(Credential::bearer(token.expose_secret())), body).await?;
        if resp.status == 401 {
            self.drop_token(run, location);
            return Err(GitHubError::TokenRejected {
                operation,
                message: format!("GitHub returned 401: {}", provider_message(&resp.body)),
            });
        }
        Ok(resp)
    }

    async fn find_open_pr(
        &self,
        run: RunId,
        location: &str,
        branch: &str,
    ) -> std::result::Result<Option<(u64, String)>, GitHubError> {
        let (owner, name) = split_location(location)?;
        const OP: &str = "pulls/list";
        let path =
            format!("/repos/{owner}/{name}/pulls?head={}&state=open", encode_query(&format!("{owner}:{branch}")));
        let resp = self.call(run, location, OP, ::http::Method::GET, &path, None).await?;
        if resp.status != 200 {
            return Err(api_error(OP, &resp));
        }
        let first = resp.body.as_array().and_then(|a| {
            a.iter().find(|p| p.pointer("/head/ref").and_then(Value::as_str) == Some(branch)).or_else(|| a.first())
        });
        Ok(first.and_then(pr_ref_parts))
    }

    async fn open_or_update(&self, request: &PrRequest) -> std::result::Result<PrRef, GitHubError> {
        let location = request.target.location.as_str();
        let (owner, name) = split_location(location)?;
        userz_git::check_branch_name(&request.branch)?;
        let run = request.run;
        let update = |number: u64| async move {
            const OP: &str = "pulls/update";
            let body = json!({"title": request.title, "body": request.body});
            let path = format!("/repos/{owner}/{name}/pulls/{number}");
            let resp = self.call(run, location, OP, ::http::Method::PATCH, &path, Some(&body)).await?;
            if resp.status != 200 {
                return Err(api_error(OP, &resp));
            }
            let (number, url) = pr_ref_parts(&resp.body).ok_or_else(|| GitHubError::Transport {
                operation: OP,
                message: "answer lacks number/html_url".into(),
            })?;
            tracing::info!(%run, repo = location, number, "updated the open pull request");
            Ok(PrRef { number, url, created: false })
        };
        if let Some((number, _)) = self.find_open_pr(run, location, &request.branch).await? {
            return update(number).await;
        }
        let base = match &request.target.base_branch {
            Some(b) => b.clone(),
            None => self.default_branch(run, location).await?,
        };
        const OP: &str = "pulls/create";
        let body = json!({
            "title": request.title,
            "head": request.branch,
            "base": base,
            "body": request.body,
            "draft": true,
        });
        let path = format!("/repos/{owner}/{name}/pulls");
        let resp = self.call(run, location, OP, ::http::Method::POST, &path, Some(&body)).await?;
        if resp.status == 201 {
            let (number, url) = pr_ref_parts(&resp.body).ok_or_else(|| GitHubError::Transport {
                operation: OP,
                message: "answer lacks number/html_url".into(),
            })?;
            tracing::info!(%run, repo = location, number, "opened a draft pull request");
            return Ok(PrRef { number, url, created: true });
        }
        if resp.status == 422 && provider_message(&resp.body).contains("already exists") {
            // Another attempt created it between the lookup and the create.
            if let Some((number, _)) = self.find_open_pr(run, location, &request.branch).await? {
                return update(number).await;
            }
        }
        Err(api_error(OP, &resp))
    }

    async fn default_branch(&self, run: RunId, location: &str) -> std::result::Result<String, GitHubError> {
        let (owner, name) = split_location(location)?;
        const OP: &str = "repos/get";
        let resp = self.call(run, location, OP, ::http::Method::GET, &format!("/repos/{owner}/{name}"), None).await?;
        if resp.status != 200 {
            return Err(api_error(OP, &resp));
        }
        resp.body
            .get("default_branch")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GitHubError::Transport { operation: OP, message: "answer lacks default_branch".into() })
    }
}

fn pr_ref_parts(pr: &Value) -> Option<(u64, String)> {
    Some((pr.get("number")?.as_u64()?, pr.get("html_url")?.as_str()?.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, GitHubError> + Send + 'static,
) -> std::result::Result<T, GitHubError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GitHubError::Transport { operation: "git task", message: e.to_string() })?
}

#[async_trait]
impl VcsProvider for GitHubAppProvider {
    async fn prepare_workspace(
        &self,
        target: &RepoTarget,
        run: RunId,
        branch: &str,
        existing_branch: bool,
        dir: &Path,
    ) -> Result<Workspace> {
        let location = target.location.clone();
        let url = self.remote_url(&location)?;
        let token = self.installation_token(run, &location).await?;
        let (base, branch, dir, this) =
            (target.base_branch.clone(), branch.to_string(), dir.to_path_buf(), self.clone());
        let ws = blocking(move || {
            let creds = HttpCredentials::new(GIT_USER, token);
            prepare_workspace_with(&url, Some(&creds), base.as_deref(), run, &branch, existing_branch, &dir)
                .map_err(|e| this.git_failure(run, &location, "clone", e))
        })
        .await?;
        Ok(ws)
    }

    async fn push(&self, target: &RepoTarget, workspace: &Workspace) -> Result<PushedBranch> {
        let location = target.location.clone();
        let url = self.remote_url(&location)?;
        let run = workspace.run;
        let token = self.installation_token(run, &location).await?;
        let (ws, this) = (workspace.clone(), self.clone());
        let pushed = blocking(move || {
            let reader = UntrustedWorkspace::open(&ws)?;
            let creds = HttpCredentials::new(GIT_USER, token);
            reader
                .push_checked_head_with(&url, Some(&creds))
                .map_err(|e| this.git_failure(run, &location, "push", e))?;
            tracing::info!(%run, repo = %location, branch = %ws.branch, head = %reader.head(), "pushed branch");
            Ok(PushedBranch { branch: ws.branch.clone(), head_commit: reader.head().to_string() })
        })
        .await?;
        Ok(pushed)
    }

    async fn open_or_update_pr(&self, request: &PrRequest) -> Result<PrRef> {
        Ok(self.open_or_update(request).await?)
    }

    fn capabilities(&self) -> VcsCapabilities {
        VcsCapabilities::with_pull_requests()
    }
}
