//! What both adapters share: pricing, error mapping, key redaction.

use serde_json::Value;
use userz_core::error::Error;
use userz_security::secret::SecretString;

use userz_rest::RawResponse;

/// The port name every error of this crate carries.
pub(crate) const PORT: &str = "model";

/// Longest provider text (error message or body excerpt) kept in an error.
const MAX_DETAIL_CHARS: usize = 500;

/// Prices of one provider model, in micro-USD per million tokens.
///
/// `cost_micros = ceil((tokens_in × input + tokens_out × output) / 1e6)`,
/// computed from the provider's own token counts; a zero price is "unpriced".
/// Rounding up keeps budgets conservative.
///
/// ```
/// use userz_model::Pricing;
/// // $3 / $15 per million tokens.
/// let p = Pricing::new(3_000_000, 15_000_000);
/// assert_eq!(p.cost_micros(1_000, 500), 10_500);
/// assert_eq!(Pricing::UNPRICED.cost_micros(1_000, 500), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pricing {
    /// Micro-USD per million input (prompt) tokens.
    pub input_micros_per_mtok: u64,
    /// Micro-USD per million output (completion) tokens.
    pub output_micros_per_mtok: u64,
}

impl Pricing {
    /// No price: every completion costs 0.
    pub const UNPRICED: Pricing = Pricing { input_micros_per_mtok: 0, output_micros_per_mtok: 0 };

    /// A price table.
    pub const fn new(input_micros_per_mtok: u64, output_micros_per_mtok: u64) -> Self {
        Self { input_micros_per_mtok, output_micros_per_mtok }
    }

    /// The cost of one completion in micro-USD (saturating at `u64::MAX`).
    pub fn cost_micros(&self, tokens_in: u64, tokens_out: u64) -> u64 {
        let total = u128::from(tokens_in) * u128::from(self.input_micros_per_mtok)
            + u128::from(tokens_out) * u128::from(self.output_micros_per_mtok);
        u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

pub(crate) fn effect(message: String, retryable: bool) -> Error {
    Error::Effect { port: PORT, message, retryable }
}

/// Whether a status is worth retrying: 408, 429 and every 5xx.
pub(crate) fn retryable_status(status: http::StatusCode) -> bool {
    status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error()
}

/// The error for a non-2xx response, with the provider's own error type and
/// message when the body has one of the known shapes (OpenAI
/// `{"error":{"message","type","code"}}`, Anthropic
/// `{"type":"error","error":{"type","message"}}`), else a body excerpt.
pub(crate) fn status_error(provider: &str, response: &RawResponse) -> Error {
    let detail = match serde_json::from_slice::<Value>(&response.body) {
        Ok(v) => provider_error_detail(&v).unwrap_or_else(|| excerpt(&String::from_utf8_lossy(&response.body))),
        Err(_) => excerpt(&String::from_utf8_lossy(&response.body)),
    };
    let detail = if detail.is_empty() { "(empty body)".to_owned() } else { detail };
    effect(format!("{provider}: HTTP {}: {detail}", response.status.as_u16()), retryable_status(response.status))
}

fn provider_error_detail(v: &Value) -> Option<String> {
    let err = v.get("error")?;
    if let Some(m) = err.as_str() {
        return Some(excerpt(m));
    }
    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
    let kind = err.get("type").and_then(Value::as_str);
    let code =
        err.get("code").and_then(|c| c.as_str().map(str::to_owned).or_else(|| c.as_i64().map(|n| n.to_string())));
    let label = match (kind, code) {
        (Some(k), Some(c)) if k != c => format!("{k}/{c}"),
        (Some(k), _) => k.to_owned(),
        (None, Some(c)) => c,
        (None, None) => String::new(),
    };
    Some(match (label.is_empty(), message.is_empty()) {
        (true, _) => excerpt(message),
        (false, true) => label,
        (false, false) => format!("{label}: {}", excerpt(message)),
    })
}

/// At most [`MAX_DETAIL_CHARS`] characters, control characters replaced.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String =
        s.trim().chars().take(MAX_DETAIL_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.trim().chars().count() > MAX_DETAIL_CHARS {
        out.push('…');
    }
    out
}

/// Replaces every occurrence of the key in an error's message (a provider
/// may echo a key back; the message must never carry it).
pub(crate) fn redact(e: Error, key: Option<&SecretString>) -> Error {
    let Some(key) = key.map(SecretString::expose_secret).filter(|k| !k.is_empty()) else {
        return e;
    };
    match e {
        Error::Effect { port, message, retryable } if message.contains(key) => {
            Error::Effect { port, message: message.replace(key, "[redacted]"), retryable }
        }
        other => other,
    }
}

/// A 2xx body that is not what the wire format promises (not retryable:
/// the same request is expected to get the same kind of answer).
pub(crate) fn malformed(provider: &str, what: impl std::fmt::Display) -> Error {
    effect(format!("{provider}: malformed response: {what}"), false)
}

/// Reads a token count (absent or null: 0).
pub(crate) fn count(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}
