//! Credentials at the HTTP edge.
//!
//! - **Org API**: `Authorization: Bearer sk_…` ([`OrgAuth`]). The key's shape
//!   and checksum are checked before any lookup; the prefix finds the stored
//!   Argon2id hash in the directory (O(1), G14); one Argon2id evaluation
//!   verifies it, after which the SHA-256 of the key is kept in memory so
//!   later requests cost a hash and a constant-time compare. The directory row
//!   is read on every request, so revocation is immediate. Then the key's token
//!   bucket (capacity 100, 10/s) is charged: `429 rate_limited` + `Retry-After`.
//! - **Widget** ([`authenticate_widget`]): the App's public key in
//!   [`PUBLIC_KEY_HEADER`] (`X-Userz-Public-Key: pub_…`); an `Origin` header, when
//!   present, must be on the App's exact allowlist (public mode requires one);
//!   with [`USER_TOKEN_HEADER`] (`X-Userz-User-Token`) the HS256 token is verified
//!   with the App's signing secret and gives the identity (private mode);
//!   without it the App must allow public submissions (`public_disabled`).
//!   Public submissions are limited per client IP, private ones per token `sub`.
//!
//! Every refusal is logged; where the org is known it is also an audit event
//! (G19, throttled).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use userz_core::domain::org::OrgCommand;
use userz_core::ids::OrgId;
use userz_engine::secrets::open_secret;
use userz_security::api_key::VerifyApiKey;
use userz_security::api_key::{ApiKey, PublicKey};
use userz_security::envelope::SecretKind;
use userz_security::secret::SecretBytes;
use userz_security::widget_auth::{OriginAllowlist, UserTokenClaims, UserTokenVerifier};

use crate::directory::{self, AppRow};
use crate::error::{ApiError, ErrorCode};
use crate::ratelimit::{retry_after_secs, BucketConfig, RateDecision};
use crate::state::ApiState;

/// Header carrying the App's public key on widget requests.
pub const PUBLIC_KEY_HEADER: &str = "x-userz-public-key";
/// Header carrying the private-mode user token on widget requests.
pub const USER_TOKEN_HEADER: &str = "x-userz-user-token";

/// An authenticated org API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAuth {
    /// The key's org.
    pub org: OrgId,
    /// The key's prefix (the actor recorded on commands).
    pub prefix: String,
}

fn missing(rule: &str, message: &str) -> ApiError {
    ApiError::new(ErrorCode::MissingAuthorization, message).with_details(json!({ "rule": rule }))
}

impl FromRequestParts<ApiState> for OrgAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let auth = authenticate_key(state, &parts.headers).await?;
        tracing::Span::current().record("org", tracing::field::display(auth.org));
        Ok(auth)
    }
}

/// Authenticates `Authorization: Bearer sk_…` and charges the key's bucket.
pub async fn authenticate_key(state: &ApiState, headers: &HeaderMap) -> Result<OrgAuth, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        state.auth_failure(None, "missing_authorization", "absent", None, None);
        return Err(missing("absent", "an Authorization: Bearer sk_… header is required"));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(token) = token else {
        state.auth_failure(None, "missing_authorization", "scheme", None, None);
        return Err(missing("scheme", "the Authorization header must be `Bearer sk_…`"));
    };
    let key = match ApiKey::parse(token) {
        Ok(k) => k,
        Err(e) => {
            state.auth_failure(None, "missing_authorization", e.code(), None, None);
            return Err(missing(e.code(), "the API key is malformed"));
        }
    };
    let prefix = key.prefix().to_string();
    let row = directory::key(state.read_models(), &prefix).await.map_err(ApiError::from)?;
    let Some(row) = row else {
        state.auth_failure(None, "missing_authorization", "unknown_key", None, Some(&prefix));
        return Err(missing("unknown_key", "the API key is not valid"));
    };
    if row.revoked_at.is_some() {
        state.auth_failure(Some(row.org), "missing_authorization", "revoked", None, Some(&prefix));
        return Err(missing("revoked", "the API key has been revoked"));
    }
    let digest: [u8; 32] = Sha256::digest(key.expose_secret().as_bytes()).into();
    let cached = state.0.verified_keys.lock().get(&prefix).copied();
    let known = cached.is_some_and(|c| bool::from(c.ct_eq(&digest)));
    if !known {
        let _permit = state.0.argon2_permits.acquire().await.map_err(ApiError::internal)?;
        let stored = row.stored.clone();
        let verified = tokio::task::spawn_blocking(move || stored.verify(&key))
            .await
            .map_err(|e| ApiError::internal(format!("key verification task: {e}")))?;
        if let Err(e) = verified {
            state.auth_failure(Some(row.org), "missing_authorization", e.code(), None, Some(&prefix));
            return Err(missing(e.code(), "the API key is not valid"));
        }
        state.0.verified_keys.lock().insert(prefix.clone(), digest);
    }
    if let Err(e) = charge(state, "api_key", state.config().api_key_limit, &prefix).await {
        tracing::info!(org = %row.org, prefix = %prefix, "api key rate limited");
        return Err(e);
    }
    Ok(OrgAuth { org: row.org, prefix })
}

/// Takes one token from the `kind` bucket of `key`; `429 rate_limited` with
/// `Retry-After` when it is empty.
///
/// A limit the limiter refuses as unusable (capacity 0, refill 0) refuses every
/// request, as an empty bucket would; a limiter that is down answers
/// `503 unavailable` (fail closed).
async fn charge(state: &ApiState, kind: &str, limit: BucketConfig, key: &str) -> Result<(), ApiError> {
    match state.limiter().check(&format!("{kind}:{key}"), limit, 1).await {
        Ok(RateDecision::Allowed { .. }) => Ok(()),
        Ok(RateDecision::Limited { retry_after }) => Err(rate_limited(kind, limit, retry_after_secs(retry_after))),
        Err(userz_core::Error::Invalid(reason)) => {
            tracing::error!(limit = kind, %reason, "rate limit misconfigured; refusing");
            Err(rate_limited(kind, limit, 60))
        }
        Err(e) => Err(e.into()),
    }
}

fn rate_limited(limit: &str, cfg: BucketConfig, secs: u64) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, format!("rate limit exceeded; retry in {secs}s"))
        .with_details(json!({ "limit": limit, "capacity": cfg.capacity, "refillPerMinute": cfg.refill_per_minute }))
        .with_retry_after(secs)
}

/// How a widget request was authenticated.
#[derive(Debug)]
pub enum WidgetMode {
    /// `pub_` key + allowed Origin; identity (if any) is self-declared.
    Public,
    /// Verified user token; identity comes from its claims.
    Private(UserTokenClaims),
}

/// An authenticated widget request.
#[derive(Debug)]
pub struct WidgetAuth {
    /// The App.
    pub app: AppRow,
    /// Public or private mode.
    pub mode: WidgetMode,
}

/// The client IP: the socket peer, or the last `X-Forwarded-For` hop when configured.
pub fn client_ip(state: &ApiState, headers: &HeaderMap, extensions: &axum::http::Extensions) -> Option<IpAddr> {
    if state.config().trust_forwarded_for {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Authenticates a widget submission (see the module docs for the rules) and
/// charges the per-IP or per-user bucket.
pub async fn authenticate_widget(
    state: &ApiState,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<WidgetAuth, ApiError> {
    let Some(pk) = headers.get(PUBLIC_KEY_HEADER) else {
        state.auth_failure(None, "missing_authorization", "no_public_key", None, None);
        return Err(missing("no_public_key", "the X-Userz-Public-Key header (pub_…) is required"));
    };
    let pk = pk.to_str().unwrap_or_default().trim();
    let unknown = |rule: &str| {
        ApiError::new(ErrorCode::UnknownApp, "no App has this public key").with_details(json!({ "rule": rule }))
    };
    if let Err(e) = PublicKey::parse(pk) {
        state.auth_failure(None, "unknown_app", e.code(), None, None);
        return Err(unknown(e.code()));
    }
    let app = directory::app_by_public_key(state.read_models(), pk).await.map_err(ApiError::from)?;
    let app = match app {
        Some(a) if !a.archived => a,
        Some(a) => {
            state.auth_failure(Some(a.org), "unknown_app", "archived", Some(a.app), Some(pk));
            return Err(unknown("archived"));
        }
        None => {
            state.auth_failure(None, "unknown_app", "unknown_key", None, Some(pk));
            return Err(unknown("unknown_key"));
        }
    };
    let span = tracing::Span::current();
    span.record("org", tracing::field::display(app.org));
    span.record("app", tracing::field::display(app.app));

    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{0}"));
    let token = headers.get(USER_TOKEN_HEADER);
    if origin.is_some() || token.is_none() {
        let allow = OriginAllowlist::new(&app.settings.allowed_origins)
            .map_err(|e| ApiError::internal(format!("{}: stored allowlist invalid: {e}", app.app)))?;
        if let Err(e) = allow.check(origin) {
            state.auth_failure(Some(app.org), "origin_not_allowed", e.code(), Some(app.app), Some(pk));
            return Err(ApiError::new(ErrorCode::OriginNotAllowed, "this Origin may not submit to this App")
                .with_details(json!({ "rule": e.code() })));
        }
    }

    let Some(token) = token else {
        if !app.settings.public_submission_enabled {
            state.auth_failure(Some(app.org), "public_disabled", "public_disabled", Some(app.app), Some(pk));
            return Err(ApiError::new(
                ErrorCode::PublicDisabled,
                "this App accepts only private-mode submissions (X-Userz-User-Token)",
            ));
        }
        let bucket = ip.map(|i| format!("{}/{i}", app.app)).unwrap_or_else(|| format!("{}/unknown", app.app));
        charge(state, "public_per_ip", state.config().public_per_ip, &bucket).await?;
        return Ok(WidgetAuth { app, mode: WidgetMode::Public });
    };

    let token = token.to_str().unwrap_or_default().trim();
    let verifier = verifier_for(state, &app).await?;
    let claims = match verifier.verify(token, state.clock().now()) {
        Ok(c) => c,
        Err(e) => {
            state.auth_failure(Some(app.org), "invalid_user_token", e.code(), Some(app.app), Some(pk));
            return Err(ApiError::new(ErrorCode::InvalidUserToken, "the user token was refused")
                .with_details(json!({ "rule": e.code() })));
        }
    };
    let bucket = format!("{}/{}", app.app, claims.sub.expose());
    charge(state, "private_per_user", state.config().private_per_user, &bucket).await?;
    Ok(WidgetAuth { app, mode: WidgetMode::Private(claims) })
}

fn not_configured(app: &AppRow) -> ApiError {
    ApiError::new(ErrorCode::NotConfigured, "this App has no signing secret for private mode")
        .with_details(json!({ "rule": "no_signing_secret", "appId": app.app.to_string() }))
}

/// The App's signing secret, opened (and the opening audited) when its
/// version changed since it was last opened.
pub(crate) async fn signing_secret(state: &ApiState, app: &AppRow) -> Result<(u64, SecretBytes), ApiError> {
    let Some(version) =
        directory::signing_secret_version(state.read_models(), app.app).await.map_err(ApiError::from)?
    else {
        return Err(not_configured(app));
    };
    let Some(envelope) = state.0.deps.envelope.as_ref() else {
        tracing::error!(app = %app.app, "private mode needs an envelope (master key) and none is configured");
        return Err(ApiError::new(ErrorCode::NotConfigured, "this server has no master key for App secrets")
            .with_details(json!({ "rule": "no_envelope" })));
    };
    let secret = open_secret(state.bus(), envelope, app.org, SecretKind::AppSigningSecret, &app.app.to_string())
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| not_configured(app))?;
    state.record_org_event(
        app.org,
        OrgCommand::RecordSecretOpened {
            kind: SecretKind::AppSigningSecret.as_str().to_string(),
            secret_id: app.app.to_string(),
            purpose: "user_token".into(),
        },
    );
    Ok((version, SecretBytes::copy_from(secret.expose_secret().as_bytes())))
}

async fn verifier_for(state: &ApiState, app: &AppRow) -> Result<Arc<UserTokenVerifier>, ApiError> {
    let version = directory::signing_secret_version(state.read_models(), app.app).await.map_err(ApiError::from)?;
    if let (Some(v), Some((cv, verifier))) = (version, state.0.verifiers.lock().get(&app.app)) {
        if *cv == v {
            return Ok(verifier.clone());
        }
    }
    let (version, secret) = signing_secret(state, app).await?;
    let verifier = Arc::new(
        UserTokenVerifier::new(app.app, &secret)
            .map_err(|e| ApiError::internal(format!("{}: signing secret unusable: {e}", app.app)))?,
    );
    state.0.verifiers.lock().insert(app.app, (version, verifier.clone()));
    Ok(verifier)
}
