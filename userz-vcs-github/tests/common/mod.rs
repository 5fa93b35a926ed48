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
