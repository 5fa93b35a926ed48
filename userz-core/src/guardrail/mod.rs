//! Diff guardrail data: the [`Change`] list the host computes from git objects
//! and the [`Violation`] a refusal names. The evaluator that checks a change
//! list against forbidden-path rules is `userz_security::guardrail`.

use serde::{Deserialize, Serialize};

/// The kind of object at a path after (or before, for deletions) the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ObjectKind {
    /// A regular (possibly executable) file.
    File,
    /// A symbolic link with its target as stored in the blob.
    Symlink {
        /// Link target, exactly as stored.
        target: String,
    },
    /// A submodule commit (mode 160000).
    Gitlink,
    /// Nothing (the path was deleted).
    Deleted,
}

/// One entry of a change list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Path after the change (repository-relative, `/`-separated, as stored in git).
    pub path: String,
    /// Path before the change, for renames and copies.
    pub old_path: Option<String>,
    /// Mode before (`None` for additions).
    pub old_mode: Option<u32>,
    /// Mode after (`None` for deletions).
    pub new_mode: Option<u32>,
    /// Object kind after the change.
    pub object: ObjectKind,
}

impl Change {
    /// A modified or added regular file at `path`.
    pub fn file(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            old_path: None,
            old_mode: Some(0o100644),
            new_mode: Some(0o100644),
            object: ObjectKind::File,
        }
    }
}

/// One tripped rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The file, as named in the change list.
    pub file: String,
    /// The rule (a forbidden-path pattern or a named structural rule).
    pub rule: String,
}
