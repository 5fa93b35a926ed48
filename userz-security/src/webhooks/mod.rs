//! Inbound webhook verification and outbound webhook signing — guarantee G16.
//!
//! One verifier per provider, each following that provider's published scheme
//! and each behind its own cargo feature (`webhook-stripe`, `webhook-github`,
//! `webhook-gitlab`, `webhook-slack`, `webhook-discord`; `webhooks-all`, the
//! default, turns on every one). Standard Webhooks and the outbound signer are
//! always built.
//!
//! | provider | module | signature | timestamp | delivery id for the replay guard |
//! |---|---|---|---|---|
//! | Stripe | [`stripe`] | `Stripe-Signature: t=,v1=` HMAC-SHA256 over `t.body` | `t`, 300 s | `t` + matched signature |
//! | GitHub | [`github`] | `X-Hub-Signature-256: sha256=<hex>` over the body | none | `X-GitHub-Delivery` |
//! | GitLab | [`gitlab`] | `X-Gitlab-Token` (constant-time) and/or Standard Webhooks `webhook-signature` | with signature | `Idempotency-Key`, else `X-Gitlab-Event-UUID` |
//! | Slack | [`slack`] | `X-Slack-Signature: v0=<hex>` over `v0:ts:body` | `X-Slack-Request-Timestamp`, 300 s | ts + signature |
//! | Discord | [`discord`] | Ed25519 over `timestamp + body` | `X-Signature-Timestamp`, 300 s | timestamp + signature |
//! | Standard Webhooks | [`standard`] | `webhook-signature: v1,<b64> …` over `id.ts.body` | `webhook-timestamp`, 300 s | `webhook-id` |
//! | Userz (ours) | [`outbound`] | `X-Userz-Signature: t=<ms>,v1=<hex>` over `t.body` | `t`, 300 s | `t` + signature |
//!
//! A [`WebhookVerifier`] authenticates a request synchronously (signature and
//! timestamp tolerance — in both directions — against a caller-given `now`; no
//! clock inside). [`ReplayGuard::verify`] runs it and then records the
//! delivery id in the [`Cache`] port with `set_if_absent` and a TTL of at least
//! twice the tolerance, so a second delivery of the same request is refused
//! with `replayed`. Only authenticated requests reach the cache, so forged
//! requests cannot fill it or burn real delivery ids.
//!
//! Signatures are compared in constant time (`hmac`'s `verify_slice`,
//! `subtle`, `ed25519-dalek`'s strict verification). Headers come as an
//! [`http::HeaderMap`] (case-insensitive); a signature header sent twice is
//! refused as malformed rather than guessing which one counts.

#[cfg(feature = "webhook-discord")]
pub mod discord;
#[cfg(feature = "webhook-github")]
pub mod github;
#[cfg(feature = "webhook-gitlab")]
pub mod gitlab;
pub mod outbound;
#[cfg(feature = "webhook-slack")]
pub mod slack;
pub mod standard;
#[cfg(feature = "webhook-stripe")]
pub mod stripe;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use userz_core::ports::cache::Cache;
use userz_core::time::Timestamp;

#[cfg(feature = "webhook-discord")]
pub use discord::DiscordVerifier;
#[cfg(feature = "webhook-github")]
pub use github::GitHubVerifier;
#[cfg(feature = "webhook-gitlab")]
pub use gitlab::GitLabVerifier;
pub use outbound::{UserzWebhookSigner, UserzWebhookVerifier};
#[cfg(feature = "webhook-slack")]
pub use slack::SlackVerifier;
pub use standard::{StandardWebhookSecret, StandardWebhooksVerifier};
#[cfg(feature = "webhook-stripe")]
pub use stripe::StripeVerifier;

/// Default timestamp tolerance (Stripe, Slack, Standard Webhooks all use 5 min).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Replay-guard TTL for schemes without a timestamp (GitHub, token-only GitLab).
pub const DEFAULT_UNTIMED_REPLAY_TTL: Duration = Duration::from_secs(72 * 60 * 60);
/// Most signatures considered in one header (bounds the work per request).
pub const MAX_SIGNATURES: usize = 8;

/// Why a webhook was refused, with a stable [`code`](WebhookError::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but unparseable (or repeated).
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    /// No signature matched.
    #[error("bad signature")]
    BadSignature,
    /// The signed timestamp is too far in the past or the future.
    #[error("timestamp outside tolerance")]
    TimestampOutOfTolerance,
    /// This delivery was already accepted.
    #[error("replayed delivery")]
    Replayed,
    /// The replay-guard cache failed; the request must not be accepted.
    #[error("replay guard unavailable: {0}")]
    GuardUnavailable(String),
    /// The verifier was configured with an unusable secret or key.
    #[error("invalid webhook configuration: {0}")]
    Config(&'static str),
}

impl WebhookError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::MissingHeader(_) => "missing_header",
            WebhookError::MalformedHeader(_) => "malformed_header",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            WebhookError::Replayed => "replayed",
            WebhookError::GuardUnavailable(_) => "replay_guard_unavailable",
            WebhookError::Config(_) => "invalid_config",
        }
    }
}

/// An authenticated delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Provider name (`stripe`, `github`, …).
    pub provider: &'static str,
    /// What identifies this delivery for the replay guard.
    pub delivery_id: String,
    /// The signed timestamp, where the scheme has one.
    pub timestamp: Option<Timestamp>,
}

/// Authenticates one provider's webhook requests (signature + tolerance).
pub trait WebhookVerifier: Send + Sync + Debug {
    /// Provider name, used in replay-guard keys.
    fn provider(&self) -> &'static str;
    /// Checks headers, signature and timestamp; no side effects.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<Delivery, WebhookError>;
    /// How long a delivery id must be remembered (≥ 2 × tolerance for timed schemes).
    fn replay_ttl(&self) -> Duration;
}

/// Rejects repeated deliveries through the [`Cache`] port.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    cache: Arc<dyn Cache>,
    scope: String,
}

impl ReplayGuard {
    /// Records delivery ids in `cache`, in the global scope.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache, scope: "global".to_owned() }
    }

    /// Separates delivery ids per endpoint (e.g. an org's webhook
    /// configuration id): ids such as `webhook-id` are only unique per sender.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Authenticates with `verifier`, then accepts each delivery id once.
    pub async fn verify(
        &self,
        verifier: &dyn WebhookVerifier,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Delivery, WebhookError> {
        let delivery = verifier.authenticate(headers, body, now)?;
        self.first_seen(&delivery, verifier.replay_ttl()).await?;
        Ok(delivery)
    }

    /// The cache key recording `delivery` in this guard's scope.
    fn key(&self, delivery: &Delivery) -> String {
        let digest = Sha256::digest(delivery.delivery_id.as_bytes());
        format!(
            "userz:webhook:seen:{}:{}:{}",
            hex::encode(Sha256::digest(self.scope.as_bytes())),
            delivery.provider,
            hex::encode(digest)
        )
    }

    /// Whether `delivery` was already recorded (and has not expired), without
    /// recording it. For handlers that refuse a replay up front but record
    /// the delivery only once its effect is stored (so a delivery that failed
    /// half-way can be redelivered); the final [`first_seen`](Self::first_seen)
    /// still settles races between concurrent deliveries.
    pub async fn was_seen(&self, delivery: &Delivery) -> Result<bool, WebhookError> {
        self.cache
            .get(&self.key(delivery))
            .await
            .map(|v| v.is_some())
            .map_err(|e| WebhookError::GuardUnavailable(e.to_string()))
    }

    /// Records `delivery`; refuses it if it was recorded before and not expired.
    pub async fn first_seen(&self, delivery: &Delivery, ttl: Duration) -> Result<(), WebhookError> {
        let key = self.key(delivery);
        let fresh = self
            .cache
            .set_if_absent(&key, Bytes::from_static(b"1"), Some(ttl))
            .await
            .map_err(|e| WebhookError::GuardUnavailable(e.to_string()))?;
        if fresh {
            Ok(())
        } else {
            Err(WebhookError::Replayed)
        }
    }
}

// ------------------------------------------------------------ shared helpers

/// The single value of header `name` as a string.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, WebhookError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(WebhookError::MissingHeader(name))?;
    if values.next().is_some() {
        return Err(WebhookError::MalformedHeader(name));
    }
    value.to_str().map_err(|_| WebhookError::MalformedHeader(name))
}

/// Like [`header`] but `None` when absent.
#[cfg_attr(not(feature = "webhook-gitlab"), allow(dead_code))]
pub(crate) fn optional_header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, WebhookError> {
    match header(headers, name) {
        Ok(v) => Ok(Some(v)),
        Err(WebhookError::MissingHeader(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a decimal Unix timestamp (1–13 ASCII digits, no sign).
pub fn parse_unix_timestamp(s: &str, name: &'static str) -> Result<i64, WebhookError> {
    if s.is_empty() || s.len() > 13 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebhookError::MalformedHeader(name));
    }
    s.parse().map_err(|_| WebhookError::MalformedHeader(name))
}

/// Refuses `ts_secs` more than `tolerance` before or after `now`.
pub(crate) fn check_tolerance_secs(ts_secs: i64, now: Timestamp, tolerance: Duration) -> Result<(), WebhookError> {
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.as_secs().abs_diff(ts_secs) > tolerance.unsigned_abs() {
        Err(WebhookError::TimestampOutOfTolerance)
    } else {
        Ok(())
    }
}

/// HMAC-SHA256 tag over the concatenation of `parts`.
pub(crate) fn hmac_tag(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    crate::mac::hmac_sha256(key, parts)
}

/// Constant-time check of `expected` against one HMAC computation.
pub(crate) fn hmac_matches(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> bool {
    crate::mac::verify_hmac_sha256(key, parts, expected)
}

/// Decodes exactly 32 bytes of lower- or upper-case hex.
pub(crate) fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok().map(|()| out)
}

fn twice(d: Duration) -> Duration {
    d.saturating_mul(2)
}

/// Fuzz entry point (`fuzz/fuzz_targets/webhook_headers.rs`): parses
/// arbitrary text with every provider's header parser, then runs every
/// verifier with the text as each of its headers. Panics only on a bug.
#[doc(hidden)]
#[cfg(feature = "webhooks-all")]
pub fn fuzz_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = stripe::parse_signature_header(text);
    let _ = github::parse_signature_header(text);
    let _ = slack::parse_signature_header(text);
    let _ = standard::parse_signature_list(text);
    let _ = discord::parse_signature_header(text);
    let _ = outbound::parse_signature_header(text);
    let _ = parse_unix_timestamp(text, "fuzz");
    let _ = StandardWebhookSecret::parse(text);
    let _ = crate::api_key::ApiKey::parse(text);
    let _ = crate::api_key::PublicKey::parse(text);
    let _ = crate::session::SessionId::parse(text);

    let Ok(value) = http::HeaderValue::from_str(text) else {
        return;
    };
    let secret = || crate::secret::SecretBytes::copy_from(b"fuzz-secret");
    let Ok(whsec) = StandardWebhookSecret::from_bytes(secret()) else {
        return;
    };
    let verifiers: Vec<Box<dyn WebhookVerifier>> = vec![
        Box::new(StripeVerifier::new(secret())),
        Box::new(GitHubVerifier::new(secret())),
        Box::new(SlackVerifier::new(secret())),
        Box::new(StandardWebhooksVerifier::new(whsec.clone())),
        Box::new(UserzWebhookVerifier::new(secret())),
    ];
    let mut all: Vec<Box<dyn WebhookVerifier>> = verifiers;
    if let Ok(gl) = GitLabVerifier::new(Some(secret()), Some(whsec)) {
        all.push(Box::new(gl));
    }
    if let Ok(d) = DiscordVerifier::from_bytes(&[
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1,
        0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
    ]) {
        all.push(Box::new(d));
    }
    let names = [
        stripe::SIGNATURE_HEADER,
        github::SIGNATURE_HEADER,
        github::DELIVERY_HEADER,
        slack::SIGNATURE_HEADER,
        slack::TIMESTAMP_HEADER,
        standard::ID_HEADER,
        standard::TIMESTAMP_HEADER,
        standard::SIGNATURE_HEADER,
        gitlab::TOKEN_HEADER,
        gitlab::IDEMPOTENCY_HEADER,
        discord::SIGNATURE_HEADER,
        discord::TIMESTAMP_HEADER,
        outbound::SIGNATURE_HEADER,
    ];
    let mut headers = HeaderMap::new();
    for name in names {
        headers.insert(name, value.clone());
    }
    let now = Timestamp::from_millis(1_700_000_000_000);
    for v in &all {
        // Every header holds the same fuzz text, so nothing can carry a valid
        // signature except by breaking HMAC/Ed25519: acceptance is a bug.
        // (GitLab here requires a signature too, so its token alone cannot pass.)
        let outcome = v.authenticate(&headers, data, now);
        assert!(outcome.is_err(), "{} accepted fuzz input: {outcome:?}", v.provider());
    }
}

#[cfg(all(test, feature = "webhooks-all"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
