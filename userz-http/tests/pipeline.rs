//! With the engine's workers running (scripted classifier, sandbox and VCS), a
//! report submitted over HTTP reaches `pr_opened`, and the API shows the run's
//! provider, model, tokens, cost, PR URL and timings. The directory projection
//! runs inside the engine (`Engine::start` runs it with the others).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::repo::Provider;
use userz_core::ids::FeedbackId;
use userz_engine::admin::NewRepo;
use userz_engine::projections::feedback_summary;
use userz_engine::{Engine, EngineDeps};
use userz_http::ApiConfig;
use userz_store_memory::MemoryStores;
use userz_testkit::scenarios::{test_config, Rig, StoreSet};
use userz_testkit::{eventually, ManualClock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_report_reaches_pr_opened_and_the_run_is_visible() {
    let clock = Arc::new(ManualClock::at_2026());
    let mem = MemoryStores::new(clock.clone());
    let stores = StoreSet {
        events: mem.events.clone(),
        read_models: mem.read_models.clone(),
        queue: mem.queue.clone(),
        clock: clock.clone(),
    };
    let rig = Rig::new(stores.clone());
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: clock.clone(),
        classifier: rig.classifier.clone(),
        sandbox: rig.sandbox.clone(),
        vcs: rig.host.clone(),
        changes: rig.host.clone(),
        envelope: None,
        blobs: None,
    };
    let engine = Engine::start(deps, test_config());
    let h =
        common::start_on(ApiConfig::default(), clock, stores.events.clone(), stores.read_models.clone(), None).await;

    let t = h.tenant("Acme").await;
    h.admin
        .create_repo(
            t.org,
            t.app,
            NewRepo {
                provider: Provider::Git { remote: "file:///srv/git/web.git".into() },
                base_branch: Some("main".into()),
                branch_prefix: None,
                forbidden_paths: vec![],
            },
        )
        .await
        .unwrap();
    let r = h
        .submit(&t, &[("origin", common::ORIGIN)], &json!({"text": "The save button does nothing", "severity": "high"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id: FeedbackId = r.body["id"].as_str().unwrap().parse().unwrap();
    let rm = stores.read_models.clone();
    let org = t.org;
    let summary =
        eventually("pr_opened", Duration::from_secs(30), || {
            let rm = rm.clone();
            async move {
                feedback_summary(rm.as_ref(), org, id).await.unwrap().filter(|s| s.status == FeedbackStatus::PrOpened)
            }
        })
        .await;
    let run = summary.latest_run.unwrap();
    let d = h.get(&format!("/v1/feedback/{id}"), &t.key).await;
    assert_eq!(d.body["status"], "pr_opened", "{}", d.body);
    assert_eq!(d.body["label"], "benign");
    assert_eq!(d.body["runIds"][0], run.to_string());
    let r = h.get(&format!("/v1/agent-runs/{run}"), &t.key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "pr_opened");
    assert_eq!(r.body["model"], "scripted-1");
    assert!(r.body["tokensIn"].as_u64().unwrap() > 0);
    assert!(r.body["costMicros"].as_u64().unwrap() > 0);
    assert_eq!(r.body["prUrl"], d.body["prUrl"]);
    assert!(r.body["timings"]["startedAt"].is_i64() && r.body["timings"]["finishedAt"].is_i64(), "{}", r.body);
    let l = h.get("/v1/feedback?status=pr_opened", &t.key).await;
    assert_eq!(l.body["items"][0]["latestRunId"], run.to_string());
    engine.shutdown();
}
