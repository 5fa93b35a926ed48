//! Pure mapping of verified GitHub and GitLab webhook payloads to PR changes.
//!
//! | provider | event | acted on | becomes |
//! |---|---|---|---|
//! | GitHub | `pull_request` | `action: closed` | [`InboundChange::Closed`] with `pull_request.merged` |
//! | GitHub | `pull_request_review_comment` | `action: created` | [`InboundChange::DiffComment`] |
//! | GitLab | `merge_request` (`Merge Request Hook`) | `object_attributes.action` `close` / `merge` | [`InboundChange::Closed`] |
//! | GitLab | `note` (`Note Hook`) | a note on a merge request's diff (`position` set) | [`InboundChange::DiffComment`] |
//!
//! Every other event or action maps to `Ok(None)` (nothing to do). A payload
//! that is not JSON, or lacks a field the mapping needs, is an
//! [`Error::Invalid`] naming the field by its dotted path.

use serde_json::Value;

use userz_core::domain::pr::CommentSeverity;
use userz_core::error::{Error, Result};
use userz_core::sensitive::Sensitive;

/// Longest comment body accepted (GitHub caps comments at 65 536 characters).
pub const MAX_COMMENT_BYTES: usize = 256 * 1024;

/// The repository a payload names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRef {
    /// `owner/name` (GitHub `repository.full_name`, GitLab `project.path_with_namespace`).
    pub full_name: String,
    /// The provider's numeric id (GitHub `repository.id`, GitLab `project.id`).
    pub id: Option<u64>,
}

/// What happened to the pull/merge request.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundChange {
    /// Closed (`merged: false`) or merged.
    Closed {
        /// Whether it was merged.
        merged: bool,
    },
    /// A reviewer commented on a line of the diff.
    DiffComment {
        /// The provider's comment id (stable across redeliveries).
        provider_comment_id: u64,
        /// File path in the new revision.
        path: String,
        /// Line in the new file (≥ 1).
        line: u32,
        /// Text with any severity marker removed (untrusted).
        body: Sensitive<String>,
        /// From the body's leading marker; `suggestion` by default.
        severity: CommentSeverity,
    },
}

/// A PR change reported by a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundPrNotice {
    /// The repository.
    pub repository: RepositoryRef,
    /// The PR number (GitHub `number`) or MR `iid` (GitLab).
    pub number: u64,
    /// The change.
    pub change: InboundChange,
}

/// Splits a leading severity marker off a comment body.
///
/// Recognised markers (case-insensitive, at the very start after whitespace):
/// `[nit]`, `[suggestion]`, `[must_change]` (also `[must-change]`). Without a
/// marker the severity is `suggestion` and the body is returned trimmed.
pub fn severity_from_body(body: &str) -> (CommentSeverity, &str) {
    let trimmed = body.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((tag, after)) = rest.split_once(']') {
            let severity = match tag.trim().to_ascii_lowercase().as_str() {
                "nit" => Some(CommentSeverity::Nit),
                "suggestion" => Some(CommentSeverity::Suggestion),
                "must_change" | "must-change" => Some(CommentSeverity::MustChange),
                _ => None,
            };
            if let Some(s) = severity {
                return (s, after.trim());
            }
        }
    }
    (CommentSeverity::Suggestion, trimmed.trim_end())
}

fn invalid(provider: &str, field: &str, problem: &str) -> Error {
    Error::Invalid(format!("{provider} webhook: {field}: {problem}"))
}

/// Walks a dotted path; `None` when a segment is absent or `null`.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn str_field<'a>(provider: &str, v: &'a Value, path: &str) -> Result<&'a str> {
    match lookup(v, path) {
        None => Err(invalid(provider, path, "missing")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(provider, path, "must be a string")),
    }
}

fn u64_field(provider: &str, v: &Value, path: &str) -> Result<u64> {
    match lookup(v, path) {
        None => Err(invalid(provider, path, "missing")),
        Some(n) => n.as_u64().ok_or_else(|| invalid(provider, path, "must be a non-negative integer")),
    }
}

fn line_field(provider: &str, v: &Value, path: &str) -> Result<u32> {
    let n = u64_field(provider, v, path)?;
    u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| invalid(provider, path, "must be a line number ≥ 1"))
}

fn parse_json(provider: &str, body: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| invalid(provider, "body", &format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid(provider, "body", "must be a JSON object"));
    }
    Ok(v)
}

fn comment(provider: &str, id: u64, path: &str, line: u32, raw_body: &str, body_field: &str) -> Result<InboundChange> {
    debug_assert!(!path.is_empty(), "callers check the path");
    if raw_body.len() > MAX_COMMENT_BYTES {
        return Err(invalid(provider, body_field, "too long"));
    }
    let (severity, text) = severity_from_body(raw_body);
    if text.is_empty() {
        return Err(invalid(provider, body_field, "empty"));
    }
    Ok(InboundChange::DiffComment {
        provider_comment_id: id,
        path: path.to_string(),
        line,
        body: Sensitive::new(text.to_string()),
        severity,
    })
}

/// Maps a GitHub delivery (`event` is the `X-GitHub-Event` header).
pub fn parse_github(event: &str, body: &[u8]) -> Result<Option<InboundPrNotice>> {
    const P: &str = "github";
    if !matches!(event, "pull_request" | "pull_request_review_comment") {
        return Ok(None);
    }
    let v = parse_json(P, body)?;
    let action = str_field(P, &v, "action")?;
    let repository = RepositoryRef {
        full_name: str_field(P, &v, "repository.full_name")?.to_string(),
        id: lookup(&v, "repository.id").and_then(Value::as_u64),
    };
    match (event, action) {
        ("pull_request", "closed") => {
            let merged = match lookup(&v, "pull_request.merged") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(invalid(P, "pull_request.merged", "must be a boolean")),
            };
            let number = u64_field(P, &v, "number")?;
            Ok(Some(InboundPrNotice { repository, number, change: InboundChange::Closed { merged } }))
        }
        ("pull_request_review_comment", "created") => {
            let number = u64_field(P, &v, "pull_request.number")?;
            let id = u64_field(P, &v, "comment.id")?;
            let path = str_field(P, &v, "comment.path")?;
            if path.is_empty() {
                return Err(invalid(P, "comment.path", "empty"));
            }
            // `line` is null for file-level comments and outdated positions: not a line of the diff.
            let line = line_field(P, &v, "comment.line")?;
            let text = str_field(P, &v, "comment.body")?;
            let change = comment(P, id, path, line, text, "comment.body")?;
            Ok(Some(InboundPrNotice { repository, number, change }))
        }
        _ => Ok(None),
    }
}

/// Maps a GitLab delivery (the body's `object_kind` decides; the
/// `X-Gitlab-Event` header is not needed).
pub fn parse_gitlab(body: &[u8]) -> Result<Option<InboundPrNotice>> {
    const P: &str = "gitlab";
    let v = parse_json(P, body)?;
    let kind = str_field(P, &v, "object_kind")?;
    if !matches!(kind, "merge_request" | "note") {
        return Ok(None);
    }
    let repository = RepositoryRef {
        full_name: str_field(P, &v, "project.path_with_namespace")?.to_string(),
        id: lookup(&v, "project.id").and_then(Value::as_u64),
    };
    if kind == "merge_request" {
        let merged = match lookup(&v, "object_attributes.action").and_then(Value::as_str) {
            Some("close") => false,
            Some("merge") => true,
            _ => return Ok(None),
        };
        let number = u64_field(P, &v, "object_attributes.iid")?;
        return Ok(Some(InboundPrNotice { repository, number, change: InboundChange::Closed { merged } }));
    }
    if str_field(P, &v, "object_attributes.noteable_type")? != "MergeRequest" {
        return Ok(None);
    }
    // A note without a position is a general discussion comment, not on the diff.
    if lookup(&v, "object_attributes.position").is_none() {
        return Ok(None);
    }
    let number = u64_field(P, &v, "merge_request.iid")?;
    let id = u64_field(P, &v, "object_attributes.id")?;
    let path = str_field(P, &v, "object_attributes.position.new_path")?;
    if path.is_empty() {
        return Err(invalid(P, "object_attributes.position.new_path", "empty"));
    }
    let line = line_field(P, &v, "object_attributes.position.new_line")?;
    let text = str_field(P, &v, "object_attributes.note")?;
    let change = comment(P, id, path, line, text, "object_attributes.note")?;
    Ok(Some(InboundPrNotice { repository, number, change }))
}
