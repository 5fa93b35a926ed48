//! Typed identifiers.
//!
//! Every id is a UUID (version 7 when freshly generated, so ids sort by creation
//! time) wrapped in its own type, so an `AppId` cannot be passed where an `OrgId`
//! is expected. Ids are not secrets; their `Display` form carries a short prefix
//! (`org_…`, `fb_…`) to make logs readable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Prefix used by `Display`.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id derived deterministically from a name within a namespace id.
            ///
            /// Used for idempotency: the same cause always yields the same id.
            pub fn derived(namespace: Uuid, name: &str) -> Self {
                Self(Uuid::new_v5(&namespace, name.as_bytes()))
            }

            /// The raw UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let raw = s
                    .strip_prefix(concat!($prefix, "_"))
                    .unwrap_or(s);
                Uuid::parse_str(raw)
                    .map(Self)
                    .map_err(|_| IdParseError { kind: stringify!($name) })
            }
        }
    };
}

/// A string did not parse as the expected id type.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("not a valid {kind}")]
pub struct IdParseError {
    /// The id type that was expected.
    pub kind: &'static str,
}

typed_id!(
    /// An organization (tenant).
    OrgId, "org"
);
typed_id!(
    /// A member (user) of an organization.
    UserId, "usr"
);
typed_id!(
    /// An App: one widget/API integration.
    AppId, "app"
);
typed_id!(
    /// A source repository linked to an App.
    RepoId, "repo"
);
typed_id!(
    /// One feedback report.
    FeedbackId, "fb"
);
typed_id!(
    /// One agent run (attempt).
    RunId, "run"
);
typed_id!(
    /// A pull/merge request opened by the engine.
    PrId, "pr"
);
typed_id!(
    /// A diff comment on a pull request.
    CommentId, "cmt"
);
typed_id!(
    /// A stored event.
    EventId, "evt"
);
typed_id!(
    /// A command; repeating a command id returns the first outcome.
    CommandId, "cmd"
);
typed_id!(
    /// Ties together every message caused by one original request.
    CorrelationId, "cor"
);
typed_id!(
    /// A durable timer.
    TimerId, "tmr"
);
typed_id!(
    /// A job on the work queue.
    JobId, "job"
);
