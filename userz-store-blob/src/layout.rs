//! Where each kind of blob lives: one prefix per organization.
//!
//! ```text
//! orgs/<org>/screenshots/<id>
//! orgs/<org>/attachments/<id>
//! orgs/<org>/runs/<run>/transcript.jsonl
//! ```
//!
//! Keys are built only from typed ids and checked names, so no caller-supplied
//! text can climb out of its org's prefix.

use object_store::path::Path;
use userz_core::ids::{OrgId, RunId};

use crate::Error;

/// The prefix of everything an organization stores.
pub fn org_prefix(org: OrgId) -> Path {
    Path::from(format!("orgs/{org}"))
}

/// The key of screenshot `id` of `org`.
///
/// `id` is 1–128 characters of `[A-Za-z0-9_.-]` and does not start with `.`.
pub fn screenshot(org: OrgId, id: &str) -> Result<Path, Error> {
    check_name("screenshot id", id)?;
    Ok(Path::from(format!("orgs/{org}/screenshots/{id}")))
}

/// The key of attachment `id` of `org` (a file uploaded with a report that is
/// not a screenshot). `id` follows the same rule as [`screenshot`].
pub fn attachment(org: OrgId, id: &str) -> Result<Path, Error> {
    check_name("attachment id", id)?;
    Ok(Path::from(format!("orgs/{org}/attachments/{id}")))
}

/// The key of the full transcript (JSON lines) of run `run` of `org`.
pub fn run_transcript(org: OrgId, run: RunId) -> Path {
    Path::from(format!("orgs/{org}/runs/{run}/transcript.jsonl"))
}

/// The organization a key belongs to, if it follows this layout.
pub fn org_of(key: &Path) -> Option<OrgId> {
    let mut parts = key.parts();
    if parts.next()?.as_ref() != "orgs" {
        return None;
    }
    parts.next()?.as_ref().parse().ok()
}

/// `key` as a path of `org`'s, if it is one: a key in canonical form (no
/// empty, `.` or `..` segments; [`Path::parse`] agrees with it exactly) under
/// `orgs/<org>/` with at least one segment below the org. For keys that come
/// from outside (a report's attachment reference, a read model's transcript
/// key), so nothing can name another org's object.
pub fn parse_org_key(org: OrgId, key: &str) -> Option<Path> {
    let path = Path::parse(key).ok()?;
    (path.as_ref() == key && org_of(&path) == Some(org) && path.parts().count() > 2).then_some(path)
}

fn check_name(field: &'static str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName { field, reason: "1-128 characters of [A-Za-z0-9_.-], not starting with '.'" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_keys_under_the_org_parse_as_the_orgs() {
        let (org, other) = (OrgId::new(), OrgId::new());
        for good in [format!("orgs/{org}/screenshots/a.png"), format!("orgs/{org}/attachments/notes.txt")] {
            assert_eq!(parse_org_key(org, &good).map(|p| p.to_string()), Some(good.clone()));
        }
        for bad in [
            format!("orgs/{other}/screenshots/a.png"),
            format!("orgs/{org}"),
            format!("orgs/{org}/"),
            format!("orgs/{org}/../{other}/screenshots/a.png"),
            format!("orgs/{org}/./a.png"),
            format!("/orgs/{org}/screenshots/a.png"),
            format!("orgs/{org}//a.png"),
            "uploads/a.png".to_string(),
            String::new(),
        ] {
            assert_eq!(parse_org_key(org, &bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn keys_follow_the_layout() {
        let org = OrgId::new();
        let run = RunId::new();
        assert_eq!(
            screenshot(org, "shot-1.png").map(|p| p.to_string()).ok(),
            Some(format!("orgs/{org}/screenshots/shot-1.png"))
        );
        assert_eq!(run_transcript(org, run).to_string(), format!("orgs/{org}/runs/{run}/transcript.jsonl"));
        assert_eq!(org_of(&run_transcript(org, run)), Some(org));
        assert_eq!(org_of(&Path::from("elsewhere/x")), None);
    }

    #[test]
    fn screenshot_ids_cannot_escape_the_prefix() {
        let org = OrgId::new();
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(matches!(screenshot(org, bad), Err(Error::InvalidName { .. })), "{bad:?} accepted");
        }
    }
}
