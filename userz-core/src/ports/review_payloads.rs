//! The [`ReviewPayloads`] port: a forge's review webhook payload, mapped to a
//! provider-neutral [`InboundPrNotice`].
//!
//! Each forge adapter implements it (`userz-vcs-github`, `userz-vcs-gitlab`);
//! the engine's review webhooks and the HTTP routes use whichever mappings the
//! composition root gives them, keyed by [`ReviewPayloads::provider`].

use std::fmt::Debug;

use crate::domain::pr::{severity_from_body, CommentSeverity, MAX_COMMENT_BYTES};
use crate::error::Result;
use crate::sensitive::Sensitive;

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

impl InboundChange {
    /// A diff comment from the raw body a reviewer wrote: the leading severity
    /// marker is split off with [`severity_from_body`].
    ///
    /// # Errors
    ///
    /// The problem with the body, for the caller to report with the field's
    /// name: `"too long"` (over [`MAX_COMMENT_BYTES`]) or `"empty"` (nothing
    /// but a marker and whitespace).
    pub fn diff_comment(
        provider_comment_id: u64,
        path: &str,
        line: u32,
        raw_body: &str,
    ) -> std::result::Result<Self, &'static str> {
        if raw_body.len() > MAX_COMMENT_BYTES {
            return Err("too long");
        }
        let (severity, text) = severity_from_body(raw_body);
        if text.is_empty() {
            return Err("empty");
        }
        Ok(InboundChange::DiffComment {
            provider_comment_id,
            path: path.to_owned(),
            line,
            body: Sensitive::new(text.to_owned()),
            severity,
        })
    }
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

/// Maps one forge's review webhook deliveries (already authenticated) to
/// [`InboundPrNotice`]s.
///
/// # Contract
/// - `parse` is pure: no I/O, no clock, no state; the same `event` and `body`
///   always give the same answer.
/// - An event or action that needs nothing (a ping, an opened PR, a general
///   discussion note, …) is `Ok(None)`, not an error.
/// - A body that is not JSON, or lacks or mistypes a field the mapping needs,
///   is [`Error::Invalid`](crate::Error::Invalid) whose message starts with
///   `"<provider> webhook: "` and names the field by its dotted path
///   (`comment.line: missing`).
/// - [`provider`](Self::provider) is the verifier's provider name
///   (`github`, `gitlab`): it keys the mapping and the derived comment ids.
pub trait ReviewPayloads: Send + Sync + Debug {
    /// The provider this maps (`github`, `gitlab`).
    fn provider(&self) -> &'static str;

    /// The request header naming the event (`X-GitHub-Event`), which callers
    /// must then pass as `event`; `None` when the body says which event it is
    /// (callers pass `""`).
    fn event_header(&self) -> Option<&'static str> {
        None
    }

    /// Maps one delivery (see the contract).
    fn parse(&self, event: &str, body: &[u8]) -> Result<Option<InboundPrNotice>>;
}
