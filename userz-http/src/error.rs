//! The error body every route answers with: `{"error":{"code","message","details"?}}`.
//!
//! Codes are stable strings (DESIGN §2); clients branch on `code`, people read
//! `message`, and `details` names the field or rule that tripped when there is
//! one. Nothing internal (store errors, paths, secrets) is ever put in a body:
//! server-side failures answer `internal_error` and are logged with the request
//! span instead.

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The stable error codes of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not valid JSON or breaks a field rule (400).
    InvalidBody,
    /// No credential was presented, or it is malformed or unknown (401).
    MissingAuthorization,
    /// The `pub_` key names no App (401).
    UnknownApp,
    /// The private-mode user token failed verification (401).
    InvalidUserToken,
    /// The request's `Origin` is not on the App's exact allowlist (403).
    OriginNotAllowed,
    /// The App does not accept public (`pub_` key only) submissions (403).
    PublicDisabled,
    /// The body exceeds the cap (413); it was cut off while streaming.
    PayloadTooLarge,
    /// A rate limit was hit (429, with `Retry-After`).
    RateLimited,
    /// No such resource for this credential's organization (404).
    NotFound,
    /// The credential's role may not do this (403).
    Forbidden,
    /// The resource is not in a state that allows the change (409).
    InvalidTransition,
    /// A webhook delivery failed verification or was a replay (401).
    InvalidSignature,
    /// A dependency is unavailable; retrying may help (503).
    Unavailable,
    /// Anything else; the details are in the server log, never in the body (500).
    InternalError,
    /// The App lacks what the request needs (e.g. no signing secret for
    /// private mode or token minting) (409).
    NotConfigured,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidBody,
        ErrorCode::MissingAuthorization,
        ErrorCode::UnknownApp,
        ErrorCode::InvalidUserToken,
        ErrorCode::OriginNotAllowed,
        ErrorCode::PublicDisabled,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::InvalidTransition,
        ErrorCode::InvalidSignature,
        ErrorCode::Unavailable,
        ErrorCode::InternalError,
        ErrorCode::NotConfigured,
    ];

    /// The stable wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::MissingAuthorization => "missing_authorization",
            ErrorCode::UnknownApp => "unknown_app",
            ErrorCode::InvalidUserToken => "invalid_user_token",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::PublicDisabled => "public_disabled",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::NotConfigured => "not_configured",
        }
    }

    /// The HTTP status the code is sent with.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidBody => StatusCode::BAD_REQUEST,
            ErrorCode::MissingAuthorization
            | ErrorCode::UnknownApp
            | ErrorCode::InvalidUserToken
            | ErrorCode::InvalidSignature => StatusCode::UNAUTHORIZED,
            ErrorCode::OriginNotAllowed | ErrorCode::PublicDisabled | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::InvalidTransition | ErrorCode::NotConfigured => StatusCode::CONFLICT,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: code, message, optional details, optional `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable message (never holds secrets or internals).
    pub message: String,
    /// Structured details: the field or rule that tripped, limits, …
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None, retry_after: None }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Adds a `Retry-After` in whole seconds (at least 1).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// `not_found` for `what` (the same answer whether it does not exist or
    /// belongs to another organization).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// `invalid_body` naming one field and rule.
    pub fn invalid_field(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidBody, message).with_details(json!({ "field": field, "rule": rule }))
    }

    /// `internal_error`; logs `err` and keeps it out of the body.
    pub fn internal(err: impl fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(ErrorCode::InternalError, "internal error")
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({ "code": self.code.as_str(), "message": self.message });
        if let (Some(d), Some(obj)) = (&self.details, error.as_object_mut()) {
            obj.insert("details".into(), d.clone());
        }
        json!({ "error": error })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.code.status(), axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(self.code);
        res
    }
}

impl From<userz_core::Error> for ApiError {
    fn from(e: userz_core::Error) -> Self {
        use userz_core::Error as E;
        match e {
            E::NotFound(what) => ApiError::new(ErrorCode::NotFound, format!("not found: {what}")),
            E::Invalid(msg) => ApiError::new(ErrorCode::InvalidBody, msg),
            E::Rejected { rule, message } => {
                ApiError::new(ErrorCode::InvalidTransition, message).with_details(json!({ "rule": rule }))
            }
            E::Unavailable(_) | E::Timeout(_) => {
                tracing::warn!(error = %e, "dependency unavailable");
                ApiError::new(ErrorCode::Unavailable, "temporarily unavailable").with_retry_after(1)
            }
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{c}");
        }
    }

    #[test]
    fn body_has_code_message_and_optional_details() {
        let e = ApiError::invalid_field("text", "max_chars", "text: at most 8192 characters");
        assert_eq!(
            e.body(),
            json!({"error":{"code":"invalid_body","message":"text: at most 8192 characters","details":{"field":"text","rule":"max_chars"}}})
        );
        let e = ApiError::not_found("feedback");
        assert_eq!(e.body(), json!({"error":{"code":"not_found","message":"feedback not found"}}));
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let res = ApiError::new(ErrorCode::RateLimited, "slow down").with_retry_after(0).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn internal_errors_never_leak() {
        let e: ApiError = userz_core::Error::Corrupt("/var/lib/secret path".into()).into();
        assert_eq!(e.code, ErrorCode::InternalError);
        assert!(!e.body().to_string().contains("secret path"));
    }
}
