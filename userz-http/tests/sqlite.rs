//! The API over the embedded default store (SQLite on disk): the directory,
//! ingest, listing, detail, minting and revocation work on a durable store too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use userz_core::ids::FeedbackId;
use userz_engine::projections::feedback_summary;
use userz_http::ApiConfig;
use userz_store_sqlite::SqliteStoreBuilder;
use userz_testkit::{eventually, ManualClock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_end_to_end_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at_2026());
    let store = SqliteStoreBuilder::new(dir.path().join("userz.db"))
        .with_clock(clock.clone())
        .with_poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    let h =
        common::start_on(ApiConfig::default(), clock, Arc::new(store.clone()), Arc::new(store), Some(Box::new(dir)))
            .await;
    let t = h.tenant("Acme").await;
    let r = h.submit(&t, &[("origin", common::ORIGIN)], &json!({"text": "Save fails", "severity": "medium"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id: FeedbackId = r.body["id"].as_str().unwrap().parse().unwrap();
    let rm = h.read_models.clone();
    let org = t.org;
    eventually("listed", Duration::from_secs(10), || {
        let rm = rm.clone();
        async move { feedback_summary(rm.as_ref(), org, id).await.unwrap() }
    })
    .await;
    let r = h.get("/v1/feedback", &t.key).await;
    assert_eq!(r.body["items"][0]["id"], id.to_string(), "{}", r.body);
    let r = h.get(&format!("/v1/feedback/{id}"), &t.key).await;
    assert_eq!(r.body["text"], "Save fails");
    let r = h.send_json("POST", "/v1/tokens/mint", &t.key, &json!({"appId": t.app.to_string(), "sub": "u-1"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    let r = h.submit(&t, &[("x-userz-user-token", &token)], &json!({"text": "private", "severity": "low"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    h.admin.revoke_api_key(t.org, &t.prefix, None).await.unwrap();
    let prefix = t.prefix.clone();
    eventually("revoked", Duration::from_secs(10), || {
        let (rm, prefix) = (rm.clone(), prefix.clone());
        async move { userz_http::directory::key(rm.as_ref(), &prefix).await.unwrap().and_then(|k| k.revoked_at) }
    })
    .await;
    h.get("/v1/apps", &t.key).await.assert_error(401, "missing_authorization");
}
