//! GitLab: the shared secret in `X-Gitlab-Token` (compared in constant time)
//! and/or, with a signing token configured, a Standard Webhooks signature
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`). Deliveries are
//! de-duplicated on `Idempotency-Key`, falling back to `X-Gitlab-Event-UUID`.
//!
//! With a signing secret configured the signature is required (a missing
//! `webhook-signature` is refused, so an attacker holding only the token
//! cannot downgrade); with only a token, a `webhook-signature` header that
//! cannot be checked is ignored and the token authenticates.

use std::time::Duration;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::standard::{authenticate_standard, StandardWebhookSecret};
use super::{
    header, optional_header, twice, Delivery, WebhookError, WebhookVerifier, DEFAULT_TOLERANCE,
    DEFAULT_UNTIMED_REPLAY_TTL,
};
use crate::secret::SecretBytes;
use userz_core::time::Timestamp;

/// Header carrying the shared secret token.
pub const TOKEN_HEADER: &str = "x-gitlab-token";
/// Preferred de-duplication header.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Fallback de-duplication header.
pub const EVENT_UUID_HEADER: &str = "x-gitlab-event-uuid";

/// Verifies GitLab webhooks.
#[derive(Debug, Clone)]
pub struct GitLabVerifier {
    token: Option<SecretBytes>,
    signing: Option<StandardWebhookSecret>,
    tolerance: Duration,
}

impl GitLabVerifier {
    /// With a secret token, a signing secret, or both (at least one).
    pub fn new(token: Option<SecretBytes>, signing: Option<StandardWebhookSecret>) -> Result<Self, WebhookError> {
        if token.as_ref().is_some_and(SecretBytes::is_empty) {
            return Err(WebhookError::Config("empty GitLab token"));
        }
        if token.is_none() && signing.is_none() {
            return Err(WebhookError::Config("GitLab needs a token or a signing secret"));
        }
        Ok(Self { token, signing, tolerance: DEFAULT_TOLERANCE })
    }

    /// Changes the signature timestamp tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

/// Constant-time equality that also hides the length (compares SHA-256 digests).
fn token_matches(expected: &[u8], presented: &[u8]) -> bool {
    Sha256::digest(expected).ct_eq(&Sha256::digest(presented)).into()
}

impl WebhookVerifier for GitLabVerifier {
    fn provider(&self) -> &'static str {
        "gitlab"
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<Delivery, WebhookError> {
        let delivery_id = match optional_header(headers, IDEMPOTENCY_HEADER)? {
            Some(key) => key,
            None => header(headers, EVENT_UUID_HEADER)?,
        };
        if delivery_id.is_empty() || delivery_id.len() > 256 {
            return Err(WebhookError::MalformedHeader("Idempotency-Key"));
        }
        if let Some(expected) = &self.token {
            let presented = header(headers, TOKEN_HEADER)?;
            if !token_matches(expected.expose_secret(), presented.as_bytes()) {
                return Err(WebhookError::BadSignature);
            }
        }
        let mut timestamp = None;
        if let Some(secret) = &self.signing {
            let (_, ts) = authenticate_standard(secret, headers, body, now, self.tolerance)?;
            timestamp = Some(Timestamp::from_millis(ts.saturating_mul(1000)));
        }
        Ok(Delivery { provider: self.provider(), delivery_id: delivery_id.to_owned(), timestamp })
    }

    fn replay_ttl(&self) -> Duration {
        // Token-only deliveries carry no timestamp: remember them longer.
        if self.signing.is_some() {
            twice(self.tolerance).max(DEFAULT_UNTIMED_REPLAY_TTL)
        } else {
            DEFAULT_UNTIMED_REPLAY_TTL
        }
    }
}
