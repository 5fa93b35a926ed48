//! # userz-dashboard
//!
//! The Userz engine's server-rendered HTML dashboard, as an axum [`Router`]
//! that a server mounts at `/` beside the `/v1` API. Plain HTML from Rust
//! (every piece of user content escaped), one small inline script on the run
//! page for live updates over Server-Sent Events.
//!
//! ## Assembling
//!
//! ```no_run
//! # async fn demo(engine: userz_engine::Engine, cache: std::sync::Arc<dyn userz_core::ports::Cache>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use userz_dashboard::{router, DashboardConfig, DashboardState};
//!
//! let config = DashboardConfig::from_env()?; // or DashboardConfig::new(base_url, smtp)
//! let state = DashboardState::new(
//!     engine.bus().clone(),
//!     engine.read_models().clone(),
//!     engine.deps().clock.clone(),
//!     cache, // sessions and sign-in tokens live in the ephemeral cache (G18)
//!     config,
//! );
//! // Members, apps, repos and secret slots come from the engine's directory
//! // projection (`userz_engine::directory`), which the engine runs.
//! let app: axum::Router = axum::Router::new().merge(router(state)); // `/v1` is nested beside it
//! # let _ = app; Ok(()) }
//! ```
//!
//! Optional parts: [`DashboardState::with_envelope`] (needed to set secrets).
//! Keys, members, Apps, repos and secret slots are read from the engine's
//! directory and written through its application layer (`userz_engine::admin`).
//!
//! ## Routes
//!
//! | method | path | who | what |
//! |---|---|---|---|
//! | GET | `/signin` | anyone | e-mail form (`#signin-email`, `#signin-submit`), Google button (`#signin-google`) when configured |
//! | POST | `/signin` | anyone | sends a single-use link to a member's address; always answers the same `#check-inbox` page |
//! | GET | `/signin/email?token=…` | link holder | consumes the token once, starts a session (new id), redirects to `/` |
//! | GET | `/auth/google/start` | anyone | OAuth 2.0 code flow with `state`, PKCE (S256) and `nonce` |
//! | GET | `/auth/google/callback` | Google | exchanges the code, checks `id_token` claims and `email_verified`, starts a session |
//! | POST | `/signout` | member | revokes the session, clears the cookie |
//! | GET | `/` | member | feedback queue: `?status=`, `?cursor=`; duplicates folded under their lead |
//! | GET | `/feedback/{id}` | member | text, console logs, attachments, label and signals, duplicates, runs |
//! | POST | `/feedback/{id}/queue`, `/feedback/{id}/archive` | member | manual actions (actor = the user) |
//! | GET | `/feedback/{id}/attachments/{n}` | member | the bytes of attachment `n` (images inline, anything else as a download) |
//! | GET | `/runs/{id}` | member | status, timeline, tokens, cost, guardrail file + rule, transcript |
//! | GET | `/runs/{id}/events` | member | SSE: `timeline`, `status` and `end` events as the read model changes |
//! | GET | `/prs/{id}` | member | comments (path, line, severity), runs with cost |
//! | POST | `/prs/{id}/comments`, `/prs/{id}/comments/{comment}/resolve`, `/prs/{id}/revision` | member | review actions |
//! | GET | `/settings` | member (read-only) | apps, keys (prefix only), repos, secret slots (never values) |
//! | POST | `/settings/apps/{id}`, `/settings/secrets` | owner, admin | change an App's settings; set a secret (write-only) |
//!
//! Sessions follow G17 through [`userz_security::session`]: cookie
//! `HttpOnly; SameSite=Lax; Path=/` (+ `Secure` when configured), 30-day idle
//! expiry, refreshed (store write + new `Set-Cookie`) at most once per 24 h,
//! a new id at every sign-in, revoked at sign-out. Every POST carries a
//! per-session CSRF token (HMAC of the session id) and is refused when
//! `Origin` or `Sec-Fetch-Site` name another site. Other orgs' ids answer 404.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod error;
pub mod html;
pub mod mail;
pub mod oidc;
mod pages;
mod signin;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use userz_core::ids::OrgId;
use userz_core::ports::{BlobKey, BlobStore, Cache, ReadModelStore};
use userz_core::Clock;
use userz_engine::CommandBus;
use userz_security::envelope::Envelope;
use userz_security::session::{CacheSessionStore, SessionConfig};

pub use error::DashError;
pub use mail::SmtpSettings;
pub use oidc::GoogleSettings;

/// Environment variables read by [`DashboardConfig::from_env`].
pub mod env {
    /// Public base URL of the dashboard, e.g. `https://userz.example.com` (default `http://127.0.0.1:8080`).
    pub const PUBLIC_URL: &str = "USERZ_PUBLIC_URL";
    /// `host:port` of the SMTP relay (plain SMTP, e.g. a local MTA or the test sink).
    pub const SMTP_ADDR: &str = "USERZ_SMTP_ADDR";
    /// Sender address of sign-in mails (default `Userz <no-reply@localhost>`).
    pub const SMTP_FROM: &str = "USERZ_SMTP_FROM";
    /// `0`/`false` turns the cookie's `Secure` flag off (local http only). Default: on
    /// when the public URL is `https://`.
    pub const SECURE_COOKIES: &str = "USERZ_SECURE_COOKIES";
    /// Google OAuth client id; Google sign-in is on when this and the secret are set.
    pub const GOOGLE_CLIENT_ID: &str = "USERZ_GOOGLE_CLIENT_ID";
    /// Google OAuth client secret.
    pub const GOOGLE_CLIENT_SECRET: &str = "USERZ_GOOGLE_CLIENT_SECRET";
    /// Optional base replacing Google's endpoints (a local fake): authorize at
    /// `{base}/o/oauth2/v2/auth`, token at `{base}/token`, userinfo at `{base}/v1/userinfo`.
    pub const GOOGLE_BASE_URL: &str = "USERZ_GOOGLE_BASE_URL";
}

/// A configuration value is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dashboard config {field}: {message}")]
pub struct ConfigError {
    /// The field or environment variable.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

/// Dashboard settings.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Public base URL without a trailing slash (`https://userz.example.com`):
    /// used in mailed links, the OAuth redirect URI and the `Origin` check.
    pub public_base_url: String,
    /// Whether cookies carry `Secure` (true in production).
    pub secure_cookies: bool,
    /// SMTP relay for sign-in links; `None` prints each link to the server's
    /// standard output instead (local development with no relay: anyone who
    /// can read that output can sign in as anyone who asks).
    pub smtp: Option<SmtpSettings>,
    /// Google sign-in, when configured.
    pub google: Option<GoogleSettings>,
    /// Session policy (cookie name, 30-day idle expiry, 24 h refresh); its
    /// `secure` field is overridden by `secure_cookies`.
    pub session: SessionConfig,
    /// Lifetime of an e-mailed sign-in link (15 minutes).
    pub email_token_lifetime: Duration,
    /// How often the SSE stream of a run re-reads the read model.
    pub sse_poll_interval: Duration,
    /// At most one sign-in mail per address in this interval (mail-bombing
    /// defence; extra requests get the same page and send nothing).
    pub sign_in_mail_interval: Duration,
}

impl DashboardConfig {
    /// Production defaults for `public_base_url` and `smtp`; `Secure` cookies
    /// unless the URL is plain `http://`.
    pub fn new(public_base_url: impl Into<String>, smtp: SmtpSettings) -> Result<Self, ConfigError> {
        Self::build(public_base_url, Some(smtp))
    }

    /// Like [`new`](Self::new) with no SMTP relay: sign-in links are printed to
    /// standard output (local development only).
    pub fn printing_sign_in_links(public_base_url: impl Into<String>) -> Result<Self, ConfigError> {
        Self::build(public_base_url, None)
    }

    fn build(public_base_url: impl Into<String>, smtp: Option<SmtpSettings>) -> Result<Self, ConfigError> {
        let url = public_base_url.into().trim_end_matches('/').to_string();
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() <= "https://".len() {
            return Err(ConfigError { field: "public_base_url", message: format!("{url:?} is not an http(s) URL") });
        }
        let secure = url.starts_with("https://");
        Ok(Self {
            public_base_url: url,
            secure_cookies: secure,
            smtp,
            google: None,
            session: SessionConfig::default(),
            email_token_lifetime: userz_security::session::DEFAULT_EMAIL_TOKEN_LIFETIME,
            sse_poll_interval: Duration::from_millis(250),
            sign_in_mail_interval: Duration::from_secs(60),
        })
    }

    /// Reads the variables of [`mod@env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = var(env::PUBLIC_URL).unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let addr = var(env::SMTP_ADDR).ok_or_else(|| ConfigError {
            field: env::SMTP_ADDR,
            message: "required (host:port of the SMTP relay)".into(),
        })?;
        let from = var(env::SMTP_FROM).unwrap_or_else(|| "Userz <no-reply@localhost>".into());
        let mut cfg = Self::new(url, SmtpSettings::from_addr(&addr, &from)?)?;
        if let Some(v) = var(env::SECURE_COOKIES) {
            cfg.secure_cookies = !matches!(v.as_str(), "0" | "false" | "no" | "off");
        }
        if let (Some(id), Some(secret)) = (var(env::GOOGLE_CLIENT_ID), var(env::GOOGLE_CLIENT_SECRET)) {
            cfg.google = Some(match var(env::GOOGLE_BASE_URL) {
                Some(base) => GoogleSettings::with_base(&base, id, secret),
                None => GoogleSettings::google(id, secret),
            });
        }
        Ok(cfg)
    }

    /// Turns Google sign-in on.
    #[must_use]
    pub fn with_google(mut self, google: GoogleSettings) -> Self {
        self.google = Some(google);
        self
    }

    /// Sets the `Secure` cookie flag.
    #[must_use]
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    pub(crate) fn session_config(&self) -> SessionConfig {
        SessionConfig { secure: self.secure_cookies, ..self.session.clone() }
    }

    /// `scheme://host[:port]` of the public URL (what browsers send as `Origin`).
    pub(crate) fn origin(&self) -> &str {
        let after_scheme = self.public_base_url.find("://").map_or(0, |i| i + 3);
        match self.public_base_url[after_scheme..].find('/') {
            Some(i) => &self.public_base_url[..after_scheme + i],
            None => &self.public_base_url,
        }
    }
}

/// The first `limit` bytes of `org`'s object at `key`, from `store`.
///
/// `key` comes from a read model or a report (text the widget sent), so it is
/// read only when it parses as one of `org`'s keys ([`BlobKey::parse`]):
/// another org's key, or one climbing out with `..`, reads as `Ok(None)`, as
/// does a missing object.
pub(crate) async fn read_org_blob(
    store: &dyn BlobStore,
    org: OrgId,
    key: &str,
    limit: usize,
) -> userz_core::Result<Option<bytes::Bytes>> {
    let Some(key) = BlobKey::parse(org, key) else {
        return Ok(None);
    };
    store.get(&key, Some(u64::try_from(limit).unwrap_or(u64::MAX))).await
}

/// Everything the dashboard's handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DashboardState {
    pub(crate) bus: CommandBus,
    pub(crate) read_models: Arc<dyn ReadModelStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) sessions: CacheSessionStore,
    pub(crate) config: Arc<DashboardConfig>,
    pub(crate) envelope: Option<Envelope>,
    pub(crate) blobs: Option<Arc<dyn BlobStore>>,
    pub(crate) mailer: mail::Mailer,
}

impl DashboardState {
    /// The dashboard over the engine's command bus and read models, a clock,
    /// the ephemeral cache (sessions, sign-in tokens, OAuth state) and `config`.
    pub fn new(
        bus: CommandBus,
        read_models: Arc<dyn ReadModelStore>,
        clock: Arc<dyn Clock>,
        cache: Arc<dyn Cache>,
        config: DashboardConfig,
    ) -> Self {
        let mailer = mail::Mailer::new(config.smtp.as_ref());
        Self {
            bus,
            read_models,
            clock,
            sessions: CacheSessionStore::new(cache.clone()),
            cache,
            config: Arc::new(config),
            envelope: None,
            blobs: None,
            mailer,
        }
    }

    /// Enables setting secrets (sealed with the org key, G13).
    #[must_use]
    pub fn with_envelope(mut self, envelope: Envelope) -> Self {
        self.envelope = Some(envelope);
        self
    }

    /// Shows run transcripts on the run page and serves report attachments
    /// (screenshots inline), read from `store`, only under the viewer's org.
    #[must_use]
    pub fn with_blobs(mut self, store: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(store);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &DashboardConfig {
        &self.config
    }
}

/// The dashboard's routes (see the crate docs), to mount at `/`.
pub fn router(state: DashboardState) -> Router {
    pages::routes(state.clone()).merge(signin::routes(state))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use userz_core::SystemClock;
    use userz_store_memory::MemoryBlobStore;

    #[tokio::test]
    async fn the_dashboard_reads_blobs_only_under_the_viewers_org() {
        let store = MemoryBlobStore::new(Arc::new(SystemClock));
        let (a, b) = (OrgId::new(), OrgId::new());
        let key = format!("orgs/{a}/screenshots/s.png");
        store.put(&BlobKey::parse(a, &key).unwrap(), bytes::Bytes::from_static(b"0123456789")).await.unwrap();
        let read = |org, key: String, limit| {
            let store = &store;
            async move { read_org_blob(store, org, &key, limit).await.unwrap() }
        };
        assert_eq!(read(a, key.clone(), 1 << 20).await.as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(read(a, key.clone(), 4).await.as_deref(), Some(&b"0123"[..]), "cut at the limit");
        assert_eq!(read(b, key.clone(), 1 << 20).await, None, "another org's key is never read");
        let climbing = format!("orgs/{b}/../{a}/screenshots/s.png");
        assert_eq!(read(b, climbing, 1 << 20).await, None);
        assert_eq!(read(a, format!("orgs/{a}/screenshots/missing.png"), 10).await, None);
    }
}
