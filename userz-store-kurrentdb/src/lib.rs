//! # userz-store-kurrentdb
//!
//! The [`EventStore`] port on KurrentDB (formerly EventStoreDB), through the
//! official `kurrentdb` gRPC client.
//!
//! | contract | mapping |
//! |---|---|
//! | stream `s`, version `v` (1-based) | KurrentDB stream `<prefix>s`, revision `v - 1` |
//! | expected version | `StreamState::NoStream` / `StreamRevision(v - 1)` / `Any` |
//! | conflict | `WrongExpectedVersion { current }` → `Conflict { actual: current + 1 }` |
//! | global position | the event's *prepare* position in `$all` |
//! | `subscribe(after)` | `$all` catch-up subscription from that position, filtered to the prefix |
//! | causation, correlation, schema version | the event's custom metadata (JSON) |
//!
//! Positions: KurrentDB orders `$all` by (commit, prepare) position. Appends are
//! written contiguously, so prepare positions increase along `$all` and are used
//! as the single `u64` position; a subscription starts at `(after, after)` and
//! drops anything at or before `after`.
//!
//! Event ids: KurrentDB deduplicates repeated event ids only within recent writes,
//! so [`StoreCapabilities::unique_event_ids`] is `false`; the engine's idempotency
//! comes from command ids, not from event ids.
//!
//! No KurrentDB server package exists on the registries this project builds from,
//! so the conformance suite runs only when `USERZ_KURRENTDB_URL` is set; see the
//! crate README for the exact steps.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use kurrentdb::{
    Client, ClientSettings, CurrentRevision, EventData, Position, ReadAllOptions, ReadStreamOptions, StreamPosition,
    StreamState, SubscribeToAllOptions, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use userz_core::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use userz_core::ids::{CorrelationId, EventId};
use userz_core::ports::{AppendResult, EventStore, EventStream, StoreCapabilities};
use userz_core::{Error, Result, Timestamp};

/// Builds a [`KurrentStore`].
#[derive(Debug, Clone)]
pub struct KurrentStoreBuilder {
    url: String,
    prefix: String,
}

impl KurrentStoreBuilder {
    /// A store on the server at `url` (`kurrentdb://admin:changeit@127.0.0.1:2113?tls=false`).
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), prefix: "userz-".into() }
    }

    /// Reads the URL from `USERZ_KURRENTDB_URL`.
    pub fn from_env() -> Result<Self> {
        std::env::var("USERZ_KURRENTDB_URL")
            .map(Self::new)
            .map_err(|_| Error::Invalid("USERZ_KURRENTDB_URL is not set".into()))
    }

    /// Prefix of every KurrentDB stream this store owns (default `userz-`); the
    /// global log is filtered to it. Must not start with `$`.
    pub fn with_stream_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Connects.
    pub async fn build(self) -> Result<KurrentStore> {
        if self.prefix.starts_with('$') || self.prefix.is_empty() {
            return Err(Error::Invalid("stream prefix: non-empty and not starting with '$'".into()));
        }
        let settings: ClientSettings =
            self.url.parse().map_err(|e| Error::Invalid(format!("USERZ_KURRENTDB_URL: {e}")))?;
        let client = Client::new(settings).map_err(|e| Error::Unavailable(format!("kurrentdb: {e}")))?;
        Ok(KurrentStore { inner: Arc::new(Inner { client, prefix: self.prefix }) })
    }
}

struct Inner {
    client: Client,
    prefix: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KurrentStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// The KurrentDB adapter. Cloning shares the client.
#[derive(Debug, Clone)]
pub struct KurrentStore {
    inner: Arc<Inner>,
}

/// What we keep in each event's custom metadata.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    schema_version: u32,
    causation_id: Option<uuid::Uuid>,
    correlation_id: uuid::Uuid,
}

fn unavailable(e: kurrentdb::Error) -> Error {
    Error::Unavailable(format!("kurrentdb: {e}"))
}

impl KurrentStore {
    fn name(&self, stream: &StreamId) -> String {
        format!("{}{}", self.inner.prefix, stream.as_str())
    }

    fn convert(&self, e: &kurrentdb::RecordedEvent) -> Result<Option<RecordedEvent>> {
        let Some(name) = e.stream_id().strip_prefix(self.inner.prefix.as_str()) else { return Ok(None) };
        let meta: Meta = serde_json::from_slice(&e.custom_metadata)
            .map_err(|err| Error::Corrupt(format!("kurrentdb metadata of {}: {err}", e.id)))?;
        Ok(Some(RecordedEvent {
            id: EventId(e.id),
            stream: StreamId::new(name).map_err(|err| Error::Corrupt(err.to_string()))?,
            version: e.revision + 1,
            position: e.position.prepare,
            recorded_at: Timestamp::from_millis(e.created.timestamp_millis()),
            event_type: e.event_type.clone(),
            schema_version: meta.schema_version,
            payload: e.data.clone(),
            causation_id: meta.causation_id,
            correlation_id: CorrelationId(meta.correlation_id),
        }))
    }

    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(&self.inner.prefix)
    }
}

fn state(expected: ExpectedVersion) -> StreamState {
    match expected {
        ExpectedVersion::Any => StreamState::Any,
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => StreamState::NoStream,
        ExpectedVersion::Exact(v) => StreamState::StreamRevision(v - 1),
    }
}

#[async_trait]
impl EventStore for KurrentStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        if events.is_empty() {
            return Err(Error::Invalid("append of zero events".into()));
        }
        let n = events.len() as u64;
        let data = events
            .into_iter()
            .map(|e| {
                let meta = Meta {
                    schema_version: e.schema_version,
                    causation_id: e.causation_id,
                    correlation_id: e.correlation_id.as_uuid(),
                };
                let meta = serde_json::to_vec(&meta)?;
                Ok(EventData::binary(e.event_type, e.payload).id(e.id.as_uuid()).metadata(Bytes::from(meta)))
            })
            .collect::<Result<Vec<_>>>()?;
        let options = kurrentdb::AppendToStreamOptions::default().stream_state(state(expected));
        match self.inner.client.append_to_stream(self.name(stream), &options, data).await {
            Ok(w) => {
                let last_version = w.next_expected_version + 1;
                // The write reports the position of its last event; earlier events
                // of the batch sit before it. Read them back for exact positions.
                let first_version = last_version + 1 - n;
                let written = self.read_stream(stream, first_version, n as usize).await?;
                let first_position = written.first().map_or(w.position.prepare, |r| r.position);
                let last_position = written.last().map_or(w.position.prepare, |r| r.position);
                Ok(AppendResult { first_version, last_version, first_position, last_position })
            }
            Err(kurrentdb::Error::WrongExpectedVersion { current, .. }) => {
                let actual = match current {
                    CurrentRevision::Current(r) => r + 1,
                    CurrentRevision::NoStream => 0,
                };
                Err(Error::Conflict { stream: stream.clone(), expected, actual })
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from_version.max(1) - 1))
            .max_count(limit);
        let mut read = match self.inner.client.read_stream(self.name(stream), &options).await {
            Ok(r) => r,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(unavailable(e)),
        };
        let mut out = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(ev)) => {
                    if let Some(r) = self.convert(ev.get_original_event())? {
                        out.push(r);
                    }
                }
                Ok(None) => return Ok(out),
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(out),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let start = if after_position == 0 {
            StreamPosition::Start
        } else {
            StreamPosition::Position(Position { commit: after_position, prepare: after_position })
        };
        let options = ReadAllOptions::default().forwards().position(start).filter(self.filter()).max_count(limit + 1);
        let mut read = self.inner.client.read_all(&options).await.map_err(unavailable)?;
        let mut out = Vec::new();
        while out.len() < limit {
            match read.next().await.map_err(unavailable)? {
                Some(ev) => {
                    if let Some(r) = self.convert(ev.get_original_event())? {
                        if r.position > after_position {
                            out.push(r);
                        }
                    }
                }
                None => break,
            }
        }
        Ok(out)
    }

    async fn subscribe(&self, after_position: u64) -> Result<EventStream> {
        let start = if after_position == 0 {
            StreamPosition::Start
        } else {
            StreamPosition::Position(Position { commit: after_position, prepare: after_position })
        };
        let options = SubscribeToAllOptions::default().position(start).filter(self.filter());
        let sub = self.inner.client.subscribe_to_all(&options).await;
        let this = self.clone();
        Ok(Box::pin(futures::stream::unfold((sub, this, after_position), |(mut sub, this, mut last)| async move {
            loop {
                match sub.next().await {
                    Ok(ev) => match this.convert(ev.get_original_event()) {
                        Ok(Some(r)) if r.position > last => {
                            last = r.position;
                            return Some((Ok(r), (sub, this, last)));
                        }
                        Ok(_) => continue,
                        Err(e) => return Some((Err(e), (sub, this, last))),
                    },
                    Err(e) => return Some((Err(unavailable(e)), (sub, this, last))),
                }
            }
        })))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        let options = ReadStreamOptions::default().backwards().position(StreamPosition::End).max_count(1);
        let mut read = match self.inner.client.read_stream(self.name(stream), &options).await {
            Ok(r) => r,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(0),
            Err(e) => return Err(unavailable(e)),
        };
        match read.next().await {
            Ok(Some(ev)) => Ok(ev.get_original_event().revision + 1),
            Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => Ok(0),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::durable_shared().without_unique_event_ids()
    }
}
