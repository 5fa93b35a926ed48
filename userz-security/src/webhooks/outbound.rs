//! Our own outbound webhooks: `X-Userz-Signature: t=<unix ms>,v1=<hex>`, where
//! `v1` is HMAC-SHA256 with the endpoint's secret over `<t>.<body>`. During a
//! secret rotation we send one `v1` per active secret; receivers accept any
//! match. [`UserzWebhookVerifier`] is the reference receiver (and what our
//! SDKs mirror).

use std::time::Duration;

use http::HeaderMap;

use super::{
    header, hex32, hmac_matches, twice, Delivery, WebhookError, WebhookVerifier, DEFAULT_TOLERANCE, MAX_SIGNATURES,
};
use crate::secret::SecretBytes;
use userz_core::time::Timestamp;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-userz-signature";

/// A parsed `X-Userz-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserzSignature {
    /// `t`, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Every well-formed `v1` value.
    pub v1: Vec<[u8; 32]>,
}

/// Parses `t=<ms>,v1=<hex>[,v1=<hex>…]`.
pub fn parse_signature_header(value: &str) -> Result<UserzSignature, WebhookError> {
    const H: &str = "X-Userz-Signature";
    let mut timestamp_ms = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let (k, v) = item.trim().split_once('=').ok_or(WebhookError::MalformedHeader(H))?;
        match k {
            "t" if timestamp_ms.is_some() => return Err(WebhookError::MalformedHeader(H)),
            "t" => {
                if v.is_empty() || v.len() > 16 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WebhookError::MalformedHeader(H));
                }
                timestamp_ms = Some(v.parse().map_err(|_| WebhookError::MalformedHeader(H))?);
            }
            "v1" if v1.len() < MAX_SIGNATURES => {
                v1.push(hex32(v).ok_or(WebhookError::MalformedHeader(H))?);
            }
            _ => {}
        }
    }
    let timestamp_ms = timestamp_ms.ok_or(WebhookError::MalformedHeader(H))?;
    if v1.is_empty() {
        return Err(WebhookError::MalformedHeader(H));
    }
    Ok(UserzSignature { timestamp_ms, v1 })
}

/// Signs our outbound webhooks.
#[derive(Debug, Clone)]
pub struct UserzWebhookSigner {
    secrets: Vec<SecretBytes>,
}

impl UserzWebhookSigner {
    /// Signs with `secret`.
    pub fn new(secret: SecretBytes) -> Self {
        Self { secrets: vec![secret] }
    }

    /// Also signs with `secret` (during a rotation), adding a second `v1`.
    pub fn with_additional_secret(mut self, secret: SecretBytes) -> Self {
        self.secrets.push(secret);
        self
    }

    /// The `X-Userz-Signature` value for `body` sent at `now`.
    pub fn sign(&self, body: &[u8], now: Timestamp) -> String {
        let t = now.as_millis().to_string();
        let mut out = format!("t={t}");
        for secret in &self.secrets {
            let mac = super::hmac_tag(secret.expose_secret(), &[t.as_bytes(), b".", body]);
            out.push_str(",v1=");
            out.push_str(&hex::encode(mac));
        }
        out
    }
}

/// Verifies our outbound webhooks (reference receiver).
#[derive(Debug, Clone)]
pub struct UserzWebhookVerifier {
    secrets: Vec<SecretBytes>,
    tolerance: Duration,
}

impl UserzWebhookVerifier {
    /// Accepts signatures by `secret`, 300 s tolerance.
    pub fn new(secret: SecretBytes) -> Self {
        Self { secrets: vec![secret], tolerance: DEFAULT_TOLERANCE }
    }

    /// Also accepts signatures by `secret` (the previous one during a rotation).
    pub fn with_additional_secret(mut self, secret: SecretBytes) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Changes the tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }
}

impl WebhookVerifier for UserzWebhookVerifier {
    fn provider(&self) -> &'static str {
        "userz"
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<Delivery, WebhookError> {
        let sig = parse_signature_header(header(headers, SIGNATURE_HEADER)?)?;
        let tolerance_ms = i64::try_from(self.tolerance.as_millis()).unwrap_or(i64::MAX);
        if now.as_millis().abs_diff(sig.timestamp_ms) > tolerance_ms.unsigned_abs() {
            return Err(WebhookError::TimestampOutOfTolerance);
        }
        let t = sig.timestamp_ms.to_string();
        let parts: [&[u8]; 3] = [t.as_bytes(), b".", body];
        let matched = sig
            .v1
            .iter()
            .find(|candidate| {
                self.secrets.iter().any(|s| hmac_matches(s.expose_secret(), &parts, candidate.as_slice()))
            })
            .ok_or(WebhookError::BadSignature)?;
        Ok(Delivery {
            provider: self.provider(),
            delivery_id: format!("{t}:{}", hex::encode(matched)),
            timestamp: Some(Timestamp::from_millis(sig.timestamp_ms)),
        })
    }

    fn replay_ttl(&self) -> Duration {
        twice(self.tolerance)
    }
}
