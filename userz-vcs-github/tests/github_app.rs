//! The GitHub App provider against the GitHub fake and a real git smart-HTTP
//! server (lighttpd + `git http-backend`) that requires the token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use common::{agent_commit, env, run, target, APP_ID, LOCATION, OWNER};
use secrecy::SecretString;
use serde_json::json;
use userz_core::ids::FeedbackId;
use userz_core::ports::{PrRequest, VcsProvider, Workspace};
use userz_core::Error;
use userz_git::UntrustedWorkspace;
use userz_vcs_github::GitHubAppProvider;

/// Every log line of this test binary (all levels, all threads).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn pr_request(ws: &Workspace, title: &str) -> PrRequest {
    PrRequest {
        target: target(Some("main")),
        branch: ws.branch.clone(),
        title: title.into(),
        body: format!("> Machine-written, unreviewed.\n\nRun {}", ws.run),
        run: ws.run,
        feedback: FeedbackId::new(),
    }
}

async fn prepared(e: &common::Env, branch: &str) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    e.fake.queue_token(&e.token);
    let ws = e.provider.prepare_workspace(&target(Some("main")), run(), branch, false, dir.path()).await.unwrap();
    (dir, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_is_narrowed_to_one_repository_and_three_permissions() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-1").await;

    let requests = e.fake.token_requests();
    assert_eq!(requests.len(), 1, "one token per run and repository");
    let r = &requests[0];
    assert_eq!(r.installation_id, common::INSTALLATION);
    assert_eq!(r.body["repositories"], json!(["widgets"]), "narrowed to the single repository");
    assert_eq!(
        r.body["permissions"],
        json!({"contents": "write", "pull_requests": "write", "metadata": "read"}),
        "exactly the three permissions"
    );
    assert_eq!(r.body.as_object().unwrap().len(), 2, "nothing else requested: {}", r.body);
    // The app JWT the fake verified (RS256 with the App's public key).
    let (iat, exp) = (r.jwt_claims["iat"].as_i64().unwrap(), r.jwt_claims["exp"].as_i64().unwrap());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(r.jwt_claims["iss"], json!(APP_ID));
    assert!((now - 70..=now - 55).contains(&iat), "iat 60 s in the past: {iat} vs {now}");
    assert!(exp - now <= 600, "exp at most 10 minutes ahead");
    // The expiry GitHub gave (one hour) is recorded.
    let expiry = e.provider.token_expiry(ws.run, LOCATION).unwrap().unix_timestamp();
    assert!((now + 3590..=now + 3610).contains(&expiry), "recorded expiry {expiry}");

    // The same run reuses its token for the push; another run mints its own.
    agent_commit(&ws, "fix.txt", "fixed\n", "Fix the save button");
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    assert_eq!(e.fake.token_requests().len(), 1);
    e.provider.forget_run(ws.run);
    assert!(e.provider.token_expiry(ws.run, LOCATION).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_without_token_is_refused_and_with_it_the_branch_arrives() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-2").await;
    let head = agent_commit(&ws, "src.txt", "the agent's change\n", "Agent: make save work");

    // Without credentials the git server refuses the push.
    let ws2 = ws.clone();
    let url = e.git.url_for(LOCATION);
    let anonymous =
        tokio::task::spawn_blocking(move || UntrustedWorkspace::open(&ws2).unwrap().push_checked_head(&url))
            .await
            .unwrap();
    let err = anonymous.expect_err("push without the token must be refused");
    assert!(userz_git::is_auth_error(&err), "refused for authentication: {err}");
    assert_eq!(e.git.branch_head(LOCATION, &ws.branch).unwrap(), None);

    // A wrong token is refused too.
    let ws3 = ws.clone();
    let url = e.git.url_for(LOCATION);
    let wrong = tokio::task::spawn_blocking(move || {
        let creds = userz_git::HttpCredentials::new("x-access-token", SecretString::from("ghs_wrong".to_string()));
        UntrustedWorkspace::open(&ws3).unwrap().push_checked_head_with(&url, Some(&creds))
    })
    .await
    .unwrap();
    assert!(wrong.is_err(), "a wrong token is refused");
    assert_eq!(e.git.branch_head(LOCATION, &ws.branch).unwrap(), None);

    // With the run's token the branch arrives with the agent's commit.
    let pushed = e.provider.push(&target(Some("main")), &ws).await.unwrap();
    assert_eq!(pushed.head_commit, head);
    assert_eq!(e.git.branch_head(LOCATION, &ws.branch).unwrap().as_deref(), Some(head.as_str()));
    assert_eq!(e.git.branch_log(LOCATION, &ws.branch).unwrap()[0], "Agent: make save work");
    // Pushing the same head again succeeds (port contract).
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
}

/// Every file under `root` (no symlinks followed) written since `since`
/// whose bytes contain one of `needles`.
fn files_containing(
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
fn scan_processes(needles: &[Vec<u8>]) -> (Vec<String>, Vec<String>) {
    let me = std::process::id().to_string();
    let (mut leaks, mut git_children) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_never_appears_in_files_processes_or_logs() {
    let logs = logs();
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let e = env().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", e.token));
    let needles = vec![e.token.as_bytes().to_vec(), basic.as_bytes().to_vec()];

    let (dir, ws) = prepared(&e, "userz/fix-3").await;
    agent_commit(&ws, "a.txt", "change\n", "Agent change");

    // Watch the process table while the push runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, needles) = (stop.clone(), needles.clone());
        std::thread::spawn(move || {
            let (mut leaks, mut git_children, mut rounds) = (Vec::new(), Vec::new(), 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                let (l, g) = scan_processes(&needles);
                leaks.extend(l);
                git_children.extend(g);
                rounds += 1;
            }
            (leaks, git_children, rounds)
        })
    };
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    e.provider.open_or_update_pr(&pr_request(&ws, "Fix")).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (leaks, git_children, rounds) = watcher.join().unwrap();
    assert!(rounds >= 1);
    assert!(leaks.is_empty(), "token in process args/env: {leaks:?}");
    assert!(git_children.is_empty(), "a git program was started: {git_children:?}");
    assert!(e.git.branch_head(LOCATION, &ws.branch).unwrap().is_some(), "the push happened");

    // After: the workspace (work tree and .git), the git server's directory
    // and the host's temp dir hold no copy of the token.
    let (mut found, mut scanned) = (Vec::new(), 0);
    let epoch = std::time::SystemTime::UNIX_EPOCH;
    files_containing(dir.path(), epoch, &needles, &mut found, &mut scanned);
    files_containing(e.git.root(), epoch, &needles, &mut found, &mut scanned);
    // The host temp dir: everything written while the test ran.
    files_containing(&std::env::temp_dir(), since, &needles, &mut found, &mut scanned);
    assert!(scanned > 10, "the scan read files ({scanned})");
    assert!(found.is_empty(), "token found in files: {found:?}");
    // Controls: the scanners do find what is there.
    let control = tempfile::tempdir().unwrap();
    std::fs::write(control.path().join("probe"), b"xx-needle-control-xx").unwrap();
    let mut hits = Vec::new();
    files_containing(control.path(), since, &[b"needle-control".to_vec()], &mut hits, &mut scanned);
    assert_eq!(hits.len(), 1, "file scanner control");
    assert!(!scan_processes(&[b"PATH=".to_vec()]).0.is_empty(), "process scanner control");
    let config = std::fs::read_to_string(dir.path().join(".git/config")).unwrap();
    assert!(!config.contains("remote") && !config.contains("http"), "workspace config: {config}");
    assert!(!e.git.error_log().contains(&e.token));

    // The logs of this binary: the provider logged its work, never the token.
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains("minted installation token") && text.contains("pushed branch"), "logs: {text}");
    assert!(!text.contains(&e.token) && !text.contains(&basic), "token in logs");
    // Debug output of the provider and credentials is redacted too.
    let creds = userz_git::HttpCredentials::new("x-access-token", SecretString::from(e.token.clone()));
    assert!(!format!("{:?} {creds:?}", e.provider).contains(&e.token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pr_created_finds_the_same_pr() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-4").await;
    agent_commit(&ws, "b.txt", "change\n", "Agent change");
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    let request = pr_request(&ws, "Fix the save button");

    let first = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(first.created);
    // The step dies here, before the event is stored; the retry runs again.
    let retry = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(!retry.created, "found through the open-PR lookup");
    assert_eq!(retry.number, first.number);
    assert_eq!(retry.url, first.url);
    let pulls = e.fake.pulls(LOCATION);
    assert_eq!(pulls.len(), 1, "no second PR: {pulls:?}");
    assert!(pulls[0].draft && pulls[0].head == ws.branch && pulls[0].base == "main");
    let lookups = e.fake.exchanges().into_iter().filter(|x| x.method == "GET" && x.path.ends_with("/pulls")).count();
    assert_eq!(lookups, 2);

    // Two attempts racing: the loser's create gets GitHub's 422 and falls back
    // to the lookup. Still one PR.
    let (_dir2, ws2) = prepared(&e, "userz/fix-5").await;
    agent_commit(&ws2, "c.txt", "change\n", "Agent change");
    e.provider.push(&target(Some("main")), &ws2).await.unwrap();
    let fresh = e.provider.clone();
    let req2 = pr_request(&ws2, "Second fix");
    let (a, b) = tokio::join!(fresh.open_or_update_pr(&req2), e.provider.open_or_update_pr(&req2));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.number, b.number);
    assert_eq!(u8::from(a.created) + u8::from(b.created), 1, "exactly one attempt created it");
    assert_eq!(e.fake.pulls(LOCATION).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_run_commits_on_the_same_branch_and_updates_the_same_pr() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-6").await;
    agent_commit(&ws, "d.txt", "first\n", "First attempt");
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    let opened = e.provider.open_or_update_pr(&pr_request(&ws, "Fix v1")).await.unwrap();
    assert!(opened.created);

    // The revision run continues the remote branch. Its token is minted
    // fresh; the test git server accepts one token, so queue it again.
    e.fake.queue_token(&e.token);
    let dir = tempfile::tempdir().unwrap();
    let ws2 = e.provider.prepare_workspace(&target(Some("main")), run(), &ws.branch, true, dir.path()).await.unwrap();
    assert_eq!(e.git.branch_head(LOCATION, &ws.branch).unwrap().unwrap(), ws2.base_commit);
    let head = agent_commit(&ws2, "d.txt", "second\n", "Address review");
    e.provider.push(&target(Some("main")), &ws2).await.unwrap();
    assert_eq!(e.git.branch_log(LOCATION, &ws.branch).unwrap()[..2], ["Address review", "First attempt"]);
    assert_eq!(e.git.branch_head(LOCATION, &ws.branch).unwrap().unwrap(), head);

    let updated = e.provider.open_or_update_pr(&pr_request(&ws2, "Fix v2")).await.unwrap();
    assert_eq!((updated.number, updated.created), (opened.number, false));
    let pulls = e.fake.pulls(LOCATION);
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].title, "Fix v2");
    assert!(pulls[0].body.contains(&ws2.run.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_mid_run_is_a_clear_error_and_the_retry_mints_a_fresh_token() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-7").await;
    agent_commit(&ws, "e.txt", "change\n", "Agent change");
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    assert_eq!(e.fake.token_requests().len(), 1);

    e.fake.revoke_all_tokens();
    let err = e.provider.open_or_update_pr(&pr_request(&ws, "Fix")).await.unwrap_err();
    let Error::Effect { port, message, retryable } = &err else { panic!("unexpected {err:?}") };
    assert_eq!(*port, "vcs");
    assert!(message.contains("Bad credentials") && message.contains("401"), "names the provider's error: {message}");
    assert!(message.contains("installation token was refused"), "{message}");
    assert!(*retryable);
    assert!(!message.contains(&e.token));
    assert!(e.provider.token_expiry(ws.run, LOCATION).is_none(), "the refused token was dropped");

    let pr = e.provider.open_or_update_pr(&pr_request(&ws, "Fix")).await.unwrap();
    assert!(pr.created);
    let requests = e.fake.token_requests();
    assert_eq!(requests.len(), 2, "the retry minted a fresh token");
    assert_ne!(requests[0].issued, requests[1].issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_server_refusing_the_token_is_a_clear_error_and_drops_it() {
    let e = env().await;
    // Nothing queued: the fake issues a random token the git server does not
    // accept (like a token revoked between minting and cloning).
    let dir = tempfile::tempdir().unwrap();
    let r = run();
    let err = e.provider.prepare_workspace(&target(None), r, "userz/y", false, dir.path()).await.unwrap_err();
    let Error::Effect { message, retryable, .. } = &err else { panic!("unexpected {err:?}") };
    assert!(message.contains("clone") && message.contains("refused"), "{message}");
    assert!(*retryable);
    assert!(e.provider.token_expiry(r, LOCATION).is_none(), "dropped, the next attempt mints again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_name_status_and_message_and_classify_retries() {
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-8").await;

    e.fake.fail_next(502, "Server Error");
    let err = e.provider.open_or_update_pr(&pr_request(&ws, "Fix")).await.unwrap_err();
    assert!(err.is_retryable(), "5xx is retryable: {err}");
    assert!(err.to_string().contains("502") && err.to_string().contains("Server Error"), "{err}");

    e.fake.fail_next(429, "You have exceeded a secondary rate limit");
    assert!(e.provider.open_or_update_pr(&pr_request(&ws, "Fix")).await.unwrap_err().is_retryable());

    // The head branch was never pushed: GitHub's 422 validation error.
    let err = e.provider.open_or_update_pr(&pr_request(&ws, "Fix")).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("422") && err.to_string().contains("head is invalid"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_signed_with_another_key_is_refused() {
    let e = env().await;
    let (other_private, _) = userz_fakes::github_fake::generate_app_key().unwrap();
    let impostor = GitHubAppProvider::builder(APP_ID, common::INSTALLATION, SecretString::from(other_private))
        .with_api_base(e.fake.base_url())
        .with_git_base(e.git.git_base())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = impostor.prepare_workspace(&target(None), run(), "userz/z", false, dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("401") && err.to_string().contains("JSON web token"), "{err}");
    assert!(!err.is_retryable());
    assert!(e.fake.token_requests().is_empty(), "nothing issued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_close_to_expiry_is_replaced_and_concurrent_steps_share_one() {
    let e = env().await;
    let r = run();
    // Concurrent steps of one run: one mint.
    let (a, b) = tokio::join!(e.provider.installation_token(r, LOCATION), e.provider.installation_token(r, LOCATION));
    use secrecy::ExposeSecret as _;
    assert_eq!(a.unwrap().expose_secret(), b.unwrap().expose_secret());
    assert_eq!(e.fake.token_requests().len(), 1);
    // A token with less than five minutes left is not used again.
    e.fake.set_token_lifetime(200);
    let r2 = run();
    e.provider.installation_token(r2, LOCATION).await.unwrap();
    e.provider.installation_token(r2, LOCATION).await.unwrap();
    assert_eq!(e.fake.token_requests().len(), 3);
    // An unknown repository is GitHub's 422, not retryable.
    let err = e.provider.installation_token(run(), "acme/missing").await.unwrap_err();
    assert_eq!(err.code(), "github_api_error");
    assert!(err.to_string().contains("422") && err.to_string().contains("not accessible"), "{err}");
    assert!(!userz_core::Error::from(err).is_retryable());
}

#[test]
fn config_is_checked_at_build() {
    let (private, _) = common::app_key();
    let key = || SecretString::from(private.clone());
    let bad = GitHubAppProvider::builder(APP_ID, 1, SecretString::from("not a key".to_string())).build();
    assert_eq!(bad.unwrap_err().code(), "github_config");
    let bad = GitHubAppProvider::builder(APP_ID, 1, key()).with_git_base("https://x-access-token:t@h").build();
    assert!(bad.unwrap_err().to_string().contains("user info"));
    let bad = GitHubAppProvider::builder(APP_ID, 1, key()).with_api_base("ftp://h").build();
    assert!(bad.unwrap_err().to_string().contains("api_base"));
    assert!(GitHubAppProvider::builder(APP_ID, 1, key()).build().is_ok());
    // This build's libgit2 speaks HTTPS (git2 `https` feature, system OpenSSL).
    assert!(git2::Version::get().https());
    let _ = OWNER;
}
