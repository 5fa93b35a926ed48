//! The lifecycle sweeper: deletes blobs older than the retention period unless
//! they are marked for retention.
//!
//! **Age is measured from the `BlobStored` event** (`clock.now() - at`), not from
//! the store's `last_modified`: the event is the project's record of the write,
//! its time comes from the engine's [`Clock`] (so tests inject a manual clock on
//! every backend), and it does not change when a store copies or restores
//! objects. `last_modified` is used only for an object that no event knows
//! (written by something else); such an object that is old enough gets a
//! `BlobStored` event dated from `last_modified`, then goes the normal way.
//!
//! Per object: decide from the blob's stream, record `BlobDeleted` through the
//! command bus, *then* delete the object. If the sweep is interrupted between the
//! two, the next sweep finds a `Deleted` stream whose object still exists and
//! deletes the object (a repeated `Delete` command is a no-op), so an interrupted
//! sweep resumes without duplicate events. A blob retained after the sweeper read
//! its state is protected by the decider: the `Delete` is refused
//! (`blob_retained`) and the object stays.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use userz_core::domain::blob::{BlobCommand, BlobDecider, BlobId, BlobState};
use userz_core::ids::{CommandId, CorrelationId};
use userz_core::ports::{BlobKey, BlobMeta, BlobStore};
use userz_core::{Clock, Timestamp};

use crate::{CommandBus, CommandError, CommandMeta};

/// The retention period of DESIGN G18: 30 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects listed.
    pub scanned: u64,
    /// Objects deleted (including ones whose deletion was already recorded).
    pub deleted: u64,
    /// Old enough, but kept because retained.
    pub retained: u64,
    /// Kept because younger than the retention period.
    pub young: u64,
    /// Outside the `orgs/<org>/…` layout and unknown to any event: left alone.
    pub foreign: u64,
}

/// Deletes aged-out blobs (see the module docs).
#[derive(Debug, Clone)]
pub struct Sweeper {
    store: Arc<dyn BlobStore>,
    bus: CommandBus,
    clock: Arc<dyn Clock>,
    max_age: Duration,
    prefix: String,
}

impl Sweeper {
    /// A sweeper over all of `store` with the 30-day retention period.
    pub fn new(store: Arc<dyn BlobStore>, bus: CommandBus, clock: Arc<dyn Clock>) -> Self {
        Self { store, bus, clock, max_age: DEFAULT_MAX_AGE, prefix: String::new() }
    }

    /// The retention period (default 30 days).
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Sweeps only under `prefix` (e.g. one org's
    /// [`org_prefix`](userz_core::ports::blob::org_prefix)).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// One pass over the store.
    ///
    /// # Errors
    /// The store's or the command bus's failure; the next sweep resumes.
    pub async fn sweep(&self) -> Result<SweepReport, CommandError> {
        let now = self.clock.now();
        let mut report = SweepReport::default();
        let mut objects = self.store.list(&self.prefix);
        while let Some(meta) = objects.next().await {
            let meta = meta?;
            report.scanned += 1;
            self.sweep_one(&meta, now, &mut report).await?;
        }
        Ok(report)
    }

    fn is_old(&self, stored_at: Timestamp, now: Timestamp) -> bool {
        now.saturating_since(stored_at) > self.max_age
    }

    async fn sweep_one(&self, meta: &BlobMeta, now: Timestamp, report: &mut SweepReport) -> Result<(), CommandError> {
        let id = BlobId::for_key(&meta.key);
        let stream = CommandBus::stream::<BlobDecider>(id);
        // Only keys in the layout can be deleted through the port; anything
        // else was written by something else and is left alone.
        let Some(key) = BlobKey::parse_any(&meta.key) else {
            report.foreign += 1;
            return Ok(());
        };
        let (state, _) = self.bus.load::<BlobDecider>(&stream).await.map_err(CommandError::Failed)?;
        let stored_at = match &state {
            BlobState::Deleted { .. } => return self.delete_object(&key, report).await,
            BlobState::Stored(b) if b.retained_by.is_some() => {
                if self.is_old(b.stored_at, now) {
                    report.retained += 1;
                } else {
                    report.young += 1;
                }
                return Ok(());
            }
            BlobState::Stored(b) => b.stored_at,
            BlobState::None => {
                let written = meta.last_modified;
                if !self.is_old(written, now) {
                    report.young += 1;
                    return Ok(());
                }
                let cmd = BlobCommand::Record { org: key.org(), key: key.to_string(), size: meta.size, at: written };
                self.bus.execute::<BlobDecider>(&stream, meta_for(id, "adopt", written), &cmd).await?;
                written
            }
        };
        if !self.is_old(stored_at, now) {
            report.young += 1;
            return Ok(());
        }
        // The command id depends on the write it deletes, so a retried sweep of the
        // same write is recognised as a repeat.
        match self
            .bus
            .execute::<BlobDecider>(&stream, meta_for(id, "sweep", stored_at), &BlobCommand::Delete { at: now })
            .await
        {
            Ok(_) => self.delete_object(&key, report).await,
            Err(e) if e.rejection().is_some_and(|r| r.rule() == "blob_retained") => {
                report.retained += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_object(&self, key: &BlobKey, report: &mut SweepReport) -> Result<(), CommandError> {
        self.store.delete(key).await?;
        report.deleted += 1;
        tracing::debug!(%key, "blob deleted by the retention sweep");
        Ok(())
    }
}

fn meta_for(id: BlobId, purpose: &str, stored_at: Timestamp) -> CommandMeta {
    CommandMeta {
        command_id: CommandId::derived(id.0, &format!("{purpose}:{}", stored_at.as_millis())),
        correlation_id: CorrelationId::new(),
    }
}
