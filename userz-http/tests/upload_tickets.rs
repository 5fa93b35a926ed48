//! Pre-signed single-PUT uploads over real loopback HTTP: the happy path
//! stores exactly the bytes; each deviation from the signed ticket is refused
//! with a stable code and the rule in details.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hooks_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use userz_core::ids::{AppId, OrgId};
use userz_engine::blobs::Blobs;
use userz_engine::CommandBus;
use userz_http::upload::{
    upload_put_router, upload_url_router, UploadCaller, UploadConfig, UploadState, MAX_UPLOAD_BYTES,
};
use userz_security::secret::SecretBytes;
use userz_store_memory::MemoryBlobStore;
use userz_store_memory::MemoryStores;
use userz_testkit::ManualClock;

use hooks_support::{headers, send, send_chunked, Answer};

const BASE: &str = "https://userz.test";

struct Env {
    addr: SocketAddr,
    bare: SocketAddr,
    blobs: Blobs,
    clock: Arc<ManualClock>,
    org: OrgId,
}

async fn env() -> Env {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    let bus = CommandBus::new(m.events.clone(), m.read_models.clone());
    let blobs = Blobs::new(Arc::new(MemoryBlobStore::new(clock.clone())), bus, clock.clone());
    let config = UploadConfig::new(SecretBytes::copy_from(b"0123456789abcdef0123456789abcdef-upload"), BASE);
    let state = UploadState::new(config, blobs.clone(), m.cache.clone(), clock.clone()).unwrap();
    let org = OrgId::new();
    let app = AppId::new();
    let app_router: Router = upload_url_router(state.clone())
        .layer(Extension(UploadCaller { org, app }))
        .merge(upload_put_router(state.clone()));
    let addr = hooks_support::serve(app_router).await;
    let bare = hooks_support::serve(upload_url_router(state)).await;
    Env { addr, bare, blobs, clock, org }
}

impl Env {
    async fn ticket(&self, request: Value) -> Answer {
        let h = headers(&[("content-type", "application/json")]);
        send(self.addr, Method::POST, "/v1/feedback/upload-url", &h, serde_json::to_vec(&request).unwrap()).await
    }

    async fn issued(&self, kind: &str, content_type: &str, size: usize) -> (String, String) {
        let a = self.ticket(json!({"kind": kind, "contentType": content_type, "byteSize": size})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        let url = a.body["uploadUrl"].as_str().unwrap();
        let path = url.strip_prefix(BASE).unwrap().to_owned();
        (path, a.body["key"].as_str().unwrap().to_owned())
    }

    async fn put(&self, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        send(self.addr, Method::PUT, path, &headers(&[("content-type", content_type)]), body).await
    }
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn assert_refused(a: &Answer, status: StatusCode, code: &str, rule: &str) {
    assert_eq!((a.status, a.code(), a.rule()), (status, code, rule), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_stores_exactly_the_signed_bytes_once() {
    let e = env().await;
    let a = e.ticket(json!({"kind": "screenshot", "contentType": "image/png", "byteSize": 70_000})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    let key = a.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("orgs/{}/screenshots/screenshot-", e.org)), "{key}");
    assert!(key.ends_with(".png"));
    assert_eq!(a.body["headers"], json!({"Content-Type": "image/png", "Content-Length": "70000"}));
    // Expires 300 s after issue (ManualClock starts at 2026-01-01T00:00:00Z).
    assert_eq!(a.body["expiresAt"], json!("2026-01-01T00:05:00Z"));
    let url = a.body["uploadUrl"].as_str().unwrap();
    assert!(url.starts_with(&format!("{BASE}/v1/uploads/")), "{url}");
    let path = url.strip_prefix(BASE).unwrap();

    let data = bytes(70_000);
    let a = e.put(path, "image/png", data.clone()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(a.body, json!({"key": key, "contentType": "image/png", "byteSize": 70_000}));
    let stored = e.blobs.get(&userz_core::ports::BlobKey::parse_any(&key).unwrap()).await.unwrap();
    assert_eq!(stored.as_ref(), data.as_slice());

    assert_eq!(a.headers["access-control-allow-origin"], "*");
    let pre = send(e.addr, Method::OPTIONS, path, &headers(&[("origin", "https://shop.example")]), vec![]).await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(pre.headers["access-control-allow-methods"], "PUT");
    // Single use.
    assert_refused(
        &e.put(path, "image/png", data).await,
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "already_used",
    );

    // A streamed (chunked) PUT of the right size is accepted too; attachments go elsewhere.
    let (path, key) = e.issued("attachment", "application/pdf", 10_000).await;
    assert!(key.starts_with(&format!("orgs/{}/attachments/", e.org)), "{key}");
    let data = bytes(10_000);
    let chunks: Vec<Vec<u8>> = data.chunks(3000).map(<[u8]>::to_vec).collect();
    let a = send_chunked(e.addr, Method::PUT, &path, &headers(&[("content-type", "application/pdf")]), chunks).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    let stored = e.blobs.get(&userz_core::ports::BlobKey::parse_any(&key).unwrap()).await.unwrap();
    assert_eq!(stored.as_ref(), data.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_requests_are_validated() {
    let e = env().await;
    let cases = [
        (
            json!({"kind": "screenshot", "contentType": "text/plain", "byteSize": 10}),
            "contentType",
            "content_type_not_allowed",
        ),
        (
            json!({"kind": "annotated", "contentType": "application/pdf", "byteSize": 10}),
            "contentType",
            "content_type_not_allowed",
        ),
        (json!({"kind": "screenshot", "contentType": "image/png", "byteSize": 0}), "byteSize", "min_bytes"),
        (
            json!({"kind": "screenshot", "contentType": "image/png", "byteSize": MAX_UPLOAD_BYTES + 1}),
            "byteSize",
            "max_bytes",
        ),
        (json!({"kind": "video", "contentType": "image/png", "byteSize": 10}), "kind", "one_of"),
        (json!({"kind": "screenshot", "byteSize": 10}), "contentType", "missing"),
        (json!({"kind": "screenshot", "contentType": "image/png", "byteSize": "10"}), "byteSize", "type"),
        (json!(["screenshot"]), "body", "json"),
    ];
    for (request, field, rule) in cases {
        let a = e.ticket(request.clone()).await;
        assert_refused(&a, StatusCode::BAD_REQUEST, "invalid_body", rule);
        assert_eq!(a.body["error"]["details"]["field"], field, "{request}");
    }
    // The largest size is allowed; a type is matched case-insensitively.
    let a = e.ticket(json!({"kind": "attachment", "contentType": "Text/Plain", "byteSize": MAX_UPLOAD_BYTES})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(a.body["headers"]["Content-Type"], "text/plain");
    // Without the caller context the auth layer inserts, nothing is issued.
    let h = headers(&[("content-type", "application/json")]);
    let body = serde_json::to_vec(&json!({"kind": "screenshot", "contentType": "image/png", "byteSize": 10})).unwrap();
    let a = send(e.bare, Method::POST, "/v1/feedback/upload-url", &h, body).await;
    assert_eq!((a.status, a.code()), (StatusCode::UNAUTHORIZED, "missing_authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_that_differ_from_the_ticket_are_refused() {
    let e = env().await;
    let (path, key) = e.issued("screenshot", "image/webp", 5_000).await;
    let data = bytes(5_000);
    let unauthorized = StatusCode::UNAUTHORIZED;

    // Wrong type.
    let a = e.put(&path, "image/png", data.clone()).await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "invalid_body", "content_type_mismatch");
    assert_eq!(a.body["error"]["details"]["field"], "Content-Type");
    // Bigger, declared.
    let a = e.put(&path, "image/webp", bytes(5_001)).await;
    assert_refused(&a, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "size_mismatch");
    // Bigger, streamed without a length: cut off at the signed size.
    let chunks = vec![bytes(4_000), bytes(4_000)];
    let a = send_chunked(e.addr, Method::PUT, &path, &headers(&[("content-type", "image/webp")]), chunks).await;
    assert_refused(&a, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "size_mismatch");
    // Smaller, declared and streamed.
    let a = e.put(&path, "image/webp", bytes(4_999)).await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "invalid_body", "size_mismatch");
    let a =
        send_chunked(e.addr, Method::PUT, &path, &headers(&[("content-type", "image/webp")]), vec![bytes(100)]).await;
    assert_refused(&a, StatusCode::BAD_REQUEST, "invalid_body", "size_mismatch");

    // Tampered signature, tampered claims, not a ticket.
    let (prefix, ticket) = path.rsplit_once('/').unwrap();
    let (claims, sig) = ticket.split_once('.').unwrap();
    let mut bad_sig: Vec<char> = sig.chars().collect();
    bad_sig[3] = if bad_sig[3] == 'A' { 'B' } else { 'A' };
    let bad_sig: String = bad_sig.into_iter().collect();
    let a = e.put(&format!("{prefix}/{claims}.{bad_sig}"), "image/webp", data.clone()).await;
    assert_refused(&a, unauthorized, "invalid_signature", "bad_signature");
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut decoded: Value = serde_json::from_slice(&engine.decode(claims).unwrap()).unwrap();
    decoded["size"] = json!(50_000);
    let forged = engine.encode(serde_json::to_vec(&decoded).unwrap());
    let a = e.put(&format!("{prefix}/{forged}.{sig}"), "image/webp", bytes(50_000)).await;
    assert_refused(&a, unauthorized, "invalid_signature", "bad_signature");
    let a = e.put(&format!("{prefix}/not-a-ticket"), "image/webp", data.clone()).await;
    assert_refused(&a, unauthorized, "invalid_signature", "malformed_ticket");

    // None of the refusals used the ticket up.
    let a = e.put(&path, "image/webp", data.clone()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
    assert_eq!(
        e.blobs.get(&userz_core::ports::BlobKey::parse_any(&key).unwrap()).await.unwrap().as_ref(),
        data.as_slice()
    );
    assert_refused(&e.put(&path, "image/webp", data).await, unauthorized, "invalid_signature", "already_used");

    // Expired: 300 s after issue is still valid, a moment later is not.
    let (path, _) = e.issued("screenshot", "image/jpeg", 10).await;
    e.clock.advance(Duration::from_millis(300_001));
    assert_refused(&e.put(&path, "image/jpeg", bytes(10)).await, unauthorized, "invalid_signature", "expired");
}
