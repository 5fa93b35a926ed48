//! The crate's error type.

use crate::event::{ExpectedVersion, StreamId};

/// Errors from ports and the engine. Variants are the ones a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Optimistic concurrency: the stream was not at the expected version.
    #[error("conflict on {stream}: expected version {expected}, actual {actual}")]
    Conflict {
        /// The stream appended to.
        stream: StreamId,
        /// What the appender expected.
        expected: ExpectedVersion,
        /// The stream's actual version.
        actual: u64,
    },
    /// A read model checkpoint moved underneath the committer (another runner).
    #[error("checkpoint {name} is at {actual}, expected {expected}")]
    CheckpointConflict {
        /// Checkpoint name.
        name: String,
        /// Expected position.
        expected: u64,
        /// Actual position.
        actual: u64,
    },
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A work-queue lease expired or was taken over by another worker.
    #[error("lease lost for job {0}")]
    LeaseLost(String),
    /// The backend is unreachable or overloaded; retrying may help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The input broke a rule; retrying the same input will not help.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A domain rule refused a command.
    #[error("rejected by rule {rule}: {message}")]
    Rejected {
        /// Stable code of the rule that refused.
        rule: &'static str,
        /// Human-readable reason.
        message: String,
    },
    /// Stored data could not be decoded.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A port is not configured or a feature is not implemented by this adapter.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The operation ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// An external effect failed (sandbox, VCS, classifier); the message says why.
    #[error("{port} failed: {message}")]
    Effect {
        /// Which port.
        port: &'static str,
        /// The provider's error.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
    },
}

impl Error {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflict { .. } | Error::CheckpointConflict { .. } | Error::Unavailable(_) | Error::Timeout(_) => {
                true
            }
            Error::Effect { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corrupt(e.to_string())
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
