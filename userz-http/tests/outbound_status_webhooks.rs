//! Signed outbound status webhooks against local receivers: the signature
//! verifies with `UserzWebhookVerifier`, a report's statuses arrive in order,
//! a 500 is retried (bounded), and a restart does not resend what was delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hooks_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use parking_lot::Mutex;
use serde_json::Value;
use userz_core::domain::common::ProcessingMode;
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::repo::Provider;
use userz_core::ids::{FeedbackId, OrgId};
use userz_core::Clock;
use userz_http::outbound::{OutboundConfig, OutboundEndpoint, OutboundWebhooks, DEFAULT_CHECKPOINT, FAILED_TABLE};
use userz_security::secret::SecretBytes;
use userz_security::webhooks::{UserzWebhookVerifier, WebhookVerifier};
use userz_testkit::eventually;
use userz_testkit::scenarios::{settle, submit, wait_status, WAIT};

use hooks_support::{engine_env, EngineEnv};

const SECRET: &[u8] = b"outbound-endpoint-secret";

/// A receiver that records every request and answers 500 to the first
/// `fail_first` requests (`usize::MAX`: always).
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    seen: Arc<AtomicUsize>,
    fail_first: usize,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = r.seen.fetch_add(1, Ordering::SeqCst);
    r.got.lock().push((headers, body));
    if n < r.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn receiver(fail_first: usize) -> (Receiver, SocketAddr) {
    let r = Receiver { got: Arc::default(), seen: Arc::default(), fail_first };
    let addr = hooks_support::serve(Router::new().route("/hooks/userz", post(receive)).with_state(r.clone())).await;
    (r, addr)
}

impl Receiver {
    /// Every request body, after checking its signature.
    fn payloads(&self, now: userz_core::Timestamp) -> Vec<Value> {
        let verifier = UserzWebhookVerifier::new(SecretBytes::copy_from(SECRET));
        self.got
            .lock()
            .iter()
            .map(|(h, body)| {
                verifier.authenticate(h, body, now).expect("signature verifies");
                assert_eq!(h["content-type"], "application/json");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }

    fn statuses_of(&self, now: userz_core::Timestamp, fb: FeedbackId) -> Vec<String> {
        self.payloads(now)
            .into_iter()
            .filter(|p| p["feedbackId"] == fb.to_string())
            .map(|p| p["status"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn endpoint(addr: SocketAddr, org: Option<OrgId>) -> OutboundEndpoint {
    OutboundEndpoint { url: format!("http://{addr}/hooks/userz"), secret: SecretBytes::copy_from(SECRET), org }
}

fn dispatcher(env: &EngineEnv, endpoints: Vec<OutboundEndpoint>) -> OutboundWebhooks {
    let config = OutboundConfig {
        endpoints,
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        ..OutboundConfig::default()
    };
    OutboundWebhooks::new(config, env.stores.events.clone(), env.stores.read_models.clone(), env.clock.clone()).unwrap()
}

const SEQUENCE: [&str; 6] = ["received", "sanitizing", "sanitized", "queued", "running", "pr_opened"];

async fn wait_for(r: &Receiver, env: &EngineEnv, fb: FeedbackId, n: usize) -> Vec<String> {
    let now = env.clock.now();
    eventually(&format!("{n} status webhooks for {fb}"), WAIT, || async move {
        let s = r.statuses_of(now, fb);
        (s.len() >= n).then_some(s)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_the_signed_status_sequence_of_a_report() {
    let env = engine_env(ProcessingMode::AutoPr, Provider::Git { remote: "file:///srv/git/web.git".into() }).await;
    let (mine, mine_addr) = receiver(0).await;
    let (other, other_addr) = receiver(0).await;
    let task =
        dispatcher(&env, vec![endpoint(mine_addr, Some(env.seeded.org)), endpoint(other_addr, Some(OrgId::new()))])
            .spawn();

    let fb = submit(&env.engine, &env.seeded, "The save button does nothing").await;
    let summary = wait_status(env.stores.read_models.as_ref(), env.seeded.org, fb, FeedbackStatus::PrOpened).await;
    assert_eq!(wait_for(&mine, &env, fb, SEQUENCE.len()).await, SEQUENCE);

    let payloads = mine.payloads(env.clock.now());
    let last = payloads.last().unwrap();
    assert_eq!(last["type"], "feedback.status_changed");
    assert_eq!(last["appId"], env.seeded.app.to_string());
    assert_eq!(last["orgId"], env.seeded.org.to_string());
    assert_eq!(last["prUrl"].as_str(), summary.pr_url.as_deref());
    assert!(last["at"].as_str().unwrap().starts_with("2026-01-01T"), "{last}");
    assert!(payloads[0].get("prUrl").is_none(), "no PR URL before the PR exists");
    let mut ids: Vec<&str> = payloads.iter().map(|p| p["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), SEQUENCE.len(), "one id per status change");
    let positions: Vec<u64> = payloads.iter().map(|p| p["position"].as_u64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "sent in log order: {positions:?}");
    // A receiver with the wrong secret would refuse it.
    let (h, body) = mine.got.lock()[0].clone();
    let wrong = UserzWebhookVerifier::new(SecretBytes::copy_from(b"another secret"));
    assert_eq!(wrong.authenticate(&h, &body, env.clock.now()).unwrap_err().code(), "bad_signature");
    // The endpoint scoped to another organization got nothing.
    assert!(other.got.lock().is_empty());
    task.abort();
    env.engine.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_bounded_and_a_restart_resends_nothing_delivered() {
    let env = engine_env(ProcessingMode::AutoPr, Provider::Git { remote: "file:///srv/git/web.git".into() }).await;
    let (flaky, flaky_addr) = receiver(1).await;
    let (dead, dead_addr) = receiver(usize::MAX).await;
    let task = dispatcher(&env, vec![endpoint(flaky_addr, None), endpoint(dead_addr, None)]).spawn();

    let fb = submit(&env.engine, &env.seeded, "Checkout total is wrong").await;
    wait_status(env.stores.read_models.as_ref(), env.seeded.org, fb, FeedbackStatus::PrOpened).await;
    // The flaky receiver answered 500 once: the first status came twice (same id), then each once.
    let got = wait_for(&flaky, &env, fb, SEQUENCE.len() + 1).await;
    assert_eq!(got[0], "received");
    assert_eq!(&got[1..], SEQUENCE);
    let payloads = flaky.payloads(env.clock.now());
    assert_eq!(payloads[0]["id"], payloads[1]["id"], "a retry carries the same id");
    // The dead receiver got exactly 3 attempts per status, then the dispatcher moved on.
    let dead_got = wait_for(&dead, &env, fb, SEQUENCE.len() * 3).await;
    for (i, chunk) in dead_got.chunks(3).enumerate() {
        assert!(chunk.iter().all(|s| s == SEQUENCE[i]), "{dead_got:?}");
    }
    // Undelivered events are kept as dead letters.
    settle(&env.stores).await;
    let last = env.stores.events.read_all(0, 100_000).await.unwrap().last().unwrap().position;
    let store = env.stores.read_models.clone();
    eventually("the dispatcher checkpoint to reach the end of the log", WAIT, || {
        let store = store.clone();
        async move { (store.checkpoint(DEFAULT_CHECKPOINT).await.ok()? >= last).then_some(()) }
    })
    .await;
    let failed = env.stores.read_models.scan(FAILED_TABLE, "0001/", None, 100).await.unwrap();
    assert_eq!(failed.len(), SEQUENCE.len(), "one dead letter per status for the dead receiver");
    assert!(env.stores.read_models.scan(FAILED_TABLE, "0000/", None, 100).await.unwrap().is_empty());
    assert_eq!(dead.got.lock().len(), SEQUENCE.len() * 3, "bounded: no attempt past the limit");

    // Restart: nothing already handled is sent again; new changes are.
    task.abort();
    let before = flaky.got.lock().len();
    let task = dispatcher(&env, vec![endpoint(flaky_addr, None)]).spawn();
    let fb2 = submit(&env.engine, &env.seeded, "Search ignores accents").await;
    wait_status(env.stores.read_models.as_ref(), env.seeded.org, fb2, FeedbackStatus::PrOpened).await;
    assert_eq!(wait_for(&flaky, &env, fb2, SEQUENCE.len()).await, SEQUENCE);
    let now = env.clock.now();
    assert_eq!(flaky.statuses_of(now, fb).len(), SEQUENCE.len() + 1, "no status of the first report resent");
    assert_eq!(flaky.got.lock().len(), before + SEQUENCE.len());
    task.abort();
    env.engine.shutdown();
}
