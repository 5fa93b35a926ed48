//! Every request the GitHub provider sends and every response the GitHub fake
//! returns, validated against GitHub's own OpenAPI description
//! (`contracts/github.openapi.subset.json`, OpenAPI 3.0.3).
//!
//! OpenAPI 3.0 schemas are JSON Schema with `nullable`; they are turned into
//! plain JSON Schema (`nullable: true` → also allow `null`) and compiled with
//! the whole `components` section beside them, so `#/components/...` refs
//! resolve inside the document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use common::{agent_commit, env, run, target, LOCATION};
use jsonschema::Validator;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userz_core::ids::FeedbackId;
use userz_core::ports::{PrRequest, ReviewPayloads, VcsProvider};
use userz_fakes::github_fake::Exchange;
use userz_vcs_github::GitHubReviewPayloads;

const CONTRACT: &str = include_str!("../../contracts/github.openapi.subset.json");

/// OpenAPI 3.0 `nullable` → JSON Schema.
fn convert(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(convert),
        Value::Object(o) => {
            o.values_mut().for_each(convert);
            if o.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::Array(e)) = o.get_mut("enum") {
                    e.push(Value::Null);
                }
                match o.get("type").cloned() {
                    Some(Value::String(t)) => {
                        o.insert("type".into(), json!([t, "null"]));
                    }
                    _ => {
                        let inner = Value::Object(std::mem::take(o));
                        o.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                    }
                }
            }
        }
        _ => {}
    }
}

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut d: Value = serde_json::from_str(CONTRACT).unwrap();
        convert(&mut d);
        d
    })
}

fn validator(schema: &Value) -> Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc()["components"],
    });
    jsonschema::draft202012::options().build(&root).unwrap()
}

/// Follows a `#/components/...` ref of the document (for responses and
/// parameters, which are not schemas).
fn deref(v: &'static Value) -> &'static Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(doc().pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {r}"))),
        None => v,
    }
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    validator(schema).iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

fn operation(method: &str, path: &str) -> &'static Value {
    let op = &doc()["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the contract");
    op
}

fn parameter(op: &'static Value, name: &str, location: &str) -> Option<&'static Value> {
    op["parameters"].as_array()?.iter().map(deref).find(|p| p["name"] == name && p["in"] == location)
}

/// Checks one exchange; returns the problems found.
fn check(x: &Exchange) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((method, path)) = x.operation else { return vec![format!("{} {} is not an operation", x.method, x.path)] };
    let op = operation(method, path);
    let tag = format!("{} {}", x.method, x.path);

    // Headers GitHub asks every client for.
    let h = &x.request_headers;
    if h.get("accept").map(String::as_str) != Some("application/vnd.github+json") {
        problems.push(format!("{tag}: Accept {:?}", h.get("accept")));
    }
    if h.get("x-github-api-version").map(String::as_str) != Some("2022-11-28") {
        problems.push(format!("{tag}: X-GitHub-Api-Version {:?}", h.get("x-github-api-version")));
    }
    if h.get("user-agent").is_none_or(|u| u.is_empty()) {
        problems.push(format!("{tag}: no User-Agent"));
    }
    if !h.get("authorization").is_some_and(|a| a.starts_with("Bearer ")) {
        problems.push(format!("{tag}: no bearer authorization"));
    }

    // Path parameters, typed as the contract says.
    for (tpl, seg) in path.split('/').zip(x.path.split('/')) {
        if let Some(name) = tpl.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            let p = parameter(op, name, "path").unwrap_or_else(|| panic!("{name} undefined"));
            let value = if p["schema"]["type"] == "integer" {
                seg.parse::<i64>().map(Value::from).unwrap_or(Value::String(seg.into()))
            } else {
                Value::String(seg.into())
            };
            for e in errors(&p["schema"], &value) {
                problems.push(format!("{tag}: path parameter {name}: {e}"));
            }
        }
    }
    // Query parameters: each must be one the operation defines, of its type.
    for kv in x.query.as_deref().unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = percent_decode(v);
        match parameter(op, k, "query") {
            None => problems.push(format!("{tag}: query parameter {k} is not in the contract")),
            Some(p) => {
                for e in errors(&p["schema"], &Value::String(v)) {
                    problems.push(format!("{tag}: query {k}: {e}"));
                }
            }
        }
    }
    // Request body.
    if let Some(body) = &x.request_body {
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            problems.push(format!("{tag}: sends a body the operation does not take"));
        } else {
            for e in errors(schema, body) {
                problems.push(format!("{tag}: request body: {e}"));
            }
        }
    } else if op["requestBody"]["required"] == true {
        problems.push(format!("{tag}: required request body missing"));
    }
    // Response: a declared status validates against its schema; an
    // undeclared one (GitHub's generic 401/5xx) against `basic-error`.
    let status = x.status.to_string();
    let schema = match op["responses"].get(&status) {
        Some(r) => deref(r)["content"]["application/json"]["schema"].clone(),
        None if [401, 429, 500, 502, 503].contains(&x.status) => json!({"$ref": "#/components/schemas/basic-error"}),
        None => {
            problems.push(format!("{tag}: status {status} is not declared"));
            Value::Null
        }
    };
    if !schema.is_null() {
        for e in errors(&schema, &x.response_body) {
            problems.push(format!("{tag} → {status}: {e}"));
        }
    }
    problems
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A raw HTTP/1.1 request to the fake (to reach responses the provider
/// avoids by design, like the duplicate-PR 422).
async fn raw(base: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: userz-contract-test\r\nAccept: application/vnd.github+json\r\n\
         X-GitHub-Api-Version: 2022-11-28\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_and_response_matches_githubs_published_description() {
    let e = env().await;
    let dir = tempfile::tempdir().unwrap();
    e.fake.queue_token(&e.token);
    let r = run();
    // base branch unset: the default branch comes from `repos/get`.
    let ws = e.provider.prepare_workspace(&target(None), r, "userz/contract", false, dir.path()).await.unwrap();
    agent_commit(&ws, "f.txt", "x\n", "Agent change");
    e.provider.push(&target(None), &ws).await.unwrap();
    let request = PrRequest {
        target: target(None),
        branch: ws.branch.clone(),
        title: "Fix".into(),
        body: "Machine-written, unreviewed.".into(),
        run: r,
        feedback: FeedbackId::new(),
    };
    let pr = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(pr.created);
    assert!(!e.provider.open_or_update_pr(&request).await.unwrap().created);
    // Responses the provider only meets on failure paths.
    let base = e.fake.base_url();
    assert_eq!(raw(&base, "GET", &format!("/repos/{LOCATION}/pulls/{}", pr.number), &e.token, None).await, 200);
    let dup = json!({"title": "Again", "head": ws.branch, "base": "main", "draft": true});
    assert_eq!(raw(&base, "POST", &format!("/repos/{LOCATION}/pulls"), &e.token, Some(&dup)).await, 422);
    assert_eq!(raw(&base, "GET", &format!("/repos/{LOCATION}/pulls?state=open"), "ghs_wrong", None).await, 401);
    e.fake.revoke_all_tokens();
    assert!(e.provider.open_or_update_pr(&request).await.is_err());
    assert!(e.provider.open_or_update_pr(&request).await.is_ok());

    let exchanges = e.fake.exchanges();
    let mut seen: Vec<(&str, u16)> = exchanges.iter().filter_map(|x| x.operation.map(|o| (o.1, x.status))).collect();
    seen.sort();
    seen.dedup();
    for expected in [
        ("/app/installations/{installation_id}/access_tokens", 201),
        ("/repos/{owner}/{repo}", 200),
        ("/repos/{owner}/{repo}/pulls", 200),
        ("/repos/{owner}/{repo}/pulls", 201),
        ("/repos/{owner}/{repo}/pulls", 422),
        ("/repos/{owner}/{repo}/pulls", 401),
        ("/repos/{owner}/{repo}/pulls/{pull_number}", 200),
    ] {
        assert!(seen.contains(&expected), "{expected:?} not exercised: {seen:?}");
    }
    let problems: Vec<String> = exchanges.iter().flat_map(check).collect();
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
}

#[test]
fn the_validator_catches_what_breaks_the_contract() {
    let token = json!({"$ref": "#/components/schemas/installation-token"});
    assert!(errors(&token, &json!({"token": "ghs_x", "expires_at": "2026-01-01T00:00:00Z"})).is_empty());
    assert!(!errors(&token, &json!({"expires_at": "2026-01-01T00:00:00Z"})).is_empty(), "token is required");

    let create =
        &operation("post", "/repos/{owner}/{repo}/pulls")["requestBody"]["content"]["application/json"]["schema"];
    assert!(errors(create, &json!({"title": "t", "head": "b", "base": "main", "draft": true})).is_empty());
    assert!(!errors(create, &json!({"title": "t", "head": "b", "base": "main", "draft": "yes"})).is_empty());

    let pull = json!({"$ref": "#/components/schemas/pull-request"});
    assert!(!errors(&pull, &json!({"number": 1})).is_empty(), "a bare object is no pull request");
    // `nullable` is honoured: `body: null` is fine, `body: 5` is not.
    let simple = json!({"$ref": "#/components/schemas/nullable-simple-user"});
    assert!(errors(&simple, &Value::Null).is_empty());
    assert!(!errors(&simple, &json!(5)).is_empty());

    let list = operation("get", "/repos/{owner}/{repo}/pulls");
    let state = parameter(list, "state", "query").unwrap();
    assert!(errors(&state["schema"], &json!("open")).is_empty());
    assert!(!errors(&state["schema"], &json!("bogus")).is_empty());
}

/// The `x-webhooks` entry `name`: its body schema and header parameters.
fn webhook(name: &str) -> (&'static Value, Vec<&'static Value>) {
    let op = &doc()["x-webhooks"][name]["post"];
    assert!(op.is_object(), "webhook {name} is not in the contract");
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    let headers = op["parameters"].as_array().unwrap().iter().map(deref).filter(|p| p["in"] == "header").collect();
    (schema, headers)
}

/// Validates a delivery built by the testkit (body and headers) against the
/// published webhook description.
fn webhook_problems(name: &str, body: &Value, headers: &http::HeaderMap) -> Vec<String> {
    let (schema, params) = webhook(name);
    let mut problems: Vec<String> = errors(schema, body).into_iter().map(|e| format!("{name} body: {e}")).collect();
    for p in params {
        let header = p["name"].as_str().unwrap();
        match headers.get(header.to_ascii_lowercase()) {
            None => problems.push(format!("{name}: header {header} missing")),
            Some(v) => {
                for e in errors(&p["schema"], &json!(v.to_str().unwrap())) {
                    problems.push(format!("{name}: header {header}: {e}"));
                }
            }
        }
    }
    problems
}

#[test]
fn webhook_deliveries_used_in_tests_match_githubs_published_schemas() {
    use userz_fakes::vcs_webhooks as wh;
    for merged in [true, false] {
        let body = wh::github_pull_request_closed(LOCATION, 12, "userz/fb-1", merged);
        let raw = serde_json::to_vec(&body).unwrap();
        let headers = wh::github_headers("pull_request", "72d3162e-cc78-11e3-81ab-4c9367dc0958", b"s", &raw);
        let problems = webhook_problems("pull-request-closed", &body, &headers);
        assert!(problems.is_empty(), "merged={merged}:\n{}", problems.join("\n"));
        // What the mapping reads is where the schema puts it.
        assert_eq!(body["pull_request"]["merged"], json!(merged));
        let notice = GitHubReviewPayloads.parse("pull_request", &raw).unwrap().unwrap();
        assert_eq!(notice.number, 12);
        assert_eq!(notice.repository.full_name, LOCATION);
    }
    let body = wh::github_review_comment_created(LOCATION, 12, "userz/fb-1", 77, "src/a.ts", 3, "[nit] spacing");
    let raw = serde_json::to_vec(&body).unwrap();
    let headers = wh::github_headers("pull_request_review_comment", "d-2", b"s", &raw);
    let problems = webhook_problems("pull-request-review-comment-created", &body, &headers);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let notice = GitHubReviewPayloads.parse("pull_request_review_comment", &raw).unwrap().unwrap();
    assert!(matches!(
        notice.change,
        userz_core::ports::InboundChange::DiffComment { provider_comment_id: 77, line: 3, .. }
    ));
}

#[test]
fn the_webhook_schemas_catch_broken_deliveries() {
    use userz_fakes::vcs_webhooks as wh;
    let (closed, _) = webhook("pull-request-closed");
    let mut body = wh::github_pull_request_closed(LOCATION, 12, "b", true);
    body["action"] = json!("opened");
    assert!(!errors(closed, &body).is_empty(), "action must be closed");
    let mut body = wh::github_pull_request_closed(LOCATION, 12, "b", true);
    body.as_object_mut().unwrap().remove("number");
    assert!(!errors(closed, &body).is_empty(), "number is required");
    let (comment, _) = webhook("pull-request-review-comment-created");
    let mut body = wh::github_review_comment_created(LOCATION, 12, "b", 1, "a", 1, "x");
    body["comment"]["line"] = json!("one");
    assert!(!errors(comment, &body).is_empty(), "line is an integer");
}
