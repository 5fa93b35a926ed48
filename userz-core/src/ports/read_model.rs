//! The [`ReadModelStore`] port: projections and their checkpoints.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// One change to a read-model table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadModelOp {
    /// Insert or replace.
    Put {
        /// Table.
        table: String,
        /// Key (tables are ordered by key, byte-wise).
        key: String,
        /// Value.
        value: Bytes,
    },
    /// Remove (absent keys are fine).
    Delete {
        /// Table.
        table: String,
        /// Key.
        key: String,
    },
}

/// A checkpoint move that must happen in the same transaction as the ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointMove {
    /// Checkpoint name (one per projection or process manager).
    pub name: String,
    /// The position the committer read from; the commit fails with
    /// [`Error::CheckpointConflict`](crate::Error::CheckpointConflict) otherwise.
    pub expected: u64,
    /// The new position.
    pub new: u64,
}

/// An atomic batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadModelCommit {
    /// Optional checkpoint move.
    pub checkpoint: Option<CheckpointMove>,
    /// Table changes.
    pub ops: Vec<ReadModelOp>,
}

/// Ordered key/value tables for projections, with checkpoints.
///
/// # Contract
/// - `commit` applies every op and the checkpoint move atomically, or nothing.
///   If the checkpoint is not at `expected`, nothing is applied and
///   `CheckpointConflict` is returned. So a projection's rows and its checkpoint
///   never disagree, and two runners of one projection cannot both apply a batch.
/// - `checkpoint` of an unknown name is 0.
/// - `scan(table, prefix, after, limit)` returns up to `limit` rows whose key starts
///   with `prefix` and is strictly greater than `after`, ascending by key bytes.
#[async_trait]
pub trait ReadModelStore: Send + Sync + Debug {
    /// A checkpoint's position.
    async fn checkpoint(&self, name: &str) -> Result<u64>;
    /// Applies a batch.
    async fn commit(&self, commit: ReadModelCommit) -> Result<()>;
    /// Reads one row.
    async fn get(&self, table: &str, key: &str) -> Result<Option<Bytes>>;
    /// Reads rows in key order.
    async fn scan(&self, table: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, Bytes)>>;
}
