//! # userz-vcs-gitlab
//!
//! The GitLab [`VcsProvider`] of the Userz engine, for gitlab.com and
//! self-hosted instances.
//!
//! - **One provider per Repo**: the Repo's `baseUrl` (e.g.
//!   `https://gitlab.com`, or `https://git.example.org/gitlab` for an
//!   instance under a relative URL root) and its project access token
//!   ([`SecretString`], unsealed by the caller, held in memory only). The API
//!   is `{baseUrl}/api/v4`; repositories are `{baseUrl}/<path>.git`.
//! - **Project addressing**: [`RepoTarget::location`] is the project's full
//!   path `group/sub/project`; API calls name the project by its URL-encoded
//!   path, or by its numeric id when the builder was given one
//!   ([`GitLabProviderBuilder::with_project_id`]).
//! - **Clone and push over smart-HTTP** through libgit2 in-process
//!   ([`userz_git`]): the token reaches libgit2 through its credential
//!   callback as HTTP Basic `oauth2` / token ([`GIT_USER`]) and nowhere else —
//!   not in a URL, an argument, the environment, git config or a file. No
//!   `git` program is started.
//! - **API authentication**: the `PRIVATE-TOKEN` header, marked sensitive.
//! - **Idempotent draft merge requests**: an open merge request for the
//!   source branch is looked up first
//!   (`GET /projects/:id/merge_requests?source_branch=…&state=opened`) and
//!   returned (`created = false`); only when there is none is one created
//!   with `POST /projects/:id/merge_requests` and a `Draft: ` title prefix
//!   (GitLab has no create-time draft flag). A create that races another
//!   (`409` "Another open merge request already exists") falls back to the
//!   lookup. A revision run pushes to the same branch, so the same merge
//!   request shows its commits.
//! - **Review webhooks**: [`GitLabReviewPayloads`] maps merge-request
//!   close/merge and diff-note deliveries to a provider-neutral
//!   [`InboundPrNotice`](userz_core::ports::InboundPrNotice) (the
//!   [`ReviewPayloads`](userz_core::ports::ReviewPayloads) port).
//!
//! **Not done here, on purpose:** the title and description of an existing
//! merge request are not rewritten on a revision run. That needs
//! `PUT /projects/:id/merge_requests/:iid`, which the published description
//! this crate is validated against (`contracts/gitlab.merge-requests.subset.json`)
//! does not cover; the merge request keeps the text of the run that opened it
//! and gains the revision's commits.
//!
//! Errors are [`userz_core::Error::Effect`] with `port = "vcs"`, naming
//! GitLab's status and its `message`/`error` (never the token); `5xx`,
//! `429` and a refused token (`401`, expired or revoked) are retryable.
//!
//! ```no_run
//! # fn demo(token: userz_security::secret::SecretString) -> Result<(), userz_vcs_gitlab::GitLabError> {
//! use userz_vcs_gitlab::GitLabProvider;
//! let provider = GitLabProvider::builder("https://git.example.org/gitlab", token).build()?;
//! # let _ = provider; Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use userz_core::error::{Error, Result};
use userz_core::ids::RunId;
use userz_core::ports::{PrRef, PrRequest, PushedBranch, RepoTarget, VcsCapabilities, VcsProvider, Workspace};
use userz_git::{prepare_workspace_with, GitError, HttpCredentials, UntrustedWorkspace};
use userz_security::secret::SecretString;

use userz_rest::{ApiBase, ApiResponse, Credential, RestClient, RestError};

mod review;

pub use review::GitLabReviewPayloads;

/// The header carrying the project access token on API calls.
const PRIVATE_TOKEN: ::http::HeaderName = ::http::HeaderName::from_static("private-token");

/// User name sent with the token over git smart-HTTP (GitLab accepts any
/// non-empty user with a project access token and documents `oauth2`).
pub const GIT_USER: &str = "oauth2";

/// The title prefix that makes a merge request a draft.
pub const DRAFT_PREFIX: &str = "Draft: ";

/// Errors of the GitLab provider (converted to [`userz_core::Error`] at the
/// port).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitLabError {
    /// A configuration value is unusable.
    #[error("invalid GitLab provider config {field}: {message}")]
    Config {
        /// Field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The repository location is not a project path `group/…/project`.
    #[error("invalid GitLab project location {0:?}: expected the project path group/[subgroup/…]project")]
    Location(String),
    /// GitLab answered with an error status.
    #[error("GitLab {operation} returned {status}: {message}")]
    Api {
        /// Operation (the published description's operation).
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// GitLab's `message` / `error`.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
    },
    /// GitLab or its git server refused the project access token (expired or
    /// revoked). Retryable: a retry succeeds once the Repo's token is rotated.
    #[error("GitLab {operation}: the project access token was refused ({message}); rotate the Repo's token")]
    TokenRejected {
        /// Operation.
        operation: &'static str,
        /// GitLab's message.
        message: String,
    },
    /// The API could not be reached or answered garbage.
    #[error("GitLab {operation}: {message}")]
    Transport {
        /// Operation.
        operation: &'static str,
        /// Why.
        message: String,
    },
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] GitError),
}

impl GitLabError {
    /// Stable code for logs and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            GitLabError::Config { .. } => "gitlab_config",
            GitLabError::Location(_) => "gitlab_location",
            GitLabError::Api { .. } => "gitlab_api_error",
            GitLabError::TokenRejected { .. } => "gitlab_token_rejected",
            GitLabError::Transport { .. } => "gitlab_unreachable",
            GitLabError::Git(e) => e.code(),
        }
    }
}

/// Maps the shared client's errors onto this provider's: the API base is
/// configured as `base_url`.
impl From<RestError> for GitLabError {
    fn from(e: RestError) -> Self {
        match e.into_transport() {
            RestError::Config { field, message } => {
                GitLabError::Config { field: if field == userz_rest::FIELD_BASE { "base_url" } else { field }, message }
            }
            RestError::Transport { operation, message } => GitLabError::Transport { operation, message },
            // `send` folds every other failure into `Transport`; a newer
            // variant still reads as a transport failure.
            other => GitLabError::Transport { operation: "http", message: other.to_string() },
        }
    }
}

impl From<GitLabError> for Error {
    fn from(e: GitLabError) -> Self {
        match e {
            GitLabError::Git(g) => g.into(),
            GitLabError::Config { .. } | GitLabError::Location(_) => Error::Invalid(e.to_string()),
            GitLabError::Api { retryable, .. } => Error::Effect { port: "vcs", message: e.to_string(), retryable },
            GitLabError::TokenRejected { .. } | GitLabError::Transport { .. } => {
                Error::Effect { port: "vcs", message: e.to_string(), retryable: true }
            }
        }
    }
}

/// Builds a [`GitLabProvider`].
#[derive(Debug)]
pub struct GitLabProviderBuilder {
    base_url: String,
    token: SecretString,
    project_id: Option<u64>,
    user_agent: String,
    git_user: String,
}

impl GitLabProviderBuilder {
    /// Names the project by its numeric id in API calls (instead of its
    /// URL-encoded path). The location is still the path: git needs it.
    pub fn with_project_id(mut self, id: u64) -> Self {
        self.project_id = Some(id);
        self
    }

    /// The `User-Agent` sent to the API.
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// The HTTP Basic user sent with the token to git (default [`GIT_USER`]).
    pub fn with_git_user(mut self, user: impl Into<String>) -> Self {
        self.git_user = user.into();
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> std::result::Result<GitLabProvider, GitLabError> {
        let token = self.token.expose_secret();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GitLabError::Config {
                field: "token",
                message: "must be a non-empty project access token of visible ASCII".into(),
            });
        }
        if self.git_user.is_empty()
            || self.git_user.contains(':')
            || !self.git_user.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(GitLabError::Config { field: "git_user", message: "must be a plain user name".into() });
        }
        let base = ApiBase::parse(&self.base_url, "/api/v4")?;
        let accept = (::http::header::ACCEPT, ::http::HeaderValue::from_static("application/json"));
        let api = RestClient::new(base, &self.user_agent, vec![accept])?;
        Ok(GitLabProvider {
            inner: Arc::new(Inner {
                api,
                git_base: self.base_url.trim_end_matches('/').to_string(),
                token: self.token,
                project_id: self.project_id,
                git_user: self.git_user,
            }),
        })
    }
}

struct Inner {
    api: RestClient,
    git_base: String,
    token: SecretString,
    project_id: Option<u64>,
    git_user: String,
}

/// The GitLab provider of one Repo. Cheap to clone.
#[derive(Clone)]
pub struct GitLabProvider {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GitLabProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabProvider")
            .field("base_url", &self.inner.git_base)
            .field("project_id", &self.inner.project_id)
            .field("token", &self.inner.token)
            .finish_non_exhaustive()
    }
}

/// `group/[sub/…]project`, each segment GitLab-safe.
fn check_location(location: &str) -> std::result::Result<&str, GitLabError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 255
            && !s.starts_with(['.', '-'])
            && !s.ends_with('.')
            && !s.ends_with(".git")
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let segments: Vec<&str> = location.split('/').collect();
    if segments.len() >= 2 && segments.iter().all(|s| ok(s)) {
        Ok(location)
    } else {
        Err(GitLabError::Location(location.into()))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so a
/// project path's `/` becomes `%2F`, as GitLab requires).
fn encode(value: &str) -> String {
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

/// GitLab's error text: `message` (a string, a list, or field → messages),
/// else `error` (+ `error_description`), else the raw body.
fn provider_message(body: &Value) -> String {
    fn flatten(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(items) => items.iter().map(flatten).collect::<Vec<_>>().join("; "),
            Value::Object(fields) => {
                fields.iter().map(|(k, v)| format!("{k}: {}", flatten(v))).collect::<Vec<_>>().join("; ")
            }
            Value::Null => String::new(),
            other => other.to_string(),
        }
    }
    let text = if let Some(m) = body.get("message") {
        flatten(m)
    } else if let Some(e) = body.get("error") {
        match body.get("error_description").and_then(Value::as_str) {
            Some(d) => format!("{}: {d}", flatten(e)),
            None => flatten(e),
        }
    } else if let Value::String(s) = body {
        s.clone()
    } else {
        String::new()
    };
    let text: String = text.chars().take(500).collect();
    if text.trim().is_empty() {
        "no message".into()
    } else {
        text
    }
}

fn api_error(operation: &'static str, resp: &ApiResponse) -> GitLabError {
    GitLabError::Api {
        operation,
        status: resp.status,
        retryable: resp.status >= 500 || resp.status == 429,
        message: provider_message(&resp.body),
    }
}

/// `Draft: <title>` unless the title already marks a draft.
pub fn draft_title(title: &str) -> String {
    let lower = title.trim_start().to_ascii_lowercase();
    if ["draft:", "[draft]", "(draft)"].iter().any(|p| lower.starts_with(p)) {
        title.trim_start().to_string()
    } else {
        format!("{DRAFT_PREFIX}{title}")
    }
}

fn mr_ref_parts(mr: &Value) -> Option<(u64, String)> {
    Some((mr.get("iid")?.as_u64()?, mr.get("web_url")?.as_str()?.to_string()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, GitLabError> + Send + 'static,
) -> std::result::Result<T, GitLabError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GitLabError::Transport { operation: "git task", message: e.to_string() })?
}

const OP_LIST: &str = "merge_requests/list";
const OP_CREATE: &str = "merge_requests/create";

impl GitLabProvider {
    /// A builder for the instance at `base_url` (the Repo's `baseUrl`, with
    /// any relative URL root; the API is `{base_url}/api/v4`), authenticating
    /// with the project access `token`.
    pub fn builder(base_url: impl Into<String>, token: SecretString) -> GitLabProviderBuilder {
        GitLabProviderBuilder {
            base_url: base_url.into(),
            token,
            project_id: None,
            user_agent: concat!("userz-vcs-gitlab/", env!("CARGO_PKG_VERSION")).into(),
            git_user: GIT_USER.into(),
        }
    }

    /// The clone/push URL of the project `location`
    /// (`{baseUrl}/<group/…/project>.git`). It never carries credentials.
    pub fn remote_url(&self, location: &str) -> std::result::Result<String, GitLabError> {
        Ok(format!("{}/{}.git", self.inner.git_base, check_location(location)?))
    }

    /// How API paths name the project: its numeric id, or its URL-encoded path.
    fn project_ref(&self, location: &str) -> std::result::Result<String, GitLabError> {
        let path = check_location(location)?;
        Ok(match self.inner.project_id {
            Some(id) => id.to_string(),
            None => encode(path),
        })
    }

    fn credentials(&self) -> HttpCredentials {
        let password = secrecy::SecretString::from(self.inner.token.expose_secret().to_owned());
        HttpCredentials::new(self.inner.git_user.clone(), password)
    }

    fn git_failure(operation: &'static str, e: GitError) -> GitLabError {
        if userz_git::is_auth_error(&e) {
            GitLabError::TokenRejected { operation, message: e.to_string() }
        } else {
            GitLabError::Git(e)
        }
    }

    /// Sends an API call; a `401` is a refused token.
    async fn call(
        &self,
        operation: &'static str,
        method: ::http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<ApiResponse, GitLabError> {
        let resp = self
            .inner
            .api
            .send(
                operation,
                method,
                path,
                Some(Credential::header(PRIVATE_TOKEN, self.inner.token.expose_secret())),
                body,
            )
            .await?;
        if resp.status == 401 {
            return Err(GitLabError::TokenRejected {
                operation,
                message: format!("GitLab returned 401: {}", provider_message(&resp.body)),
            });
        }
        Ok(resp)
    }

    /// The open merge request whose source branch is `branch`, as
    /// `(iid, web_url)`.
    pub async fn find_open_merge_request(
        &self,
        location: &str,
        branch: &str,
    ) -> std::result::Result<Option<(u64, String)>, GitLabError> {
        let path = format!(
            "/projects/{}/merge_requests?source_branch={}&state=opened",
            self.project_ref(location)?,
            encode(branch)
        );
        let resp = self.call(OP_LIST, ::http::Method::GET, &path, None).await?;
        if resp.status != 200 {
            return Err(api_error(OP_LIST, &resp));
        }
        let items = resp.body.as_array().ok_or_else(|| GitLabError::Transport {
            operation: OP_LIST,
            message: "answer is not a list of merge requests".into(),
        })?;
        Ok(items
            .iter()
            .filter(|m| m.get("source_branch").and_then(Value::as_str) == Some(branch))
            .filter(|m| m.get("state").and_then(Value::as_str).is_none_or(|s| s == "opened"))
            .find_map(mr_ref_parts))
    }

    /// The project's default branch, read from the git server's advertised
    /// `HEAD` (the published API description used here has no project
    /// endpoint).
    async fn default_branch(&self, location: &str) -> std::result::Result<String, GitLabError> {
        let url = self.remote_url(location)?;
        let creds = self.credentials();
        blocking(move || {
            userz_git::remote_default_branch(&url, Some(&creds)).map_err(|e| Self::git_failure("default branch", e))
        })
        .await
    }

    async fn open_or_update(&self, request: &PrRequest) -> std::result::Result<PrRef, GitLabError> {
        let location = request.target.location.as_str();
        userz_git::check_branch_name(&request.branch)?;
        let run = request.run;
        if let Some((iid, url)) = self.find_open_merge_request(location, &request.branch).await? {
            tracing::info!(%run, repo = location, iid, "found the open merge request for the branch");
            return Ok(PrRef { number: iid, url, created: false });
        }
        let target = match &request.target.base_branch {
            Some(b) => b.clone(),
            None => self.default_branch(location).await?,
        };
        let body = json!({
            "title": draft_title(&request.title),
            "source_branch": request.branch,
            "target_branch": target,
            "description": request.body,
        });
        let path = format!("/projects/{}/merge_requests", self.project_ref(location)?);
        let resp = self.call(OP_CREATE, ::http::Method::POST, &path, Some(&body)).await?;
        if resp.status == 201 {
            let (iid, url) = mr_ref_parts(&resp.body).ok_or_else(|| GitLabError::Transport {
                operation: OP_CREATE,
                message: "answer lacks iid/web_url".into(),
            })?;
            tracing::info!(%run, repo = location, iid, "opened a draft merge request");
            return Ok(PrRef { number: iid, url, created: true });
        }
        if resp.status == 409 && provider_message(&resp.body).contains("already exists") {
            // Another attempt created it between the lookup and the create.
            if let Some((iid, url)) = self.find_open_merge_request(location, &request.branch).await? {
                tracing::info!(%run, repo = location, iid, "found the merge request a concurrent attempt opened");
                return Ok(PrRef { number: iid, url, created: false });
            }
        }
        Err(api_error(OP_CREATE, &resp))
    }
}

#[async_trait]
impl VcsProvider for GitLabProvider {
    async fn prepare_workspace(
        &self,
        target: &RepoTarget,
        run: RunId,
        branch: &str,
        existing_branch: bool,
        dir: &Path,
    ) -> Result<Workspace> {
        let url = self.remote_url(&target.location)?;
        let creds = self.credentials();
        let (base, branch, dir) = (target.base_branch.clone(), branch.to_string(), dir.to_path_buf());
        let ws = blocking(move || {
            prepare_workspace_with(&url, Some(&creds), base.as_deref(), run, &branch, existing_branch, &dir)
                .map_err(|e| Self::git_failure("clone", e))
        })
        .await?;
        tracing::info!(%run, repo = %target.location, branch = %ws.branch, base = %ws.base_commit, "cloned project");
        Ok(ws)
    }

    async fn push(&self, target: &RepoTarget, workspace: &Workspace) -> Result<PushedBranch> {
        let location = target.location.clone();
        let url = self.remote_url(&location)?;
        let run = workspace.run;
        let creds = self.credentials();
        let ws = workspace.clone();
        let pushed = blocking(move || {
            let reader = UntrustedWorkspace::open(&ws)?;
            reader.push_checked_head_with(&url, Some(&creds)).map_err(|e| Self::git_failure("push", e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_encoding() {
        assert!(check_location("group/project").is_ok());
        assert!(check_location("group/sub/deeper/project").is_ok());
        for bad in ["project", "group/", "/project", "group/../x", "group/p.git", "group/p q", "a//b"] {
            assert!(check_location(bad).is_err(), "{bad}");
        }
        assert_eq!(encode("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(encode("userz/fix-1"), "userz%2Ffix-1");
    }

    #[test]
    fn draft_prefix_is_added_once() {
        assert_eq!(draft_title("Fix save"), "Draft: Fix save");
        assert_eq!(draft_title("Draft: Fix save"), "Draft: Fix save");
        assert_eq!(draft_title("draft: x"), "draft: x");
    }

    #[test]
    fn gitlab_message_shapes() {
        assert_eq!(provider_message(&json!({"message": "401 Unauthorized"})), "401 Unauthorized");
        assert_eq!(provider_message(&json!({"message": ["a", "b"]})), "a; b");
        assert_eq!(provider_message(&json!({"message": {"title": ["is too long"]}})), "title: is too long");
        assert_eq!(provider_message(&json!({"error": "title is missing"})), "title is missing");
        assert_eq!(
            provider_message(&json!({"error": "invalid_token", "error_description": "Token was revoked"})),
            "invalid_token: Token was revoked"
        );
        assert_eq!(provider_message(&Value::Null), "no message");
    }
}
