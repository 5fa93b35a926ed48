//! Value types shared by several aggregates.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decider::Rejection;

/// A member's role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, billing included.
    Owner,
    /// Everything but billing.
    Admin,
    /// Read-mostly; may take manual actions on feedback.
    Member,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        })
    }
}

impl Role {
    /// May manage apps, repos, keys, secrets and members.
    pub fn can_administer(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }

    /// May queue, archive or request revisions on feedback (all roles).
    pub fn can_act_on_feedback(self) -> bool {
        true
    }
}

/// What an App does with a benign report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingMode {
    /// Every benign report starts a run.
    #[default]
    AutoPr,
    /// Benign reports wait in `awaiting_manual` for a person or chat-ops action.
    Manual,
    /// Collect only; never run.
    NoPr,
}

impl fmt::Display for ProcessingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProcessingMode::AutoPr => "auto_pr",
            ProcessingMode::Manual => "manual",
            ProcessingMode::NoPr => "no_pr",
        })
    }
}

/// How an App groups duplicate reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dedup {
    /// Every report stands alone.
    #[default]
    Off,
    /// Windowed roll-up: benign reports wait in `batch_pending` for the window.
    Batch {
        /// Window length in hours (1–168, default 24).
        window_hours: u32,
    },
    /// Real-time merge on similarity.
    Incremental,
}

impl Dedup {
    /// Default batch window.
    pub const DEFAULT_WINDOW_HOURS: u32 = 24;
}

/// Report severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium (default).
    #[default]
    Medium,
    /// High.
    High,
}

impl Severity {
    /// The wire name (`low`, `medium`, `high`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The engine itself.
    System,
    /// A signed-in member.
    User {
        /// The member.
        user: crate::ids::UserId,
    },
    /// An org API key (by prefix).
    ApiKey {
        /// Key prefix.
        prefix: String,
    },
    /// A chat-ops button or command.
    ChatOps {
        /// Integration name (`slack`, `discord`).
        integration: String,
        /// The chat user who pressed the button (the integration's user id),
        /// when the integration names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
}

/// Validates a web origin `scheme://host[:port]` (no path, no wildcard).
pub fn validate_origin(origin: &str) -> Result<(), Rejection> {
    let bad = |why: &str| Rejection::input("allowed_origins", format!("{origin:?}: {why}"));
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    if rest.is_empty() {
        return Err(bad("missing host"));
    }
    if rest.contains(['/', '?', '#', '*', '@', ' ']) {
        return Err(bad("must be scheme://host[:port] only"));
    }
    Ok(())
}

/// Validates a branch prefix: a git ref fragment ending in `/`.
pub fn validate_branch_prefix(prefix: &str) -> Result<(), Rejection> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix.ends_with('/')
        && !prefix.starts_with('/')
        && !prefix.contains("..")
        && !prefix.contains("//")
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Rejection::input("branch_prefix", "1-64 chars of [A-Za-z0-9/._-], ending in '/', no '..' or '//'"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn chat_ops_actor_names_the_chat_user_and_reads_older_events() {
        let a = Actor::ChatOps { integration: "slack".into(), user: Some("U024BE7LH".into()) };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "chat_ops", "integration": "slack", "user": "U024BE7LH"}));
        assert_eq!(serde_json::from_value::<Actor>(v).unwrap(), a);
        // Events written before the user field existed still decode.
        let old: Actor = serde_json::from_str(r#"{"kind":"chat_ops","integration":"discord"}"#).unwrap();
        assert_eq!(old, Actor::ChatOps { integration: "discord".into(), user: None });
        let none = serde_json::to_value(Actor::ChatOps { integration: "x".into(), user: None }).unwrap();
        assert!(none.get("user").is_none());
    }
}
