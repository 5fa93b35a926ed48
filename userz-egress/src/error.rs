//! The crate's error type.

use std::io;

/// What can go wrong while configuring or starting an [`EgressProxy`](crate::EgressProxy).
///
/// Requests the proxy refuses at run time are not errors: they are answered
/// with a status naming the rule and reported to the [`EgressAudit`](crate::EgressAudit) sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is invalid; `field` names the setting.
    #[error("invalid egress configuration `{field}`: {reason}")]
    InvalidConfig {
        /// The setting that was refused.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Binding a listener failed.
    #[error("egress proxy I/O: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig { field, reason: reason.into() }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
