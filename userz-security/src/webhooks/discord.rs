//! Discord interactions: Ed25519 signature (`X-Signature-Ed25519`, hex) by the
//! application's public key over `X-Signature-Timestamp` followed by the raw
//! body. Discord documents no tolerance; we apply 300 s and the replay guard.
//! Verification is `verify_strict` (rejects malleable and small-order forms),
//! which also makes the signature a sound replay-guard key.

use std::time::Duration;

use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;

use super::{
    check_tolerance_secs, header, parse_unix_timestamp, twice, Delivery, WebhookError, WebhookVerifier,
    DEFAULT_TOLERANCE,
};
use userz_core::time::Timestamp;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
/// Header carrying the timestamp.
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";

/// Parses a 128-hex-char Ed25519 signature.
pub fn parse_signature_header(value: &str) -> Result<Signature, WebhookError> {
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(value, &mut bytes).map_err(|_| WebhookError::MalformedHeader("X-Signature-Ed25519"))?;
    Ok(Signature::from_bytes(&bytes))
}

/// Verifies Discord interaction requests.
#[derive(Debug, Clone)]
pub struct DiscordVerifier {
    key: VerifyingKey,
    tolerance: Duration,
}

impl DiscordVerifier {
    /// From the application's public key as shown in the developer portal (64 hex chars).
    pub fn from_hex(public_key: &str) -> Result<Self, WebhookError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(public_key.trim(), &mut bytes)
            .map_err(|_| WebhookError::Config("Discord public key must be 64 hex chars"))?;
        Self::from_bytes(&bytes)
    }

    /// From the raw 32-byte public key.
    pub fn from_bytes(public_key: &[u8; 32]) -> Result<Self, WebhookError> {
        let key =
            VerifyingKey::from_bytes(public_key).map_err(|_| WebhookError::Config("invalid Ed25519 public key"))?;
        Ok(Self { key, tolerance: DEFAULT_TOLERANCE })
    }

    /// Changes the tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl WebhookVerifier for DiscordVerifier {
    fn provider(&self) -> &'static str {
        "discord"
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<Delivery, WebhookError> {
        let sig = parse_signature_header(header(headers, SIGNATURE_HEADER)?)?;
        let ts_text = header(headers, TIMESTAMP_HEADER)?;
        let ts = parse_unix_timestamp(ts_text, "X-Signature-Timestamp")?;
        check_tolerance_secs(ts, now, self.tolerance)?;
        let mut message = Vec::with_capacity(ts_text.len() + body.len());
        message.extend_from_slice(ts_text.as_bytes());
        message.extend_from_slice(body);
        self.key.verify_strict(&message, &sig).map_err(|_| WebhookError::BadSignature)?;
        Ok(Delivery {
            provider: self.provider(),
            delivery_id: format!("{ts}:{}", hex::encode(sig.to_bytes())),
            timestamp: Some(Timestamp::from_millis(ts.saturating_mul(1000))),
        })
    }

    fn replay_ttl(&self) -> Duration {
        twice(self.tolerance)
    }
}
