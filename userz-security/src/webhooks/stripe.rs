//! Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256
//! with the endpoint secret (`whsec_…`, used as raw bytes) over `t.body`.
//! Several `v1` entries are allowed (Stripe sends one per active secret during
//! a roll); other schemes (`v0`) are ignored.

use std::time::Duration;

use http::HeaderMap;

use super::{
    check_tolerance_secs, header, hex32, hmac_matches, parse_unix_timestamp, twice, Delivery, WebhookError,
    WebhookVerifier, DEFAULT_TOLERANCE, MAX_SIGNATURES,
};
use crate::secret::SecretBytes;
use userz_core::time::Timestamp;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// A parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSignature {
    /// `t`, Unix seconds.
    pub timestamp: i64,
    /// Every well-formed `v1` value (at most [`MAX_SIGNATURES`]).
    pub v1: Vec<[u8; 32]>,
}

/// Parses a `Stripe-Signature` value.
pub fn parse_signature_header(value: &str) -> Result<StripeSignature, WebhookError> {
    const H: &str = "Stripe-Signature";
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let (k, v) = item.trim().split_once('=').ok_or(WebhookError::MalformedHeader(H))?;
        match k {
            "t" if timestamp.is_some() => return Err(WebhookError::MalformedHeader(H)),
            "t" => timestamp = Some(parse_unix_timestamp(v, H)?),
            "v1" if v1.len() < MAX_SIGNATURES => {
                if let Some(sig) = hex32(v) {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(WebhookError::MalformedHeader(H))?;
    if v1.is_empty() {
        return Err(WebhookError::MalformedHeader(H));
    }
    Ok(StripeSignature { timestamp, v1 })
}

/// Verifies Stripe webhooks.
#[derive(Debug, Clone)]
pub struct StripeVerifier {
    secret: SecretBytes,
    tolerance: Duration,
}

impl StripeVerifier {
    /// With the endpoint's signing secret (`whsec_…`) and a 300 s tolerance.
    pub fn new(secret: SecretBytes) -> Self {
        Self { secret, tolerance: DEFAULT_TOLERANCE }
    }

    /// Changes the tolerance.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The header value Stripe would send (for tests and local fakes).
    pub fn sign(&self, body: &[u8], timestamp_secs: i64) -> String {
        let t = timestamp_secs.to_string();
        let mac = super::hmac_tag(self.secret.expose_secret(), &[t.as_bytes(), b".", body]);
        format!("t={t},v1={}", hex::encode(mac))
    }
}

impl WebhookVerifier for StripeVerifier {
    fn provider(&self) -> &'static str {
        "stripe"
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8], now: Timestamp) -> Result<Delivery, WebhookError> {
        let sig = parse_signature_header(header(headers, SIGNATURE_HEADER)?)?;
        check_tolerance_secs(sig.timestamp, now, self.tolerance)?;
        let t = sig.timestamp.to_string();
        let parts: [&[u8]; 3] = [t.as_bytes(), b".", body];
        let matched = sig
            .v1
            .iter()
            .find(|candidate| hmac_matches(self.secret.expose_secret(), &parts, candidate.as_slice()))
            .ok_or(WebhookError::BadSignature)?;
        Ok(Delivery {
            provider: self.provider(),
            delivery_id: format!("{t}:{}", hex::encode(matched)),
            timestamp: Some(Timestamp::from_millis(sig.timestamp.saturating_mul(1000))),
        })
    }

    fn replay_ttl(&self) -> Duration {
        twice(self.tolerance)
    }
}
