//! Sign-in (e-mail link, Google) and sign-out.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use userz_core::ids::UserId;
use userz_security::session::{
    consume_email_token, sign_in, store_email_token, EmailSignInToken, SessionId, SessionStore,
};

use crate::auth::{check_same_origin, csrf_token, session_cookie};
use crate::error::DashError;
use crate::html::{document, esc};
use crate::oidc::{self, STATE_COOKIE};
use crate::DashboardState;
use userz_engine::directory::{memberships_by_email, normalize_email};

pub(crate) fn routes(state: DashboardState) -> Router {
    Router::new()
        .route("/signin", get(signin_form).post(signin_submit))
        .route("/signin/email", get(signin_email))
        .route("/signout", post(signout))
        .route("/auth/google/start", get(google_start))
        .route("/auth/google/callback", get(google_callback))
        .with_state(state)
}

async fn signin_form(State(state): State<DashboardState>) -> Response {
    let google = if state.config.google.is_some() {
        "<p><a href=\"/auth/google/start\" id=\"signin-google\">Sign in with Google</a></p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>Sign in</h1><form method=\"post\" action=\"/signin\" id=\"signin-form\">\
         <label>E-mail <input type=\"email\" name=\"email\" id=\"signin-email\" required autocomplete=\"email\"></label> \
         <button id=\"signin-submit\">Send me a sign-in link</button></form>{google}"
    );
    document(StatusCode::OK, "Sign in", None, &body).into_response()
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
}

fn check_inbox(email: &str) -> Response {
    let body = format!(
        "<h1>Check your inbox</h1><p id=\"check-inbox\">If {} belongs to a member, a sign-in link is on its way. \
         It works once and expires in 15 minutes.</p>",
        esc(email)
    );
    document(StatusCode::OK, "Check your inbox", None, &body).into_response()
}

/// Sends a link to a member's address; answers the same page for any address
/// (no member enumeration).
async fn signin_submit(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Result<Response, DashError> {
    check_same_origin(&state, &headers)?;
    let email = normalize_email(&form.email);
    if email.len() > 254 || !email.contains('@') {
        return Err(DashError::Invalid { field: "email", message: "not an e-mail address".into() });
    }
    let members = memberships_by_email(state.read_models.as_ref(), &email).await?;
    if !members.is_empty() && first_mail_in_interval(&state, &email).await? {
        let now = state.clock.now();
        let issued = EmailSignInToken::issue(&email, now, state.config.email_token_lifetime);
        store_email_token(state.cache.as_ref(), &issued.record, now)
            .await
            .map_err(|e| DashError::Unavailable(e.to_string()))?;
        let link = format!("{}/signin/email?token={}", state.config.public_base_url, issued.token.expose_secret());
        let minutes = state.config.email_token_lifetime.as_secs() / 60;
        // A failed send must not answer differently (enumeration); it is logged.
        if let Err(e) = state.mailer.send_sign_in_link(&email, &link, minutes).await {
            tracing::error!(error = %e, "sign-in mail not sent");
        }
    }
    Ok(check_inbox(&email))
}

/// Whether no sign-in mail went to `email` within the configured interval
/// (and records this one).
async fn first_mail_in_interval(state: &DashboardState, email: &str) -> Result<bool, DashError> {
    use sha2::Digest as _;
    let key = format!("userz:signin-mail:{}", hex::encode(sha2::Sha256::digest(email.as_bytes())));
    state
        .cache
        .set_if_absent(&key, bytes::Bytes::from_static(b"1"), Some(state.config.sign_in_mail_interval))
        .await
        .map_err(|e| DashError::Unavailable(e.to_string()))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

async fn signin_email(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Result<Response, DashError> {
    let now = state.clock.now();
    let record = consume_email_token(state.cache.as_ref(), &q.token, now).await.map_err(|e| DashError::SignIn {
        code: e.code(),
        message: "this sign-in link is invalid, expired or already used".into(),
    })?;
    let user = member_user(&state, record.email.expose()).await?;
    start_session(&state, &headers, user).await
}

async fn member_user(state: &DashboardState, email: &str) -> Result<UserId, DashError> {
    let members = memberships_by_email(state.read_models.as_ref(), email).await?;
    members.first().map(|m| m.user).ok_or(DashError::SignIn {
        code: "not_a_member",
        message: "this address is not a member of any organization".into(),
    })
}

/// Issues a new session id (never the one the browser came with), deletes the
/// previous session and redirects to the queue with the cookie.
async fn start_session(state: &DashboardState, headers: &HeaderMap, user: UserId) -> Result<Response, DashError> {
    let cfg = state.config.session_config();
    let previous = session_cookie(headers, &cfg.cookie_name).and_then(|v| SessionId::parse(&v).ok());
    let now = state.clock.now();
    let new = sign_in(user, previous.as_ref(), now, &cfg);
    let unavailable = |e: userz_security::session::SessionError| DashError::Unavailable(e.to_string());
    if let Some(old) = &new.replaces {
        state.sessions.delete(old).await.map_err(unavailable)?;
    }
    state.sessions.put(&new.record, new.record.expires_at.saturating_since(now)).await.map_err(unavailable)?;
    let cookie = cfg.cookie(&new.id, new.record.expires_at, now);
    let mut resp = Redirect::to("/").into_response();
    let v = HeaderValue::from_str(cookie.expose_secret()).map_err(|e| DashError::Unavailable(e.to_string()))?;
    resp.headers_mut().append(header::SET_COOKIE, v);
    Ok(resp)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Revokes the session (deleted from the store) and clears the cookie.
async fn signout(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, DashError> {
    check_same_origin(&state, &headers)?;
    let cfg = state.config.session_config();
    if let Some(id) = session_cookie(&headers, &cfg.cookie_name).and_then(|v| SessionId::parse(&v).ok()) {
        let expected = csrf_token(&id);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(form.csrf.as_bytes(), expected.as_bytes())) {
            return Err(DashError::Csrf("csrf token missing or wrong"));
        }
        // Revocation is deletion: the cookie then names no session anywhere.
        state.sessions.delete(&id.key()).await.map_err(|e| DashError::Unavailable(e.to_string()))?;
    }
    let mut resp = Redirect::to("/signin").into_response();
    let v = HeaderValue::from_str(&cfg.clear_cookie()).map_err(|e| DashError::Unavailable(e.to_string()))?;
    resp.headers_mut().append(header::SET_COOKIE, v);
    Ok(resp)
}

async fn google_start(State(state): State<DashboardState>) -> Result<Response, DashError> {
    let g = state.config.google.as_ref().ok_or(DashError::NotConfigured("Google sign-in"))?;
    let started = oidc::start(g, state.cache.as_ref(), &state.config.public_base_url).await?;
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{STATE_COOKIE}={}; Path=/auth/google; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        started.state,
        oidc::PENDING_LIFETIME.as_secs()
    );
    let mut resp = Redirect::to(&started.redirect).into_response();
    let v = HeaderValue::from_str(&cookie).map_err(|e| DashError::Unavailable(e.to_string()))?;
    resp.headers_mut().append(header::SET_COOKIE, v);
    Ok(resp)
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn google_callback(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, DashError> {
    let g = state.config.google.as_ref().ok_or(DashError::NotConfigured("Google sign-in"))?;
    if let Some(error) = q.error {
        return Err(DashError::SignIn { code: "provider_error", message: format!("Google answered: {error}") });
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return Err(DashError::SignIn { code: "callback_malformed", message: "code and state are required".into() });
    };
    let cookie_state = session_cookie(&headers, STATE_COOKIE);
    let email = oidc::finish(
        g,
        state.cache.as_ref(),
        &state.config.public_base_url,
        &code,
        &st,
        cookie_state.as_deref(),
        state.clock.now(),
    )
    .await?;
    let user = member_user(&state, &email).await?;
    let mut resp = start_session(&state, &headers, user).await?;
    let clear = format!("{STATE_COOKIE}=; Path=/auth/google; Max-Age=0; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}
