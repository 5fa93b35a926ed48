//! The HTTP API over real loopback connections: one test per error code of
//! DESIGN §2, tenant isolation on every /v1 route, the rate limit, transitions,
//! query validation and the streaming body cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{start, start_with, Harness, Tenant, ORIGIN};
use serde_json::{json, Value};
use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::{FeedbackCommand, FeedbackDecider, Routing};
use userz_core::domain::run::{RunCommand, RunDecider, RunKind};
use userz_core::ids::{FeedbackId, RepoId, RunId};
use userz_core::ports::classifier::{Classification, Label};
use userz_engine::projections::{audit_log, feedback_summary, run_detail};
use userz_engine::{CommandBus, CommandMeta};
use userz_http::ApiConfig;
use userz_security::secret::{SecretBytes, SecretString};
use userz_security::widget_auth::{mint_user_token, MintRequest};
use userz_testkit::eventually;

fn report(text: &str) -> Value {
    json!({
        "text": text,
        "severity": "high",
        "url": "https://shop.example/cart",
        "consoleLogs": [{"level": "error", "message": "TypeError: x is undefined", "ts": 1.0}],
        "identity": {"id": "u-1", "email": "u@example.test"},
    })
}

async fn submit_ok(h: &Harness, t: &Tenant, text: &str) -> FeedbackId {
    let r = h.submit(t, &[("origin", ORIGIN)], &report(text)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().parse().unwrap()
}

async fn wait_listed(h: &Harness, t: &Tenant, id: FeedbackId) {
    let rm = h.read_models.clone();
    let org = t.org;
    eventually("feedback projected", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move { feedback_summary(rm.as_ref(), org, id).await.unwrap() }
    })
    .await;
}

fn private_token(t: &Tenant, h: &Harness, secret: &str) -> String {
    let m = mint_user_token(
        t.app,
        &SecretBytes::copy_from(secret.as_bytes()),
        &MintRequest { sub: "user-42".into(), ..Default::default() },
        h.now(),
    )
    .unwrap();
    m.token.expose_secret().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_submission_is_stored_and_read_back_in_full() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let mut body = report("The checkout button does nothing");
    body["attachments"] = json!([{"key": format!("orgs/{}/screenshots/a.png", t.org), "kind": "screenshot",
        "contentType": "image/png", "byteSize": 1200, "width": 10, "height": 20}]);
    let r = h.submit(&t, &[("origin", ORIGIN)], &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id: FeedbackId = r.body["id"].as_str().unwrap().parse().unwrap();
    let r = h.get(&format!("/v1/feedback/{id}"), &t.key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["text"], "The checkout button does nothing");
    assert_eq!(r.body["status"], "received");
    assert_eq!(r.body["severity"], "high");
    assert_eq!(r.body["consoleLogs"][0]["message"], "TypeError: x is undefined");
    assert_eq!(r.body["attachments"][0]["contentType"], "image/png");
    assert_eq!(r.body["reporter"]["id"], "u-1");
    wait_listed(&h, &t, id).await;
    let r = h.get("/v1/feedback", &t.key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"][0]["id"], id.to_string());
    assert_eq!(r.body["items"][0]["appId"], t.app.to_string());
    let r = h.get("/v1/apps", &t.key).await;
    assert_eq!(r.body["items"][0]["publicKey"], t.public_key);
    assert_eq!(r.body["items"][0]["allowedOrigins"][0], ORIGIN);
    // Idempotency-Key: a repeat returns the same report, 200 instead of 201.
    let a = h.submit(&t, &[("origin", ORIGIN), ("idempotency-key", "k-1")], &report("once")).await;
    let b = h.submit(&t, &[("origin", ORIGIN), ("idempotency-key", "k-1")], &report("once")).await;
    assert_eq!((a.status, b.status), (201, 200));
    assert_eq!(a.body["id"], b.body["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_body_names_the_field_and_rule() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let r = h.submit(&t, &[("origin", ORIGIN)], &json!({"text": "x".repeat(8193)})).await;
    r.assert_error(400, "invalid_body");
    assert_eq!(r.body["error"]["details"]["field"], "text");
    assert_eq!(r.body["error"]["details"]["rule"], "too_long");
    let r = h.submit(&t, &[("origin", ORIGIN)], &json!({"text": "ok", "severity": "urgent", "extra": 1})).await;
    r.assert_error(400, "invalid_body");
    let v = r.body["error"]["details"]["violations"].as_array().unwrap();
    assert!(v.iter().any(|x| x["field"] == "severity" && x["rule"] == "invalid_enum"), "{v:?}");
    assert!(v.iter().any(|x| x["field"] == "extra" && x["rule"] == "unknown_field"), "{v:?}");
    let r = h
        .request(
            "POST",
            "/v1/feedback",
            &[("x-userz-public-key", &t.public_key), ("origin", ORIGIN)],
            Some(b"{not json"),
        )
        .await;
    r.assert_error(400, "invalid_body");
    assert_eq!(r.body["error"]["details"]["rule"], "invalid_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_authorization_on_absent_malformed_unknown_and_revoked_keys() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let r = h.request("GET", "/v1/apps", &[], None).await;
    r.assert_error(401, "missing_authorization");
    assert_eq!(r.body["error"]["details"]["rule"], "absent");
    let r = h.request("GET", "/v1/apps", &[("authorization", "Basic abc")], None).await;
    assert_eq!(r.body["error"]["details"]["rule"], "scheme");
    let r = h.get("/v1/apps", "sk_nonsense").await;
    r.assert_error(401, "missing_authorization");
    // Right shape, wrong body: the checksum catches it before any hashing.
    let mut forged = t.key.clone();
    forged.replace_range(20..21, if &forged[20..21] == "a" { "b" } else { "a" });
    let r = h.get("/v1/apps", &forged).await;
    r.assert_error(401, "missing_authorization");
    // The widget route without a public key.
    let r = h.request("POST", "/v1/feedback", &[("origin", ORIGIN)], Some(b"{}")).await;
    r.assert_error(401, "missing_authorization");
    // Revocation is immediate (the directory row is read on every request).
    assert_eq!(h.get("/v1/apps", &t.key).await.status, 200);
    h.admin.revoke_api_key(t.org, &t.prefix, None).await.unwrap();
    let rm = h.read_models.clone();
    let prefix = t.prefix.clone();
    eventually("revocation projected", Duration::from_secs(5), || {
        let (rm, prefix) = (rm.clone(), prefix.clone());
        async move { userz_http::directory::key(rm.as_ref(), &prefix).await.unwrap().and_then(|k| k.revoked_at) }
    })
    .await;
    let r = h.get("/v1/apps", &t.key).await;
    r.assert_error(401, "missing_authorization");
    assert_eq!(r.body["error"]["details"]["rule"], "revoked");
    // Key issue and revocation, and the refusal, are audit events.
    let rm = h.read_models.clone();
    let org = t.org;
    let kinds = eventually("audit entries", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move {
            let kinds: Vec<String> =
                audit_log(rm.as_ref(), org, None, 100).await.unwrap().into_iter().map(|e| e.kind).collect();
            (kinds.contains(&"api_key_revoked".to_string()) && kinds.contains(&"auth_failure".to_string()))
                .then_some(kinds)
        }
    })
    .await;
    assert!(kinds.contains(&"api_key_issued".to_string()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_for_unknown_or_malformed_public_keys() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let other = userz_security::api_key::PublicKey::generate();
    let r = h
        .request(
            "POST",
            "/v1/feedback",
            &[("x-userz-public-key", other.as_str()), ("origin", ORIGIN)],
            Some(report("x").to_string().as_bytes()),
        )
        .await;
    r.assert_error(401, "unknown_app");
    let r = h.request("POST", "/v1/feedback", &[("x-userz-public-key", "pub_garbage")], Some(b"{}")).await;
    r.assert_error(401, "unknown_app");
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_user_token_and_rotation_invalidates_outstanding_tokens() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    // A valid token (signed with the App's secret) submits in private mode, identity from the token.
    let token = private_token(&t, &h, &t.signing_secret);
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &token)], &report("private")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let d = h.get(&format!("/v1/feedback/{id}"), &t.key).await;
    assert_eq!(d.body["reporter"]["id"], "user-42", "identity comes from the token, not the body");
    // Server-to-server private submissions may omit Origin.
    let r = h.submit(&t, &[("x-userz-user-token", &token)], &report("no origin")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Garbage, wrong key, expired.
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", "a.b.c")], &report("x")).await;
    r.assert_error(401, "invalid_user_token");
    let wrong = private_token(&t, &h, &"w".repeat(40));
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &wrong)], &report("x")).await;
    r.assert_error(401, "invalid_user_token");
    assert_eq!(r.body["error"]["details"]["rule"], "bad_signature");
    h.clock.advance(Duration::from_secs(2 * 3600));
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &token)], &report("x")).await;
    r.assert_error(401, "invalid_user_token");
    assert_eq!(r.body["error"]["details"]["rule"], "expired");
    // Rotation: a fresh token under the old secret works, then stops working once rotated.
    let fresh = private_token(&t, &h, &t.signing_secret);
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &fresh)], &report("before")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let before = userz_http::directory::signing_secret_version(h.read_models.as_ref(), t.app).await.unwrap();
    let new_secret = "n".repeat(48);
    h.admin
        .set_app_signing_secret(
            t.org,
            t.app,
            Some(SecretString::new(new_secret.clone())),
            userz_core::domain::common::Actor::System,
        )
        .await
        .unwrap();
    let rm = h.read_models.clone();
    let app = t.app;
    eventually("rotation projected", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move {
            let v = userz_http::directory::signing_secret_version(rm.as_ref(), app).await.unwrap();
            (v != before).then_some(())
        }
    })
    .await;
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &fresh)], &report("after")).await;
    r.assert_error(401, "invalid_user_token");
    let rotated = private_token(&t, &h, &new_secret);
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &rotated)], &report("after")).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_not_allowed_for_foreign_lookalike_and_missing_origins() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    for origin in ["https://evil.example", "https://shop.example.evil.example", "http://shop.example", "null"] {
        let r = h.submit(&t, &[("origin", origin)], &report("x")).await;
        r.assert_error(403, "origin_not_allowed");
    }
    let r = h.submit(&t, &[], &report("x")).await;
    r.assert_error(403, "origin_not_allowed");
    // With the default port made explicit it is the same origin.
    let r = h.submit(&t, &[("origin", "https://shop.example:443")], &report("x")).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_disabled_refuses_key_only_submissions_but_not_private_ones() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    h.admin
        .configure_app(
            t.org,
            t.app,
            userz_core::domain::app::AppSettingsPatch { public_submission_enabled: Some(false), ..Default::default() },
        )
        .await
        .unwrap();
    let rm = h.read_models.clone();
    let app = t.app;
    eventually("settings projected", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move {
            let a = userz_http::directory::app(rm.as_ref(), app).await.unwrap()?;
            (!a.settings.public_submission_enabled).then_some(())
        }
    })
    .await;
    let r = h.submit(&t, &[("origin", ORIGIN)], &report("x")).await;
    r.assert_error(403, "public_disabled");
    let token = private_token(&t, &h, &t.signing_secret);
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &token)], &report("x")).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_too_large_by_content_length_is_refused_unread() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let stats = h.state.ingest_stats();
    let cap = h.state.config().body_limit;
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "POST /v1/feedback HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-userz-public-key: {}\r\norigin: {ORIGIN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        t.public_key,
        cap + 1
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Send nothing of the body: the answer must come anyway.
    let r = common::read_response(&mut s).await;
    r.assert_error(413, "payload_too_large");
    assert_eq!(stats.oversize_refused(), 1);
    assert_eq!(stats.max_body_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_too_large_while_streaming_slowly_reads_at_most_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = start().await;
    let t = h.tenant("Acme").await;
    let stats = h.state.ingest_stats();
    let cap = h.state.config().body_limit;
    let s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST /v1/feedback HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-userz-public-key: {}\r\norigin: {ORIGIN}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        t.public_key
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    // 8 MiB + 1 in 64 KiB chunks with a pause between them; the server must
    // answer 413 without waiting for the end (we never send the last chunk).
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0usize;
        while sent <= cap {
            let n = chunk.len().min(cap + 1 - sent);
            let frame = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
            if wr.write_all(&frame).await.is_err() {
                break; // the server closed: it is done with us
            }
            sent += n;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Keep the connection open (no terminating chunk) until dropped.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(wr);
        sent
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf)).await.unwrap().unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.ends_with(b"}") {
            break;
        }
    }
    writer.abort();
    let r = common::parse_response(&raw);
    r.assert_error(413, "payload_too_large");
    assert!(stats.max_body_bytes() <= cap as u64, "read {} > cap {cap}", stats.max_body_bytes());
    assert!(stats.max_body_bytes() > 0, "the body was streamed, so some of it was read");
    assert_eq!(stats.oversize_refused(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_on_the_101st_request_then_exactly_ten_per_second() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    for i in 0..100 {
        let r = h.get("/v1/apps", &t.key).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let r = h.get("/v1/apps", &t.key).await;
    r.assert_error(429, "rate_limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    h.clock.advance(Duration::from_secs(1));
    let mut passed = 0;
    for _ in 0..15 {
        if h.get("/v1/apps", &t.key).await.status == 200 {
            passed += 1;
        }
    }
    assert_eq!(passed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_submissions_are_limited_per_ip_and_private_ones_per_user() {
    let config = ApiConfig {
        public_per_ip: userz_http::ratelimit::BucketConfig { capacity: 2, refill_per_minute: 60 },
        private_per_user: userz_http::ratelimit::BucketConfig { capacity: 1, refill_per_minute: 60 },
        ..ApiConfig::default()
    };
    let h = start_with(config).await;
    let t = h.tenant("Acme").await;
    for _ in 0..2 {
        assert_eq!(h.submit(&t, &[("origin", ORIGIN)], &report("x")).await.status, 201);
    }
    let r = h.submit(&t, &[("origin", ORIGIN)], &report("x")).await;
    r.assert_error(429, "rate_limited");
    assert_eq!(r.body["error"]["details"]["limit"], "public_per_ip");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Private mode has its own per-user bucket.
    let token = private_token(&t, &h, &t.signing_secret);
    assert_eq!(h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &token)], &report("x")).await.status, 201);
    let r = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &token)], &report("x")).await;
    r.assert_error(429, "rate_limited");
    assert_eq!(r.body["error"]["details"]["limit"], "private_per_user");
}

async fn drive_to_awaiting_manual(h: &Harness, id: FeedbackId) {
    let stream = CommandBus::stream::<FeedbackDecider>(id);
    h.bus.execute::<FeedbackDecider>(&stream, CommandMeta::new(), &FeedbackCommand::StartSanitizing).await.unwrap();
    let classify = FeedbackCommand::Classify {
        classification: Classification {
            label: Label::Benign,
            confidence: 0.9,
            signals: vec![],
            classifier: "test".into(),
        },
        routing: Routing { mode: ProcessingMode::Manual, dedup: Dedup::Off, now: h.now() },
    };
    h.bus.execute::<FeedbackDecider>(&stream, CommandMeta::new(), &classify).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_transitions_are_allowed_only_from_the_right_states() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let id = submit_ok(&h, &t, "please fix").await;
    let path = format!("/v1/feedback/{id}");
    // Not yet classified: neither queue nor archive.
    let r = h.send_json("PATCH", &path, &t.key, &json!({"status": "queued"})).await;
    r.assert_error(409, "invalid_transition");
    assert_eq!(r.body["error"]["details"]["rule"], "not_benign");
    let r = h.send_json("PATCH", &path, &t.key, &json!({"status": "archived"})).await;
    r.assert_error(409, "invalid_transition");
    assert_eq!(r.body["error"]["details"]["from"], "received");
    let r = h.send_json("PATCH", &path, &t.key, &json!({"status": "running"})).await;
    r.assert_error(400, "invalid_body");
    assert_eq!(r.body["error"]["details"]["field"], "status");
    let r = h.send_json("PATCH", &path, &t.key, &json!({"state": "queued"})).await;
    r.assert_error(400, "invalid_body");
    drive_to_awaiting_manual(&h, id).await;
    let r = h.send_json("PATCH", &path, &t.key, &json!({"status": "queued"})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("queued")), "{}", r.body);
    let r = h.send_json("PATCH", &path, &t.key, &json!({"status": "archived"})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("archived")), "{}", r.body);
    let r = h.send_json("PATCH", &path, &t.key, &json!({"status": "archived"})).await;
    r.assert_error(409, "invalid_transition");
    assert_eq!(h.get(&path, &t.key).await.body["status"], "archived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_invalid_body_naming_the_parameter() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    for (q, field, rule) in [
        ("limit=0", "limit", "out_of_range"),
        ("limit=101", "limit", "out_of_range"),
        ("limit=ten", "limit", "out_of_range"),
        ("cursor=abc", "cursor", "invalid_format"),
        ("status=nope", "status", "invalid_enum"),
        ("appId=zzz", "appId", "invalid_format"),
        ("includeDuplicates=maybe", "includeDuplicates", "invalid_type"),
        ("colour=red", "colour", "unknown_field"),
    ] {
        let r = h.get(&format!("/v1/feedback?{q}"), &t.key).await;
        r.assert_error(400, "invalid_body");
        assert_eq!(
            (r.body["error"]["details"]["field"].as_str(), r.body["error"]["details"]["rule"].as_str()),
            (Some(field), Some(rule)),
            "{q}"
        );
    }
    // Paging with a real cursor.
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit_ok(&h, &t, &format!("report {i}")).await);
    }
    for id in &ids {
        wait_listed(&h, &t, *id).await;
    }
    let r = h.get(&format!("/v1/feedback?limit=2&appId={}&status=received", t.app), &t.key).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "{}", r.body);
    let cursor = r.body["nextCursor"].as_str().unwrap().to_string();
    let r = h.get(&format!("/v1/feedback?limit=2&cursor={cursor}"), &t.key).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.body);
    assert_eq!(r.body["items"][0]["id"], ids[0].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_run_detail_and_token_mint() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let fb = submit_ok(&h, &t, "bug").await;
    let run = RunId::new();
    let cmd = RunCommand::Request {
        run,
        org: t.org,
        app: t.app,
        repo: RepoId::new(),
        feedback: fb,
        branch: "userz/fix-1".into(),
        kind: RunKind::Initial,
        wall_clock: Duration::from_secs(1200),
        at: h.now(),
    };
    h.bus.execute::<RunDecider>(&CommandBus::stream::<RunDecider>(run), CommandMeta::new(), &cmd).await.unwrap();
    let rm = h.read_models.clone();
    let org = t.org;
    eventually("run projected", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move { run_detail(rm.as_ref(), org, run).await.unwrap() }
    })
    .await;
    let r = h.get(&format!("/v1/agent-runs/{run}"), &t.key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["feedbackId"], fb.to_string());
    assert_eq!(r.body["status"], "queued");
    assert_eq!(r.body["branch"], "userz/fix-1");
    assert!(r.body["timings"]["queuedAt"].is_i64());
    // Mint: the token works for a private submission; the mint is audited.
    let r = h
        .send_json(
            "POST",
            "/v1/tokens/mint",
            &t.key,
            &json!({"appId": t.app.to_string(), "sub": "user-7", "expiresIn": 600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(r.body["expiresAt"].as_i64().unwrap() - r.body["issuedAt"].as_i64().unwrap(), 600_000);
    let s = h.submit(&t, &[("origin", ORIGIN), ("x-userz-user-token", &token)], &report("minted")).await;
    assert_eq!(s.status, 201, "{}", s.body);
    let r = h
        .send_json("POST", "/v1/tokens/mint", &t.key, &json!({"appId": t.app.to_string(), "sub": "u", "expiresIn": 5}))
        .await;
    r.assert_error(400, "invalid_body");
    assert_eq!(r.body["error"]["details"]["field"], "expiresIn");
    let r = h.send_json("POST", "/v1/tokens/mint", &t.key, &json!({"sub": "u"})).await;
    r.assert_error(400, "invalid_body");
    assert_eq!(r.body["error"]["details"]["field"], "appId");
    let rm = h.read_models.clone();
    eventually("token_minted audited", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move {
            let log = audit_log(rm.as_ref(), org, None, 100).await.unwrap();
            log.iter().any(|e| e.kind == "token_minted").then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_configured_when_an_app_has_no_signing_secret() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let bare = h.admin.create_app(t.org, userz_engine::admin::NewApp::named("bare")).await.unwrap();
    let rm = h.read_models.clone();
    eventually("app projected", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move { userz_http::directory::app(rm.as_ref(), bare.app).await.unwrap() }
    })
    .await;
    let r = h.send_json("POST", "/v1/tokens/mint", &t.key, &json!({"appId": bare.app.to_string(), "sub": "u"})).await;
    r.assert_error(409, "not_configured");
}

/// For every /v1 route: org A's key gets `not_found` (never data) for org B's ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_isolation_on_every_v1_route() {
    let h = start().await;
    let a = h.tenant("A").await;
    let b = h.tenant("B").await;
    let fb_b = submit_ok(&h, &b, "B's secret report").await;
    drive_to_awaiting_manual(&h, fb_b).await;
    let run_b = RunId::new();
    let cmd = RunCommand::Request {
        run: run_b,
        org: b.org,
        app: b.app,
        repo: RepoId::new(),
        feedback: fb_b,
        branch: "userz/b".into(),
        kind: RunKind::Initial,
        wall_clock: Duration::from_secs(60),
        at: h.now(),
    };
    h.bus.execute::<RunDecider>(&CommandBus::stream::<RunDecider>(run_b), CommandMeta::new(), &cmd).await.unwrap();
    let rm = h.read_models.clone();
    let org_b = b.org;
    eventually("B projected", Duration::from_secs(5), || {
        let rm = rm.clone();
        async move {
            run_detail(rm.as_ref(), org_b, run_b).await.unwrap()?;
            feedback_summary(rm.as_ref(), org_b, fb_b).await.unwrap()
        }
    })
    .await;
    // B can see its own data (so the refusals below are about ownership).
    assert_eq!(h.get(&format!("/v1/feedback/{fb_b}"), &b.key).await.status, 200);
    assert_eq!(h.get(&format!("/v1/agent-runs/{run_b}"), &b.key).await.status, 200);

    let mut checked = std::collections::BTreeSet::new();
    let r = h.get(&format!("/v1/feedback/{fb_b}"), &a.key).await;
    r.assert_error(404, "not_found");
    assert!(!r.body.to_string().contains("secret report"));
    checked.insert(("GET", "/v1/feedback/{id}"));
    let r = h.send_json("PATCH", &format!("/v1/feedback/{fb_b}"), &a.key, &json!({"status": "queued"})).await;
    r.assert_error(404, "not_found");
    checked.insert(("PATCH", "/v1/feedback/{id}"));
    let r = h.get(&format!("/v1/agent-runs/{run_b}"), &a.key).await;
    r.assert_error(404, "not_found");
    checked.insert(("GET", "/v1/agent-runs/{id}"));
    let r = h.get(&format!("/v1/feedback?appId={}", b.app), &a.key).await;
    r.assert_error(404, "not_found");
    let r = h.get("/v1/feedback?includeDuplicates=true", &a.key).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.to_string().contains(&fb_b.to_string()), "A's listing shows B's report: {}", r.body);
    checked.insert(("GET", "/v1/feedback"));
    let r = h.get("/v1/apps", &a.key).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert!(!r.body.to_string().contains(&b.app.to_string()));
    checked.insert(("GET", "/v1/apps"));
    let r = h.send_json("POST", "/v1/tokens/mint", &a.key, &json!({"appId": b.app.to_string(), "sub": "u"})).await;
    r.assert_error(404, "not_found");
    checked.insert(("POST", "/v1/tokens/mint"));
    // The submit route takes no sk_ key: B's pub_ key submits to B only, and
    // A's key cannot be used there at all.
    let r = h
        .request(
            "POST",
            "/v1/feedback",
            &[("authorization", &format!("Bearer {}", a.key)), ("origin", ORIGIN)],
            Some(report("x").to_string().as_bytes()),
        )
        .await;
    r.assert_error(401, "missing_authorization");
    checked.insert(("POST", "/v1/feedback"));
    // Uploads: the route takes widget credentials only, so A's sk_ key is no
    // credential there; B's pub_ key gets a ticket under B's prefix only, and
    // that ticket rewritten to name A's org no longer verifies.
    let ticket_req =
        serde_json::to_vec(&json!({"kind": "screenshot", "contentType": "image/png", "byteSize": 4})).unwrap();
    let r = h
        .request(
            "POST",
            "/v1/feedback/upload-url",
            &[("authorization", &format!("Bearer {}", a.key)), ("origin", ORIGIN)],
            Some(&ticket_req),
        )
        .await;
    r.assert_error(401, "missing_authorization");
    let r = h
        .request(
            "POST",
            "/v1/feedback/upload-url",
            &[("x-userz-public-key", &b.public_key), ("origin", ORIGIN), ("content-type", "application/json")],
            Some(&ticket_req),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["key"].as_str().unwrap().starts_with(&format!("orgs/{}/", b.org)), "{}", r.body);
    checked.insert(("POST", "/v1/feedback/upload-url"));
    let url = r.body["uploadUrl"].as_str().unwrap();
    let ticket = url.rsplit('/').next().unwrap();
    let (claims, sig) = ticket.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(b64.decode(claims).unwrap()).unwrap();
    assert!(claims.contains(&b.org.as_uuid().to_string()), "{claims}");
    let forged = claims.replace(&b.org.as_uuid().to_string(), &a.org.as_uuid().to_string());
    let forged = format!("/v1/uploads/{}.{sig}", b64.encode(forged));
    let r = h.request("PUT", &forged, &[("content-type", "image/png")], Some(b"\x89PNG")).await;
    r.assert_error(401, "invalid_signature");
    checked.insert(("PUT", "/v1/uploads/{ticket}"));
    // Webhooks: the provider's signature is the only credential. A's sk_ key
    // does not let a chat-ops button act on B's report.
    let button = format!(
        "payload={}",
        form_urlencoded::byte_serialize(
            json!({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"value": format!("queue:{fb_b}")}]})
                .to_string()
                .as_bytes()
        )
        .collect::<String>()
    );
    let r = h
        .request(
            "POST",
            "/v1/webhooks/slack",
            &[("authorization", &format!("Bearer {}", a.key)), ("content-type", "application/x-www-form-urlencoded")],
            Some(button.as_bytes()),
        )
        .await;
    r.assert_error(401, "invalid_signature");
    checked.insert(("POST", "/v1/webhooks/{provider}"));
    // The same answer as for an id that does not exist at all.
    let missing = h.get(&format!("/v1/feedback/{}", FeedbackId::new()), &a.key).await;
    let foreign = h.get(&format!("/v1/feedback/{fb_b}"), &a.key).await;
    assert_eq!(missing.body, foreign.body);
    // Every /v1 route of the table was checked.
    for spec in userz_http::route_table() {
        if spec.path.starts_with("/v1/") {
            assert!(checked.contains(&(spec.method.as_str(), spec.path)), "{} {} not checked", spec.method, spec.path);
        }
    }
    // B's report is untouched.
    assert_eq!(h.get(&format!("/v1/feedback/{fb_b}"), &b.key).await.body["status"], "awaiting_manual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_for_unknown_ids_and_routes() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    h.get(&format!("/v1/feedback/{}", FeedbackId::new()), &t.key).await.assert_error(404, "not_found");
    h.get("/v1/feedback/not-an-id", &t.key).await.assert_error(404, "not_found");
    h.get(&format!("/v1/agent-runs/{}", RunId::new()), &t.key).await.assert_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_cors_preflight_and_response_headers() {
    let h = start().await;
    let t = h.tenant("Acme").await;
    let r = h
        .request(
            "OPTIONS",
            "/v1/feedback",
            &[
                ("origin", ORIGIN),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type, x-userz-public-key"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(r.header("access-control-allow-headers").unwrap().contains("x-userz-user-token"));
    let r = h.submit(&t, &[("origin", ORIGIN)], &report("cors")).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    // Error answers are readable by the widget too; the org API gets no CORS headers.
    let r = h.submit(&t, &[("origin", "https://evil.example")], &report("x")).await;
    r.assert_error(403, "origin_not_allowed");
    let r = h
        .request("GET", "/v1/apps", &[("origin", ORIGIN), ("authorization", &format!("Bearer {}", t.key))], None)
        .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_url_then_put_through_the_api_router_then_attach_only_to_the_same_org() {
    let h = start().await;
    let a = h.tenant("A").await;
    let b = h.tenant("B").await;
    let png = b"\x89PNG\r\n\x1a\n-not-really-an-image";
    let ticket =
        serde_json::to_vec(&json!({"kind": "screenshot", "contentType": "image/png", "byteSize": png.len()})).unwrap();
    let widget = |t: &Tenant| {
        vec![
            ("x-userz-public-key".to_string(), t.public_key.clone()),
            ("origin".to_string(), ORIGIN.to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ]
    };
    let hdrs = widget(&a);
    let hdrs: Vec<(&str, &str)> = hdrs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let issued = h.request("POST", "/v1/feedback/upload-url", &hdrs, Some(&ticket)).await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let key = issued.body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("orgs/{}/screenshots/", a.org)), "{key}");
    let url = issued.body["uploadUrl"].as_str().unwrap();
    let path = url.strip_prefix(&format!("http://{}", h.addr)).expect("the ticket points at this server");

    // The PUT through the same router (its path parameter is matched twice:
    // by the route table and by the upload module's own router).
    let put = h.request("PUT", path, &[("content-type", "image/png")], Some(png)).await;
    assert_eq!(put.status, 201, "{}", put.body);
    assert_eq!(put.body["key"], key.as_str());
    let stored = h.blobs.get(&userz_core::ports::BlobKey::parse_any(&key).unwrap()).await.unwrap();
    assert_eq!(&stored[..], &png[..]);

    let attach = |key: &str| {
        let mut body = report("Screenshot attached");
        body["attachments"] =
            json!([{"key": key, "kind": "screenshot", "contentType": "image/png", "byteSize": png.len()}]);
        body
    };
    // A's report may reference A's upload.
    let r = h.submit(&a, &[("origin", ORIGIN)], &attach(&key)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // B's report may not reference A's upload, nor a key outside any org or
    // one that climbs out of B's prefix.
    for foreign in [
        key.clone(),
        "uploads/a.png".to_string(),
        format!("orgs/{}/../{}/screenshots/x.png", b.org, a.org),
        format!("orgs/{}", b.org),
    ] {
        let r = h.submit(&b, &[("origin", ORIGIN)], &attach(&foreign)).await;
        r.assert_error(403, "forbidden");
        assert_eq!(r.body["error"]["details"]["field"], "attachments[0].key", "{foreign}: {}", r.body);
        assert_eq!(r.body["error"]["details"]["rule"], "foreign_key", "{foreign}");
    }
    // B's own prefix is fine.
    let own = format!("orgs/{}/attachments/notes.txt", b.org);
    assert_eq!(h.submit(&b, &[("origin", ORIGIN)], &attach(&own)).await.status, 201);
}
