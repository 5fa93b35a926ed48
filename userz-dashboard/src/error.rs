//! What a dashboard request can fail with, rendered as an HTML page whose
//! `#error` element carries the stable code in `data-code`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use userz_engine::CommandError;

use crate::html::{document, esc};

/// A refused or failed dashboard request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashError {
    /// No such resource in the signed-in user's org (404, `not_found`).
    #[error("not found")]
    NotFound,
    /// The role may not do this (403, `forbidden`); names the action.
    #[error("your role ({role}) may not {action}")]
    Forbidden {
        /// The user's role.
        role: String,
        /// What was attempted.
        action: &'static str,
    },
    /// Missing or wrong CSRF token, or a cross-site `Origin` / `Sec-Fetch-Site` (403, `csrf`).
    #[error("cross-site request refused: {0}")]
    Csrf(&'static str),
    /// A form field is invalid (400, `invalid_input`).
    #[error("{field}: {message}")]
    Invalid {
        /// Field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The engine refused the command (409, the rule as code).
    #[error("refused: {message}")]
    Rejected {
        /// Stable rule.
        rule: &'static str,
        /// Message.
        message: String,
    },
    /// Sign-in failed (400, the reason as code).
    #[error("{message}")]
    SignIn {
        /// Stable code (`already_used`, `expired`, `unknown_session`, `state_mismatch`, …).
        code: &'static str,
        /// Message for people.
        message: String,
    },
    /// A needed part is not configured (503, `not_configured`).
    #[error("{0} is not configured on this server")]
    NotConfigured(&'static str),
    /// A port failed (503, `unavailable`); details only in the log.
    #[error("temporarily unavailable")]
    Unavailable(String),
}

impl DashError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            DashError::NotFound => "not_found",
            DashError::Forbidden { .. } => "forbidden",
            DashError::Csrf(_) => "csrf",
            DashError::Invalid { .. } => "invalid_input",
            DashError::Rejected { rule, .. } => rule,
            DashError::SignIn { code, .. } => code,
            DashError::NotConfigured(_) => "not_configured",
            DashError::Unavailable(_) => "unavailable",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            DashError::NotFound => StatusCode::NOT_FOUND,
            DashError::Forbidden { .. } | DashError::Csrf(_) => StatusCode::FORBIDDEN,
            DashError::Invalid { .. } | DashError::SignIn { .. } => StatusCode::BAD_REQUEST,
            DashError::Rejected { .. } => StatusCode::CONFLICT,
            DashError::NotConfigured(_) | DashError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<userz_core::Error> for DashError {
    fn from(e: userz_core::Error) -> Self {
        match e {
            userz_core::Error::NotFound(_) => DashError::NotFound,
            userz_core::Error::Invalid(m) => DashError::Invalid { field: "query", message: m },
            other => DashError::Unavailable(other.to_string()),
        }
    }
}

impl From<CommandError> for DashError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rejected(r) if r.rule() == "not_found" => DashError::NotFound,
            CommandError::Rejected(r) => DashError::Rejected { rule: r.rule(), message: r.to_string() },
            CommandError::Failed(e) => e.into(),
        }
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        if let DashError::Unavailable(detail) = &self {
            tracing::error!(error = %detail, "dashboard request failed");
        }
        let status = self.status();
        let back = if matches!(self, DashError::SignIn { .. }) {
            "<p><a href=\"/signin\" id=\"signin-again\">Sign in again</a></p>"
        } else {
            "<p><a href=\"/\">Back to the feedback queue</a></p>"
        };
        let body = format!(
            "<h1>{}</h1><p id=\"error\" class=\"err\" data-code=\"{}\">{}</p>{back}",
            status.as_u16(),
            esc(self.code()),
            esc(&self.to_string())
        );
        document(status, "Error", None, &body).into_response()
    }
}
