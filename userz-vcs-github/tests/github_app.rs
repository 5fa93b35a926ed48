//! What the GitHub App provider does beyond the shared VCS conformance suite
//! (`tests/conformance.rs`): installation tokens (narrowing, JWT, expiry,
//! re-minting), GitHub's own requests and error texts, configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{agent_commit, env, run, target, APP_ID, LOCATION, OWNER};
use secrecy::SecretString;
use serde_json::json;
use userz_core::ids::FeedbackId;
use userz_core::ports::{PrRequest, VcsProvider, Workspace};
use userz_core::Error;
use userz_vcs_github::GitHubAppProvider;

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
async fn retry_after_pr_created_finds_the_same_pr_through_one_open_pulls_lookup_each() {
    // The shared part (same PR from a fresh process, one PR under a race)
    // is `tests/conformance.rs`; this pins GitHub's requests.
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-4").await;
    agent_commit(&ws, "b.txt", "change\n", "Agent change");
    e.provider.push(&target(Some("main")), &ws).await.unwrap();
    let request = pr_request(&ws, "Fix the save button");

    let first = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(first.created);
    let retry = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(!retry.created, "found through the open-PR lookup");
    assert_eq!(retry.number, first.number);
    let lookups = e.fake.exchanges().into_iter().filter(|x| x.method == "GET" && x.path.ends_with("/pulls")).count();
    assert_eq!(lookups, 2);
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
async fn pr_for_a_never_pushed_head_is_githubs_422_and_not_retryable() {
    // 5xx and 429 classification is `tests/conformance.rs`.
    let e = env().await;
    let (_dir, ws) = prepared(&e, "userz/fix-8").await;
    e.fake.fail_next(502, "Server Error");
    let err = e.provider.open_or_update_pr(&pr_request(&ws, "Fix")).await.unwrap_err();
    assert!(err.to_string().contains("502") && err.to_string().contains("Server Error"), "{err}");
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
