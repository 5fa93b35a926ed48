//! The [`WorkQueue`] port: jobs claimed with a lease.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::JobId;
use crate::time::Timestamp;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Deterministic id: enqueueing the same id again is a no-op.
    pub id: JobId,
    /// Queue name.
    pub queue: String,
    /// Opaque payload.
    pub payload: Bytes,
    /// Not claimable before this time.
    pub not_before: Option<Timestamp>,
}

/// Whether `enqueue` added the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Added.
    New,
    /// A job with this id already exists (pending, leased or done); nothing changed.
    Duplicate,
}

/// Proof of a claim; needed to heartbeat, ack or nack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseToken {
    /// The job.
    pub job: JobId,
    /// Unique per claim, so a stale holder cannot ack a re-delivered job.
    pub token: uuid::Uuid,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Job id.
    pub id: JobId,
    /// Queue.
    pub queue: String,
    /// Payload.
    pub payload: Bytes,
    /// 1 on first delivery, +1 on each re-delivery.
    pub attempt: u32,
    /// The lease.
    pub lease: LeaseToken,
    /// When the lease runs out unless extended.
    pub lease_expires_at: Timestamp,
}

/// Jobs with at-least-once delivery.
///
/// # Contract
/// - `enqueue` is idempotent by job id: a second enqueue of an id ever seen returns
///   `Duplicate` and changes nothing.
/// - `claim` hands a ready job (`not_before` passed) to exactly one worker at a time,
///   oldest first, and leases it until `now + lease`.
/// - `heartbeat` extends a live lease; on an expired or superseded lease it returns
///   [`Error::LeaseLost`](crate::Error::LeaseLost).
/// - A job whose lease expires becomes claimable again with `attempt + 1`.
/// - `ack` completes the job for good; `nack` releases it to be claimable at
///   `retry_at` with `attempt + 1` on the next claim. Both fail with `LeaseLost`
///   if the job was claimed again since `lease` was issued (a late ack of an
///   expired but not yet re-claimed lease is accepted: jobs are idempotent).
#[async_trait]
pub trait WorkQueue: Send + Sync + Debug {
    /// Adds a job.
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued>;
    /// Claims the oldest ready job of `queue`.
    async fn claim(&self, queue: &str, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>>;
    /// Extends a lease; returns the new expiry.
    async fn heartbeat(&self, lease: &LeaseToken, extend: Duration) -> Result<Timestamp>;
    /// Completes a job.
    async fn ack(&self, lease: &LeaseToken) -> Result<()>;
    /// Gives a job back, claimable again at `retry_at`.
    async fn nack(&self, lease: &LeaseToken, retry_at: Timestamp) -> Result<()>;
}
