//! Stored objects (screenshots, run transcripts) and their retention.
//!
//! DESIGN G18: object storage keeps screenshots and full run logs for 30 days
//! unless they are marked for retention. The bytes live in an object store; the
//! facts that matter for retention live here, as events: when a blob was stored
//! (its age is measured from that event, not from the object store's
//! `last_modified`), who retained or released it, and when it was deleted.
//!
//! One stream per object key: `blob-<uuid>` where the uuid is a UUIDv5 of the key
//! ([`BlobId::for_key`]), so anyone holding the key finds its stream without a
//! lookup table.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::Actor;
use crate::event_names;
use crate::ids::OrgId;
use crate::time::Timestamp;

/// The namespace of [`BlobId::for_key`] (a fixed, random UUID: changing it would
/// orphan every existing blob stream).
const BLOB_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_4c2e_9b0d_4e57_8f3a_2c71_d5e9_b804);

/// The id of a blob's stream, derived from its object key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlobId(pub Uuid);

impl BlobId {
    /// The id of the object at `key` (UUIDv5: the same key always gives the same id).
    pub fn for_key(key: &str) -> Self {
        Self(Uuid::new_v5(&BLOB_NAMESPACE, key.as_bytes()))
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blob_{}", self.0.simple())
    }
}

/// Commands on a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobCommand {
    /// Records that an object was written. The key must lie under `orgs/<org>/`.
    Record {
        /// Owning organization.
        org: OrgId,
        /// Object key.
        key: String,
        /// Size in bytes.
        size: u64,
        /// When it was written (the start of its retention period).
        at: Timestamp,
    },
    /// Keeps the blob past the retention period until released.
    Retain {
        /// Who asked.
        by: Actor,
    },
    /// Lifts a retention mark; the blob ages out normally again.
    Release {
        /// Who asked.
        by: Actor,
    },
    /// Records the deletion (refused while retained).
    Delete {
        /// When.
        at: Timestamp,
    },
}

/// Events of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BlobEvent {
    /// An object was written.
    BlobStored {
        /// Owning organization.
        org: OrgId,
        /// Object key.
        key: String,
        /// Size in bytes.
        size: u64,
        /// When it was written.
        at: Timestamp,
    },
    /// Marked for retention.
    BlobRetained {
        /// Who asked.
        by: Actor,
    },
    /// Retention mark lifted.
    BlobReleased {
        /// Who asked.
        by: Actor,
    },
    /// The object was (or is about to be) deleted.
    BlobDeleted {
        /// When.
        at: Timestamp,
    },
}
event_names!(BlobEvent { BlobStored, BlobRetained, BlobReleased, BlobDeleted });

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Owning organization.
    pub org: OrgId,
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was written.
    pub stored_at: Timestamp,
    /// Who retained it, while it is retained.
    pub retained_by: Option<Actor>,
}

/// State of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BlobState {
    /// Never recorded.
    #[default]
    None,
    /// Stored.
    Stored(BlobInfo),
    /// Deleted.
    Deleted {
        /// Owning organization.
        org: OrgId,
        /// Object key.
        key: String,
        /// When.
        at: Timestamp,
    },
}

impl BlobState {
    /// Whether the blob is stored and marked for retention.
    pub fn is_retained(&self) -> bool {
        matches!(self, BlobState::Stored(BlobInfo { retained_by: Some(_), .. }))
    }

    /// When the blob was stored, if it is.
    pub fn stored_at(&self) -> Option<Timestamp> {
        match self {
            BlobState::Stored(b) => Some(b.stored_at),
            _ => None,
        }
    }
}

/// Checks a key lies under `orgs/<org>/` with no empty, `.` or `..` segment, so
/// a blob can never be recorded under another org's prefix.
fn check_key(org: OrgId, key: &str) -> Result<(), Rejection> {
    let prefix = format!("orgs/{org}/");
    let Some(rest) = key.strip_prefix(&prefix) else {
        return Err(Rejection::input("key", format!("must start with {prefix}")));
    };
    if key.len() > 1024 {
        return Err(Rejection::input("key", "at most 1024 bytes"));
    }
    if rest.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(Rejection::input("key", "empty, '.' or '..' path segment"));
    }
    Ok(())
}

/// The blob decider.
#[derive(Debug, Clone, Copy)]
pub struct BlobDecider;

impl Decider for BlobDecider {
    type Command = BlobCommand;
    type Event = BlobEvent;
    type State = BlobState;

    fn initial_state() -> BlobState {
        BlobState::None
    }

    fn decide(command: &BlobCommand, state: &BlobState) -> Result<Vec<BlobEvent>, Rejection> {
        match (command, state) {
            (BlobCommand::Record { org, key, size, at }, BlobState::None | BlobState::Deleted { .. }) => {
                check_key(*org, key)?;
                Ok(vec![BlobEvent::BlobStored { org: *org, key: key.clone(), size: *size, at: *at }])
            }
            // Recording the same write twice (a retried upload hook) changes nothing.
            (BlobCommand::Record { org, key, size, at }, BlobState::Stored(b))
                if b.org == *org && b.key == *key && b.size == *size && b.stored_at == *at =>
            {
                Ok(vec![])
            }
            (BlobCommand::Record { .. }, BlobState::Stored(_)) => Err(Rejection::AlreadyExists { entity: "blob" }),
            (_, BlobState::None) => Err(Rejection::NotFound { entity: "blob" }),

            (BlobCommand::Retain { by }, BlobState::Stored(b)) => match b.retained_by {
                Some(_) => Ok(vec![]),
                None => Ok(vec![BlobEvent::BlobRetained { by: by.clone() }]),
            },
            (BlobCommand::Release { by }, BlobState::Stored(b)) => match b.retained_by {
                Some(_) => Ok(vec![BlobEvent::BlobReleased { by: by.clone() }]),
                None => Err(Rejection::Invariant { rule: "not_retained", message: "blob is not retained".into() }),
            },
            (BlobCommand::Delete { at }, BlobState::Stored(b)) => match &b.retained_by {
                Some(by) => Err(Rejection::Invariant {
                    rule: "blob_retained",
                    message: format!("{} is retained (by {by:?}); release it first", b.key),
                }),
                None => Ok(vec![BlobEvent::BlobDeleted { at: *at }]),
            },

            // A sweeper interrupted between recording the deletion and deleting the
            // object runs again: the second Delete is a no-op, not an error.
            (BlobCommand::Delete { .. }, BlobState::Deleted { .. }) => Ok(vec![]),
            (BlobCommand::Retain { .. }, BlobState::Deleted { .. }) => Err(Rejection::transition("retain", "deleted")),
            (BlobCommand::Release { .. }, BlobState::Deleted { .. }) => {
                Err(Rejection::transition("release", "deleted"))
            }
        }
    }

    fn evolve(state: BlobState, event: &BlobEvent) -> BlobState {
        match (event, state) {
            (BlobEvent::BlobStored { org, key, size, at }, _) => BlobState::Stored(BlobInfo {
                org: *org,
                key: key.clone(),
                size: *size,
                stored_at: *at,
                retained_by: None,
            }),
            (BlobEvent::BlobRetained { by }, BlobState::Stored(b)) => {
                BlobState::Stored(BlobInfo { retained_by: Some(by.clone()), ..b })
            }
            (BlobEvent::BlobReleased { .. }, BlobState::Stored(b)) => {
                BlobState::Stored(BlobInfo { retained_by: None, ..b })
            }
            (BlobEvent::BlobDeleted { at }, BlobState::Stored(b)) => {
                BlobState::Deleted { org: b.org, key: b.key, at: *at }
            }
            (_, s) => s,
        }
    }
}

impl Aggregate for BlobDecider {
    const CATEGORY: &'static str = "blob";
}
