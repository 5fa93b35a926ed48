//! [`VcsProvider`] conformance: what every forge adapter (and the
//! branch-only git provider) must do with a real git smart-HTTP server
//! ([`GitHttpServer`](crate::git_http::GitHttpServer)) and, for forges, a
//! local fake of the forge's API (`userz-fakes`).
//!
//! An adapter implements [`VcsForge`] over its provider and its fakes, then
//! runs every check with [`vcs_conformance_tests!`](crate::vcs_conformance_tests)
//! (one test per check) or [`run_all`]. What it cannot do it states in
//! [`ForgeCapabilities`]; a check a flag waives says so on stderr and, where
//! the port defines the refusal, asserts it instead.
//!
//! Forge-specific behaviour (how tokens are minted, the API's exact request
//! counts, a forge's own error texts) stays in the adapter's own tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use base64::Engine as _;
use userz_core::ids::{FeedbackId, RunId};
use userz_core::ports::{PrRequest, RepoTarget, VcsProvider, Workspace};
use userz_core::Error;
use userz_git::UntrustedWorkspace;

/// What a provider cannot do.
#[derive(Debug, Clone, Copy)]
pub struct ForgeCapabilities {
    /// Opens (draft) pull/merge requests. `false` (branch-only): every
    /// pull-request check instead asserts `open_or_update_pr` is refused as
    /// `Error::Unsupported`.
    pub opens_pull_requests: bool,
    /// Pushes with a token the git server requires. `false`: the remote takes
    /// no credentials, so the token checks are waived.
    pub authenticates_git: bool,
    /// A later run's PR call rewrites the PR's title and body (GitHub);
    /// `false`: they stay those of the opening run (GitLab's published
    /// operations cannot rewrite them).
    pub rewrites_pr_text: bool,
}

/// A change request as the forge's fake holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRequest {
    /// The forge's number (`number`, GitLab's `iid`).
    pub number: u64,
    /// Source branch.
    pub head: String,
    /// Target branch.
    pub base: String,
    /// Whether it is a draft.
    pub draft: bool,
    /// The title as the forge shows it.
    pub title: String,
    /// The description.
    pub body: String,
}

/// The provider under test with the servers behind it, over one repository
/// whose default branch is `main`.
#[async_trait]
pub trait VcsForge: Send + Sync {
    /// The provider.
    fn provider(&self) -> Arc<dyn VcsProvider>;
    /// Another provider instance for the same servers (a new process after a
    /// crash: nothing cached in memory).
    fn fresh_provider(&self) -> Arc<dyn VcsProvider>;
    /// The repository, with `base_branch`.
    fn target(&self, base_branch: Option<&str>) -> RepoTarget;
    /// Called before each workspace is prepared (a forge minting a token per
    /// run queues the one the git server accepts).
    fn before_prepare(&self) {}
    /// The branch's head on the server.
    fn branch_head(&self, branch: &str) -> Option<String>;
    /// The branch's commit subjects on the server, newest first.
    fn branch_log(&self, branch: &str) -> Vec<String>;
    /// The git URL of the repository, for pushes that bypass the provider.
    fn remote_url(&self) -> String;
    /// The token the git server accepts (when it requires one).
    fn token(&self) -> Option<String> {
        None
    }
    /// The HTTP Basic user name the provider pushes as.
    fn git_user(&self) -> String {
        String::new()
    }
    /// Credentials the git server must refuse (user, password).
    fn refused_credentials(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The git server's directory (scanned for copies of the token).
    fn server_root(&self) -> PathBuf;
    /// The git server's error log.
    fn server_error_log(&self) -> String;
    /// Log lines the provider must have written during a push and a PR.
    fn expected_log_lines(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// The change requests the forge holds for the repository.
    fn change_requests(&self) -> Vec<ChangeRequest> {
        Vec::new()
    }
    /// Revokes every token the forge issued.
    fn revoke_tokens(&self) {}
    /// The forge answers its next API call with `status` and `message`.
    fn fail_next(&self, _status: u16, _message: &str) {}
}

/// Runs every check.
pub async fn run_all(f: &dyn VcsForge, caps: &ForgeCapabilities) {
    push_without_token_is_refused_and_with_it_the_branch_arrives(f, caps).await;
    token_never_appears_in_files_processes_or_logs(f, caps).await;
    retry_after_pr_created_finds_the_same_pr(f, caps).await;
    revision_run_commits_on_the_same_branch_and_updates_the_same_pr(f, caps).await;
    revoked_token_mid_run_is_a_clear_retryable_error(f, caps).await;
    provider_errors_name_status_and_message_and_classify_retries(f, caps).await;
}

/// One `#[tokio::test]` per VCS check, for an adapter's
/// `tests/conformance.rs`: `vcs_conformance_tests!(async_forge_expr, caps);`
/// where `async_forge_expr` evaluates (with `.await`) to a [`VcsForge`].
#[macro_export]
macro_rules! vcs_conformance_tests {
    ($forge:expr, $caps:expr $(,)?) => {
        $crate::vcs_conformance_tests!(@each $forge, $caps;
            push_without_token_is_refused_and_with_it_the_branch_arrives,
            token_never_appears_in_files_processes_or_logs,
            retry_after_pr_created_finds_the_same_pr,
            revision_run_commits_on_the_same_branch_and_updates_the_same_pr,
            revoked_token_mid_run_is_a_clear_retryable_error,
            provider_errors_name_status_and_message_and_classify_retries,
        );
    };
    (@each $forge:expr, $caps:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let forge = $forge.await;
                $crate::conformance::vcs::$check(&forge, &$caps).await;
            }
        )*
    };
}

fn waived(check: &str, why: &str) {
    eprintln!("vcs conformance: {check} waived ({why})");
}

/// A PR request for `ws` against `main`.
pub fn pr_request(f: &dyn VcsForge, ws: &Workspace, title: &str) -> PrRequest {
    PrRequest {
        target: f.target(Some("main")),
        branch: ws.branch.clone(),
        title: title.into(),
        body: format!("> Machine-written, unreviewed.\n\nRun {}", ws.run),
        run: ws.run,
        feedback: FeedbackId::new(),
    }
}

/// A fresh run's workspace of `branch` (the new branch off `main`).
pub async fn prepared(f: &dyn VcsForge, branch: &str) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    f.before_prepare();
    let ws = f
        .provider()
        .prepare_workspace(&f.target(Some("main")), RunId::new(), branch, false, dir.path())
        .await
        .unwrap_or_else(|e| panic!("prepare_workspace: {e}"));
    (dir, ws)
}

/// What the agent does in the sandbox: edit a file and commit on the branch.
pub fn agent_commit(ws: &Workspace, file: &str, content: &str, message: &str) -> String {
    let commit = || -> Result<String, git2::Error> {
        let repo = git2::Repository::open(&ws.path)?;
        std::fs::write(ws.path.join(file), content).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        let mut index = repo.index()?;
        index.add_path(Path::new(file))?;
        index.write()?;
        let tree = repo.find_tree(index.write_tree()?)?;
        let parent = repo.head()?.peel_to_commit()?;
        let sig = git2::Signature::now("Userz Agent", "agent@userz.invalid")?;
        Ok(repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[&parent])?.to_string())
    };
    commit().unwrap_or_else(|e| panic!("agent commit: {e}"))
}

async fn push_as(ws: &Workspace, url: &str, creds: Option<(String, String)>) -> Result<(), userz_git::GitError> {
    let (ws, url) = (ws.clone(), url.to_string());
    tokio::task::spawn_blocking(move || {
        let creds = creds.map(|(u, p)| userz_git::HttpCredentials::new(u, secrecy::SecretString::from(p)));
        UntrustedWorkspace::open(&ws)?.push_checked_head_with(&url, creds.as_ref())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Without credentials, or with wrong ones, the git server refuses the
/// push; through the provider the branch arrives with the agent's commit,
/// and pushing the same head again succeeds.
pub async fn push_without_token_is_refused_and_with_it_the_branch_arrives(f: &dyn VcsForge, caps: &ForgeCapabilities) {
    let (_dir, ws) = prepared(f, "userz/fix-2").await;
    let head = agent_commit(&ws, "src.txt", "the agent's change\n", "Agent: make save work");
    let url = f.remote_url();
    if caps.authenticates_git {
        // Without credentials the git server refuses the push.
        let Err(err) = push_as(&ws, &url, None).await else { panic!("push without the token must be refused") };
        assert!(userz_git::is_auth_error(&err), "refused for authentication: {err}");
        assert_eq!(f.branch_head(&ws.branch), None);
        // Wrong credentials are refused too.
        let refused = f.refused_credentials();
        assert!(!refused.is_empty(), "the forge names credentials its git server refuses");
        for (user, password) in refused {
            let r = push_as(&ws, &url, Some((user.clone(), password))).await;
            assert!(r.is_err(), "{user} with a wrong password is refused");
            assert_eq!(f.branch_head(&ws.branch), None);
        }
    } else {
        waived("push_without_token_is_refused", "authenticates_git: false");
    }
    // With the provider the branch arrives with the agent's commit.
    let provider = f.provider();
    let pushed = provider.push(&f.target(Some("main")), &ws).await.unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(pushed.branch, ws.branch);
    assert_eq!(pushed.head_commit, head);
    assert_eq!(f.branch_head(&ws.branch).as_deref(), Some(head.as_str()));
    assert_eq!(f.branch_log(&ws.branch)[0], "Agent: make save work");
    // Pushing the same head again succeeds (port contract).
    let again = provider.push(&f.target(Some("main")), &ws).await.unwrap_or_else(|e| panic!("push again: {e}"));
    assert_eq!(again.head_commit, head);
}

/// Every file under `root` (no symlinks followed) written since `since`
/// whose bytes contain one of `needles`.
pub fn files_containing(
    root: &Path,
    since: std::time::SystemTime,
    needles: &[Vec<u8>],
    found: &mut Vec<String>,
    scanned: &mut usize,
) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if meta.is_dir() {
            files_containing(&entry.path(), since, needles, found, scanned);
        } else if meta.is_file() && meta.len() < 64 * 1024 * 1024 && meta.modified().is_ok_and(|m| m >= since) {
            let Ok(bytes) = std::fs::read(entry.path()) else { continue };
            *scanned += 1;
            if needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice())) {
                found.push(entry.path().display().to_string());
            }
        }
    }
}

/// Every process whose arguments or environment contain one of `needles`,
/// and every `git` program that is a child of this process.
pub fn scan_processes(needles: &[Vec<u8>]) -> (Vec<String>, Vec<String>) {
    let me = std::process::id().to_string();
    let (mut leaks, mut git_children) = (Vec::new(), Vec::new());
    let Ok(proc) = std::fs::read_dir("/proc") else { panic!("/proc is not readable") };
    for entry in proc.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for part in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(part)) {
                if needles.iter().any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice())) {
                    leaks.push(format!("{pid}/{part}"));
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
            // pid (comm) state ppid ...
            let comm = stat.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap_or("");
            let ppid = stat.rsplit(')').next().and_then(|s| s.split_whitespace().nth(1)).unwrap_or("");
            if ppid == me && comm.starts_with("git") {
                git_children.push(format!("{pid} {comm}"));
            }
        }
    }
    (leaks, git_children)
}

/// Every log line of this test binary (all levels, all threads), captured
/// by a global subscriber installed on first use.
pub fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        // Another subscriber already installed would hide the provider's logs.
        tracing::subscriber::set_global_default(subscriber)
            .unwrap_or_else(|e| panic!("a global tracing subscriber was already set: {e}"));
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The token never appears in process arguments or environments (no `git`
/// program is started at all), in the workspace, the server's directory, the
/// host's temp dir, the workspace's git config, the server's error log, the
/// logs, or the provider's `Debug`.
pub async fn token_never_appears_in_files_processes_or_logs(f: &dyn VcsForge, caps: &ForgeCapabilities) {
    let Some(token) = f.token().filter(|_| caps.authenticates_git) else {
        waived("token_never_appears_in_files_processes_or_logs", "authenticates_git: false");
        return;
    };
    let logs = captured_logs();
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{token}", f.git_user()));
    let needles = vec![token.as_bytes().to_vec(), basic.as_bytes().to_vec()];

    // Watch the process table while the clone, push and API calls run.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, needles) = (stop.clone(), needles.clone());
        std::thread::spawn(move || {
            let (mut leaks, mut git_children, mut rounds) = (Vec::new(), Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) || rounds == 0 {
                let (l, g) = scan_processes(&needles);
                leaks.extend(l);
                git_children.extend(g);
                rounds += 1;
            }
            (leaks, git_children, rounds)
        })
    };
    let (dir, ws) = prepared(f, "userz/fix-3").await;
    agent_commit(&ws, "a.txt", "change\n", "Agent change");
    let provider = f.provider();
    provider.push(&f.target(Some("main")), &ws).await.unwrap_or_else(|e| panic!("push: {e}"));
    if caps.opens_pull_requests {
        provider.open_or_update_pr(&pr_request(f, &ws, "Fix")).await.unwrap_or_else(|e| panic!("pr: {e}"));
    }
    stop.store(true, Ordering::Relaxed);
    let (leaks, git_children, rounds) = watcher.join().unwrap_or_else(|_| panic!("watcher panicked"));
    assert!(rounds >= 1);
    assert!(leaks.is_empty(), "token in process args/env: {leaks:?}");
    assert!(git_children.is_empty(), "a git program was started: {git_children:?}");
    assert!(f.branch_head(&ws.branch).is_some(), "the push happened");

    // After: the workspace (work tree and .git), the git server's directory
    // and the host's temp dir hold no copy of the token.
    let (mut found, mut scanned) = (Vec::new(), 0);
    let epoch = std::time::SystemTime::UNIX_EPOCH;
    files_containing(dir.path(), epoch, &needles, &mut found, &mut scanned);
    files_containing(&f.server_root(), epoch, &needles, &mut found, &mut scanned);
    // The host temp dir: everything written while the test ran.
    files_containing(&std::env::temp_dir(), since, &needles, &mut found, &mut scanned);
    assert!(scanned > 10, "the scan read files ({scanned})");
    assert!(found.is_empty(), "token found in files: {found:?}");
    // Controls: the scanners do find what is there.
    let control = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(control.path().join("probe"), b"xx-needle-control-xx").unwrap_or_else(|e| panic!("{e}"));
    let mut hits = Vec::new();
    files_containing(control.path(), since, &[b"needle-control".to_vec()], &mut hits, &mut scanned);
    assert_eq!(hits.len(), 1, "file scanner control");
    assert!(!scan_processes(&[b"PATH=".to_vec()]).0.is_empty(), "process scanner control");
    let config = std::fs::read_to_string(dir.path().join(".git/config")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.contains("remote") && !config.contains("http"), "workspace config: {config}");
    assert!(!f.server_error_log().contains(&token));

    // The logs of this binary: the provider logged its work, never the token.
    let text = String::from_utf8_lossy(&logs.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    for line in f.expected_log_lines() {
        assert!(text.contains(line), "logs lack {line:?}: {text}");
    }
    assert!(!text.contains(&token) && !text.contains(&basic), "token in logs");
    // Debug output of the provider and credentials is redacted too.
    let creds = userz_git::HttpCredentials::new(f.git_user(), secrecy::SecretString::from(token.clone()));
    assert!(!format!("{:?} {creds:?}", provider).contains(&token));
}

#[track_caller]
fn assert_unsupported(r: Result<userz_core::ports::PrRef, Error>) {
    assert!(matches!(r, Err(Error::Unsupported(_))), "a branch-only provider refuses PRs as Unsupported: {r:?}");
}

/// A retry after the PR was created (the step died before its event was
/// stored) finds the same PR, from a fresh process too; two racing attempts
/// create exactly one; the PR is a draft from the run's branch to `main`.
pub async fn retry_after_pr_created_finds_the_same_pr(f: &dyn VcsForge, caps: &ForgeCapabilities) {
    let provider = f.provider();
    assert_eq!(provider.capabilities().pull_requests, caps.opens_pull_requests, "capabilities() tells the truth");
    let (_dir, ws) = prepared(f, "userz/fix-4").await;
    agent_commit(&ws, "b.txt", "change\n", "Agent change");
    provider.push(&f.target(Some("main")), &ws).await.unwrap_or_else(|e| panic!("push: {e}"));
    let request = pr_request(f, &ws, "Fix the save button");
    if !caps.opens_pull_requests {
        assert_unsupported(provider.open_or_update_pr(&request).await);
        return;
    }

    let first = provider.open_or_update_pr(&request).await.unwrap_or_else(|e| panic!("open: {e}"));
    assert!(first.created);
    // The step dies here, before the event is stored; the retry runs again
    // in a fresh process (nothing remembered in memory).
    let retry = f.fresh_provider().open_or_update_pr(&request).await.unwrap_or_else(|e| panic!("retry: {e}"));
    assert!(!retry.created, "found through the open-PR lookup");
    assert_eq!((retry.number, &retry.url), (first.number, &first.url));
    let prs = f.change_requests();
    assert_eq!(prs.len(), 1, "no second PR: {prs:?}");
    assert_eq!(prs[0].number, first.number, "{prs:?}");
    assert!(prs[0].draft && prs[0].head == ws.branch && prs[0].base == "main", "{prs:?}");

    // Two attempts racing: the loser's create is refused by the forge and
    // falls back to the lookup. Still one PR for the branch.
    let (_dir2, ws2) = prepared(f, "userz/fix-5").await;
    agent_commit(&ws2, "c.txt", "change\n", "Agent change");
    provider.push(&f.target(Some("main")), &ws2).await.unwrap_or_else(|e| panic!("push: {e}"));
    let other = f.fresh_provider();
    let req2 = pr_request(f, &ws2, "Second fix");
    let (a, b) = tokio::join!(other.open_or_update_pr(&req2), provider.open_or_update_pr(&req2));
    let (a, b) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(a.number, b.number);
    assert_eq!(u8::from(a.created) + u8::from(b.created), 1, "exactly one attempt created it");
    assert_eq!(f.change_requests().len(), 2);
}

/// A revision run continues the remote branch, commits on it, and its PR
/// call finds the PR the first run opened.
pub async fn revision_run_commits_on_the_same_branch_and_updates_the_same_pr(
    f: &dyn VcsForge,
    caps: &ForgeCapabilities,
) {
    let provider = f.provider();
    let (_dir, ws) = prepared(f, "userz/fix-6").await;
    let first_head = agent_commit(&ws, "d.txt", "first\n", "First attempt");
    provider.push(&f.target(Some("main")), &ws).await.unwrap_or_else(|e| panic!("push: {e}"));
    let opened = if caps.opens_pull_requests {
        let opened =
            provider.open_or_update_pr(&pr_request(f, &ws, "Fix v1")).await.unwrap_or_else(|e| panic!("open: {e}"));
        assert!(opened.created);
        Some(opened)
    } else {
        assert_unsupported(provider.open_or_update_pr(&pr_request(f, &ws, "Fix v1")).await);
        None
    };

    // The revision run continues the remote branch.
    f.before_prepare();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ws2 = provider
        .prepare_workspace(&f.target(Some("main")), RunId::new(), &ws.branch, true, dir.path())
        .await
        .unwrap_or_else(|e| panic!("prepare revision: {e}"));
    assert_eq!(ws2.base_commit, first_head);
    assert_eq!(f.branch_head(&ws.branch).as_deref(), Some(ws2.base_commit.as_str()));
    let head = agent_commit(&ws2, "d.txt", "second\n", "Address review");
    provider.push(&f.target(Some("main")), &ws2).await.unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(f.branch_log(&ws.branch)[..2], ["Address review", "First attempt"]);
    assert_eq!(f.branch_head(&ws.branch).as_deref(), Some(head.as_str()));

    let Some(opened) = opened else { return };
    let updated =
        provider.open_or_update_pr(&pr_request(f, &ws2, "Fix v2")).await.unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!((updated.number, updated.created, &updated.url), (opened.number, false, &opened.url));
    let prs = f.change_requests();
    assert_eq!(prs.len(), 1, "{prs:?}");
    if caps.rewrites_pr_text {
        assert_eq!(prs[0].title, "Fix v2");
        assert!(prs[0].body.contains(&ws2.run.to_string()), "{prs:?}");
    } else {
        assert!(prs[0].title.ends_with("Fix v1"), "{prs:?}");
        assert!(prs[0].body.contains(&ws.run.to_string()), "{prs:?}");
    }
}

/// A token revoked mid-run makes the next API call a clear, retryable
/// `Error::Effect` of port `vcs` that does not contain the token.
pub async fn revoked_token_mid_run_is_a_clear_retryable_error(f: &dyn VcsForge, caps: &ForgeCapabilities) {
    if !caps.opens_pull_requests || !caps.authenticates_git {
        waived("revoked_token_mid_run_is_a_clear_retryable_error", "no forge API or no token");
        return;
    }
    let token = f.token().unwrap_or_default();
    let provider = f.provider();
    let (_dir, ws) = prepared(f, "userz/fix-7").await;
    agent_commit(&ws, "e.txt", "change\n", "Agent change");
    provider.push(&f.target(Some("main")), &ws).await.unwrap_or_else(|e| panic!("push: {e}"));

    f.revoke_tokens();
    let err = match provider.open_or_update_pr(&pr_request(f, &ws, "Fix")).await {
        Ok(pr) => panic!("a revoked token opened {pr:?}"),
        Err(e) => e,
    };
    let Error::Effect { port, message, retryable } = &err else { panic!("unexpected {err:?}") };
    assert_eq!(*port, "vcs");
    assert!(message.contains("401"), "names the provider's status: {message}");
    assert!(*retryable);
    assert!(!message.contains(&token));
    assert!(f.change_requests().is_empty(), "nothing opened with a revoked token");
}

/// Provider errors name the status and the forge's message; 5xx and 429
/// are retryable.
pub async fn provider_errors_name_status_and_message_and_classify_retries(f: &dyn VcsForge, caps: &ForgeCapabilities) {
    if !caps.opens_pull_requests {
        waived("provider_errors_name_status_and_message_and_classify_retries", "opens_pull_requests: false");
        return;
    }
    let provider = f.provider();
    let (_dir, ws) = prepared(f, "userz/fix-8").await;
    let req = pr_request(f, &ws, "Fix");

    f.fail_next(502, "Bad Gateway from upstream");
    let err = provider.open_or_update_pr(&req).await.err().unwrap_or_else(|| panic!("502 ignored"));
    assert!(err.is_retryable(), "5xx is retryable: {err}");
    assert!(err.to_string().contains("502") && err.to_string().contains("Bad Gateway from upstream"), "{err}");

    f.fail_next(429, "Retry later");
    let err = provider.open_or_update_pr(&req).await.err().unwrap_or_else(|| panic!("429 ignored"));
    assert!(err.is_retryable() && err.to_string().contains("Retry later"), "{err}");
}
