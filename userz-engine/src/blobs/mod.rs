//! Blobs with their events: the engine's side of the [`BlobStore`] port.
//!
//! - [`Blobs`] writes an object and records a `BlobStored` event for it;
//!   retention marks are `BlobRetained` / `BlobReleased` events of the same
//!   stream ([`userz_core::domain::blob`]).
//! - [`Sweeper`] deletes what aged out (30 days, DESIGN G18), recording
//!   `BlobDeleted` first.
//! - The run executor stores the transcript each sandbox returns through
//!   [`Blobs::put`] under [`BlobKey::run_transcript`] (`EngineDeps::blobs`).
//!
//! The port is the raw storage; everything here works on any adapter of it.

mod sweeper;

use std::sync::Arc;

use bytes::Bytes;
use userz_core::domain::blob::{BlobCommand, BlobDecider, BlobId};
use userz_core::domain::common::Actor;
use userz_core::ids::{CommandId, CorrelationId};
use userz_core::ports::{BlobKey, BlobStore};
use userz_core::{Clock, Error};

use crate::{CommandBus, CommandError, CommandMeta};

pub use sweeper::{SweepReport, Sweeper, DEFAULT_MAX_AGE};

/// Writes blobs and records their events.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn BlobStore>,
    bus: CommandBus,
    clock: Arc<dyn Clock>,
}

impl Blobs {
    /// Blobs in `store`, events through `bus`, times from `clock`.
    pub fn new(store: Arc<dyn BlobStore>, bus: CommandBus, clock: Arc<dyn Clock>) -> Self {
        Self { store, bus, clock }
    }

    /// The raw store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// Stores `bytes` at `key`.
    ///
    /// The `BlobStored` event is recorded *before* the object is written: a crash
    /// in between leaves an event without an object, which the sweeper deletes in
    /// due course, rather than an object no event knows about.
    ///
    /// # Errors
    /// A rejection of the blob decider, or the store's failure.
    pub async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), CommandError> {
        let at = self.clock.now();
        let id = BlobId::for_key(key.as_str());
        let cmd = BlobCommand::Record {
            org: key.org(),
            key: key.to_string(),
            size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            at,
        };
        let meta = CommandMeta {
            command_id: CommandId::derived(id.0, &format!("record:{}", at.as_millis())),
            correlation_id: CorrelationId::new(),
        };
        self.bus.execute::<BlobDecider>(&CommandBus::stream::<BlobDecider>(id), meta, &cmd).await?;
        self.store.put(key, bytes).await?;
        Ok(())
    }

    /// Reads the object at `key`.
    ///
    /// # Errors
    /// `Error::NotFound` when there is none, or the store's failure.
    pub async fn get(&self, key: &BlobKey) -> Result<Bytes, CommandError> {
        match self.store.get(key, None).await? {
            Some(b) => Ok(b),
            None => Err(Error::NotFound(format!("blob {key}")).into()),
        }
    }

    /// Marks the blob at `key` for retention (a `BlobRetained` event).
    ///
    /// # Errors
    /// A rejection of the blob decider, or the store's failure.
    pub async fn retain(&self, key: &BlobKey, by: Actor) -> Result<(), CommandError> {
        self.command(key, BlobCommand::Retain { by }).await
    }

    /// Lifts the retention mark (a `BlobReleased` event).
    ///
    /// # Errors
    /// A rejection of the blob decider, or the store's failure.
    pub async fn release(&self, key: &BlobKey, by: Actor) -> Result<(), CommandError> {
        self.command(key, BlobCommand::Release { by }).await
    }

    async fn command(&self, key: &BlobKey, cmd: BlobCommand) -> Result<(), CommandError> {
        let stream = CommandBus::stream::<BlobDecider>(BlobId::for_key(key.as_str()));
        self.bus.execute::<BlobDecider>(&stream, CommandMeta::new(), &cmd).await?;
        Ok(())
    }
}
