//! A local fake of the GitLab REST API (v4), serving exactly the operations
//! the GitLab provider uses, with GitLab's paths, headers, status codes and
//! JSON fields (as published in `contracts/gitlab.merge-requests.subset.json`):
//!
//! | Operation | Path |
//! |---|---|
//! | `getApiV4ProjectsIdMergeRequests` | `GET {prefix}/api/v4/projects/{id}/merge_requests` (`source_branch`, `target_branch`, `state`) |
//! | `postApiV4ProjectsIdMergeRequests` | `POST {prefix}/api/v4/projects/{id}/merge_requests` |
//!
//! `{id}` is the numeric project id or the URL-encoded `group/sub/project`
//! path, as on GitLab. The whole fake can be mounted under a path prefix
//! ([`GitLabFake::start`] with `"/gitlab"`), the way a self-hosted instance
//! is served under a relative URL root.
//!
//! What it checks, like GitLab does:
//! - the `PRIVATE-TOKEN` header (or `Authorization: Bearer`) names a known,
//!   unrevoked project access token; anything else is
//!   `401 {"message":"401 Unauthorized"}`;
//! - an unknown project is `404 {"message":"404 Project Not Found"}`;
//! - `title`, `source_branch`, `target_branch` are required on create
//!   (`400 {"error":"… is missing"}`, Grape's validation shape);
//! - one open merge request per source branch: a second create is
//!   `409 {"message":["Another open merge request already exists for this source branch: !N"]}`;
//! - a draft is a merge request whose title starts with `Draft:` (GitLab has
//!   no create-time draft flag).
//!
//! Response bodies carry the fields where GitLab's published description and
//! its wire format agree (`id`, `iid`, `project_id`, `title`, `description`,
//! `state`, timestamps, branches, `author`, `sha`, `reference(s)`,
//! `web_url`, `diff_refs`, `time_stats`, merge status). Fields the
//! description types differently from what GitLab sends (`draft`,
//! `work_in_progress`, `upvotes`, `labels`, `assignees` …: booleans, numbers
//! and arrays described as strings or objects) and fields that would be
//! `null` are left out, so every response validates against the description.
//!
//! Git smart-HTTP: with [`GitLabFake::proxy_git_to`] the fake forwards
//! `{prefix}/<path>.git/...` to a `userz_testkit::git_http::GitHttpServer`,
//! so one base URL serves both the API and the repositories, as on GitLab. A
//! Basic password that is a revoked token is refused with `401` before
//! forwarding (GitLab refuses revoked tokens over git too); the git server
//! checks the user name and token itself.
//!
//! Every API exchange is recorded ([`GitLabFake::exchanges`]) so a test can
//! validate requests and responses against the published description.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The contract path of the merge-request collection.
pub const MERGE_REQUESTS_PATH: &str = "/api/v4/projects/{id}/merge_requests";

/// One recorded API request/response pair.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The operation as the published description keys it (method, path
    /// template), `None` for unknown routes.
    pub operation: Option<(&'static str, &'static str)>,
    /// HTTP method.
    pub method: String,
    /// Request path as received (with the mount prefix).
    pub path: String,
    /// Request path without the mount prefix (`/api/v4/...`).
    pub api_path: String,
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

/// One git smart-HTTP request forwarded (or refused) by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRequest {
    /// HTTP method.
    pub method: String,
    /// Path as received (with the mount prefix).
    pub path: String,
    /// Status returned to the client.
    pub status: u16,
}

/// A merge request held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMergeRequest {
    /// Global id.
    pub id: u64,
    /// Project-scoped number.
    pub iid: u64,
    /// Project id.
    pub project_id: u64,
    /// Source branch.
    pub source_branch: String,
    /// Target branch.
    pub target_branch: String,
    /// Title (a draft's starts with `Draft:`).
    pub title: String,
    /// Description.
    pub description: String,
    /// `opened`, `closed`, `merged` or `locked`.
    pub state: String,
    /// Whether GitLab treats it as a draft (derived from the title).
    pub draft: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
}

#[derive(Debug, Clone)]
struct FakeProject {
    id: u64,
    path: String,
}

#[derive(Debug)]
struct State {
    prefix: String,
    base_url: String,
    projects: Vec<FakeProject>,
    tokens: Vec<(String, bool)>,
    merge_requests: Vec<FakeMergeRequest>,
    exchanges: Vec<Exchange>,
    git_requests: Vec<GitRequest>,
    fail_next: Vec<(u16, String)>,
    git_upstream: Option<(SocketAddr, String)>,
    git_repos: Option<PathBuf>,
    counter: u64,
}

/// The running fake. Stops when dropped.
#[derive(Debug)]
pub struct GitLabFake {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for GitLabFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn timestamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

impl GitLabFake {
    /// Starts the fake on `127.0.0.1:0`, mounted under `prefix` (`""` for
    /// the root, or e.g. `"/gitlab"` for a relative URL root).
    pub async fn start(prefix: &str) -> std::io::Result<Self> {
        let prefix = prefix.trim_end_matches('/').to_string();
        if !(prefix.is_empty() || prefix.starts_with('/')) || prefix.contains(['?', '#', '%']) {
            return Err(invalid(format!("prefix {prefix:?} must be empty or start with '/'")));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            base_url: format!("http://{addr}{prefix}"),
            prefix,
            projects: Vec::new(),
            tokens: Vec::new(),
            merge_requests: Vec::new(),
            exchanges: Vec::new(),
            git_requests: Vec::new(),
            fail_next: Vec::new(),
            git_upstream: None,
            git_repos: None,
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
        Ok(Self { state, task })
    }

    /// The instance's base URL (`http://127.0.0.1:PORT{prefix}`): what a Repo's
    /// `baseUrl` is set to. The API is under `{base_url}/api/v4`.
    pub fn base_url(&self) -> String {
        self.state.lock().base_url.clone()
    }

    /// Adds the project `group/sub/name` (default branch `main`); returns its
    /// numeric id.
    pub fn add_project(&self, path: &str) -> u64 {
        let mut s = self.state.lock();
        s.counter += 1;
        let id = 27_000 + s.counter;
        s.projects.push(FakeProject { id, path: path.to_string() });
        id
    }

    /// Accepts `token` as a project access token for every project.
    pub fn add_token(&self, token: &str) {
        self.state.lock().tokens.push((token.to_string(), false));
    }

    /// Revokes every token (an owner revoking the project access token).
    pub fn revoke_all_tokens(&self) {
        for t in &mut self.state.lock().tokens {
            t.1 = true;
        }
    }

    /// Forwards git smart-HTTP (`{prefix}/<path>.git/...`) to `upstream`, a
    /// base URL like `userz_testkit::git_http::GitHttpServer::git_base`
    /// (`http://127.0.0.1:PORT/git`).
    pub fn proxy_git_to(&self, upstream: &str) -> std::io::Result<()> {
        let rest = upstream
            .strip_prefix("http://")
            .ok_or_else(|| invalid(format!("upstream {upstream:?} must be an http:// URL")))?;
        let (authority, path) =
            rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
        let addr: SocketAddr =
            authority.parse().map_err(|_| invalid(format!("upstream authority {authority:?} is not ip:port")))?;
        self.state.lock().git_upstream = Some((addr, path.trim_end_matches('/').to_string()));
        Ok(())
    }

    /// Reads branch heads (the merge request's `sha`, `diff_refs`) from the
    /// bare repositories under `repos_root` (`<path>.git`, as
    /// `userz_testkit::git_http::GitHttpServer` lays them out).
    pub fn link_git_repos(&self, repos_root: PathBuf) {
        self.state.lock().git_repos = Some(repos_root);
    }

    /// The next API request gets `status` with GitLab's `{"message": …}` body
    /// (fault injection).
    pub fn fail_next(&self, status: u16, message: &str) {
        self.state.lock().fail_next.push((status, message.to_string()));
    }

    /// Every API request/response pair so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().exchanges.clone()
    }

    /// Every git request forwarded or refused so far.
    pub fn git_requests(&self) -> Vec<GitRequest> {
        self.state.lock().git_requests.clone()
    }

    /// Merge requests of the project `path`.
    pub fn merge_requests(&self, path: &str) -> Vec<FakeMergeRequest> {
        let s = self.state.lock();
        let Some(p) = s.projects.iter().find(|p| p.path == path) else { return Vec::new() };
        s.merge_requests.iter().filter(|m| m.project_id == p.id).cloned().collect()
    }

    /// Closes merge request `iid` of project `path` (as a maintainer would).
    pub fn close_merge_request(&self, path: &str, iid: u64) {
        let mut s = self.state.lock();
        let Some(id) = s.projects.iter().find(|p| p.path == path).map(|p| p.id) else { return };
        for m in &mut s.merge_requests {
            if m.project_id == id && m.iid == iid {
                m.state = "closed".into();
            }
        }
    }
}

struct Reply {
    status: u16,
    body: Value,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply { status, body }
}

fn unauthorized() -> Reply {
    reply(401, json!({"message": "401 Unauthorized"}))
}

fn full(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let raw = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let prefix = state.lock().prefix.clone();
    let Some(rest) = path.strip_prefix(&prefix).filter(|r| r.starts_with('/')).map(str::to_string) else {
        return Ok(full(404, Bytes::from_static(b"Not Found")));
    };
    if !rest.starts_with("/api/") && rest.contains(".git/") {
        return Ok(proxy_git(&state, parts, raw, &path, &rest, query.as_deref()).await);
    }
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let request_body = if raw.is_empty() { None } else { Some(serde_json::from_slice(&raw).unwrap_or(Value::Null)) };
    let mut s = state.lock();
    let (operation, r) = route(&mut s, &parts.method, &rest, query.as_deref(), &headers, request_body.as_ref(), &raw);
    s.exchanges.push(Exchange {
        operation,
        method: parts.method.to_string(),
        path,
        api_path: rest,
        query,
        request_headers: headers,
        request_body,
        status: r.status,
        response_body: r.body.clone(),
    });
    drop(s);
    let mut resp = full(r.status, Bytes::from(r.body.to_string()));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// The Basic password of an `Authorization` header, if any.
fn basic_password(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, p)| p.to_string())
}

async fn proxy_git(
    state: &Arc<Mutex<State>>,
    parts: http::request::Parts,
    raw: Bytes,
    path: &str,
    rest: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    let (upstream, revoked) = {
        let s = state.lock();
        let revoked = basic_password(&parts.headers)
            .is_some_and(|p| s.tokens.iter().any(|(t, revoked)| *revoked && t.as_bytes() == p.as_bytes()));
        (s.git_upstream.clone(), revoked)
    };
    let record = |status: u16| {
        state.lock().git_requests.push(GitRequest { method: parts.method.to_string(), path: path.into(), status });
    };
    let Some((addr, upstream_prefix)) = upstream else {
        record(404);
        return full(404, Bytes::from_static(b"Not Found"));
    };
    if revoked {
        record(401);
        let mut resp = full(401, Bytes::from_static(b"HTTP Basic: Access denied. The provided password or token is incorrect or your account has 2FA enabled and you must use a personal access token instead of a password."));
        resp.headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Basic realm=\"GitLab\""));
        return resp;
    }
    let uri = match query {
        Some(q) => format!("{upstream_prefix}{rest}?{q}"),
        None => format!("{upstream_prefix}{rest}"),
    };
    let forwarded = async {
        let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
        for (k, v) in &parts.headers {
            if ![
                http::header::HOST,
                http::header::CONTENT_LENGTH,
                http::header::TRANSFER_ENCODING,
                http::header::EXPECT,
            ]
            .contains(k)
                && k != http::header::CONNECTION
            {
                builder = builder.header(k, v);
            }
        }
        let req =
            builder.header(http::header::HOST, addr.to_string()).body(Full::new(raw)).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let (rparts, rbody) = resp.into_parts();
        let bytes = rbody.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let mut out = full(rparts.status.as_u16(), bytes);
        for (k, v) in &rparts.headers {
            if ![http::header::CONTENT_LENGTH, http::header::TRANSFER_ENCODING, http::header::CONNECTION].contains(k) {
                out.headers_mut().append(k, v.clone());
            }
        }
        Ok::<_, String>(out)
    };
    let resp = forwarded.await.unwrap_or_else(|e| full(502, Bytes::from(format!("git upstream: {e}"))));
    record(resp.status().as_u16());
    resp
}

type Operation = Option<(&'static str, &'static str)>;

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
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
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
        ("GET", ["api", "v4", "projects", _, "merge_requests"]) => Some(("get", MERGE_REQUESTS_PATH)),
        ("POST", ["api", "v4", "projects", _, "merge_requests"]) => Some(("post", MERGE_REQUESTS_PATH)),
        _ => None,
    };
    let Some(found) = op else { return (None, reply(404, json!({"error": "404 Not Found"}))) };
    if !s.fail_next.is_empty() {
        let (status, message) = s.fail_next.remove(0);
        return (op, reply(status, json!({ "message": message })));
    }
    let token = headers.get("private-token").map(String::as_str).or_else(|| {
        headers.get("authorization").and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
    });
    let authorized = token.is_some_and(|t| s.tokens.iter().any(|(known, revoked)| !revoked && known == t));
    if !authorized {
        return (op, unauthorized());
    }
    let id = percent_decode(segs[3]);
    let Some(project) = s.projects.iter().find(|p| p.id.to_string() == id || p.path == id).cloned() else {
        return (op, reply(404, json!({"message": "404 Project Not Found"})));
    };
    if !raw.is_empty() && body.is_none_or(|b| !b.is_object()) {
        return (op, reply(400, json!({"error": "The provided content-type '' is not supported."})));
    }
    let r = match found.0 {
        "get" => list(s, &project, query),
        _ => create(s, &project, body),
    };
    (op, r)
}

fn list(s: &State, project: &FakeProject, query: Option<&str>) -> Reply {
    let state = query_param(query, "state").unwrap_or_else(|| "all".into());
    if !["opened", "closed", "locked", "merged", "all"].contains(&state.as_str()) {
        return reply(400, json!({"error": "state does not have a valid value"}));
    }
    let source = query_param(query, "source_branch");
    let target = query_param(query, "target_branch");
    let items: Vec<Value> = s
        .merge_requests
        .iter()
        .rev()
        .filter(|m| m.project_id == project.id && (state == "all" || m.state == state))
        .filter(|m| source.as_ref().is_none_or(|b| *b == m.source_branch))
        .filter(|m| target.as_ref().is_none_or(|b| *b == m.target_branch))
        .map(|m| mr_json(s, project, m))
        .collect();
    reply(200, Value::Array(items))
}

fn create(s: &mut State, project: &FakeProject, body: Option<&Value>) -> Reply {
    let empty = Map::new();
    let b = body.and_then(Value::as_object).unwrap_or(&empty);
    let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
    // Grape rejects absent parameters; the model rejects blank ones.
    let required = ["title", "source_branch", "target_branch"];
    let missing: Vec<String> =
        required.into_iter().filter(|k| text(k).is_none()).map(|k| format!("{k} is missing")).collect();
    if !missing.is_empty() {
        return reply(400, json!({ "error": missing.join(", ") }));
    }
    let blank: Map<String, Value> = required
        .into_iter()
        .filter(|k| text(k).is_some_and(|v| v.trim().is_empty()))
        .map(|k| (k.to_string(), json!(["can't be blank"])))
        .collect();
    if !blank.is_empty() {
        return reply(400, json!({ "message": blank }));
    }
    let (Some(title), Some(source), Some(target)) = (text("title"), text("source_branch"), text("target_branch"))
    else {
        return reply(400, json!({"error": "title is missing"}));
    };
    if source == target {
        return reply(409, json!({"message": ["You can't use same project/branch for source and target"]}));
    }
    if let Some(open) =
        s.merge_requests.iter().find(|m| m.project_id == project.id && m.source_branch == source && m.state == "opened")
    {
        let message = format!("Another open merge request already exists for this source branch: !{}", open.iid);
        return reply(409, json!({ "message": [message] }));
    }
    s.counter += 1;
    let iid = s.merge_requests.iter().filter(|m| m.project_id == project.id).count() as u64 + 1;
    let lower = title.to_ascii_lowercase();
    let draft = ["draft:", "[draft]", "(draft)"].iter().any(|p| lower.starts_with(p));
    let mr = FakeMergeRequest {
        id: 310_000 + s.counter,
        iid,
        project_id: project.id,
        source_branch: source,
        target_branch: target,
        title,
        description: text("description").unwrap_or_default(),
        state: "opened".into(),
        draft,
        created_at: timestamp(),
    };
    s.merge_requests.push(mr.clone());
    reply(201, mr_json(s, project, &mr))
}

fn branch_sha(s: &State, project: &FakeProject, branch: &str) -> Option<String> {
    let root = s.git_repos.as_ref()?;
    let git = git2::Repository::open_bare(root.join(format!("{}.git", project.path))).ok()?;
    let found = git.find_reference(&format!("refs/heads/{branch}")).ok()?;
    found.target().map(|o| o.to_string())
}

fn mr_json(s: &State, project: &FakeProject, m: &FakeMergeRequest) -> Value {
    let web_base = s.base_url.clone();
    let mut v = json!({
        "id": m.id,
        "iid": m.iid,
        "project_id": m.project_id,
        "title": m.title,
        "description": m.description,
        "state": m.state,
        "created_at": m.created_at,
        "updated_at": m.created_at,
        "target_branch": m.target_branch,
        "source_branch": m.source_branch,
        "author": {
            "id": 4242,
            "username": "project_27_bot",
            "name": "userz project token",
            "state": "active",
            "locked": false,
            "avatar_url": format!("{web_base}/uploads/-/system/user/avatar/4242/avatar.png"),
            "web_url": format!("{web_base}/project_27_bot"),
        },
        "merge_status": "checking",
        "detailed_merge_status": if m.draft { "draft_status" } else { "checking" },
        "reference": format!("!{}", m.iid),
        "references": {
            "short": format!("!{}", m.iid),
            "relative": format!("!{}", m.iid),
            "full": format!("{}!{}", project.path, m.iid),
        },
        "web_url": format!("{web_base}/{}/-/merge_requests/{}", project.path, m.iid),
        "time_stats": {"time_estimate": 0, "total_time_spent": 0},
    });
    let head = branch_sha(s, project, &m.source_branch);
    let base = branch_sha(s, project, &m.target_branch);
    if let (Some(obj), Some(head)) = (v.as_object_mut(), head) {
        obj.insert("sha".into(), Value::String(head.clone()));
        if let Some(base) = base {
            obj.insert("diff_refs".into(), json!({"base_sha": base, "head_sha": head, "start_sha": base}));
        }
    }
    v
}
