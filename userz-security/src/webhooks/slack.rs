//! Slack: `X-Slack-Signature: v0=<hex>`, HMAC-SHA256 with the signing secret
//! over `v0:<X-Slack-Request-Timestamp>:<body>`, timestamp within 300 s.

use std::time::Duration;

use http::HeaderMap;

use super::{
    check_tolerance_secs, header, hex32, hmac_matches, parse_unix_timestamp, twice, Delivery, WebhookError,
    WebhookVerifier, DEFAULT_TOLERANCE,
};
use crate::secret::SecretBytes;
use userz_core::time::Timestamp;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// Header carrying the timestamp.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// Parses `v0=<64 hex>`.
pub fn parse_signature_header(value: &str) -> Result<[u8; 32], WebhookError> {
    value.strip_prefix("v0=").and_then(hex32).ok_or(WebhookError::MalformedHeader("X-Slack-Signature"))
}

/// Computes the `X-Slack-Signature` value for `timestamp` and `body`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mac = super::hmac_tag(secret, &[b"v0:", timestamp.as_bytes(), b":", body]);
    format!("v0={}", hex::encode(mac))
}

/// Verifies Slack requests.
#[derive(Debug, Clone)]
pub struct SlackVerifier {
    secret: SecretBytes,
    tolerance: Duration,
}

impl SlackVerifier {
    /// With the app's signing secret and a 300 s tolerance.
    pub fn new(secret: SecretBytes) -> Self {
        Self { secret, tolerance: DEFAULT_TOLERANCE }
    }

    /// Changes the tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The signature header value Slack would send.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        signature(self.secret.expose_secret(), timestamp, body)
    }
}

impl WebhookVerifier for SlackVerifier {
    fn provider(&self) -> &'static str {
        "slack"
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<Delivery, WebhookError> {
        let sig = parse_signature_header(header(headers, SIGNATURE_HEADER)?)?;
        let ts_text = header(headers, TIMESTAMP_HEADER)?;
        let ts = parse_unix_timestamp(ts_text, "X-Slack-Request-Timestamp")?;
        check_tolerance_secs(ts, now, self.tolerance)?;
        if !hmac_matches(self.secret.expose_secret(), &[b"v0:", ts_text.as_bytes(), b":", body], &sig) {
            return Err(WebhookError::BadSignature);
        }
        Ok(Delivery {
            provider: self.provider(),
            delivery_id: format!("{ts}:{}", hex::encode(sig)),
            timestamp: Some(Timestamp::from_millis(ts.saturating_mul(1000))),
        })
    }

    fn replay_ttl(&self) -> Duration {
        twice(self.tolerance)
    }
}
