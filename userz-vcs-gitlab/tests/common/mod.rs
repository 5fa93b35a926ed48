//! Shared setup: the GitLab fake (optionally under a path prefix), the git
//! smart-HTTP server behind it, and a provider wired to the fake's base URL.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use userz_core::ids::{OrgId, RepoId, RunId};
use userz_core::ports::{RepoTarget, Workspace};
use userz_fakes::gitlab_fake::GitLabFake;
use userz_security::secret::SecretString;
use userz_testkit::git_http::GitHttpServer;
use userz_vcs_gitlab::{GitLabProvider, GIT_USER};

/// A project in a subgroup, so the URL-encoded path has two `%2F`.
pub const PROJECT: &str = "acme/platform/widgets";

pub struct Env {
    pub fake: GitLabFake,
    pub git: GitHttpServer,
    pub provider: GitLabProvider,
    /// The project access token (the fake and the git server accept it).
    pub token: String,
    pub project_id: u64,
}

pub fn target(base_branch: Option<&str>) -> RepoTarget {
    RepoTarget {
        org: OrgId::new(),
        repo: RepoId::new(),
        location: PROJECT.into(),
        base_branch: base_branch.map(str::to_string),
        // The base URL the adapter uses is its own; this records the Repo's.
        provider: userz_core::domain::repo::Provider::Gitlab {
            base_url: "http://127.0.0.1".into(),
            project: PROJECT.into(),
        },
    }
}

/// The fake mounted under `prefix` (`""` or e.g. `"/gitlab"`), forwarding
/// git to a server that accepts `oauth2` / token.
pub async fn env_at(prefix: &str) -> Env {
    let fake = GitLabFake::start(prefix).await.unwrap();
    let project_id = fake.add_project(PROJECT);
    fake.add_project("acme/other");
    let token = format!("glpat-{}", uuid::Uuid::new_v4().simple());
    fake.add_token(&token);
    let git = GitHttpServer::start_with_user(GIT_USER, &token).await.unwrap();
    git.create_repo(PROJECT).unwrap();
    fake.proxy_git_to(&git.git_base()).unwrap();
    fake.link_git_repos(git.root().join("repos"));
    let provider = GitLabProvider::builder(fake.base_url(), SecretString::from(token.clone()))
        .with_user_agent("userz-tests")
        .build()
        .unwrap();
    Env { fake, git, provider, token, project_id }
}

pub async fn env() -> Env {
    env_at("").await
}

/// What the agent does in the sandbox: edit a file and commit on the branch.
pub fn agent_commit(ws: &Workspace, file: &str, content: &str, message: &str) -> String {
    let repo = git2::Repository::open(&ws.path).unwrap();
    std::fs::write(ws.path.join(file), content).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(file)).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let parent = repo.head().unwrap().peel_to_commit().unwrap();
    let sig = git2::Signature::now("Userz Agent", "agent@userz.invalid").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent]).unwrap().to_string()
}

pub fn run() -> RunId {
    RunId::new()
}

/// The GitLab provider as the VCS conformance suite drives it.
pub struct Forge(pub Env);

pub async fn forge() -> Forge {
    Forge(env().await)
}

impl userz_testkit::conformance::vcs::VcsForge for Forge {
    fn provider(&self) -> std::sync::Arc<dyn userz_core::ports::VcsProvider> {
        std::sync::Arc::new(self.0.provider.clone())
    }
    fn fresh_provider(&self) -> std::sync::Arc<dyn userz_core::ports::VcsProvider> {
        let p = GitLabProvider::builder(self.0.fake.base_url(), SecretString::from(self.0.token.clone()))
            .with_user_agent("userz-tests")
            .build()
            .unwrap();
        std::sync::Arc::new(p)
    }
    fn target(&self, base_branch: Option<&str>) -> RepoTarget {
        target(base_branch)
    }
    fn branch_head(&self, branch: &str) -> Option<String> {
        self.0.git.branch_head(PROJECT, branch).unwrap()
    }
    fn branch_log(&self, branch: &str) -> Vec<String> {
        self.0.git.branch_log(PROJECT, branch).unwrap()
    }
    fn remote_url(&self) -> String {
        // Through the instance's base URL, as the provider pushes.
        self.0.provider.remote_url(PROJECT).unwrap()
    }
    fn token(&self) -> Option<String> {
        Some(self.0.token.clone())
    }
    fn git_user(&self) -> String {
        GIT_USER.into()
    }
    fn refused_credentials(&self) -> Vec<(String, String)> {
        // A wrong token, and the right token under another user name.
        vec![(GIT_USER.into(), "glpat-wrong".into()), ("someone".into(), self.0.token.clone())]
    }
    fn server_root(&self) -> std::path::PathBuf {
        self.0.git.root().to_path_buf()
    }
    fn server_error_log(&self) -> String {
        self.0.git.error_log()
    }
    fn expected_log_lines(&self) -> Vec<&'static str> {
        vec!["pushed branch", "opened a draft merge request"]
    }
    fn change_requests(&self) -> Vec<userz_testkit::conformance::vcs::ChangeRequest> {
        self.0
            .fake
            .merge_requests(PROJECT)
            .into_iter()
            .map(|m| userz_testkit::conformance::vcs::ChangeRequest {
                number: m.iid,
                head: m.source_branch,
                base: m.target_branch,
                draft: m.draft,
                title: m.title,
                body: m.description,
            })
            .collect()
    }
    fn revoke_tokens(&self) {
        self.0.fake.revoke_all_tokens();
    }
    fn fail_next(&self, status: u16, message: &str) {
        self.0.fake.fail_next(status, message);
    }
}
