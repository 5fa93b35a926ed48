//! Session checks (G17) and CSRF defence for signed-in routes.
//!
//! The rules (expiry, refresh interval, rotation) are
//! `userz_security::session`'s; this module only moves records between
//! the cookie, the store and the request.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use userz_core::domain::Role;
use userz_core::ids::{OrgId, UserId};
use userz_security::session::{SessionError, SessionId, SessionStore, Touch};

use crate::error::DashError;
use crate::html::Nav;
use crate::DashboardState;
use userz_engine::directory::{memberships_of, org_name};

/// The signed-in member, put into request extensions by [`require_session`].
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) user: UserId,
    pub(crate) org: OrgId,
    pub(crate) role: Role,
    pub(crate) email: String,
    pub(crate) org_name: String,
    pub(crate) role_name: String,
    pub(crate) csrf: String,
}

impl Ctx {
    pub(crate) fn nav(&self) -> Nav<'_> {
        Nav { email: &self.email, org_name: &self.org_name, role: &self.role_name, csrf: &self.csrf }
    }

    /// Checks the form's CSRF token against the session's, in constant time.
    pub(crate) fn check_csrf(&self, presented: &str) -> Result<(), DashError> {
        if bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(DashError::Csrf("csrf token missing or wrong"))
        }
    }

    /// Owner or admin, else 403 naming `action`.
    pub(crate) fn require_admin(&self, action: &'static str) -> Result<(), DashError> {
        if self.role.can_administer() {
            Ok(())
        } else {
            Err(DashError::Forbidden { role: self.role.to_string(), action })
        }
    }
}

/// The per-session CSRF token: HMAC-SHA256 keyed by the session id (which
/// only the browser and nobody else holds), so it is unguessable without the
/// cookie and needs no storage.
pub(crate) fn csrf_token(id: &SessionId) -> String {
    hex::encode(userz_security::mac::hmac_sha256(id.expose_secret().as_bytes(), &[b"userz-dashboard/csrf/v1"]))
}

/// The session cookie's value, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// Refuses unsafe methods that come from another site: `Sec-Fetch-Site`
/// other than `same-origin`/`none`, or an `Origin` that is not ours.
pub(crate) fn check_same_origin(state: &DashboardState, headers: &HeaderMap) -> Result<(), DashError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(DashError::Csrf("Sec-Fetch-Site is not same-origin"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if origin.as_bytes() != state.config.origin().as_bytes() {
            return Err(DashError::Csrf("Origin is not this dashboard"));
        }
    }
    Ok(())
}

enum AuthFailure {
    SignIn,
    Failed(DashError),
}

fn to_sign_in(state: &DashboardState) -> Response {
    let mut resp = Redirect::to("/signin").into_response();
    if let Ok(v) = HeaderValue::from_str(&state.config.session_config().clear_cookie()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn authenticate(state: &DashboardState, headers: &HeaderMap) -> Result<(Ctx, Option<HeaderValue>), AuthFailure> {
    let cfg = state.config.session_config();
    let raw = session_cookie(headers, &cfg.cookie_name).ok_or(AuthFailure::SignIn)?;
    let id = SessionId::parse(&raw).map_err(|_| AuthFailure::SignIn)?;
    let key = id.key();
    let store_err = |e: SessionError| AuthFailure::Failed(DashError::Unavailable(e.to_string()));
    let mut record = state.sessions.get(&key).await.map_err(store_err)?.ok_or(AuthFailure::SignIn)?;
    let now = state.clock.now();
    let touched = match record.touch(now, &cfg) {
        Ok(t) => t,
        Err(_) => {
            // Expired or revoked: forget it so the cache does not keep it.
            let _ = state.sessions.delete(&key).await;
            return Err(AuthFailure::SignIn);
        }
    };
    let memberships = memberships_of(state.read_models.as_ref(), record.user)
        .await
        .map_err(|e| AuthFailure::Failed(DashError::Unavailable(e.to_string())))?;
    // A user removed from every org is signed out at the next request.
    let Some(m) = memberships.into_iter().next() else {
        let _ = state.sessions.delete(&key).await;
        return Err(AuthFailure::SignIn);
    };
    let mut set_cookie = None;
    if touched == Touch::Refreshed {
        let ttl = record.expires_at.saturating_since(now);
        state.sessions.put(&record, ttl).await.map_err(store_err)?;
        let cookie = cfg.cookie(&id, record.expires_at, now);
        set_cookie = HeaderValue::from_str(cookie.expose_secret()).ok();
    }
    let org_name = org_name(state.read_models.as_ref(), m.org)
        .await
        .map_err(|e| AuthFailure::Failed(DashError::Unavailable(e.to_string())))?
        .unwrap_or_else(|| m.org.to_string());
    let ctx = Ctx {
        user: m.user,
        org: m.org,
        role: m.role,
        role_name: m.role.to_string(),
        email: m.email,
        org_name,
        csrf: csrf_token(&id),
    };
    Ok((ctx, set_cookie))
}

/// Middleware of signed-in routes: a valid session (refreshed when due) or a
/// redirect to `/signin`; unsafe methods must come from this site.
pub(crate) async fn require_session(State(state): State<DashboardState>, mut req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Err(e) = check_same_origin(&state, req.headers()) {
            return e.into_response();
        }
    }
    match authenticate(&state, req.headers()).await {
        Ok((ctx, set_cookie)) => {
            req.extensions_mut().insert(ctx);
            let mut resp = next.run(req).await;
            if let Some(c) = set_cookie {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            resp
        }
        Err(AuthFailure::SignIn) => to_sign_in(&state),
        Err(AuthFailure::Failed(e)) => e.into_response(),
    }
}
