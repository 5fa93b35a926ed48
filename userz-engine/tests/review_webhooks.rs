//! Inbound GitHub and GitLab webhooks become PR commands: verified, mapped,
//! deduplicated by delivery id, routed by `(repo, number)`; unknown PRs are
//! `not_found`, malformed payloads `invalid` naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use http::HeaderMap;
use serde_json::Value;
use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::pr::{CommentSeverity, PrDecider, PrState, PullRequest};
use userz_core::domain::repo::Provider;
use userz_core::ids::{PrId, RepoId};
use userz_core::Timestamp;
use userz_engine::projections::{pr_by_number, pr_runs, pr_summary};
use userz_engine::review::{ReviewWebhookError, ReviewWebhookOutcome, ReviewWebhooks};
use userz_engine::{CommandBus, Engine};
use userz_fakes::vcs_webhooks as wh;
use userz_security::secret::SecretBytes;
use userz_security::webhooks::{GitHubVerifier, GitLabVerifier, ReplayGuard, WebhookVerifier};
use userz_store_memory::MemoryStores;
use userz_testkit::scenarios::{seed_with_provider, submit, wait_status, Rig, Seeded, StoreSet};
use userz_testkit::{eventually, ManualClock};
use userz_vcs_github::GitHubReviewPayloads;
use userz_vcs_gitlab::GitLabReviewPayloads;

const SECRET: &[u8] = b"whsec-review-loop";
const GL_TOKEN: &str = "gl-hook-token-1";

struct Env {
    engine: Engine,
    stores: StoreSet,
    hooks: ReviewWebhooks,
    seeded: Seeded,
    pr: PrId,
    number: u64,
    branch: String,
    _rig: Rig,
}

async fn env(provider: Provider) -> Env {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    let stores = StoreSet { events: m.events, read_models: m.read_models, queue: m.queue, clock };
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let seeded = seed_with_provider(engine.bus(), ProcessingMode::AutoPr, Dedup::Off, provider).await;
    let fb = submit(&engine, &seeded, "The save button does nothing").await;
    let summary = wait_status(stores.read_models.as_ref(), seeded.org, fb, FeedbackStatus::PrOpened).await;
    let number = rig.host.prs()[0].number;
    let branch = rig.host.prs()[0].branch.clone();
    let store = stores.read_models.clone();
    let repo = seeded.repo;
    let pr = eventually("the PR projection to index the PR", userz_testkit::scenarios::WAIT, || {
        let store = store.clone();
        async move { pr_by_number(store.as_ref(), repo, number).await.ok().flatten() }
    })
    .await;
    assert!(summary.pr_url.is_some());
    let guard = ReplayGuard::new(m.cache).with_scope(format!("repo:{}", seeded.repo));
    let hooks = ReviewWebhooks::new(engine.bus().clone(), stores.read_models.clone(), guard)
        .with_payloads(Arc::new(GitHubReviewPayloads))
        .with_payloads(Arc::new(GitLabReviewPayloads));
    Env { engine, stores, hooks, seeded, pr, number, branch, _rig: rig }
}

fn github() -> Provider {
    Provider::Github { installation_id: 7_700_001, full_name: "acme/widgets".into() }
}

fn now() -> Timestamp {
    Timestamp::from_millis(1_790_000_000_000)
}

async fn deliver_github(
    e: &Env,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> Result<ReviewWebhookOutcome, ReviewWebhookError> {
    let body = serde_json::to_vec(payload).unwrap();
    let headers = wh::github_headers(event, delivery, SECRET, &body);
    let verifier = GitHubVerifier::new(SecretBytes::copy_from(SECRET));
    e.hooks.handle(&verifier, e.seeded.repo, &headers, &body, now()).await
}

async fn pr_state(engine: &Engine, pr: PrId) -> PullRequest {
    let (state, _) = engine.bus().load::<PrDecider>(&CommandBus::stream::<PrDecider>(pr)).await.unwrap();
    match state {
        PrState::Exists(p) => *p,
        PrState::None => panic!("no PR"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_review_comments_and_close_reach_the_pr_once() {
    let e = env(github()).await;
    let comment = wh::github_review_comment_created(
        "acme/widgets",
        e.number,
        &e.branch,
        2_506_181_733,
        "src/save.ts",
        14,
        "[must_change] The handler is never awaited.",
    );
    let out = deliver_github(&e, "pull_request_review_comment", "d-1", &comment).await.unwrap();
    assert_eq!(out, ReviewWebhookOutcome::Applied { pr: e.pr, command: "add_comment", duplicate: false });
    let p = pr_state(&e.engine, e.pr).await;
    assert_eq!(p.comments.len(), 1);
    let c = &p.comments[0];
    assert_eq!(
        (c.path.as_str(), c.line, c.severity, c.resolved),
        ("src/save.ts", 14, CommentSeverity::MustChange, false)
    );
    assert_eq!(c.body.expose(), "The handler is never awaited.");

    // The same delivery again: recognised by its delivery id.
    let again = deliver_github(&e, "pull_request_review_comment", "d-1", &comment).await.unwrap();
    assert_eq!(again, ReviewWebhookOutcome::Applied { pr: e.pr, command: "add_comment", duplicate: true });
    // The same comment under a new delivery id: recognised by the comment id.
    let redelivered = deliver_github(&e, "pull_request_review_comment", "d-1-redeliver", &comment).await.unwrap();
    assert_eq!(redelivered, ReviewWebhookOutcome::Applied { pr: e.pr, command: "add_comment", duplicate: true });
    // A second comment without a marker is a suggestion.
    let second = wh::github_review_comment_created(
        "acme/widgets",
        e.number,
        &e.branch,
        2_506_181_734,
        "src/app.ts",
        3,
        "Rename?",
    );
    deliver_github(&e, "pull_request_review_comment", "d-2", &second).await.unwrap();
    let p = pr_state(&e.engine, e.pr).await;
    assert_eq!(p.comments.len(), 2, "no duplicate comments");
    assert_eq!(p.comments[1].severity, CommentSeverity::Suggestion);

    // An unrelated action is acknowledged and ignored.
    let mut opened = wh::github_pull_request_closed("acme/widgets", e.number, &e.branch, false);
    opened["action"] = "reopened".into();
    assert_eq!(deliver_github(&e, "pull_request", "d-3", &opened).await.unwrap(), ReviewWebhookOutcome::Ignored);

    // Merged.
    let merged = wh::github_pull_request_closed("acme/widgets", e.number, &e.branch, true);
    let out = deliver_github(&e, "pull_request", "d-4", &merged).await.unwrap();
    assert_eq!(out, ReviewWebhookOutcome::Applied { pr: e.pr, command: "close", duplicate: false });
    assert_eq!(pr_state(&e.engine, e.pr).await.closed, Some(true));
    // A second close under another delivery id stores nothing new.
    let again = deliver_github(&e, "pull_request", "d-4b", &merged).await.unwrap();
    assert_eq!(again, ReviewWebhookOutcome::Applied { pr: e.pr, command: "close", duplicate: true });
    // A comment on a merged PR is refused by the aggregate.
    let late =
        wh::github_review_comment_created("acme/widgets", e.number, &e.branch, 2_506_181_799, "src/app.ts", 3, "late");
    let err = deliver_github(&e, "pull_request_review_comment", "d-5", &late).await.unwrap_err();
    assert_eq!(err.code(), "invalid_transition", "{err}");

    // The read model follows.
    let store = e.stores.read_models.clone();
    let (org, pr) = (e.seeded.org, e.pr);
    let summary = eventually("the PR summary to show the merge", userz_testkit::scenarios::WAIT, || {
        let store = store.clone();
        async move { pr_summary(store.as_ref(), org, pr).await.ok().flatten().filter(|s| s.closed.is_some()) }
    })
    .await;
    assert_eq!((summary.comments, summary.unresolved, summary.closed), (2, 2, Some(true)));
    let runs = pr_runs(e.stores.read_models.as_ref(), org, pr).await.unwrap().unwrap();
    assert_eq!(runs.len(), 1);
    e.engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_refusals_are_clear() {
    let e = env(github()).await;
    let comment =
        wh::github_review_comment_created("acme/widgets", e.number, &e.branch, 11, "src/save.ts", 14, "Fix this");
    let body = serde_json::to_vec(&comment).unwrap();
    let verifier = GitHubVerifier::new(SecretBytes::copy_from(SECRET));

    // Wrong secret.
    let headers = wh::github_headers("pull_request_review_comment", "r-1", b"another secret", &body);
    let err = e.hooks.handle(&verifier, e.seeded.repo, &headers, &body, now()).await.unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    // A forged delivery does not burn the delivery id: the real one still goes through.
    let headers = wh::github_headers("pull_request_review_comment", "r-1", SECRET, &body);
    assert!(e.hooks.handle(&verifier, e.seeded.repo, &headers, &body, now()).await.is_ok());

    // No event header.
    let mut headers = wh::github_headers("pull_request_review_comment", "r-2", SECRET, &body);
    headers.remove("x-github-event");
    let err = e.hooks.handle(&verifier, e.seeded.repo, &headers, &body, now()).await.unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(err.to_string().contains("X-GitHub-Event"), "{err}");

    // Unknown PR number.
    let unknown =
        wh::github_review_comment_created("acme/widgets", e.number + 40, &e.branch, 12, "src/save.ts", 1, "Hm");
    let err = deliver_github(&e, "pull_request_review_comment", "r-3", &unknown).await.unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert!(err.to_string().contains(&format!("acme/widgets#{}", e.number + 40)), "{err}");

    // A payload about another repository than the endpoint's.
    let other = wh::github_review_comment_created("acme/other", e.number, &e.branch, 13, "src/save.ts", 1, "Hm");
    let err = deliver_github(&e, "pull_request_review_comment", "r-4", &other).await.unwrap_err();
    assert_eq!(err.code(), "not_found");

    // A file-level comment has no line: invalid, naming the field.
    let mut file_level = comment.clone();
    file_level["comment"]["line"] = Value::Null;
    file_level["comment"]["subject_type"] = "file".into();
    let err = deliver_github(&e, "pull_request_review_comment", "r-5", &file_level).await.unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(err.to_string().contains("comment.line"), "{err}");

    // Unknown repository.
    let headers = wh::github_headers("pull_request_review_comment", "r-6", SECRET, &body);
    let err = e.hooks.handle(&verifier, RepoId::new(), &headers, &body, now()).await.unwrap_err();
    assert_eq!(err.code(), "not_found");
    e.engine.shutdown();
}

async fn deliver_gitlab(
    e: &Env,
    event: &str,
    uuid: &str,
    payload: &Value,
) -> Result<ReviewWebhookOutcome, ReviewWebhookError> {
    let body = serde_json::to_vec(payload).unwrap();
    let headers: HeaderMap = wh::gitlab_headers(event, uuid, GL_TOKEN);
    let verifier = GitLabVerifier::new(Some(SecretBytes::copy_from(GL_TOKEN.as_bytes())), None).unwrap();
    assert_eq!(verifier.provider(), "gitlab");
    e.hooks.handle(&verifier, e.seeded.repo, &headers, &body, now()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_diff_notes_and_merge_reach_the_mr() {
    let provider = Provider::Gitlab { base_url: "http://127.0.0.1:1/gitlab".into(), project: "acme/widgets".into() };
    let e = env(provider).await;
    let note = wh::gitlab_diff_note(15, "acme/widgets", e.number, &e.branch, 1244, "app/cart.rb", 9, "[nit] typo here");
    let out = deliver_gitlab(&e, "Note Hook", "u-1", &note).await.unwrap();
    assert_eq!(out, ReviewWebhookOutcome::Applied { pr: e.pr, command: "add_comment", duplicate: false });
    let again = deliver_gitlab(&e, "Note Hook", "u-1", &note).await.unwrap();
    assert_eq!(again, ReviewWebhookOutcome::Applied { pr: e.pr, command: "add_comment", duplicate: true });
    let p = pr_state(&e.engine, e.pr).await;
    assert_eq!(p.comments.len(), 1);
    assert_eq!((p.comments[0].path.as_str(), p.comments[0].line), ("app/cart.rb", 9));
    assert_eq!(p.comments[0].severity, CommentSeverity::Nit);

    // A general (non-diff) note is ignored.
    let mut general = note.clone();
    general["object_attributes"]["position"] = Value::Null;
    general["object_attributes"]["type"] = Value::Null;
    assert_eq!(deliver_gitlab(&e, "Note Hook", "u-2", &general).await.unwrap(), ReviewWebhookOutcome::Ignored);

    // A wrong token is refused.
    let body = serde_json::to_vec(&note).unwrap();
    let headers = wh::gitlab_headers("Note Hook", "u-3", "wrong");
    let verifier = GitLabVerifier::new(Some(SecretBytes::copy_from(GL_TOKEN.as_bytes())), None).unwrap();
    let err = e.hooks.handle(&verifier, e.seeded.repo, &headers, &body, now()).await.unwrap_err();
    assert_eq!(err.code(), "bad_signature");

    // Malformed: the MR iid is missing.
    let mut broken = note.clone();
    broken["merge_request"].as_object_mut().unwrap().remove("iid");
    let err = deliver_gitlab(&e, "Note Hook", "u-4", &broken).await.unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert!(err.to_string().contains("merge_request.iid"), "{err}");

    // Closed without merge.
    let closed = wh::gitlab_merge_request(15, "acme/widgets", e.number, &e.branch, "close");
    let out = deliver_gitlab(&e, "Merge Request Hook", "u-5", &closed).await.unwrap();
    assert_eq!(out, ReviewWebhookOutcome::Applied { pr: e.pr, command: "close", duplicate: false });
    assert_eq!(pr_state(&e.engine, e.pr).await.closed, Some(false));
    e.engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_a_payload_mapping_is_refused_as_carrying_no_pr_events() {
    let provider = Provider::Gitlab { base_url: "http://127.0.0.1:1/gitlab".into(), project: "acme/widgets".into() };
    let mut e = env(provider).await;
    // Only GitHub's mapping is given: GitLab deliveries are refused as before
    // for a provider with no PR events, and change nothing.
    let guard = ReplayGuard::new(MemoryStores::new(Arc::new(ManualClock::at_2026())).cache);
    e.hooks = ReviewWebhooks::new(e.engine.bus().clone(), e.stores.read_models.clone(), guard)
        .with_payloads(Arc::new(GitHubReviewPayloads));
    assert!(e.hooks.payloads("gitlab").is_none());
    let note = wh::gitlab_diff_note(15, "acme/widgets", e.number, &e.branch, 1244, "app/cart.rb", 9, "[nit] typo here");
    let err = deliver_gitlab(&e, "Note Hook", "n-1", &note).await.unwrap_err();
    assert_eq!(err.code(), "invalid");
    assert_eq!(err.to_string(), "gitlab webhooks carry no PR events");
    let closed = wh::gitlab_merge_request(15, "acme/widgets", e.number, &e.branch, "merge");
    let err = deliver_gitlab(&e, "Merge Request Hook", "n-2", &closed).await.unwrap_err();
    assert_eq!(err.code(), "invalid");
    let p = pr_state(&e.engine, e.pr).await;
    assert_eq!((p.comments.len(), p.closed), (0, None));
    // Authentication still comes first: a wrong token is refused as such.
    let body = serde_json::to_vec(&note).unwrap();
    let verifier = GitLabVerifier::new(Some(SecretBytes::copy_from(GL_TOKEN.as_bytes())), None).unwrap();
    let headers = wh::gitlab_headers("Note Hook", "n-3", "wrong");
    let err = e.hooks.handle(&verifier, e.seeded.repo, &headers, &body, now()).await.unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    e.engine.shutdown();
}
