//! Every request the GitLab provider sends and every response the GitLab fake
//! returns, validated against GitLab's own published API description
//! (`contracts/gitlab.merge-requests.subset.json`, Swagger 2.0).
//!
//! Swagger 2.0 schemas are a JSON Schema draft 4 dialect: each schema is
//! compiled as draft 4 with the document's whole `definitions` section
//! beside it, so `#/definitions/...` refs resolve inside the document.
//! Non-body parameters carry their type inline (`type`, `format`, `enum`,
//! `items`); they are validated as that schema. Statuses the description
//! declares without a schema (`400`, `401`, `404`, `409`, `422`) and GitLab's
//! generic `429`/`5xx` are checked for GitLab's error shape (`message` or
//! `error`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use common::{agent_commit, env_at, run, target};
use jsonschema::Validator;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userz_core::ids::FeedbackId;
use userz_core::ports::{PrRequest, VcsProvider};
use userz_fakes::gitlab_fake::{Exchange, MERGE_REQUESTS_PATH};

const CONTRACT: &str = include_str!("../../contracts/gitlab.merge-requests.subset.json");

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(CONTRACT).unwrap())
}

fn validator(schema: &Value) -> Validator {
    let root = json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "allOf": [schema],
        "definitions": doc()["definitions"],
    });
    jsonschema::draft4::options().build(&root).unwrap()
}

fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    validator(schema).iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

fn operation(method: &str, path: &str) -> &'static Value {
    let op = &doc()["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the contract");
    op
}

/// Follows a `#/definitions/...` ref of the document.
fn deref(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(doc().pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {r}"))),
        None => v,
    }
}

fn parameter(op: &'static Value, name: &str, location: &str) -> Option<&'static Value> {
    op["parameters"].as_array()?.iter().find(|p| p["name"] == name && p["in"] == location)
}

/// The inline schema of a non-body Swagger 2.0 parameter.
fn parameter_schema(p: &Value) -> Value {
    let mut schema = Map::new();
    for k in ["type", "format", "enum", "items", "minimum", "maximum", "pattern"] {
        if let Some(v) = p.get(k) {
            schema.insert(k.into(), v.clone());
        }
    }
    Value::Object(schema)
}

/// A query/path value typed as the parameter says (they travel as text).
fn typed(p: &Value, raw: &str) -> Value {
    match p["type"].as_str() {
        Some("integer") => raw.parse::<i64>().map(Value::from).unwrap_or(Value::String(raw.into())),
        Some("boolean") => raw.parse::<bool>().map(Value::from).unwrap_or(Value::String(raw.into())),
        Some("array") => Value::Array(raw.split(',').map(|s| Value::String(s.into())).collect()),
        _ => Value::String(raw.into()),
    }
}

fn gitlab_error_shape(body: &Value) -> bool {
    body.get("message").is_some_and(|m| m.is_string() || m.is_array() || m.is_object())
        || body.get("error").is_some_and(Value::is_string)
}

/// Checks one exchange; returns the problems found.
fn check(x: &Exchange) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((method, path)) = x.operation else { return vec![format!("{} {} is not an operation", x.method, x.path)] };
    let op = operation(method, path);
    let tag = format!("{} {}", x.method, x.path);

    // The security scheme the description declares: the `PRIVATE-TOKEN` header.
    let h = &x.request_headers;
    let declared = &doc()["securityDefinitions"]["access_token_header"];
    let header = declared["name"].as_str().unwrap().to_ascii_lowercase();
    if h.get(&header).is_none_or(|t| t.is_empty()) {
        problems.push(format!("{tag}: no {header} header"));
    }
    if h.get("user-agent").is_none_or(|u| u.is_empty()) {
        problems.push(format!("{tag}: no User-Agent"));
    }
    if h.get("accept").map(String::as_str) != Some("application/json") {
        problems.push(format!("{tag}: Accept {:?}", h.get("accept")));
    }

    // Path parameters, typed as the contract says.
    let tpl_segs: Vec<&str> = path.split('/').collect();
    let segs: Vec<&str> = x.api_path.split('/').collect();
    if tpl_segs.len() != segs.len() {
        problems.push(format!("{tag}: path does not match {path}"));
    }
    for (tpl, seg) in tpl_segs.iter().zip(&segs) {
        match tpl.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) => {
                let p = parameter(op, name, "path").unwrap_or_else(|| panic!("{name} undefined"));
                let value = percent_decode(seg);
                for e in errors(&parameter_schema(p), &typed(p, &value)) {
                    problems.push(format!("{tag}: path parameter {name}: {e}"));
                }
                // "The ID or URL-encoded path of the project."
                let is_id = value.bytes().all(|b| b.is_ascii_digit());
                let is_encoded_path = value.contains('/') && !seg.contains('/') && seg.contains("%2F");
                if !(is_id || is_encoded_path) {
                    problems.push(format!("{tag}: {name} {seg:?} is neither an id nor a URL-encoded path"));
                }
            }
            None if tpl != seg => problems.push(format!("{tag}: segment {seg:?} is not {tpl:?}")),
            None => {}
        }
    }
    // Query parameters: each must be one the operation defines, of its type.
    for kv in x.query.as_deref().unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match parameter(op, &percent_decode(k), "query") {
            None => problems.push(format!("{tag}: query parameter {k} is not in the contract")),
            Some(p) => {
                for e in errors(&parameter_schema(p), &typed(p, &percent_decode(v))) {
                    problems.push(format!("{tag}: query {k}: {e}"));
                }
            }
        }
    }
    // Request body: the operation's `in: body` parameter.
    let body_param = op["parameters"].as_array().into_iter().flatten().find(|p| p["in"] == "body");
    match (&x.request_body, body_param) {
        (Some(_), None) => problems.push(format!("{tag}: sends a body the operation does not take")),
        (Some(body), Some(p)) => {
            for e in errors(&p["schema"], body) {
                problems.push(format!("{tag}: request body: {e}"));
            }
            // The description does not close its objects; our client must
            // still send only fields it declares (e.g. no invented `draft`).
            let declared = deref(&p["schema"])["properties"].as_object();
            for key in body.as_object().into_iter().flat_map(|o| o.keys()) {
                if !declared.is_some_and(|d| d.contains_key(key)) {
                    problems.push(format!("{tag}: request body field {key} is not in the contract"));
                }
            }
        }
        (None, Some(p)) if p["required"] == true => problems.push(format!("{tag}: required request body missing")),
        (None, _) => {}
    }
    // Response.
    let status = x.status.to_string();
    match op["responses"].get(&status) {
        Some(r) if r.get("schema").is_some() => {
            for e in errors(&r["schema"], &x.response_body) {
                problems.push(format!("{tag} → {status}: {e}"));
            }
        }
        Some(_) if x.status >= 400 => {
            if !gitlab_error_shape(&x.response_body) {
                problems.push(format!("{tag} → {status}: not GitLab's error shape: {}", x.response_body));
            }
        }
        Some(_) => problems.push(format!("{tag} → {status}: success without a schema")),
        None if [429, 500, 502, 503].contains(&x.status) => {
            if !gitlab_error_shape(&x.response_body) {
                problems.push(format!("{tag} → {status}: not GitLab's error shape: {}", x.response_body));
            }
        }
        None => problems.push(format!("{tag}: status {status} is not declared")),
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
/// avoids by design, like the duplicate-MR 409).
async fn raw(base: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> u16 {
    let rest = base.trim_start_matches("http://");
    let (addr, prefix) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {prefix}/api/v4{path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: userz-contract-test\r\n\
         Accept: application/json\r\nPRIVATE-TOKEN: {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_and_response_matches_gitlabs_published_description() {
    // Mounted under a prefix: the contract paths are matched after it.
    let e = env_at("/gitlab").await;
    let dir = tempfile::tempdir().unwrap();
    let r = run();
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
    let mr = e.provider.open_or_update_pr(&request).await.unwrap();
    assert!(mr.created);
    assert!(!e.provider.open_or_update_pr(&request).await.unwrap().created);
    // Responses the provider only meets on failure paths.
    let base = e.fake.base_url();
    let project = format!("/projects/{}/merge_requests", e.project_id);
    let dup = json!({"title": "Draft: Again", "source_branch": ws.branch, "target_branch": "main"});
    assert_eq!(raw(&base, "POST", &project, &e.token, Some(&dup)).await, 409);
    let blank = json!({"title": "", "source_branch": "userz/other", "target_branch": "main"});
    assert_eq!(raw(&base, "POST", &project, &e.token, Some(&blank)).await, 400);
    assert_eq!(raw(&base, "GET", &format!("{project}?state=opened"), "glpat-wrong", None).await, 401);
    assert_eq!(raw(&base, "GET", "/projects/acme%2Fnope/merge_requests?state=opened", &e.token, None).await, 404);
    assert_eq!(raw(&base, "GET", &format!("{project}?state=all&target_branch=main"), &e.token, None).await, 200);
    e.fake.fail_next(502, "502 Bad Gateway");
    assert!(e.provider.open_or_update_pr(&request).await.is_err());
    e.fake.revoke_all_tokens();
    assert!(e.provider.open_or_update_pr(&request).await.is_err());

    let exchanges = e.fake.exchanges();
    let mut seen: Vec<(&str, u16)> = exchanges.iter().filter_map(|x| x.operation.map(|o| (o.0, x.status))).collect();
    seen.sort();
    seen.dedup();
    for expected in
        [("get", 200), ("get", 401), ("get", 404), ("get", 502), ("post", 201), ("post", 400), ("post", 409)]
    {
        assert!(seen.contains(&expected), "{expected:?} not exercised: {seen:?}");
    }
    assert!(exchanges.iter().all(|x| x.path.starts_with("/gitlab/api/v4/")));
    // The provider's own requests (User-Agent `userz-vcs-gitlab/…` differs
    // from the raw ones) are among them.
    assert!(exchanges.iter().any(|x| x.request_headers.get("user-agent").is_some_and(|u| u == "userz-tests")));
    let problems: Vec<String> = exchanges.iter().flat_map(check).collect();
    assert!(problems.is_empty(), "contract violations:\n{}", problems.join("\n"));
}

#[test]
fn the_validator_catches_what_breaks_the_contract() {
    let create = operation("post", MERGE_REQUESTS_PATH);
    let body = &create["parameters"].as_array().unwrap().iter().find(|p| p["in"] == "body").unwrap()["schema"];
    assert_eq!(body["$ref"], "#/definitions/postApiV4ProjectsIdMergeRequests", "resolved through definitions");
    let ok = json!({"title": "Draft: t", "source_branch": "b", "target_branch": "main", "description": "d"});
    assert!(errors(body, &ok).is_empty());
    assert!(!errors(body, &json!({"title": "t", "source_branch": "b"})).is_empty(), "target_branch is required");
    assert!(!errors(body, &json!({"title": 5, "source_branch": "b", "target_branch": "m"})).is_empty());

    let mr = &create["responses"]["201"]["schema"];
    let good = json!({"id": 1, "iid": 1, "project_id": 2, "title": "t", "web_url": "http://x", "author": {"id": 3}});
    assert!(errors(mr, &good).is_empty());
    assert!(!errors(mr, &json!({"iid": "one"})).is_empty(), "iid must be an integer");
    assert!(!errors(mr, &json!({"author": {"id": "x"}})).is_empty(), "nested definitions are checked");
    // Why the fake leaves `draft` out: GitLab sends a boolean, the
    // description says string.
    assert!(!errors(mr, &json!({"draft": true})).is_empty());

    let list = operation("get", MERGE_REQUESTS_PATH);
    let state = parameter(list, "state", "query").unwrap();
    assert!(errors(&parameter_schema(state), &json!("opened")).is_empty());
    assert!(!errors(&parameter_schema(state), &json!("open")).is_empty(), "GitHub's word is not GitLab's");

    // Whole exchanges: a request without the token header, with a query
    // parameter the operation lacks, and with the project path not encoded.
    let x = Exchange {
        operation: Some(("get", MERGE_REQUESTS_PATH)),
        method: "GET".into(),
        path: "/api/v4/projects/acme/widgets/merge_requests".into(),
        api_path: "/api/v4/projects/acme/widgets/merge_requests".into(),
        query: Some("draft=true&state=opened".into()),
        request_headers: [("user-agent".to_string(), "t".to_string()), ("accept".into(), "application/json".into())]
            .into_iter()
            .collect(),
        request_body: None,
        status: 200,
        response_body: json!([{"iid": "x"}]),
    };
    let problems = check(&x).join("\n");
    for expected in ["no private-token header", "query parameter draft", "does not match", "iid"] {
        assert!(problems.contains(expected), "{expected:?} not flagged:\n{problems}");
    }
    let invented = Exchange {
        operation: Some(("post", MERGE_REQUESTS_PATH)),
        method: "POST".into(),
        path: "/api/v4/projects/7/merge_requests".into(),
        api_path: "/api/v4/projects/7/merge_requests".into(),
        query: None,
        request_headers: x.request_headers.clone(),
        request_body: Some(json!({"title": "t", "source_branch": "b", "target_branch": "main", "draft": true})),
        status: 201,
        response_body: json!({"iid": 1}),
    };
    assert!(check(&invented).join("\n").contains("request body field draft is not in the contract"));
    let error_without_shape = Exchange { status: 404, response_body: json!({"oops": 1}), ..x };
    assert!(check(&error_without_shape).join("\n").contains("not GitLab's error shape"));
}
