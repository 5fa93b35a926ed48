//! A local fake of the GitHub REST API, serving exactly the operations the
//! GitHub App provider uses, with GitHub's paths, headers, status codes and
//! JSON fields (as published in `contracts/github.openapi.subset.json`):
//!
//! | Operation | Path |
//! |---|---|
//! | `apps/create-installation-access-token` | `POST /app/installations/{installation_id}/access_tokens` |
//! | `repos/get` | `GET /repos/{owner}/{repo}` |
//! | `pulls/list` | `GET /repos/{owner}/{repo}/pulls` (`head`, `state`) |
//! | `pulls/create` | `POST /repos/{owner}/{repo}/pulls` |
//! | `pulls/get` | `GET /repos/{owner}/{repo}/pulls/{pull_number}` |
//! | `pulls/update` | `PATCH /repos/{owner}/{repo}/pulls/{pull_number}` |
//!
//! What it checks, like GitHub does:
//! - the app JWT (RS256, signature verified with the App's public key, `iss`
//!   the app id, `exp` at most 10 minutes ahead, `iat` not in the future);
//! - requested permissions are within the installation's grant, requested
//!   repositories belong to the installation;
//! - installation tokens: known, not revoked, not expired, scoped to the
//!   repository and carrying the permission the operation needs; anything
//!   else is `401 Bad credentials` (or `403`/`404` as GitHub answers);
//! - `User-Agent` present, `X-GitHub-Api-Version: 2022-11-28` when sent;
//! - one open pull request per head branch (`422` for a duplicate).
//!
//! Every exchange is recorded ([`GitHubFake::exchanges`]) so a test can
//! validate requests and responses against the published description, and
//! token requests separately ([`GitHubFake::token_requests`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The API version the fake serves.
pub const API_VERSION: &str = "2022-11-28";
const DOCS: &str = "https://docs.github.com/rest";

/// One recorded request/response pair.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The operation as the published description keys it, e.g.
    /// `post /repos/{owner}/{repo}/pulls`; `None` for unknown routes.
    pub operation: Option<(&'static str, &'static str)>,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Query string (raw).
    pub query: Option<String>,
    /// Request headers (lower-case names).
    pub request_headers: BTreeMap<String, String>,
    /// Request body as JSON (`None` when empty).
    pub request_body: Option<Value>,
    /// Response status.
    pub status: u16,
    /// Response body.
    pub response_body: Value,
}

/// One recorded `POST /app/installations/{id}/access_tokens`.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Installation id from the path.
    pub installation_id: u64,
    /// The JSON body sent (`Value::Null` when none).
    pub body: Value,
    /// Claims of the verified app JWT.
    pub jwt_claims: Value,
    /// The token issued (`None` when refused).
    pub issued: Option<String>,
}

/// A pull request held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePull {
    /// `owner/name`.
    pub repo: String,
    /// Number.
    pub number: u64,
    /// Head branch.
    pub head: String,
    /// Base branch.
    pub base: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Draft flag.
    pub draft: bool,
    /// `open` or `closed`.
    pub state: String,
}

#[derive(Debug, Clone)]
struct IssuedToken {
    value: String,
    installation: u64,
    repos: Vec<String>,
    permissions: Map<String, Value>,
    expires_at: i64,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct FakeRepo {
    id: u64,
    owner: String,
    name: String,
    default_branch: String,
}

#[derive(Debug)]
struct State {
    app_id: String,
    public_key_pem: String,
    installation_id: u64,
    installation_owner: String,
    granted: Map<String, Value>,
    repos: Vec<FakeRepo>,
    tokens: Vec<IssuedToken>,
    queued_tokens: Vec<String>,
    token_lifetime_secs: i64,
    token_requests: Vec<TokenRequest>,
    pulls: Vec<FakePull>,
    exchanges: Vec<Exchange>,
    fail_next: Vec<(u16, String)>,
    hang_after_create: bool,
    git_repos: Option<PathBuf>,
    base_url: String,
    counter: u64,
}

/// Revokes the fake's tokens; see [`GitHubFake::revoker`].
#[derive(Debug, Clone)]
pub struct TokenRevoker {
    state: Arc<Mutex<State>>,
}

impl TokenRevoker {
    /// Revokes every token issued so far.
    pub fn revoke_all_tokens(&self) {
        for t in &mut self.state.lock().tokens {
            t.revoked = true;
        }
    }
}

/// The running fake. Stops when dropped.
#[derive(Debug)]
pub struct GitHubFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for GitHubFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn timestamp(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn level(v: &Value) -> u8 {
    match v.as_str() {
        Some("read") => 1,
        Some("write") => 2,
        Some("admin") => 3,
        _ => 0,
    }
}

impl GitHubFake {
    /// Starts the fake for one App (`app_id`, verified with
    /// `app_public_key_pem`, an SPKI or PKCS#1 RSA public key) installed on
    /// `installation_owner` as installation `installation_id`. The
    /// installation grants `contents: write`, `pull_requests: write`,
    /// `metadata: read`, and also `issues: write` and `workflows: write`, so a
    /// token that is not narrowed would carry more than the provider needs.
    pub async fn start(
        app_id: &str,
        app_public_key_pem: &str,
        installation_id: u64,
        installation_owner: &str,
    ) -> std::io::Result<Self> {
        DecodingKey::from_rsa_pem(app_public_key_pem.as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("app public key: {e}")))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let granted = json!({
            "contents": "write", "pull_requests": "write", "metadata": "read",
            "issues": "write", "workflows": "write",
        });
        let state = Arc::new(Mutex::new(State {
            app_id: app_id.to_string(),
            public_key_pem: app_public_key_pem.to_string(),
            installation_id,
            installation_owner: installation_owner.to_string(),
            granted: granted.as_object().cloned().unwrap_or_default(),
            repos: Vec::new(),
            tokens: Vec::new(),
            queued_tokens: Vec::new(),
            token_lifetime_secs: 3600,
            token_requests: Vec::new(),
            pulls: Vec::new(),
            exchanges: Vec::new(),
            fail_next: Vec::new(),
            hang_after_create: false,
            git_repos: None,
            base_url: format!("http://{addr}"),
            counter: 0,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// The API base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds `owner/name` to the installation (default branch `main`).
    pub fn add_repo(&self, location: &str) {
        let (owner, name) = location.split_once('/').unwrap_or(("", location));
        let mut s = self.state.lock();
        s.counter += 1;
        let id = 1_296_269 + s.counter;
        s.repos.push(FakeRepo { id, owner: owner.into(), name: name.into(), default_branch: "main".into() });
    }

    /// Makes pull-request creation check the head branch against the bare
    /// repositories under `repos_root` (`<owner>/<name>.git`, as
    /// `userz_testkit::git_http::GitHttpServer` lays them out), like
    /// GitHub refuses a PR whose head branch does not exist.
    pub fn link_git_repos(&self, repos_root: PathBuf) {
        self.state.lock().git_repos = Some(repos_root);
    }

    /// The value of the next installation token to issue (otherwise a random
    /// `ghs_…` value).
    pub fn queue_token(&self, token: &str) {
        self.state.lock().queued_tokens.push(token.to_string());
    }

    /// Lifetime of tokens issued from now on (GitHub: one hour).
    pub fn set_token_lifetime(&self, secs: i64) {
        self.state.lock().token_lifetime_secs = secs;
    }

    /// Revokes every token issued so far (`DELETE /installation/token`, or an
    /// admin suspending the installation).
    pub fn revoke_all_tokens(&self) {
        self.revoker().revoke_all_tokens();
    }

    /// A handle that revokes tokens from elsewhere (e.g. from inside a test
    /// double while a run is under way).
    pub fn revoker(&self) -> TokenRevoker {
        TokenRevoker { state: self.state.clone() }
    }

    /// The next request gets `status` with GitHub's error body carrying
    /// `message` (fault injection).
    pub fn fail_next(&self, status: u16, message: &str) {
        self.state.lock().fail_next.push((status, message.to_string()));
    }

    /// The next successful `POST /repos/{owner}/{repo}/pulls` creates the pull
    /// request and then never answers (a crash between GitHub's side effect
    /// and the caller recording it).
    pub fn hang_after_next_create(&self) {
        self.state.lock().hang_after_create = true;
    }

    /// Token requests so far.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().token_requests.clone()
    }

    /// Every request/response pair so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().exchanges.clone()
    }

    /// Pull requests of `owner/name`.
    pub fn pulls(&self, location: &str) -> Vec<FakePull> {
        self.state.lock().pulls.iter().filter(|p| p.repo == location).cloned().collect()
    }

    /// Closes pull request `number` of `owner/name` (as a maintainer would).
    pub fn close_pull(&self, location: &str, number: u64) {
        for p in &mut self.state.lock().pulls {
            if p.repo == location && p.number == number {
                p.state = "closed".into();
            }
        }
    }
}

fn error_body(message: &str) -> Value {
    json!({"message": message, "documentation_url": DOCS})
}

struct Reply {
    status: u16,
    body: Value,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply { status, body }
}

fn bad_credentials() -> Reply {
    reply(401, json!({"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}))
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let raw = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let request_body = if raw.is_empty() { None } else { Some(serde_json::from_slice(&raw).unwrap_or(Value::Null)) };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let (r, hang) = {
        let mut s = state.lock();
        let (operation, r) =
            route(&mut s, &parts.method, &path, query.as_deref(), &headers, request_body.as_ref(), &raw);
        s.exchanges.push(Exchange {
            operation,
            method: parts.method.to_string(),
            path,
            query,
            request_headers: headers,
            request_body,
            status: r.status,
            response_body: r.body.clone(),
        });
        let hang = s.hang_after_create && r.status == 201 && operation == Some(("post", "/repos/{owner}/{repo}/pulls"));
        if hang {
            s.hang_after_create = false;
        }
        (r, hang)
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let mut resp = Response::new(Full::new(Bytes::from(r.body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json; charset=utf-8"));
    h.insert("x-github-api-version-selected", http::HeaderValue::from_static(API_VERSION));
    Ok(resp)
}

type Operation = Option<(&'static str, &'static str)>;

fn route(
    s: &mut State,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &BTreeMap<String, String>,
    body: Option<&Value>,
    raw: &[u8],
) -> (Operation, Reply) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let op: Operation = match (method.as_str(), segs.as_slice()) {
        ("POST", ["app", "installations", _, "access_tokens"]) => {
            Some(("post", "/app/installations/{installation_id}/access_tokens"))
        }
        ("GET", ["repos", _, _]) => Some(("get", "/repos/{owner}/{repo}")),
        ("GET", ["repos", _, _, "pulls"]) => Some(("get", "/repos/{owner}/{repo}/pulls")),
        ("POST", ["repos", _, _, "pulls"]) => Some(("post", "/repos/{owner}/{repo}/pulls")),
        ("GET", ["repos", _, _, "pulls", _]) => Some(("get", "/repos/{owner}/{repo}/pulls/{pull_number}")),
        ("PATCH", ["repos", _, _, "pulls", _]) => Some(("patch", "/repos/{owner}/{repo}/pulls/{pull_number}")),
        _ => None,
    };
    let Some(found) = op else { return (None, reply(404, error_body("Not Found"))) };
    if !s.fail_next.is_empty() {
        let (status, message) = s.fail_next.remove(0);
        return (op, reply(status, error_body(&message)));
    }
    if headers.get("user-agent").is_none_or(|v| v.is_empty()) {
        return (
            op,
            reply(
                403,
                error_body(
                    "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
                ),
            ),
        );
    }
    if let Some(v) = headers.get("x-github-api-version") {
        if v != API_VERSION {
            return (op, reply(400, error_body(&format!("Invalid API version provided: {v}."))));
        }
    }
    if !raw.is_empty() && body.is_none_or(Value::is_null) {
        return (op, reply(400, error_body("Problems parsing JSON")));
    }
    let bearer = headers.get("authorization").and_then(|a| {
        a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")).or_else(|| a.strip_prefix("token "))
    });
    let r = match found.1 {
        "/app/installations/{installation_id}/access_tokens" => create_token(s, segs[2], bearer, body),
        _ => {
            let location = format!("{}/{}", segs[1], segs[2]);
            let need = if found.0 == "get" { "read" } else { "write" };
            match authorize(
                s,
                bearer,
                &location,
                if found.1.contains("pulls") { "pull_requests" } else { "metadata" },
                need,
            ) {
                Err(r) => r,
                Ok(repo) => match found {
                    ("get", "/repos/{owner}/{repo}") => reply(200, full_repo_json(s, &repo)),
                    ("get", "/repos/{owner}/{repo}/pulls") => list_pulls(s, &repo, query),
                    ("post", _) => create_pull(s, &repo, body),
                    (m, _) => match segs[4].parse::<u64>() {
                        Ok(n) if m == "get" => get_pull(s, &repo, n),
                        Ok(n) => update_pull(s, &repo, n, body),
                        Err(_) => reply(404, error_body("Not Found")),
                    },
                },
            }
        }
    };
    (op, r)
}

fn create_token(s: &mut State, id: &str, jwt: Option<&str>, body: Option<&Value>) -> Reply {
    let Some(jwt) = jwt else {
        return reply(401, error_body("A JSON web token could not be decoded"));
    };
    let claims = match verify_app_jwt(s, jwt) {
        Ok(c) => c,
        Err(message) => return reply(401, error_body(&message)),
    };
    let installation_id = id.parse::<u64>().unwrap_or(0);
    let mut record =
        TokenRequest { installation_id, body: body.cloned().unwrap_or(Value::Null), jwt_claims: claims, issued: None };
    let result = issue_token(s, installation_id, body);
    if let Ok((ref token, _)) = result {
        record.issued = Some(token.value.clone());
    }
    s.token_requests.push(record);
    match result {
        Err(r) => r,
        Ok((token, repos)) => {
            let repos: Vec<Value> = repos.iter().map(|r| repo_json(s, r)).collect();
            let mut out = json!({
                "token": token.value,
                "expires_at": timestamp(token.expires_at),
                "permissions": token.permissions,
                "repository_selection": "selected",
            });
            if !repos.is_empty() {
                out["repositories"] = Value::Array(repos);
            } else {
                out["repository_selection"] = json!("all");
            }
            reply(201, out)
        }
    }
}

fn verify_app_jwt(s: &State, jwt: &str) -> Result<Value, String> {
    let key = DecodingKey::from_rsa_pem(s.public_key_pem.as_bytes()).map_err(|e| format!("app key: {e}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iat", "iss"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map_err(|_| "A JSON web token could not be decoded".to_string())?;
    let claims = data.claims;
    let iss = match &claims["iss"] {
        Value::String(v) => v.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if iss != s.app_id {
        return Err(format!("Integration not found for iss {iss:?}"));
    }
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(i64::MAX), claims["exp"].as_i64().unwrap_or(0));
    let t = now();
    if iat > t + 1 {
        return Err("'Issued at' claim ('iat') must be an Integer representing a time in the past.".into());
    }
    if exp > t + 600 + 1 {
        return Err("'Expiration time' claim ('exp') is too far in the future".into());
    }
    Ok(claims)
}

fn issue_token(s: &mut State, installation: u64, body: Option<&Value>) -> Result<(IssuedToken, Vec<FakeRepo>), Reply> {
    if installation != s.installation_id {
        return Err(reply(404, error_body("Not Found")));
    }
    let empty = Map::new();
    let body = body.and_then(Value::as_object).unwrap_or(&empty);
    let mut permissions = s.granted.clone();
    if let Some(asked) = body.get("permissions") {
        let Some(asked) = asked.as_object() else {
            return Err(reply(422, validation_failed("permissions is not an object", "Installation", "permissions")));
        };
        for (k, v) in asked {
            if level(v) == 0 || level(s.granted.get(k).unwrap_or(&Value::Null)) < level(v) {
                return Err(reply(422, error_body("The permissions requested are not granted to this installation.")));
            }
        }
        permissions = asked.clone();
    }
    let mut repos = Vec::new();
    if let Some(names) = body.get("repositories") {
        for name in names.as_array().into_iter().flatten() {
            let found =
                s.repos.iter().find(|r| Some(r.name.as_str()) == name.as_str() && r.owner == s.installation_owner);
            match found {
                Some(r) => repos.push(r.clone()),
                None => {
                    return Err(reply(
                        422,
                        error_body(
                            "There is at least one repository that does not exist or is not accessible to the parent installation.",
                        ),
                    ))
                }
            }
        }
    }
    let value = if s.queued_tokens.is_empty() {
        format!("ghs_{}", uuid::Uuid::new_v4().simple())
    } else {
        s.queued_tokens.remove(0)
    };
    let scope: Vec<String> = if repos.is_empty() {
        s.repos.iter().map(|r| format!("{}/{}", r.owner, r.name)).collect()
    } else {
        repos.iter().map(|r| format!("{}/{}", r.owner, r.name)).collect()
    };
    let token = IssuedToken {
        value,
        installation,
        repos: scope,
        permissions,
        expires_at: now() + s.token_lifetime_secs,
        revoked: false,
    };
    s.tokens.push(token.clone());
    Ok((token, repos))
}

fn authorize(s: &State, bearer: Option<&str>, location: &str, perm: &str, need: &str) -> Result<FakeRepo, Reply> {
    let Some(value) = bearer else { return Err(reply(401, error_body("Requires authentication"))) };
    let Some(token) = s.tokens.iter().find(|t| t.value == value) else { return Err(bad_credentials()) };
    if token.revoked || token.expires_at <= now() || token.installation != s.installation_id {
        return Err(bad_credentials());
    }
    let repo = s.repos.iter().find(|r| format!("{}/{}", r.owner, r.name) == location);
    let Some(repo) = repo.filter(|_| token.repos.iter().any(|r| r == location)) else {
        return Err(reply(404, error_body("Not Found")));
    };
    let has = |p: &str, lvl: &str| level(token.permissions.get(p).unwrap_or(&Value::Null)) >= level(&json!(lvl));
    if !has("metadata", "read") || !has(perm, need) {
        return Err(reply(403, error_body("Resource not accessible by integration")));
    }
    Ok(repo.clone())
}

fn validation_failed(message: &str, resource: &str, field: &str) -> Value {
    json!({
        "message": "Validation Failed",
        "errors": [{"resource": resource, "field": field, "code": "custom", "message": message}],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

fn list_pulls(s: &State, repo: &FakeRepo, query: Option<&str>) -> Reply {
    let state = query_param(query, "state").unwrap_or_else(|| "open".into());
    if !["open", "closed", "all"].contains(&state.as_str()) {
        return reply(422, validation_failed("state is not valid", "PullRequest", "state"));
    }
    let head = query_param(query, "head");
    let location = format!("{}/{}", repo.owner, repo.name);
    let items: Vec<Value> = s
        .pulls
        .iter()
        .rev()
        .filter(|p| p.repo == location && (state == "all" || p.state == state))
        .filter(|p| head.as_ref().is_none_or(|h| *h == format!("{}:{}", repo.owner, p.head)))
        .map(|p| pull_json(s, repo, p, false))
        .collect();
    reply(200, Value::Array(items))
}

fn branch_sha(s: &State, repo: &FakeRepo, branch: &str) -> Result<Option<String>, ()> {
    let Some(root) = &s.git_repos else { return Err(()) };
    let path = root.join(&repo.owner).join(format!("{}.git", repo.name));
    let Ok(git) = git2::Repository::open_bare(path) else { return Ok(None) };
    let found = git.find_reference(&format!("refs/heads/{branch}")).ok().and_then(|r| r.target());
    Ok(found.map(|o| o.to_string()))
}

fn create_pull(s: &mut State, repo: &FakeRepo, body: Option<&Value>) -> Reply {
    let empty = Map::new();
    let b = body.and_then(Value::as_object).unwrap_or(&empty);
    let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(title), Some(head), Some(base)) = (text("title"), text("head"), text("base")) else {
        return reply(422, validation_failed("title, head and base are required", "PullRequest", "head"));
    };
    let head = head.strip_prefix(&format!("{}:", repo.owner)).map(str::to_string).unwrap_or(head);
    let location = format!("{}/{}", repo.owner, repo.name);
    if s.pulls.iter().any(|p| p.repo == location && p.head == head && p.state == "open") {
        let message = format!("A pull request already exists for {}:{head}.", repo.owner);
        return reply(
            422,
            json!({
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "custom", "message": message}],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            }),
        );
    }
    if let Ok(sha) = branch_sha(s, repo, &head) {
        if sha.is_none() {
            return reply(422, validation_failed("head is invalid", "PullRequest", "head"));
        }
        if branch_sha(s, repo, &base).ok().flatten().is_none() {
            return reply(422, validation_failed("base is invalid", "PullRequest", "base"));
        }
    }
    let number = s.pulls.iter().filter(|p| p.repo == location).count() as u64 + 1;
    let pull = FakePull {
        repo: location,
        number,
        head,
        base,
        title,
        body: text("body").unwrap_or_default(),
        draft: b.get("draft").and_then(Value::as_bool).unwrap_or(false),
        state: "open".into(),
    };
    s.pulls.push(pull.clone());
    reply(201, pull_json(s, repo, &pull, true))
}

fn get_pull(s: &State, repo: &FakeRepo, number: u64) -> Reply {
    let location = format!("{}/{}", repo.owner, repo.name);
    match s.pulls.iter().find(|p| p.repo == location && p.number == number) {
        Some(p) => reply(200, pull_json(s, repo, p, true)),
        None => reply(404, error_body("Not Found")),
    }
}

fn update_pull(s: &mut State, repo: &FakeRepo, number: u64, body: Option<&Value>) -> Reply {
    let location = format!("{}/{}", repo.owner, repo.name);
    let Some(p) = s.pulls.iter_mut().find(|p| p.repo == location && p.number == number) else {
        return reply(404, error_body("Not Found"));
    };
    if let Some(b) = body.and_then(Value::as_object) {
        if let Some(t) = b.get("title").and_then(Value::as_str) {
            p.title = t.into();
        }
        if let Some(t) = b.get("body").and_then(Value::as_str) {
            p.body = t.into();
        }
        if let Some(t) = b.get("state").and_then(Value::as_str) {
            p.state = t.into();
        }
    }
    let p = p.clone();
    reply(200, pull_json(s, repo, &p, true))
}

fn user_json(base: &str, login: &str, id: u64, kind: &str) -> Value {
    let api = format!("{base}/users/{login}");
    json!({
        "login": login, "id": id, "node_id": format!("U_{id}"), "avatar_url": format!("{base}/avatars/{login}"),
        "gravatar_id": "", "url": api, "html_url": format!("{base}/{login}"),
        "followers_url": format!("{api}/followers"), "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"), "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"), "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"), "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"), "type": kind, "site_admin": false,
    })
}

const REPO_URLS: &[(&str, &str)] = &[
    ("archive_url", "/{archive_format}{/ref}"),
    ("assignees_url", "/assignees{/user}"),
    ("blobs_url", "/git/blobs{/sha}"),
    ("branches_url", "/branches{/branch}"),
    ("collaborators_url", "/collaborators{/collaborator}"),
    ("comments_url", "/comments{/number}"),
    ("commits_url", "/commits{/sha}"),
    ("compare_url", "/compare/{base}...{head}"),
    ("contents_url", "/contents/{+path}"),
    ("contributors_url", "/contributors"),
    ("deployments_url", "/deployments"),
    ("downloads_url", "/downloads"),
    ("events_url", "/events"),
    ("forks_url", "/forks"),
    ("git_commits_url", "/git/commits{/sha}"),
    ("git_refs_url", "/git/refs{/sha}"),
    ("git_tags_url", "/git/tags{/sha}"),
    ("hooks_url", "/hooks"),
    ("issue_comment_url", "/issues/comments{/number}"),
    ("issue_events_url", "/issues/events{/number}"),
    ("issues_url", "/issues{/number}"),
    ("keys_url", "/keys{/key_id}"),
    ("labels_url", "/labels{/name}"),
    ("languages_url", "/languages"),
    ("merges_url", "/merges"),
    ("milestones_url", "/milestones{/number}"),
    ("notifications_url", "/notifications{?since,all,participating}"),
    ("pulls_url", "/pulls{/number}"),
    ("releases_url", "/releases{/id}"),
    ("stargazers_url", "/stargazers"),
    ("statuses_url", "/statuses/{sha}"),
    ("subscribers_url", "/subscribers"),
    ("subscription_url", "/subscription"),
    ("tags_url", "/tags"),
    ("teams_url", "/teams"),
    ("trees_url", "/git/trees{/sha}"),
    ("url", ""),
];

const CREATED: i64 = 1_700_000_000;

fn repo_json(s: &State, r: &FakeRepo) -> Value {
    let base = &s.base_url;
    let full = format!("{}/{}", r.owner, r.name);
    let api = format!("{base}/repos/{full}");
    let mut o = Map::new();
    for (k, suffix) in REPO_URLS {
        o.insert((*k).into(), json!(format!("{api}{suffix}")));
    }
    let web = format!("{base}/{full}");
    let extra = json!({
        "id": r.id, "node_id": format!("R_{}", r.id), "name": r.name, "full_name": full,
        "owner": user_json(base, &r.owner, 9_000 + r.id, "Organization"), "private": true,
        "html_url": web, "description": null, "fork": false, "clone_url": format!("{web}.git"),
        "git_url": format!("git:{}/{full}.git", base.trim_start_matches("http:")),
        "ssh_url": format!("git@127.0.0.1:{full}.git"), "svn_url": web, "mirror_url": null, "homepage": null,
        "language": null, "forks_count": 0, "forks": 0, "stargazers_count": 0, "watchers_count": 0, "watchers": 0,
        "size": 0, "default_branch": r.default_branch, "open_issues_count": 0, "open_issues": 0,
        "has_issues": true, "has_projects": true, "has_wiki": true, "has_pages": false, "has_downloads": true,
        "archived": false, "disabled": false, "visibility": "private", "license": null,
        "pushed_at": timestamp(CREATED), "created_at": timestamp(CREATED), "updated_at": timestamp(CREATED),
    });
    if let Value::Object(extra) = extra {
        o.extend(extra);
    }
    Value::Object(o)
}

fn full_repo_json(s: &State, r: &FakeRepo) -> Value {
    let mut v = repo_json(s, r);
    v["network_count"] = json!(0);
    v["subscribers_count"] = json!(0);
    v["has_discussions"] = json!(false);
    v["permissions"] = json!({"admin": false, "maintain": false, "push": true, "triage": false, "pull": true});
    v
}

fn pull_json(s: &State, repo: &FakeRepo, p: &FakePull, full: bool) -> Value {
    let base = &s.base_url;
    let api = format!("{base}/repos/{}", p.repo);
    let url = format!("{api}/pulls/{}", p.number);
    let html = format!("{base}/{}/pull/{}", p.repo, p.number);
    let issue = format!("{api}/issues/{}", p.number);
    let bot = user_json(base, "userz-app[bot]", 41_898_282, "Bot");
    let sha = |b: &str| branch_sha(s, repo, b).ok().flatten().unwrap_or_else(|| "0".repeat(40));
    let side = |branch: &str| {
        json!({
            "label": format!("{}:{branch}", repo.owner), "ref": branch, "sha": sha(branch),
            "user": user_json(base, &repo.owner, 9_000 + repo.id, "Organization"), "repo": repo_json(s, repo),
        })
    };
    let statuses = format!("{api}/statuses/{}", sha(&p.head));
    let link = |h: &str| json!({"href": h});
    let mut v = json!({
        "url": url, "id": 1_000_000 + p.number, "node_id": format!("PR_{}", p.number), "html_url": html,
        "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"), "issue_url": issue,
        "commits_url": format!("{url}/commits"), "review_comments_url": format!("{url}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{issue}/comments"), "statuses_url": statuses, "number": p.number,
        "state": p.state, "locked": false, "title": p.title, "user": bot, "body": p.body, "labels": [],
        "milestone": null, "active_lock_reason": null, "created_at": timestamp(CREATED),
        "updated_at": timestamp(CREATED), "closed_at": null, "merged_at": null, "merge_commit_sha": null,
        "assignee": null, "assignees": [], "requested_reviewers": [], "requested_teams": [],
        "head": side(&p.head), "base": side(&p.base),
        "_links": {
            "self": link(&url), "html": link(&html), "issue": link(&issue),
            "comments": link(&format!("{issue}/comments")), "review_comments": link(&format!("{url}/comments")),
            "review_comment": link(&format!("{api}/pulls/comments{{/number}}")),
            "commits": link(&format!("{url}/commits")), "statuses": link(&statuses),
        },
        "author_association": "NONE", "auto_merge": null, "draft": p.draft,
    });
    if full {
        let extra = json!({
            "merged": false, "mergeable": null, "rebaseable": null, "mergeable_state": "unknown",
            "merged_by": null, "comments": 0, "review_comments": 0, "maintainer_can_modify": false,
            "commits": 1, "additions": 0, "deletions": 0, "changed_files": 0,
        });
        if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
            o.extend(e);
        }
    }
    v
}

/// Generates an RSA key pair for a test App with `openssl` (Debian package
/// `openssl`): the private key as PKCS#1 PEM (the form GitHub hands out) and
/// the public key as SPKI PEM. Nothing is written to disk.
pub fn generate_app_key() -> std::io::Result<(String, String)> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let genrsa = |args: &[&str]| Command::new("openssl").args(args).stderr(Stdio::null()).output();
    // OpenSSL 3 writes PKCS#8 unless asked for the traditional form; 1.1
    // writes PKCS#1 and does not know the flag.
    let mut private = genrsa(&["genrsa", "-traditional", "2048"])?;
    if !private.status.success() {
        private = genrsa(&["genrsa", "2048"])?;
    }
    if !private.status.success() {
        return Err(std::io::Error::other("openssl genrsa failed"));
    }
    let mut child = Command::new("openssl")
        .args(["rsa", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    child.stdin.take().ok_or_else(|| std::io::Error::other("openssl stdin"))?.write_all(&private.stdout)?;
    let public = child.wait_with_output()?;
    if !public.status.success() {
        return Err(std::io::Error::other("openssl rsa -pubout failed"));
    }
    Ok((String::from_utf8_lossy(&private.stdout).into_owned(), String::from_utf8_lossy(&public.stdout).into_owned()))
}
