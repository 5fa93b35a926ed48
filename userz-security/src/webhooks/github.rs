//! GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body
//! with the webhook secret. GitHub signs no timestamp, so freshness rests on
//! the replay guard keyed by `X-GitHub-Delivery` (a GUID per delivery).

use std::time::Duration;

use http::HeaderMap;

use super::{header, hex32, hmac_matches, Delivery, WebhookError, WebhookVerifier, DEFAULT_UNTIMED_REPLAY_TTL};
use crate::secret::SecretBytes;
use userz_core::time::Timestamp;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Header carrying the delivery GUID.
pub const DELIVERY_HEADER: &str = "x-github-delivery";

/// Parses `sha256=<64 hex>`.
pub fn parse_signature_header(value: &str) -> Result<[u8; 32], WebhookError> {
    value.strip_prefix("sha256=").and_then(hex32).ok_or(WebhookError::MalformedHeader("X-Hub-Signature-256"))
}

/// Verifies GitHub webhooks.
#[derive(Debug, Clone)]
pub struct GitHubVerifier {
    secret: SecretBytes,
    replay_ttl: Duration,
}

impl GitHubVerifier {
    /// With the webhook secret; remembers deliveries for 72 h.
    pub fn new(secret: SecretBytes) -> Self {
        Self { secret, replay_ttl: DEFAULT_UNTIMED_REPLAY_TTL }
    }

    /// Changes how long delivery ids are remembered.
    pub fn with_replay_ttl(mut self, ttl: Duration) -> Self {
        self.replay_ttl = ttl;
        self
    }

    /// The header value GitHub would send.
    pub fn sign(&self, body: &[u8]) -> String {
        let mac = super::hmac_tag(self.secret.expose_secret(), &[body]);
        format!("sha256={}", hex::encode(mac))
    }
}

impl WebhookVerifier for GitHubVerifier {
    fn provider(&self) -> &'static str {
        "github"
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8], _now: Timestamp) -> Result<Delivery, WebhookError> {
        let sig = parse_signature_header(header(headers, SIGNATURE_HEADER)?)?;
        let delivery = header(headers, DELIVERY_HEADER)?;
        if delivery.is_empty() || delivery.len() > 128 {
            return Err(WebhookError::MalformedHeader("X-GitHub-Delivery"));
        }
        if !hmac_matches(self.secret.expose_secret(), &[body], &sig) {
            return Err(WebhookError::BadSignature);
        }
        Ok(Delivery { provider: self.provider(), delivery_id: delivery.to_owned(), timestamp: None })
    }

    fn replay_ttl(&self) -> Duration {
        self.replay_ttl
    }
}
