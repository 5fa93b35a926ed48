//! GitHub's review webhooks mapped to PR changes: the [`ReviewPayloads`]
//! port for GitHub.
//!
//! | event (`X-GitHub-Event`) | acted on | becomes |
//! |---|---|---|
//! | `pull_request` | `action: closed` | [`InboundChange::Closed`] with `pull_request.merged` |
//! | `pull_request_review_comment` | `action: created` | [`InboundChange::DiffComment`] |
//!
//! Every other event or action maps to `Ok(None)` (nothing to do). A payload
//! that is not JSON, or lacks a field the mapping needs, is an
//! [`Error::Invalid`] naming the field by its dotted path.

use serde_json::Value;

use userz_core::error::{Error, Result};
use userz_core::ports::{InboundChange, InboundPrNotice, RepositoryRef, ReviewPayloads};

/// Header naming a GitHub delivery's event.
pub const EVENT_HEADER: &str = "X-GitHub-Event";

const P: &str = "github";

/// Maps GitHub `pull_request` and `pull_request_review_comment` deliveries
/// (see the [module docs](self)).
///
/// ```
/// use userz_core::ports::{InboundChange, ReviewPayloads};
/// use userz_vcs_github::GitHubReviewPayloads;
///
/// let body = br#"{"action":"closed","number":7,"pull_request":{"merged":true},
///                 "repository":{"id":5,"full_name":"acme/widgets"}}"#;
/// let notice = GitHubReviewPayloads.parse("pull_request", body).unwrap().unwrap();
/// assert_eq!(notice.change, InboundChange::Closed { merged: true });
/// assert_eq!(GitHubReviewPayloads.parse("ping", b"{}").unwrap(), None);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GitHubReviewPayloads;

impl ReviewPayloads for GitHubReviewPayloads {
    fn provider(&self) -> &'static str {
        P
    }

    fn event_header(&self) -> Option<&'static str> {
        Some(EVENT_HEADER)
    }

    fn parse(&self, event: &str, body: &[u8]) -> Result<Option<InboundPrNotice>> {
        parse_github(event, body)
    }
}

fn parse_github(event: &str, body: &[u8]) -> Result<Option<InboundPrNotice>> {
    if !matches!(event, "pull_request" | "pull_request_review_comment") {
        return Ok(None);
    }
    let v = parse_json(body)?;
    let action = str_field(&v, "action")?;
    let repository = RepositoryRef {
        full_name: str_field(&v, "repository.full_name")?.to_string(),
        id: lookup(&v, "repository.id").and_then(Value::as_u64),
    };
    match (event, action) {
        ("pull_request", "closed") => {
            let merged = match lookup(&v, "pull_request.merged") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(invalid("pull_request.merged", "must be a boolean")),
            };
            let number = u64_field(&v, "number")?;
            Ok(Some(InboundPrNotice { repository, number, change: InboundChange::Closed { merged } }))
        }
        ("pull_request_review_comment", "created") => {
            let number = u64_field(&v, "pull_request.number")?;
            let id = u64_field(&v, "comment.id")?;
            let path = str_field(&v, "comment.path")?;
            if path.is_empty() {
                return Err(invalid("comment.path", "empty"));
            }
            // `line` is null for file-level comments and outdated positions: not a line of the diff.
            let line = line_field(&v, "comment.line")?;
            let text = str_field(&v, "comment.body")?;
            let change = InboundChange::diff_comment(id, path, line, text).map_err(|p| invalid("comment.body", p))?;
            Ok(Some(InboundPrNotice { repository, number, change }))
        }
        _ => Ok(None),
    }
}

fn invalid(field: &str, problem: &str) -> Error {
    Error::Invalid(format!("{P} webhook: {field}: {problem}"))
}

/// Walks a dotted path; `None` when a segment is absent or `null`.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn str_field<'a>(v: &'a Value, path: &str) -> Result<&'a str> {
    match lookup(v, path) {
        None => Err(invalid(path, "missing")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(path, "must be a string")),
    }
}

fn u64_field(v: &Value, path: &str) -> Result<u64> {
    match lookup(v, path) {
        None => Err(invalid(path, "missing")),
        Some(n) => n.as_u64().ok_or_else(|| invalid(path, "must be a non-negative integer")),
    }
}

fn line_field(v: &Value, path: &str) -> Result<u32> {
    let n = u64_field(v, path)?;
    u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| invalid(path, "must be a line number ≥ 1"))
}

fn parse_json(body: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| invalid("body", &format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("body", "must be a JSON object"));
    }
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
