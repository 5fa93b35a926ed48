//! GitLab's review webhooks mapped to MR changes: the [`ReviewPayloads`]
//! port for GitLab.
//!
//! | event (`object_kind`, `X-Gitlab-Event`) | acted on | becomes |
//! |---|---|---|
//! | `merge_request` (`Merge Request Hook`) | `object_attributes.action` `close` / `merge` | [`InboundChange::Closed`] |
//! | `note` (`Note Hook`) | a note on a merge request's diff (`position` set) | [`InboundChange::DiffComment`] |
//!
//! The body's `object_kind` decides; the `X-Gitlab-Event` header is not
//! needed. Every other event or action maps to `Ok(None)` (nothing to do). A
//! payload that is not JSON, or lacks a field the mapping needs, is an
//! [`Error::Invalid`] naming the field by its dotted path.

use serde_json::Value;

use userz_core::error::{Error, Result};
use userz_core::ports::{InboundChange, InboundPrNotice, RepositoryRef, ReviewPayloads};

const P: &str = "gitlab";

/// Maps GitLab merge-request and note deliveries (see the [module docs](self)).
///
/// ```
/// use userz_core::ports::{InboundChange, ReviewPayloads};
/// use userz_vcs_gitlab::GitLabReviewPayloads;
///
/// let body = br#"{"object_kind":"merge_request","project":{"id":15,"path_with_namespace":"acme/widgets"},
///                 "object_attributes":{"iid":3,"action":"merge"}}"#;
/// let notice = GitLabReviewPayloads.parse("", body).unwrap().unwrap();
/// assert_eq!((notice.number, notice.change), (3, InboundChange::Closed { merged: true }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GitLabReviewPayloads;

impl ReviewPayloads for GitLabReviewPayloads {
    fn provider(&self) -> &'static str {
        P
    }

    fn parse(&self, _event: &str, body: &[u8]) -> Result<Option<InboundPrNotice>> {
        parse_gitlab(body)
    }
}

fn parse_gitlab(body: &[u8]) -> Result<Option<InboundPrNotice>> {
    let v = parse_json(body)?;
    let kind = str_field(&v, "object_kind")?;
    if !matches!(kind, "merge_request" | "note") {
        return Ok(None);
    }
    let repository = RepositoryRef {
        full_name: str_field(&v, "project.path_with_namespace")?.to_string(),
        id: lookup(&v, "project.id").and_then(Value::as_u64),
    };
    if kind == "merge_request" {
        let merged = match lookup(&v, "object_attributes.action").and_then(Value::as_str) {
            Some("close") => false,
            Some("merge") => true,
            _ => return Ok(None),
        };
        let number = u64_field(&v, "object_attributes.iid")?;
        return Ok(Some(InboundPrNotice { repository, number, change: InboundChange::Closed { merged } }));
    }
    if str_field(&v, "object_attributes.noteable_type")? != "MergeRequest" {
        return Ok(None);
    }
    // A note without a position is a general discussion comment, not on the diff.
    if lookup(&v, "object_attributes.position").is_none() {
        return Ok(None);
    }
    let number = u64_field(&v, "merge_request.iid")?;
    let id = u64_field(&v, "object_attributes.id")?;
    let path = str_field(&v, "object_attributes.position.new_path")?;
    if path.is_empty() {
        return Err(invalid("object_attributes.position.new_path", "empty"));
    }
    let line = line_field(&v, "object_attributes.position.new_line")?;
    let text = str_field(&v, "object_attributes.note")?;
    let change = InboundChange::diff_comment(id, path, line, text).map_err(|p| invalid("object_attributes.note", p))?;
    Ok(Some(InboundPrNotice { repository, number, change }))
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
