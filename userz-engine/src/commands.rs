//! The command bus: load, decide, append with the expected version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use userz_core::decider::{Aggregate, EventName, Rejection};
use userz_core::error::{Error, Result};
use userz_core::event::{ExpectedVersion, RecordedEvent, StreamId};
use userz_core::ids::{CommandId, CorrelationId};
use userz_core::ports::{EventStore, ReadModelCommit, ReadModelOp, ReadModelStore};

/// Identity of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandMeta {
    /// The command's id; repeating it returns the first outcome.
    pub command_id: CommandId,
    /// Correlation id carried to every resulting event.
    pub correlation_id: CorrelationId,
}

impl CommandMeta {
    /// A fresh command with a new correlation.
    pub fn new() -> Self {
        Self { command_id: CommandId::new(), correlation_id: CorrelationId::new() }
    }

    /// A command derived from a cause (an event or a job), so that handling the
    /// same cause twice issues the same command id.
    pub fn derived(cause: uuid::Uuid, purpose: &str, correlation_id: CorrelationId) -> Self {
        Self { command_id: CommandId::derived(cause, purpose), correlation_id }
    }
}

impl Default for CommandMeta {
    fn default() -> Self {
        Self::new()
    }
}

/// A command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The decider refused it.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// A port failed (after conflict retries were used up, for conflicts).
    #[error(transparent)]
    Failed(#[from] Error),
}

impl CommandError {
    /// The rejection, if this was one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            CommandError::Rejected(r) => Some(r),
            CommandError::Failed(_) => None,
        }
    }
}

/// What a command produced.
#[derive(Debug, Clone)]
pub struct Outcome<A: Aggregate>
where
    A::Event: Serialize + serde::de::DeserializeOwned + EventName,
    A::State: Serialize + serde::de::DeserializeOwned + Clone,
{
    /// The events appended (or, for a repeated command, appended the first time).
    pub events: Vec<A::Event>,
    /// State after the command.
    pub state: A::State,
    /// Stream version after the command.
    pub version: u64,
    /// Whether this was a repeat of an already handled command id.
    pub duplicate: bool,
}

#[derive(Serialize, Deserialize)]
struct Snapshot<S> {
    version: u64,
    state: S,
    commands: Vec<(uuid::Uuid, u64, u64)>,
}

struct Hydrated<S> {
    state: S,
    version: u64,
    /// Version of the snapshot hydration started from (0: none).
    snapshot_version: u64,
    commands: HashMap<uuid::Uuid, (u64, u64)>,
}

const SNAPSHOT_TABLE: &str = "snapshots";

/// Loads aggregates, decides and appends.
#[derive(Debug, Clone)]
pub struct CommandBus {
    events: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModelStore>,
    max_conflict_retries: u32,
    snapshot_every: u64,
}

impl CommandBus {
    /// A bus over `events`, keeping snapshots in `read_models`.
    pub fn new(events: Arc<dyn EventStore>, read_models: Arc<dyn ReadModelStore>) -> Self {
        Self { events, read_models, max_conflict_retries: 8, snapshot_every: 200 }
    }

    /// How often a conflicting append is retried (default 8).
    pub fn with_max_conflict_retries(mut self, n: u32) -> Self {
        self.max_conflict_retries = n;
        self
    }

    /// Snapshot every `n` events (0 disables; default 200).
    pub fn with_snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = n;
        self
    }

    /// The event store.
    pub fn events(&self) -> &Arc<dyn EventStore> {
        &self.events
    }

    /// The stream of aggregate `A` with id `id`.
    pub fn stream<A: Aggregate>(id: impl std::fmt::Display) -> StreamId
    where
        A::Event: Serialize + serde::de::DeserializeOwned + EventName,
        A::State: Serialize + serde::de::DeserializeOwned + Clone,
    {
        StreamId::for_entity(A::CATEGORY, id)
    }

    /// Current state and version of a stream.
    pub async fn load<A: Aggregate>(&self, stream: &StreamId) -> Result<(A::State, u64)>
    where
        A::Event: Serialize + serde::de::DeserializeOwned + EventName,
        A::State: Serialize + serde::de::DeserializeOwned + Clone,
    {
        let h = self.hydrate::<A>(stream).await?;
        Ok((h.state, h.version))
    }

    async fn hydrate<A: Aggregate>(&self, stream: &StreamId) -> Result<Hydrated<A::State>>
    where
        A::Event: Serialize + serde::de::DeserializeOwned + EventName,
        A::State: Serialize + serde::de::DeserializeOwned + Clone,
    {
        let mut h = Hydrated { state: A::initial_state(), version: 0, snapshot_version: 0, commands: HashMap::new() };
        if self.snapshot_every > 0 {
            if let Some(raw) = self.read_models.get(SNAPSHOT_TABLE, stream.as_str()).await? {
                // A snapshot that no longer decodes (state type changed) is ignored:
                // snapshots are a cache, the stream is the truth.
                if let Ok(s) = serde_json::from_slice::<Snapshot<A::State>>(&raw) {
                    h.state = s.state;
                    h.version = s.version;
                    h.snapshot_version = s.version;
                    h.commands = s.commands.into_iter().map(|(c, a, b)| (c, (a, b))).collect();
                }
            }
        }
        const PAGE: usize = 1024;
        loop {
            let page = self.events.read_stream(stream, h.version + 1, PAGE).await?;
            let n = page.len();
            for rec in &page {
                if rec.version != h.version + 1 {
                    return Err(Error::Corrupt(format!("{stream}: version {} after {}", rec.version, h.version)));
                }
                let ev = decode::<A>(rec)?;
                h.state = A::evolve(h.state, &ev);
                h.version = rec.version;
                if let Some(c) = rec.causation_id {
                    h.commands.entry(c).and_modify(|r| r.1 = rec.version).or_insert((rec.version, rec.version));
                }
            }
            if n < PAGE {
                break;
            }
        }
        Ok(h)
    }

    async fn maybe_snapshot<A: Aggregate>(&self, stream: &StreamId, h: &Hydrated<A::State>) -> Result<()>
    where
        A::Event: Serialize + serde::de::DeserializeOwned + EventName,
        A::State: Serialize + serde::de::DeserializeOwned + Clone,
    {
        // Snapshot once the events replayed past the last snapshot reach `snapshot_every`.
        if self.snapshot_every == 0 || h.version - h.snapshot_version < self.snapshot_every {
            return Ok(());
        }
        let snap = Snapshot {
            version: h.version,
            state: &h.state,
            commands: h.commands.iter().map(|(c, (a, b))| (*c, *a, *b)).collect(),
        };
        self.read_models
            .commit(ReadModelCommit {
                checkpoint: None,
                ops: vec![ReadModelOp::Put {
                    table: SNAPSHOT_TABLE.into(),
                    key: stream.as_str().to_string(),
                    value: serde_json::to_vec(&snap)?.into(),
                }],
            })
            .await
    }

    /// Handles a command on aggregate `A`'s `stream`.
    ///
    /// Loads the stream (from a snapshot when one exists), decides, and appends with
    /// the expected version; on a conflict it reloads and decides again, at most
    /// `max_conflict_retries` times. A command id already recorded on the stream
    /// returns the events it produced the first time and appends nothing.
    pub async fn execute<A: Aggregate>(
        &self,
        stream: &StreamId,
        meta: CommandMeta,
        command: &A::Command,
    ) -> Result<Outcome<A>, CommandError>
    where
        A::Event: Serialize + serde::de::DeserializeOwned + EventName,
        A::State: Serialize + serde::de::DeserializeOwned + Clone,
    {
        let cmd = meta.command_id.as_uuid();
        let mut attempt = 0u32;
        loop {
            let mut h = self.hydrate::<A>(stream).await?;
            if let Some((from, to)) = h.commands.get(&cmd).copied() {
                let recs =
                    self.events.read_stream(stream, from, usize::try_from(to - from + 1).unwrap_or(usize::MAX)).await?;
                let events =
                    recs.iter().filter(|r| r.causation_id == Some(cmd)).map(decode::<A>).collect::<Result<Vec<_>>>()?;
                return Ok(Outcome { events, state: h.state, version: h.version, duplicate: true });
            }
            let events = A::decide(command, &h.state)?;
            if events.is_empty() {
                return Ok(Outcome { events, state: h.state, version: h.version, duplicate: false });
            }
            let new =
                events.iter().map(|e| encode::<A>(e, Some(cmd), meta.correlation_id)).collect::<Result<Vec<_>>>()?;
            match self.events.append(stream, ExpectedVersion::from_version(h.version), new).await {
                Ok(res) => {
                    for e in &events {
                        h.state = A::evolve(h.state, e);
                    }
                    h.version = res.last_version;
                    h.commands.insert(cmd, (res.first_version, res.last_version));
                    if let Err(e) = self.maybe_snapshot::<A>(stream, &h).await {
                        tracing::warn!(%stream, error = %e, "snapshot not written");
                    }
                    return Ok(Outcome { events, state: h.state, version: h.version, duplicate: false });
                }
                Err(Error::Conflict { .. }) if attempt < self.max_conflict_retries => {
                    attempt += 1;
                    let backoff = Duration::from_millis(u64::from(attempt.min(6)) * (1 + rand_jitter(cmd, attempt)));
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads and decodes a whole stream.
    pub async fn read<A: Aggregate>(&self, stream: &StreamId) -> Result<Vec<(RecordedEvent, A::Event)>>
    where
        A::Event: Serialize + serde::de::DeserializeOwned + EventName,
        A::State: Serialize + serde::de::DeserializeOwned + Clone,
    {
        use userz_core::ports::EventStoreExt;
        let recs = self.events.read_stream_to_end(stream, 1).await?;
        recs.into_iter()
            .map(|r| {
                let e = decode::<A>(&r)?;
                Ok((r, e))
            })
            .collect()
    }
}

/// Cheap deterministic jitter (0..4 ms) so conflicting writers spread out.
fn rand_jitter(cmd: uuid::Uuid, attempt: u32) -> u64 {
    let b = cmd.as_bytes();
    u64::from(b[(attempt as usize) % 16] % 4)
}
