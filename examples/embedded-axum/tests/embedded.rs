//! The host service and Userz answer from one router in one process: the
//! host's own routes, the Userz health check, a report submitted with the demo
//! App's key (accepted and then classified by the embedded engine's workers),
//! and an unknown path that falls through to Userz's JSON 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let mut req = req;
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_routes_and_userz_share_one_router_and_the_workers_run() {
    let data = tempfile::tempdir().unwrap();
    let config = userz_server::Config {
        data_dir: data.path().to_path_buf(),
        sandbox: userz_server::config::SandboxSettings { enabled: false, ..Default::default() },
        ..Default::default()
    };
    let url = "http://127.0.0.1:3000".to_string();
    let (app, userz) = userz_embedded_axum::assemble(config, url.clone()).await.unwrap();

    let (status, body) = call(&app, Request::get("/api/orders").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!(["order-1", "order-2"]));
    let (status, body) = call(&app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok"[..]));

    let demo = userz.demo.clone().expect("the demo App on a new data directory");
    let submit = Request::post("/v1/feedback")
        .header("content-type", "application/json")
        .header("origin", &url)
        .header("x-userz-public-key", &demo.public_key)
        .body(Body::from(json!({"text": "The Save button does nothing", "severity": "high"}).to_string()))
        .unwrap();
    let (status, body) = call(&app, submit).await;
    assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
    let id = serde_json::from_slice::<Value>(&body).unwrap()["id"].as_str().unwrap().to_owned();

    // The engine's sanitize worker runs inside this process: the report
    // leaves `received` without anything else being started.
    let feedback: userz_core::ids::FeedbackId = id.parse().unwrap();
    let mut status = None;
    for _ in 0..150 {
        let row = userz_engine::projections::feedback_summary(userz.stores.read_models.as_ref(), demo.org, feedback)
            .await
            .unwrap();
        status = row.map(|r| r.status);
        if status.is_some_and(|s| !matches!(s.as_str(), "received" | "sanitizing")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("the report is listed");
    assert!(!matches!(status.as_str(), "received" | "sanitizing"), "classified by the embedded workers: {status:?}");

    let (status, body) = call(&app, Request::get("/no/such/path").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], "not_found");
    userz.shutdown();
}
