//! Standard Webhooks (standardwebhooks.com; also GitLab's signing tokens):
//! headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` — a space-separated list of `v1,<base64>` — where each
//! signature is HMAC-SHA256 with the base64-decoded `whsec_…` secret over
//! `<id>.<timestamp>.<body>`. Other versions in the list (e.g. asymmetric
//! `v1a`) are ignored; any matching `v1` accepts.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderMap;

use super::{
    check_tolerance_secs, header, hmac_matches, parse_unix_timestamp, twice, Delivery, WebhookError, WebhookVerifier,
    DEFAULT_TOLERANCE, MAX_SIGNATURES,
};
use crate::secret::SecretBytes;
use userz_core::time::Timestamp;

/// Header carrying the message id.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the timestamp.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the signature list.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// Prefix of serialised secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A Standard Webhooks signing secret (the bytes behind `whsec_<base64>`).
#[derive(Clone, PartialEq, Eq)]
pub struct StandardWebhookSecret(SecretBytes);

impl fmt::Debug for StandardWebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StandardWebhookSecret(<redacted>)")
    }
}

impl StandardWebhookSecret {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    pub fn parse(s: &str) -> Result<Self, WebhookError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).unwrap_or(s);
        let bytes = STANDARD.decode(b64).map_err(|_| WebhookError::Config("secret is not whsec_<base64>"))?;
        Self::from_bytes(SecretBytes::new(bytes))
    }

    /// From raw key bytes (at least 1 byte; 24–64 recommended).
    pub fn from_bytes(bytes: SecretBytes) -> Result<Self, WebhookError> {
        if bytes.is_empty() {
            return Err(WebhookError::Config("empty secret"));
        }
        Ok(Self(bytes))
    }

    /// The `v1,<base64>` signature of (`id`, `timestamp`, `body`).
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        let mac = super::hmac_tag(self.0.expose_secret(), &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
        format!("v1,{}", STANDARD.encode(mac))
    }

    fn matches(&self, id: &str, timestamp: &str, body: &[u8], sig: &[u8]) -> bool {
        hmac_matches(self.0.expose_secret(), &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body], sig)
    }
}

/// Parses a `webhook-signature` list, keeping well-formed `v1` entries.
pub fn parse_signature_list(value: &str) -> Result<Vec<[u8; 32]>, WebhookError> {
    let sigs: Vec<[u8; 32]> = value
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, b64)| STANDARD.decode(b64).ok())
        .filter_map(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .take(MAX_SIGNATURES)
        .collect();
    if sigs.is_empty() {
        Err(WebhookError::MalformedHeader("webhook-signature"))
    } else {
        Ok(sigs)
    }
}

/// Checks the three headers against `secret`; returns (id, timestamp seconds).
pub(crate) fn authenticate_standard(
    secret: &StandardWebhookSecret,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    tolerance: Duration,
) -> Result<(String, i64), WebhookError> {
    let id = header(headers, ID_HEADER)?;
    let ts_text = header(headers, TIMESTAMP_HEADER)?;
    let sigs = parse_signature_list(header(headers, SIGNATURE_HEADER)?)?;
    if id.is_empty() || id.len() > 256 {
        return Err(WebhookError::MalformedHeader("webhook-id"));
    }
    let ts = parse_unix_timestamp(ts_text, "webhook-timestamp")?;
    check_tolerance_secs(ts, now, tolerance)?;
    if !sigs.iter().any(|sig| secret.matches(id, ts_text, body, sig)) {
        return Err(WebhookError::BadSignature);
    }
    Ok((id.to_owned(), ts))
}

/// Verifies Standard Webhooks deliveries.
#[derive(Debug, Clone)]
pub struct StandardWebhooksVerifier {
    secret: StandardWebhookSecret,
    tolerance: Duration,
}

impl StandardWebhooksVerifier {
    /// With the endpoint secret and a 300 s tolerance.
    pub fn new(secret: StandardWebhookSecret) -> Self {
        Self { secret, tolerance: DEFAULT_TOLERANCE }
    }

    /// Changes the tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl WebhookVerifier for StandardWebhooksVerifier {
    fn provider(&self) -> &'static str {
        "standard_webhooks"
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<Delivery, WebhookError> {
        let (id, ts) = authenticate_standard(&self.secret, headers, body, now, self.tolerance)?;
        Ok(Delivery {
            provider: self.provider(),
            delivery_id: id,
            timestamp: Some(Timestamp::from_millis(ts.saturating_mul(1000))),
        })
    }

    fn replay_ttl(&self) -> Duration {
        twice(self.tolerance)
    }
}
