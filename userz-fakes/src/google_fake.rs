//! A local fake of Google's OAuth 2.0 / OpenID Connect endpoints, with the
//! published paths, parameters, status codes and JSON fields:
//!
//! | Endpoint | Path |
//! |---|---|
//! | authorization | `GET /o/oauth2/v2/auth` (`response_type=code`, `client_id`, `redirect_uri`, `scope` with `openid`, `state`, `nonce`, `code_challenge` + `code_challenge_method=S256`) → `302` to `redirect_uri?state=…&code=…&scope=…` |
//! | token | `POST /token`, `application/x-www-form-urlencoded`: `grant_type=authorization_code`, `code`, `redirect_uri`, `client_id`, `client_secret` (or HTTP Basic), `code_verifier` → `{access_token, expires_in, scope, token_type: "Bearer", id_token}` |
//! | userinfo | `GET /v1/userinfo` with `Authorization: Bearer` → `{sub, email, email_verified, name}` |
//!
//! What it checks, like Google does: a registered client and redirect URI;
//! codes are single use and bound to the client, redirect URI and PKCE
//! challenge (`invalid_grant` otherwise); a wrong secret is `401
//! invalid_client`; the `id_token` carries `iss` (the fake's base URL), `aud`
//! (the client id), `sub`, `email`, `email_verified`, `nonce`, `iat`, `exp`,
//! and is signed HS256 with the client secret (OIDC's symmetric option; Google
//! itself signs RS256). The account that "signs in" at the authorize endpoint
//! is chosen with [`GoogleFake::sign_in_as`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The Google account the fake signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleAccount {
    /// Stable subject id.
    pub sub: String,
    /// E-mail.
    pub email: String,
    /// Whether Google verified the address.
    pub email_verified: bool,
    /// Display name.
    pub name: String,
}

impl GoogleAccount {
    /// A verified account for `email`.
    pub fn verified(email: &str) -> Self {
        let sub = format!("{}", u64::from_be_bytes(first8(&Sha256::digest(email.as_bytes()))));
        Self { sub, email: email.to_string(), email_verified: true, name: email.split('@').next().unwrap_or("").into() }
    }
}

fn first8(d: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// One token request as received (the secret is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `Content-Type` header.
    pub content_type: String,
    /// Form fields except `client_secret`.
    pub fields: HashMap<String, String>,
}

struct Grant {
    account: GoogleAccount,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
    used: bool,
}

struct State {
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    base_url: String,
    account: Option<GoogleAccount>,
    grants: HashMap<String, Grant>,
    access: HashMap<String, GoogleAccount>,
    token_requests: Vec<TokenRequest>,
    authorize_requests: Vec<HashMap<String, String>>,
    counter: u64,
}

/// A running fake; stops when dropped.
#[derive(Debug)]
pub struct GoogleFake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

impl Drop for GoogleFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GoogleFake {
    /// Starts on a loopback port with one registered client.
    pub async fn start(client_id: &str, client_secret: &str, redirect_uris: &[&str]) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris: redirect_uris.iter().map(|s| s.to_string()).collect(),
            base_url: format!("http://{addr}"),
            account: None,
            grants: HashMap::new(),
            access: HashMap::new(),
            token_requests: Vec::new(),
            authorize_requests: Vec::new(),
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

    /// `http://127.0.0.1:PORT` (also the `iss` of its id tokens).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The account the next authorization signs in (none: `access_denied`).
    pub fn sign_in_as(&self, account: Option<GoogleAccount>) {
        self.state.lock().account = account;
    }

    /// Token requests received so far.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().token_requests.clone()
    }

    /// Authorization requests' query parameters, in order.
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().authorize_requests.clone()
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json; charset=utf-8"));
    h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-cache, no-store, max-age=0"));
    r
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    respond(status, json!({"error": error, "error_description": description}))
}

fn parse_form(s: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap_or_default().into_iter().collect()
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "unreadable body")),
    };
    let resp = match (method, path.as_str()) {
        (Method::GET, "/o/oauth2/v2/auth") => authorize(&state, &parse_form(&query)),
        (Method::POST, "/token") => {
            let ct = headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let basic = headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
            token(&state, &ct, basic.as_deref(), &String::from_utf8_lossy(&body))
        }
        (Method::GET, "/v1/userinfo") => {
            let bearer = headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            let st = state.lock();
            match bearer.and_then(|b| st.access.get(&b).cloned()) {
                Some(a) => respond(
                    StatusCode::OK,
                    json!({"sub": a.sub, "name": a.name, "email": a.email, "email_verified": a.email_verified}),
                ),
                None => oauth_error(StatusCode::UNAUTHORIZED, "invalid_request", "Invalid Credentials"),
            }
        }
        _ => oauth_error(StatusCode::NOT_FOUND, "not_found", "unknown endpoint"),
    };
    Ok(resp)
}

fn authorize(state: &Arc<Mutex<State>>, q: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let mut st = state.lock();
    st.authorize_requests.push(q.clone());
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != st.client_id {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "The OAuth client was not found.");
    }
    let redirect_uri = get("redirect_uri").to_string();
    if !st.redirect_uris.contains(&redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "redirect_uri is not registered");
    }
    if get("response_type") != "code" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_response_type", "response_type must be code");
    }
    if !get("scope").split(' ').any(|s| s == "openid") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "openid scope required");
    }
    let challenge = q.get("code_challenge").cloned();
    if challenge.is_some() && get("code_challenge_method") != "S256" {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code_challenge_method must be S256");
    }
    let state_param = get("state").to_string();
    let mut location = redirect_uri.clone();
    location.push(if location.contains('?') { '&' } else { '?' });
    match st.account.clone() {
        None => {
            let qs = serde_urlencoded::to_string([("error", "access_denied"), ("state", state_param.as_str())])
                .unwrap_or_default();
            location.push_str(&qs);
        }
        Some(account) => {
            st.counter += 1;
            let code = format!("4/0A{}{}", st.counter, URL_SAFE_NO_PAD.encode(rand_bytes()));
            let nonce = q.get("nonce").cloned();
            st.grants.insert(code.clone(), Grant { account, redirect_uri, challenge, nonce, used: false });
            let scope = "email profile openid https://www.googleapis.com/auth/userinfo.email \
                         https://www.googleapis.com/auth/userinfo.profile";
            let qs = serde_urlencoded::to_string([
                ("state", state_param.as_str()),
                ("code", code.as_str()),
                ("scope", scope),
                ("authuser", "0"),
                ("prompt", "consent"),
            ])
            .unwrap_or_default();
            location.push_str(&qs);
        }
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = location.parse() {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}

fn rand_bytes() -> [u8; 24] {
    let mut b = [0u8; 24];
    let u1 = uuid::Uuid::new_v4();
    let u2 = uuid::Uuid::new_v4();
    b[..16].copy_from_slice(u1.as_bytes());
    b[16..].copy_from_slice(&u2.as_bytes()[..8]);
    b
}

fn token(state: &Arc<Mutex<State>>, content_type: &str, basic: Option<&str>, body: &str) -> Response<Full<Bytes>> {
    let mut st = state.lock();
    let mut form = parse_form(body);
    let secret = form.remove("client_secret");
    st.token_requests.push(TokenRequest { content_type: content_type.to_string(), fields: form.clone() });
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Invalid content type");
    }
    let (client_id, secret) = match basic.and_then(|b| b.strip_prefix("Basic ")) {
        Some(b64) => {
            let decoded = STANDARD.decode(b64).ok().and_then(|d| String::from_utf8(d).ok()).unwrap_or_default();
            let (id, s) = decoded.split_once(':').unwrap_or(("", ""));
            (id.to_string(), Some(s.to_string()))
        }
        None => (form.get("client_id").cloned().unwrap_or_default(), secret),
    };
    if client_id != st.client_id || secret.as_deref() != Some(st.client_secret.as_str()) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Invalid grant_type");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(grant) = st.grants.get_mut(&code) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Malformed auth code.");
    };
    if grant.used {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
    }
    grant.used = true;
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch", "Bad Request");
    }
    if let Some(challenge) = &grant.challenge {
        let Some(verifier) = form.get("code_verifier") else {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Missing code verifier.");
        };
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid code verifier.");
        }
    }
    let account = grant.account.clone();
    let nonce = grant.nonce.clone();
    let iat = now_secs();
    let mut claims = json!({
        "iss": st.base_url, "azp": st.client_id, "aud": st.client_id, "sub": account.sub,
        "email": account.email, "email_verified": account.email_verified, "name": account.name,
        "iat": iat, "exp": iat + 3599,
    });
    if let Some(n) = nonce {
        claims["nonce"] = Value::String(n);
    }
    let key = jsonwebtoken::EncodingKey::from_secret(st.client_secret.as_bytes());
    let id_token = match jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key)
    {
        Ok(t) => t,
        Err(_) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
    };
    st.counter += 1;
    let access = format!("ya29.a0{}{}", st.counter, URL_SAFE_NO_PAD.encode(rand_bytes()));
    st.access.insert(access.clone(), account);
    respond(
        StatusCode::OK,
        json!({
            "access_token": access, "expires_in": 3599, "token_type": "Bearer", "id_token": id_token,
            "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
        }),
    )
}
