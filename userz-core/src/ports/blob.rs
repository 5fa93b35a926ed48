//! The [`BlobStore`] port: raw object storage for screenshots, attachments and
//! run transcripts (DESIGN G18), and [`BlobKey`], the org-scoped key layout.
//!
//! ```text
//! orgs/<org>/screenshots/<id>
//! orgs/<org>/attachments/<id>
//! orgs/<org>/runs/<run>/transcript.jsonl
//! ```
//!
//! The port stores bytes and nothing else. The blob *events* (`BlobStored`,
//! retention marks, `BlobDeleted`: [`crate::domain::blob`]) are recorded by the
//! engine's `Blobs` wrapper and retention sweeper on top of it.

use std::fmt;
use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{Error, Result};
use crate::ids::{OrgId, RunId};
use crate::time::Timestamp;

/// The key of an object of one organization: `orgs/<org>/…`.
///
/// Every key is canonical: `/`-separated segments, none empty, none `.` or
/// `..`, no ASCII control characters, no leading or trailing `/`, and at least
/// one segment below `orgs/<org>`. A `BlobKey` can only be made through the
/// constructors below, so no caller-supplied text can name an object outside
/// its org's prefix.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey {
    org: OrgId,
    key: String,
}

impl BlobKey {
    /// Screenshot `id` of `org`: `orgs/<org>/screenshots/<id>`.
    ///
    /// `id` is 1–128 characters of `[A-Za-z0-9_.-]` and does not start with `.`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field and the rule when `id` breaks it.
    pub fn screenshot(org: OrgId, id: &str) -> Result<Self> {
        check_name("screenshot id", id)?;
        Ok(Self { org, key: format!("orgs/{org}/screenshots/{id}") })
    }

    /// Attachment `id` of `org` (a file uploaded with a report that is not a
    /// screenshot): `orgs/<org>/attachments/<id>`. `id` follows the rule of
    /// [`screenshot`](Self::screenshot).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field and the rule when `id` breaks it.
    pub fn attachment(org: OrgId, id: &str) -> Result<Self> {
        check_name("attachment id", id)?;
        Ok(Self { org, key: format!("orgs/{org}/attachments/{id}") })
    }

    /// The full transcript (JSON lines) of run `run` of `org`.
    pub fn run_transcript(org: OrgId, run: RunId) -> Self {
        Self { org, key: format!("orgs/{org}/runs/{run}/transcript.jsonl") }
    }

    /// The diff of a run's commits (written once the guardrails read them).
    pub fn run_diff(org: OrgId, run: RunId) -> Self {
        Self { org, key: format!("orgs/{org}/runs/{run}/diff.patch") }
    }

    /// `key` as a key of `org`'s, if it is one: canonical (see the type's docs)
    /// and under `orgs/<org>/`. For keys that come from outside (a report's
    /// attachment reference, a read model's transcript key), so nothing can
    /// name another org's object.
    pub fn parse(org: OrgId, key: &str) -> Option<Self> {
        Self::parse_any(key).filter(|k| k.org == org)
    }

    /// `key` as a key of whichever org it names, if it follows the layout. For
    /// keys the engine itself wrote (a listing, a `BlobStored` event); a key a
    /// caller supplies goes through [`parse`](Self::parse) with the caller's org.
    pub fn parse_any(key: &str) -> Option<Self> {
        if !is_canonical(key) {
            return None;
        }
        let mut parts = key.split('/');
        if parts.next()? != "orgs" {
            return None;
        }
        let org: OrgId = parts.next()?.parse().ok()?;
        // The org segment must be in its canonical `Display` form, so one
        // object has exactly one key.
        if !key.starts_with(&format!("orgs/{org}/")) {
            return None;
        }
        parts.next()?;
        Some(Self { org, key: key.to_owned() })
    }

    /// The organization the object belongs to.
    pub fn org(&self) -> OrgId {
        self.org
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl AsRef<str> for BlobKey {
    fn as_ref(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.key, f)
    }
}

/// The prefix of everything `org` stores (`orgs/<org>`), for [`BlobStore::list`].
pub fn org_prefix(org: OrgId) -> String {
    format!("orgs/{org}")
}

/// Whether `key` is in canonical form (see [`BlobKey`]), whatever its prefix.
/// Listing prefixes follow the same rule; the empty prefix lists everything.
pub fn is_canonical(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && !s.bytes().any(|b| b.is_ascii_control()))
}

fn check_name(field: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{field}: 1-128 characters of [A-Za-z0-9_.-], not starting with '.'")))
    }
}

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The object's key as stored. A listing may include objects something else
    /// wrote outside the layout, so this is text; [`BlobKey::parse_any`] says
    /// whether it is an org's.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written, by the store's clock.
    pub last_modified: Timestamp,
}

/// What an adapter can do; the conformance suite reads these flags instead of
/// skipping checks silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlobCapabilities {
    /// Objects survive a restart, and a second handle on the same backend (the
    /// same directory, the same bucket) sees them.
    pub durable: bool,
}

impl BlobCapabilities {
    /// An in-process store: objects die with it.
    pub const fn in_memory() -> Self {
        Self { durable: false }
    }

    /// A store whose objects outlive the process and are shared by handles.
    pub const fn durable() -> Self {
        Self { durable: true }
    }
}

/// A listing of objects.
pub type BlobListing = BoxStream<'static, Result<BlobMeta>>;

/// Raw object storage: bytes under org-scoped keys.
///
/// # Contract
/// - `put` stores all of `bytes` at `key` atomically, replacing any object
///   there: a reader sees the old object or the new one, never a mix.
/// - `get(key, None)` returns the whole object; `get(key, Some(n))` at most its
///   first `n` bytes (all of it when it is shorter). A missing object is
///   `Ok(None)`, never an error.
/// - `head` returns the object's size and write time, `Ok(None)` when missing.
/// - `delete` is idempotent: deleting a missing object is `Ok(())`. After it
///   returns, `get` and `head` answer `None`.
/// - `list(prefix)` yields every object whose key is `prefix` or lies below it
///   by whole segments (`orgs/a` lists `orgs/a/x`, never `orgs/ab/x`), in no
///   particular order, each once; the empty prefix lists everything. A prefix
///   that is not canonical (see [`BlobKey`]) yields one `Error::Invalid`.
/// - Backend failures are `Error::Unavailable` (retryable); bytes round-trip
///   exactly, whatever they hold.
#[async_trait]
pub trait BlobStore: Send + Sync + Debug {
    /// Stores `bytes` at `key`.
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<()>;

    /// Reads the object at `key`, cut to at most `limit` bytes from its start.
    async fn get(&self, key: &BlobKey, limit: Option<u64>) -> Result<Option<Bytes>>;

    /// The object's size and write time.
    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>>;

    /// Deletes the object at `key` (a no-op if there is none).
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// Lists the objects under `prefix` (whole segments; `""` for all).
    fn list(&self, prefix: &str) -> BlobListing;

    /// What this adapter supports.
    fn capabilities(&self) -> BlobCapabilities;
}

/// A listing that fails at once with `Invalid` (for adapters refusing a prefix).
pub fn invalid_prefix(prefix: &str) -> BlobListing {
    let e = Error::Invalid(format!("listing prefix {prefix:?} is not canonical"));
    Box::pin(futures::stream::once(async move { Err(e) }))
}

/// Whether `key` lies under `prefix` by whole segments (the rule of
/// [`BlobStore::list`]); `prefix` is canonical or empty.
pub fn is_under(key: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty() || key == prefix || key.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn only_canonical_keys_under_the_org_parse_as_the_orgs() {
        let (org, other) = (OrgId::new(), OrgId::new());
        for good in [format!("orgs/{org}/screenshots/a.png"), format!("orgs/{org}/attachments/notes.txt")] {
            assert_eq!(BlobKey::parse(org, &good).map(|p| p.to_string()), Some(good.clone()));
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
            assert_eq!(BlobKey::parse(org, &bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn keys_follow_the_layout() {
        let org = OrgId::new();
        let run = RunId::new();
        assert_eq!(
            BlobKey::screenshot(org, "shot-1.png").map(|p| p.to_string()).ok(),
            Some(format!("orgs/{org}/screenshots/shot-1.png"))
        );
        assert_eq!(BlobKey::run_transcript(org, run).to_string(), format!("orgs/{org}/runs/{run}/transcript.jsonl"));
        assert_eq!(BlobKey::parse_any(BlobKey::run_transcript(org, run).as_str()).map(|k| k.org()), Some(org));
        assert_eq!(BlobKey::parse_any("elsewhere/x"), None);
    }

    #[test]
    fn screenshot_ids_cannot_escape_the_prefix() {
        let org = OrgId::new();
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", &"x".repeat(129)] {
            assert!(matches!(BlobKey::screenshot(org, bad), Err(Error::Invalid(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn listing_prefixes_match_whole_segments() {
        assert!(is_under("orgs/a/x", "orgs/a"));
        assert!(is_under("orgs/a/x", "orgs/a/"));
        assert!(is_under("orgs/a", "orgs/a"));
        assert!(is_under("anything", ""));
        assert!(!is_under("orgs/ab/x", "orgs/a"));
    }

    #[test]
    fn a_control_character_is_not_canonical() {
        let org = OrgId::new();
        assert_eq!(BlobKey::parse(org, &format!("orgs/{org}/a\nb")), None);
    }
}
