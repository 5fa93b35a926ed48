//! Inbound webhooks over real loopback HTTP: each provider accepted once and
//! turned into its event; a replay, a bad signature and a stale timestamp
//! refused with `invalid_signature` and the rule in details.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hooks_support;

use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use http::{HeaderMap, Method, StatusCode};
use serde_json::json;
use userz_core::domain::billing::BillingDecider;
use userz_core::domain::common::{Actor, ProcessingMode};
use userz_core::domain::feedback::{FeedbackEvent, FeedbackStatus};
use userz_core::domain::pr::{PrDecider, PrState, PullRequest};
use userz_core::domain::repo::Provider;
use userz_core::ids::{FeedbackId, OrgId, PrId};
use userz_core::ports::EventStoreExt;
use userz_core::Clock;
use userz_engine::projections::pr_by_number;
use userz_engine::{AnyEvent, CommandBus, Engine};
use userz_fakes::vcs_webhooks as wh;
use userz_http::webhooks::{router, StaticRepoDirectory, WebhookSecrets, WebhookState, WEBHOOK_BODY_LIMIT};
use userz_security::secret::SecretBytes;
use userz_security::webhooks::{slack, StripeVerifier};
use userz_testkit::eventually;
use userz_testkit::scenarios::{submit, wait_status, WAIT};
use userz_vcs_github::GitHubReviewPayloads;
use userz_vcs_gitlab::GitLabReviewPayloads;

use hooks_support::{engine_env, headers, send, Answer, EngineEnv};

const GH_SECRET: &[u8] = b"gh-webhook-secret";
const GL_TOKEN: &str = "gl-webhook-token";
const STRIPE_SECRET: &[u8] = b"whsec_stripe_test_secret";
const SLACK_SECRET: &[u8] = b"slack-signing-secret";
const DISCORD_SEED: [u8; 32] = [7u8; 32];

fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&DISCORD_SEED)
}

fn secrets() -> WebhookSecrets {
    WebhookSecrets {
        stripe: Some(SecretBytes::copy_from(STRIPE_SECRET)),
        github: Some(SecretBytes::copy_from(GH_SECRET)),
        gitlab_token: Some(SecretBytes::copy_from(GL_TOKEN.as_bytes())),
        gitlab_signing: None,
        slack: Some(SecretBytes::copy_from(SLACK_SECRET)),
        discord_public_key: Some(hex::encode(discord_key().verifying_key().to_bytes())),
        chatops_org: None,
    }
}

struct Hooks {
    env: EngineEnv,
    addr: std::net::SocketAddr,
}

async fn hooks(mode: ProcessingMode, provider: Provider, secrets: WebhookSecrets) -> Hooks {
    hooks_with(mode, provider, secrets, |s| {
        s.with_review_payloads(Arc::new(GitHubReviewPayloads)).with_review_payloads(Arc::new(GitLabReviewPayloads))
    })
    .await
}

/// Like [`hooks`], with `configure` choosing the review payload mappings.
async fn hooks_with(
    mode: ProcessingMode,
    provider: Provider,
    secrets: WebhookSecrets,
    configure: impl FnOnce(WebhookState) -> WebhookState,
) -> Hooks {
    let env = engine_env(mode, provider).await;
    let repos = StaticRepoDirectory::new().with_name("github", "acme/widgets", env.seeded.repo).with_name(
        "gitlab",
        "acme/widgets",
        env.seeded.repo,
    );
    let state = WebhookState::new(
        secrets,
        env.engine.bus().clone(),
        env.stores.read_models.clone(),
        env.cache.clone(),
        Arc::new(repos),
        env.clock.clone(),
    )
    .unwrap();
    let addr = hooks_support::serve(router(configure(state))).await;
    Hooks { env, addr }
}

impl Hooks {
    async fn post(&self, path: &str, h: &HeaderMap, body: &[u8]) -> Answer {
        send(self.addr, Method::POST, path, h, body.to_vec()).await
    }

    fn now_secs(&self) -> i64 {
        self.env.clock.now().as_secs()
    }
}

fn assert_refused(a: &Answer, rule: &str) {
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    assert_eq!(a.code(), "invalid_signature", "{a:?}");
    assert_eq!(a.rule(), rule, "{a:?}");
}

async fn pr_state(engine: &Engine, pr: PrId) -> PullRequest {
    let (state, _) = engine.bus().load::<PrDecider>(&CommandBus::stream::<PrDecider>(pr)).await.unwrap();
    match state {
        PrState::Exists(p) => *p,
        PrState::None => panic!("no PR"),
    }
}

/// Submits a report and waits for its PR; returns (pr, number, branch).
async fn opened_pr(h: &Hooks) -> (PrId, u64, String) {
    let fb = submit(&h.env.engine, &h.env.seeded, "The save button does nothing").await;
    wait_status(h.env.stores.read_models.as_ref(), h.env.seeded.org, fb, FeedbackStatus::PrOpened).await;
    let number = h.env.rig.host.prs()[0].number;
    let branch = h.env.rig.host.prs()[0].branch.clone();
    let store = h.env.stores.read_models.clone();
    let repo = h.env.seeded.repo;
    let pr = eventually("the PR projection to index the PR", WAIT, || {
        let store = store.clone();
        async move { pr_by_number(store.as_ref(), repo, number).await.ok().flatten() }
    })
    .await;
    (pr, number, branch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_deliveries_become_pr_commands_once() {
    let provider = Provider::Github { installation_id: 7_700_001, full_name: "acme/widgets".into() };
    let h = hooks(ProcessingMode::AutoPr, provider, secrets()).await;
    let (pr, number, branch) = opened_pr(&h).await;

    let comment = wh::github_review_comment_created(
        "acme/widgets",
        number,
        &branch,
        2_506_181_733,
        "src/save.ts",
        14,
        "[must_change] Await the handler.",
    );
    let body = serde_json::to_vec(&comment).unwrap();
    let hdrs = wh::github_headers("pull_request_review_comment", "gh-d-1", GH_SECRET, &body);
    let a = h.post("/v1/webhooks/github", &hdrs, &body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!((a.body["outcome"].as_str(), a.body["command"].as_str()), (Some("applied"), Some("add_comment")));
    assert_eq!(a.body["pr"], json!(pr.to_string()));
    let p = pr_state(&h.env.engine, pr).await;
    assert_eq!(p.comments.len(), 1);
    assert_eq!((p.comments[0].path.as_str(), p.comments[0].line), ("src/save.ts", 14));

    // The same delivery again is refused as a replay, and stores nothing.
    assert_refused(&h.post("/v1/webhooks/github", &hdrs, &body).await, "replayed");
    assert_eq!(pr_state(&h.env.engine, pr).await.comments.len(), 1);

    // A forged signature is refused before anything is read.
    let forged = wh::github_headers("pull_request_review_comment", "gh-d-2", b"not-the-secret", &body);
    assert_refused(&h.post("/v1/webhooks/github", &forged, &body).await, "bad_signature");
    // A missing signature names the header.
    let mut unsigned = hdrs.clone();
    unsigned.remove("x-hub-signature-256");
    unsigned.insert("x-github-delivery", "gh-d-3".parse().unwrap());
    let a = h.post("/v1/webhooks/github", &unsigned, &body).await;
    assert_refused(&a, "missing_header");
    assert_eq!(a.body["error"]["details"]["header"], "x-hub-signature-256");

    // A ping is acknowledged and ignored; an unknown repository is not_found.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let a = h.post("/v1/webhooks/github", &wh::github_headers("ping", "gh-ping", GH_SECRET, ping), ping).await;
    assert_eq!((a.status, a.body["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
    let other = wh::github_pull_request_closed("someone/else", number, &branch, true);
    let body = serde_json::to_vec(&other).unwrap();
    let a = h.post("/v1/webhooks/github", &wh::github_headers("pull_request", "gh-d-4", GH_SECRET, &body), &body).await;
    assert_eq!((a.status, a.code(), a.rule()), (StatusCode::NOT_FOUND, "not_found", "unknown_repository"));

    // Merged: the PR is closed.
    let merged = wh::github_pull_request_closed("acme/widgets", number, &branch, true);
    let body = serde_json::to_vec(&merged).unwrap();
    let a = h.post("/v1/webhooks/github", &wh::github_headers("pull_request", "gh-d-5", GH_SECRET, &body), &body).await;
    assert_eq!((a.status, a.body["command"].as_str()), (StatusCode::OK, Some("close")), "{a:?}");
    assert_eq!(pr_state(&h.env.engine, pr).await.closed, Some(true));
    h.env.engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_deliveries_become_pr_commands_once() {
    let provider = Provider::Gitlab { base_url: "http://127.0.0.1:1/gitlab".into(), project: "acme/widgets".into() };
    let h = hooks(ProcessingMode::AutoPr, provider, secrets()).await;
    let (pr, number, branch) = opened_pr(&h).await;

    let note = wh::gitlab_diff_note(15, "acme/widgets", number, &branch, 1244, "app/cart.rb", 9, "[nit] typo here");
    let body = serde_json::to_vec(&note).unwrap();
    let hdrs = wh::gitlab_headers("Note Hook", "gl-u-1", GL_TOKEN);
    let a = h.post("/v1/webhooks/gitlab", &hdrs, &body).await;
    assert_eq!((a.status, a.body["command"].as_str()), (StatusCode::OK, Some("add_comment")), "{a:?}");
    assert_eq!(pr_state(&h.env.engine, pr).await.comments.len(), 1);
    assert_refused(&h.post("/v1/webhooks/gitlab", &hdrs, &body).await, "replayed");
    // `Idempotency-Key` takes precedence over the event UUID as the delivery id.
    // (Same event UUID as the first delivery, new Idempotency-Key: a new delivery;
    // the comment itself is recognised and not added twice.)
    let mut keyed = wh::gitlab_headers("Note Hook", "gl-u-1", GL_TOKEN);
    keyed.insert("idempotency-key", "gl-idem-1".parse().unwrap());
    let a = h.post("/v1/webhooks/gitlab", &keyed, &body).await;
    assert_eq!((a.status, a.body["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{a:?}");
    assert_eq!(pr_state(&h.env.engine, pr).await.comments.len(), 1);
    assert_refused(&h.post("/v1/webhooks/gitlab", &keyed, &body).await, "replayed");
    let wrong = wh::gitlab_headers("Note Hook", "gl-u-3", "wrong-token");
    assert_refused(&h.post("/v1/webhooks/gitlab", &wrong, &body).await, "bad_signature");

    let merged = wh::gitlab_merge_request(15, "acme/widgets", number, &branch, "merge");
    let body = serde_json::to_vec(&merged).unwrap();
    let a = h.post("/v1/webhooks/gitlab", &wh::gitlab_headers("Merge Request Hook", "gl-u-4", GL_TOKEN), &body).await;
    assert_eq!((a.status, a.body["command"].as_str()), (StatusCode::OK, Some("close")), "{a:?}");
    assert_eq!(pr_state(&h.env.engine, pr).await.closed, Some(true));
    h.env.engine.shutdown();
}

fn slack_headers(ts: i64, body: &[u8], content_type: &str) -> HeaderMap {
    let ts = ts.to_string();
    let sig = slack::signature(SLACK_SECRET, &ts, body);
    headers(&[("content-type", content_type), ("x-slack-request-timestamp", &ts), ("x-slack-signature", &sig)])
}

fn slack_button(value: &str, user: &str) -> Vec<u8> {
    let payload = json!({
        "type": "block_actions",
        "user": {"id": user, "username": "ana", "team_id": "T1"},
        "team": {"id": "T1", "domain": "acme"},
        "trigger_id": "123.456.abc",
        "actions": [{"type": "button", "action_id": "userz_action", "block_id": "b1", "value": value,
                     "action_ts": "1700000000.000100"}],
    });
    form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish().into_bytes()
}

async fn awaiting_manual(h: &Hooks, text: &str) -> FeedbackId {
    let fb = submit(&h.env.engine, &h.env.seeded, text).await;
    wait_status(h.env.stores.read_models.as_ref(), h.env.seeded.org, fb, FeedbackStatus::AwaitingManual).await;
    fb
}

/// The actor of the report's first event of `kind` (`FeedbackQueued`, `FeedbackArchived`).
async fn actor_of(h: &Hooks, fb: FeedbackId, kind: &str) -> Actor {
    let stream = CommandBus::stream::<userz_core::domain::feedback::FeedbackDecider>(fb);
    let events = h.env.stores.events.read_stream_to_end(&stream, 1).await.unwrap();
    events
        .iter()
        .filter(|r| r.event_type == kind)
        .find_map(|r| match AnyEvent::decode(r).unwrap() {
            Some(AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { by }))
            | Some(AnyEvent::Feedback(FeedbackEvent::FeedbackArchived { by })) => Some(by),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_challenge_and_buttons_queue_and_archive() {
    let h = hooks(ProcessingMode::Manual, Provider::Git { remote: "file:///srv/git/web.git".into() }, secrets()).await;
    let now = h.now_secs();

    // url_verification is answered with the challenge (after verification).
    let challenge = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let a = h.post("/v1/webhooks/slack", &slack_headers(now, challenge, "application/json"), challenge).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}));

    let fb = awaiting_manual(&h, "The export button is missing").await;
    let body = slack_button(&format!("queue:{fb}"), "U024BE7LH");
    let form = "application/x-www-form-urlencoded";
    let hdrs = slack_headers(now, &body, form);
    let a = h.post("/v1/webhooks/slack", &hdrs, &body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["text"], json!(format!("Queued {fb}.")));
    assert_eq!(
        actor_of(&h, fb, "FeedbackQueued").await,
        Actor::ChatOps { integration: "slack".into(), user: Some("U024BE7LH".into()) }
    );
    // The pipeline takes it from there.
    wait_status(h.env.stores.read_models.as_ref(), h.env.seeded.org, fb, FeedbackStatus::PrOpened).await;

    // Replay, forgery and staleness are refused.
    assert_refused(&h.post("/v1/webhooks/slack", &hdrs, &body).await, "replayed");
    let mut forged = slack_headers(now + 1, &body, form);
    forged.insert("x-slack-signature", slack::signature(b"other", &(now + 1).to_string(), &body).parse().unwrap());
    assert_refused(&h.post("/v1/webhooks/slack", &forged, &body).await, "bad_signature");
    let stale = slack_headers(now - 301, &body, form);
    assert_refused(&h.post("/v1/webhooks/slack", &stale, &body).await, "timestamp_out_of_tolerance");

    // Archive by slash command.
    let fb2 = awaiting_manual(&h, "Typo on the pricing page").await;
    let cmd = form_urlencoded::Serializer::new(String::new())
        .append_pair("command", "/userz")
        .append_pair("text", &format!("archive {fb2}"))
        .append_pair("user_id", "U0ARCHIVE")
        .finish()
        .into_bytes();
    let a = h.post("/v1/webhooks/slack", &slack_headers(now + 2, &cmd, form), &cmd).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    wait_status(h.env.stores.read_models.as_ref(), h.env.seeded.org, fb2, FeedbackStatus::Archived).await;
    assert_eq!(
        actor_of(&h, fb2, "FeedbackArchived").await,
        Actor::ChatOps { integration: "slack".into(), user: Some("U0ARCHIVE".into()) }
    );
    // Queuing an archived report is a refused transition, with the rule.
    let again = slack_button(&format!("queue:{fb2}"), "U024BE7LH");
    let a = h.post("/v1/webhooks/slack", &slack_headers(now + 3, &again, form), &again).await;
    assert_eq!((a.status, a.code()), (StatusCode::CONFLICT, "invalid_transition"), "{a:?}");
    assert_eq!(a.rule(), "invalid_transition");
    // With chat-ops restricted to another organization, this org's reports are not found.
    let foreign = WebhookSecrets { chatops_org: Some(OrgId::new()), ..secrets() };
    let state = WebhookState::new(
        foreign,
        h.env.engine.bus().clone(),
        h.env.stores.read_models.clone(),
        h.env.cache.clone(),
        Arc::new(StaticRepoDirectory::new()),
        h.env.clock.clone(),
    )
    .unwrap();
    let elsewhere = hooks_support::serve(router(state)).await;
    let fb3 = awaiting_manual(&h, "Footer links are broken").await;
    let button = slack_button(&format!("queue:{fb3}"), "U1");
    let a = send(elsewhere, Method::POST, "/v1/webhooks/slack", &slack_headers(now + 6, &button, form), button).await;
    assert_eq!((a.status, a.code()), (StatusCode::NOT_FOUND, "not_found"), "{a:?}");
    // An unknown report is not_found; a malformed value names the field.
    let unknown = slack_button(&format!("queue:{}", FeedbackId::new()), "U1");
    let a = h.post("/v1/webhooks/slack", &slack_headers(now + 4, &unknown, form), &unknown).await;
    assert_eq!(a.code(), "not_found");
    let bad = slack_button("launch:rockets", "U1");
    let a = h.post("/v1/webhooks/slack", &slack_headers(now + 5, &bad, form), &bad).await;
    assert_eq!((a.code(), a.body["error"]["details"]["field"].as_str()), ("invalid_body", Some("actions[0].value")));
    h.env.engine.shutdown();
}

fn discord_headers(key: &SigningKey, ts: i64, body: &[u8]) -> HeaderMap {
    let ts = ts.to_string();
    let mut msg = ts.as_bytes().to_vec();
    msg.extend_from_slice(body);
    let sig = hex::encode(key.sign(&msg).to_bytes());
    headers(&[("content-type", "application/json"), ("x-signature-ed25519", &sig), ("x-signature-timestamp", &ts)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_ping_and_buttons() {
    let h = hooks(ProcessingMode::Manual, Provider::Git { remote: "file:///srv/git/web.git".into() }, secrets()).await;
    let now = h.now_secs();
    let key = discord_key();

    let ping = br#"{"id":"1","application_id":"2","type":1,"token":"t","version":1}"#;
    let a = h.post("/v1/webhooks/discord", &discord_headers(&key, now, ping), ping).await;
    assert_eq!((a.status, &a.body), (StatusCode::OK, &json!({"type": 1})));

    let fb = awaiting_manual(&h, "Dark mode is unreadable").await;
    let body = serde_json::to_vec(&json!({
        "id": "3", "application_id": "2", "type": 3, "token": "t", "version": 1,
        "guild_id": "99", "channel_id": "98",
        "member": {"user": {"id": "80351110224678912", "username": "nelly"}, "roles": []},
        "data": {"custom_id": format!("archive:{fb}"), "component_type": 2},
    }))
    .unwrap();
    let hdrs = discord_headers(&key, now, &body);
    let a = h.post("/v1/webhooks/discord", &hdrs, &body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["type"], 4);
    assert_eq!(a.body["data"]["content"], json!(format!("Archived {fb}.")));
    wait_status(h.env.stores.read_models.as_ref(), h.env.seeded.org, fb, FeedbackStatus::Archived).await;
    assert_eq!(
        actor_of(&h, fb, "FeedbackArchived").await,
        Actor::ChatOps { integration: "discord".into(), user: Some("80351110224678912".into()) }
    );

    assert_refused(&h.post("/v1/webhooks/discord", &hdrs, &body).await, "replayed");
    let impostor = SigningKey::from_bytes(&[9u8; 32]);
    assert_refused(
        &h.post("/v1/webhooks/discord", &discord_headers(&impostor, now, &body), &body).await,
        "bad_signature",
    );
    assert_refused(
        &h.post("/v1/webhooks/discord", &discord_headers(&key, now - 301, &body), &body).await,
        "timestamp_out_of_tolerance",
    );
    // A body changed after signing fails.
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_refused(
        &h.post("/v1/webhooks/discord", &discord_headers(&key, now + 1, &body), &tampered).await,
        "bad_signature",
    );
    h.env.engine.shutdown();
}

fn stripe_event(id: &str, org: Option<OrgId>) -> Vec<u8> {
    let metadata = match org {
        Some(org) => json!({"userz_org_id": org.to_string()}),
        None => json!({}),
    };
    serde_json::to_vec(&json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_767_225_600,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "invoice.paid",
        "data": {"object": {"id": "in_1PQx", "object": "invoice", "customer": "cus_9s6XKzkNRiz8i3",
                            "amount_paid": 2000, "currency": "usd", "metadata": metadata}},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_events_are_recorded_for_the_org_once() {
    let h = hooks(ProcessingMode::Manual, Provider::Git { remote: "file:///srv/git/web.git".into() }, secrets()).await;
    let now = h.now_secs();
    let signer = StripeVerifier::new(SecretBytes::copy_from(STRIPE_SECRET));
    let sign = |ts: i64, body: &[u8]| {
        headers(&[("content-type", "application/json"), ("stripe-signature", &signer.sign(body, ts))])
    };

    let org = h.env.seeded.org;
    let body = stripe_event("evt_1NG8Du2eZvKYlo2CUI79vXWy", Some(org));
    let hdrs = sign(now, &body);
    let a = h.post("/v1/webhooks/stripe", &hdrs, &body).await;
    assert_eq!((a.status, a.body["outcome"].as_str()), (StatusCode::OK, Some("recorded")), "{a:?}");
    let (state, _) =
        h.env.engine.bus().load::<BillingDecider>(&CommandBus::stream::<BillingDecider>(org)).await.unwrap();
    assert_eq!(state.recorded, 1);
    let last = state.last.unwrap();
    assert_eq!(
        (last.event_id.as_str(), last.event_type.as_str(), last.object_id.as_deref()),
        ("evt_1NG8Du2eZvKYlo2CUI79vXWy", "invoice.paid", Some("in_1PQx"))
    );

    assert_refused(&h.post("/v1/webhooks/stripe", &hdrs, &body).await, "replayed");
    let forged =
        headers(&[("stripe-signature", &StripeVerifier::new(SecretBytes::copy_from(b"whsec_other")).sign(&body, now))]);
    assert_refused(&h.post("/v1/webhooks/stripe", &forged, &body).await, "bad_signature");
    assert_refused(&h.post("/v1/webhooks/stripe", &sign(now - 301, &body), &body).await, "timestamp_out_of_tolerance");
    let (state, _) =
        h.env.engine.bus().load::<BillingDecider>(&CommandBus::stream::<BillingDecider>(org)).await.unwrap();
    assert_eq!(state.recorded, 1, "refused deliveries record nothing");

    // The same Stripe event redelivered later (new signature, new t): recorded once.
    let redelivery = sign(now + 30, &body);
    let a = h.post("/v1/webhooks/stripe", &redelivery, &body).await;
    assert_eq!((a.status, a.body["duplicate"].as_bool()), (StatusCode::OK, Some(true)), "{a:?}");
    // No org metadata: acknowledged, ignored.
    let body = stripe_event("evt_no_org", None);
    let a = h.post("/v1/webhooks/stripe", &sign(now, &body), &body).await;
    assert_eq!((a.status, a.body["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
    let (state, _) =
        h.env.engine.bus().load::<BillingDecider>(&CommandBus::stream::<BillingDecider>(org)).await.unwrap();
    assert_eq!(state.recorded, 1);
    h.env.engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_providers_and_oversize_bodies_are_refused() {
    let only_slack = WebhookSecrets { slack: Some(SecretBytes::copy_from(SLACK_SECRET)), ..WebhookSecrets::default() };
    let h = hooks(ProcessingMode::Manual, Provider::Git { remote: "file:///srv/git/web.git".into() }, only_slack).await;
    for (provider, var) in [
        ("stripe", "USERZ_STRIPE_WEBHOOK_SECRET"),
        ("github", "USERZ_GITHUB_WEBHOOK_SECRET"),
        ("gitlab", "USERZ_GITLAB_WEBHOOK_TOKEN"),
        ("discord", "USERZ_DISCORD_PUBLIC_KEY"),
    ] {
        let a = h.post(&format!("/v1/webhooks/{provider}"), &HeaderMap::new(), b"{}").await;
        assert_eq!(
            (a.status, a.code(), a.rule()),
            (StatusCode::NOT_FOUND, "not_found", "not_configured"),
            "{provider}"
        );
        assert_eq!(a.body["error"]["details"]["config"], var);
        assert!(a.body["error"]["message"].as_str().unwrap().contains(var));
    }
    let big = vec![b' '; WEBHOOK_BODY_LIMIT + 1];
    let a = h.post("/v1/webhooks/slack", &slack_headers(h.now_secs(), &big, "application/json"), &big).await;
    assert_eq!((a.status, a.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    // Settings come from the environment-style lookup, and bad ones name the variable.
    let err = WebhookSecrets::from_lookup(|k| (k == "USERZ_DISCORD_PUBLIC_KEY").then(|| "zz".to_owned())).unwrap_err();
    assert!(err.to_string().contains("USERZ_DISCORD_PUBLIC_KEY"), "{err}");
    let s = WebhookSecrets::from_lookup(|k| (k == "USERZ_GITHUB_WEBHOOK_SECRET").then(|| "s3cret".to_owned())).unwrap();
    assert!(s.github.is_some() && s.stripe.is_none());
    h.env.engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_without_its_review_payload_mapping_is_refused_as_not_configured() {
    // Both secrets set, only GitHub's mapping given: GitLab answers as an
    // unconfigured provider does, before authenticating, and GitHub still works.
    let h = hooks_with(
        ProcessingMode::Manual,
        Provider::Git { remote: "file:///srv/git/web.git".into() },
        secrets(),
        |s| s.with_review_payloads(Arc::new(GitHubReviewPayloads)),
    )
    .await;
    for hdrs in [wh::gitlab_headers("Note Hook", "gl-n-1", GL_TOKEN), HeaderMap::new()] {
        let a = h.post("/v1/webhooks/gitlab", &hdrs, b"{}").await;
        assert_eq!((a.status, a.code(), a.rule()), (StatusCode::NOT_FOUND, "not_found", "not_configured"), "{a:?}");
        assert_eq!(a.body["error"]["details"]["provider"], "gitlab");
        assert_eq!(a.body["error"]["details"]["config"], "review_payloads");
        assert!(a.body["error"]["message"].as_str().unwrap().contains("gitlab review payload mapping"), "{a:?}");
    }
    let ping = br#"{"zen":"Keep it logically awesome."}"#;
    let a = h.post("/v1/webhooks/github", &wh::github_headers("ping", "gh-n-1", GH_SECRET, ping), ping).await;
    assert_eq!((a.status, a.body["outcome"].as_str()), (StatusCode::OK, Some("ignored")), "{a:?}");
    h.env.engine.shutdown();
}
