//! Shared setup: a test App key pair (generated per process, never stored),
//! the GitHub fake, the git smart-HTTP server and a provider wired to both.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::OnceLock;

use secrecy::SecretString;
use userz_core::ids::{OrgId, RepoId, RunId};
use userz_core::ports::{RepoTarget, Workspace};
use userz_fakes::github_fake::{generate_app_key, GitHubFake};
use userz_testkit::git_http::GitHttpServer;
use userz_vcs_github::GitHubAppProvider;

pub const APP_ID: &str = "424242";
pub const INSTALLATION: u64 = 7_700_001;
pub const OWNER: &str = "acme";
pub const LOCATION: &str = "acme/widgets";

/// One RSA key pair per test process (openssl keygen takes ~0.1 s).
pub fn app_key() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| generate_app_key().expect("openssl must be installed (scripts/services.sh)"))
}

pub struct Env {
    pub fake: GitHubFake,
    pub git: GitHttpServer,
    pub provider: GitHubAppProvider,
    /// The only token the git server accepts; queue it on the fake before a
    /// run mints its token (otherwise the fake issues a random one).
    pub token: String,
}

pub fn target(base_branch: Option<&str>) -> RepoTarget {
    RepoTarget {
        org: OrgId::new(),
        repo: RepoId::new(),
        location: LOCATION.into(),
        base_branch: base_branch.map(str::to_string),
        provider: userz_core::domain::repo::Provider::Github {
            installation_id: INSTALLATION,
            full_name: LOCATION.into(),
        },
    }
}

pub async fn env() -> Env {
    let (private, public) = app_key();
    let fake = GitHubFake::start(APP_ID, public, INSTALLATION, OWNER).await.unwrap();
    fake.add_repo(LOCATION);
    fake.add_repo("acme/other");
    let token = format!("ghs_{}", uuid::Uuid::new_v4().simple());
    let git = GitHttpServer::start(&token).await.unwrap();
    git.create_repo(LOCATION).unwrap();
    fake.link_git_repos(git.root().join("repos"));
    let provider = GitHubAppProvider::builder(APP_ID, INSTALLATION, SecretString::from(private.clone()))
        .with_api_base(fake.base_url())
        .with_git_base(git.git_base())
        .with_user_agent("userz-tests")
        .build()
        .unwrap();
    Env { fake, git, provider, token }
}

/// Another provider instance for the same App, fake and git server (a new
/// process after a crash: no cached tokens).
pub fn fresh_provider(e: &Env) -> GitHubAppProvider {
    let (private, _) = app_key();
    GitHubAppProvider::builder(APP_ID, INSTALLATION, SecretString::from(private.clone()))
        .with_api_base(e.fake.base_url())
        .with_git_base(e.git.git_base())
        .with_user_agent("userz-tests")
        .build()
        .unwrap()
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

/// The GitHub App provider as the VCS conformance suite drives it.
pub struct Forge(pub Env);

pub async fn forge() -> Forge {
    Forge(env().await)
}

impl userz_testkit::conformance::vcs::VcsForge for Forge {
    fn provider(&self) -> std::sync::Arc<dyn userz_core::ports::VcsProvider> {
        std::sync::Arc::new(self.0.provider.clone())
    }
    fn fresh_provider(&self) -> std::sync::Arc<dyn userz_core::ports::VcsProvider> {
        std::sync::Arc::new(fresh_provider(&self.0))
    }
    fn target(&self, base_branch: Option<&str>) -> RepoTarget {
        target(base_branch)
    }
    fn before_prepare(&self) {
        // Each run mints its own token; the test git server accepts one.
        self.0.fake.queue_token(&self.0.token);
    }
    fn branch_head(&self, branch: &str) -> Option<String> {
        self.0.git.branch_head(LOCATION, branch).unwrap()
    }
    fn branch_log(&self, branch: &str) -> Vec<String> {
        self.0.git.branch_log(LOCATION, branch).unwrap()
    }
    fn remote_url(&self) -> String {
        self.0.git.url_for(LOCATION)
    }
    fn token(&self) -> Option<String> {
        Some(self.0.token.clone())
    }
    fn git_user(&self) -> String {
        "x-access-token".into()
    }
    fn refused_credentials(&self) -> Vec<(String, String)> {
        vec![("x-access-token".into(), "ghs_wrong".into())]
    }
    fn server_root(&self) -> std::path::PathBuf {
        self.0.git.root().to_path_buf()
    }
    fn server_error_log(&self) -> String {
        self.0.git.error_log()
    }
    fn expected_log_lines(&self) -> Vec<&'static str> {
        vec!["minted installation token", "pushed branch"]
    }
    fn change_requests(&self) -> Vec<userz_testkit::conformance::vcs::ChangeRequest> {
        self.0
            .fake
            .pulls(LOCATION)
            .into_iter()
            .map(|p| userz_testkit::conformance::vcs::ChangeRequest {
                number: p.number,
                head: p.head,
                base: p.base,
                draft: p.draft,
                title: p.title,
                body: p.body,
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
