//! Shared state of the API routes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use userz_core::domain::org::{OrgCommand, OrgDecider};
use userz_core::ids::{AppId, OrgId};
use userz_core::ports::ReadModelStore;
use userz_core::Clock;
use userz_engine::{CommandBus, CommandMeta};
use userz_security::body_limit::DEFAULT_BODY_LIMIT;
use userz_security::envelope::Envelope;
use userz_security::widget_auth::UserTokenVerifier;

use userz_core::ports::RateLimiter;
use userz_engine::LocalRateLimiter;

use crate::ratelimit::BucketConfig;

/// The ports the API uses.
#[derive(Debug, Clone)]
pub struct ApiDeps {
    /// Command bus (writes and aggregate loads).
    pub bus: CommandBus,
    /// Read models (directory, feedback list, run detail).
    pub read_models: Arc<dyn ReadModelStore>,
    /// Clock for rate limits, token checks and arrival times.
    pub clock: Arc<dyn Clock>,
    /// Opens App signing secrets (private mode, token mint). `None`: private
    /// mode and `POST /v1/tokens/mint` answer `not_configured`.
    pub envelope: Option<Envelope>,
}

/// Limits and tunables. Defaults are DESIGN §2's values.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Cap on `POST /v1/feedback` bodies (default 8 MiB).
    pub body_limit: usize,
    /// Cap on other JSON bodies (default 64 KiB).
    pub json_limit: usize,
    /// Per `sk_` key bucket (default capacity 100, 10/s).
    pub api_key_limit: BucketConfig,
    /// Per client IP bucket for public submissions.
    pub public_per_ip: BucketConfig,
    /// Per (App, token `sub`) bucket for private submissions.
    pub private_per_user: BucketConfig,
    /// At most one auth-failure audit event per (org, code, credential) in this window;
    /// every failure is still logged.
    pub audit_throttle: Duration,
    /// Take the client IP from the last `X-Forwarded-For` hop (only behind a
    /// trusted proxy that sets it). Default false: the socket peer address.
    pub trust_forwarded_for: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            json_limit: 64 * 1024,
            api_key_limit: BucketConfig::API_KEY,
            public_per_ip: BucketConfig::PUBLIC_PER_IP,
            private_per_user: BucketConfig::PRIVATE_PER_USER,
            audit_throttle: Duration::from_secs(60),
            trust_forwarded_for: false,
        }
    }
}

/// Counters of the ingest body reader (for tests and metrics).
#[derive(Debug, Default)]
pub struct IngestStats {
    last_body_bytes: AtomicU64,
    max_body_bytes: AtomicU64,
    oversize_refused: AtomicU64,
}

impl IngestStats {
    pub(crate) fn record(&self, bytes: usize, oversize: bool) {
        let b = bytes as u64;
        self.last_body_bytes.store(b, Ordering::Relaxed);
        self.max_body_bytes.fetch_max(b, Ordering::Relaxed);
        if oversize {
            self.oversize_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Body bytes the server read for the last request body it read.
    pub fn last_body_bytes(&self) -> u64 {
        self.last_body_bytes.load(Ordering::Relaxed)
    }

    /// Most body bytes ever read for one request.
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes.load(Ordering::Relaxed)
    }

    /// Bodies refused as too large (while streaming or by `Content-Length`).
    pub fn oversize_refused(&self) -> u64 {
        self.oversize_refused.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) deps: ApiDeps,
    pub(crate) config: ApiConfig,
    /// The buckets of every limit ([`ApiState::with_rate_limiter`]; default in process).
    pub(crate) limiter: std::sync::OnceLock<Arc<dyn RateLimiter>>,
    /// `sk_` prefix → SHA-256 of the key that passed Argon2id verification.
    pub(crate) verified_keys: Mutex<HashMap<String, [u8; 32]>>,
    /// App → (signing-secret version, verifier).
    pub(crate) verifiers: Mutex<HashMap<AppId, (u64, Arc<UserTokenVerifier>)>>,
    /// Last audit time (ms) per throttle key.
    pub(crate) audit_seen: Mutex<HashMap<String, i64>>,
    pub(crate) stats: Arc<IngestStats>,
    /// Bounds concurrent Argon2id verifications (uncached keys), so a flood of
    /// well-formed wrong keys cannot take every core.
    pub(crate) argon2_permits: tokio::sync::Semaphore,
    /// Pre-signed uploads, when configured ([`ApiState::with_uploads`]).
    pub(crate) uploads: std::sync::OnceLock<crate::upload::UploadState>,
    /// Inbound webhooks, when configured ([`ApiState::with_webhooks`]).
    pub(crate) webhooks: std::sync::OnceLock<crate::webhooks::WebhookState>,
}

/// Everything the routes share; cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState(pub(crate) Arc<Inner>);

impl ApiState {
    /// State over `deps` with `config`.
    pub fn new(deps: ApiDeps, config: ApiConfig) -> Self {
        Self(Arc::new(Inner {
            limiter: std::sync::OnceLock::new(),
            deps,
            config,
            verified_keys: Mutex::new(HashMap::new()),
            verifiers: Mutex::new(HashMap::new()),
            audit_seen: Mutex::new(HashMap::new()),
            stats: Arc::new(IngestStats::default()),
            argon2_permits: tokio::sync::Semaphore::new(2),
            uploads: std::sync::OnceLock::new(),
            webhooks: std::sync::OnceLock::new(),
        }))
    }

    /// Serves `POST /v1/feedback/upload-url` and `PUT /v1/uploads/{ticket}`
    /// with `uploads` (without it they answer `not_configured`). The first
    /// call wins.
    #[must_use]
    pub fn with_uploads(self, uploads: crate::upload::UploadState) -> Self {
        let _ = self.0.uploads.set(uploads);
        self
    }

    /// Serves `POST /v1/webhooks/{provider}` with `webhooks` (without it they
    /// answer `not_configured`). The first call wins.
    #[must_use]
    pub fn with_webhooks(self, webhooks: crate::webhooks::WebhookState) -> Self {
        let _ = self.0.webhooks.set(webhooks);
        self
    }

    /// Keeps the rate-limit buckets in `limiter` (a shared one, e.g. Redis,
    /// when several replicas serve one address) instead of the default
    /// in-process [`LocalRateLimiter`]. Call it before serving: the first call
    /// or the first request wins.
    #[must_use]
    pub fn with_rate_limiter(self, limiter: Arc<dyn RateLimiter>) -> Self {
        if self.0.limiter.set(limiter).is_err() {
            tracing::error!("ApiState::with_rate_limiter called after a limiter was in use; the first one stays");
        }
        self
    }

    pub(crate) fn limiter(&self) -> &dyn RateLimiter {
        self.0.limiter.get_or_init(|| Arc::new(LocalRateLimiter::new(self.0.deps.clock.clone()))).as_ref()
    }

    pub(crate) fn uploads(&self) -> Option<&crate::upload::UploadState> {
        self.0.uploads.get()
    }

    pub(crate) fn webhooks(&self) -> Option<&crate::webhooks::WebhookState> {
        self.0.webhooks.get()
    }

    /// The ingest body counters.
    pub fn ingest_stats(&self) -> Arc<IngestStats> {
        self.0.stats.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    pub(crate) fn bus(&self) -> &CommandBus {
        &self.0.deps.bus
    }

    pub(crate) fn read_models(&self) -> &dyn ReadModelStore {
        self.0.deps.read_models.as_ref()
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.0.deps.clock.as_ref()
    }

    /// Appends an org audit event without waiting (its failure is logged).
    pub(crate) fn record_org_event(&self, org: OrgId, cmd: OrgCommand) {
        let bus = self.0.deps.bus.clone();
        tokio::spawn(async move {
            let stream = CommandBus::stream::<OrgDecider>(org);
            if let Err(e) = bus.execute::<OrgDecider>(&stream, CommandMeta::new(), &cmd).await {
                tracing::error!(%org, error = %e, "audit event not recorded");
            }
        });
    }

    /// Logs a refused credential; where the org is known also records an audit
    /// event (throttled per org, code and credential so a flood of bad requests
    /// cannot flood the log).
    pub(crate) fn auth_failure(
        &self,
        org: Option<OrgId>,
        code: &'static str,
        reason: &str,
        app: Option<AppId>,
        credential: Option<&str>,
    ) {
        tracing::warn!(
            org = org.map(tracing::field::display),
            app = app.map(tracing::field::display),
            code,
            reason,
            credential,
            "auth failure"
        );
        let Some(org) = org else { return };
        let now = self.clock().now().as_millis();
        let window = i64::try_from(self.0.config.audit_throttle.as_millis()).unwrap_or(i64::MAX);
        let key = format!("{org}/{code}/{reason}/{}", credential.unwrap_or(""));
        {
            let mut seen = self.0.audit_seen.lock();
            if seen.len() > 50_000 {
                seen.retain(|_, t| now - *t < window);
            }
            match seen.get(&key) {
                Some(t) if now - *t < window => return,
                _ => {
                    seen.insert(key, now);
                }
            }
        }
        self.record_org_event(
            org,
            OrgCommand::RecordAuthFailure {
                code: code.to_string(),
                reason: reason.to_string(),
                app,
                credential: credential.map(str::to_string),
            },
        );
    }
}
