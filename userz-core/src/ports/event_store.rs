//! The [`EventStore`] port.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Version of the first appended event.
    pub first_version: u64,
    /// Version of the last appended event: the stream's new version.
    pub last_version: u64,
    /// Global position of the first appended event.
    pub first_position: u64,
    /// Global position of the last appended event.
    pub last_position: u64,
}

/// What an adapter can and cannot do; the conformance suite reads these flags
/// instead of skipping checks silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// Survives a process restart.
    pub durable: bool,
    /// Several processes may append concurrently.
    pub multi_process: bool,
    /// A second append of an already stored event id is refused. Backends that
    /// deduplicate only within a window (KurrentDB, JetStream) say `false`, and
    /// the engine never relies on it: its idempotency comes from command ids.
    pub unique_event_ids: bool,
}

impl StoreCapabilities {
    /// Flags for an adapter that is durable and shared between processes.
    pub const fn durable_shared() -> Self {
        Self { durable: true, multi_process: true, unique_event_ids: true }
    }

    /// The same flags with `multi_process` off (one writing process).
    pub const fn single_process(self) -> Self {
        Self { multi_process: false, ..self }
    }

    /// The same flags with `unique_event_ids` off.
    pub const fn without_unique_event_ids(self) -> Self {
        Self { unique_event_ids: false, ..self }
    }

    /// Flags for an in-process, non-durable adapter.
    pub const fn in_memory() -> Self {
        Self { durable: false, multi_process: false, unique_event_ids: true }
    }
}

/// Live stream of events for a subscriber.
pub type EventStream = BoxStream<'static, Result<RecordedEvent>>;

/// The append-only log of every event.
///
/// # Contract
/// - `append` writes all of `events` to `stream` atomically (all or none) if and
///   only if the stream's current version matches `expected`; otherwise it returns
///   [`Error::Conflict`](crate::Error::Conflict) with the actual version and writes
///   nothing. An empty `events` is refused with `Invalid`.
/// - Versions within a stream start at 1 and are gap-free; `(stream, version)` is
///   unique. Event ids are unique across the store; an adapter whose backend
///   cannot refuse a repeated id declares `unique_event_ids = false`.
/// - Every event gets a global `position`, strictly increasing in append order. A
///   reader of the global log (`read_all`, `subscribe`) never observes position `p`
///   and later a position lower than `p`: positions become visible in order, even
///   when appends commit concurrently.
/// - `read_stream(s, from, limit)` returns up to `limit` events of `s` with
///   `version >= from`, in version order; an unknown stream reads as empty.
/// - `read_all(after, limit)` returns up to `limit` events with
///   `position > after`, in position order.
/// - `subscribe(after)` yields every event with `position > after`, in order, first
///   the history and then live events, without gaps or repeats, until dropped.
/// - `recorded_at`, `position` and `version` are assigned by the store; all other
///   fields round-trip byte for byte.
#[async_trait]
pub trait EventStore: Send + Sync + Debug {
    /// Appends `events` to `stream` if it is at `expected`.
    async fn append(&self, stream: &StreamId, expected: ExpectedVersion, events: Vec<NewEvent>)
        -> Result<AppendResult>;

    /// Reads a stream from `from_version` (inclusive, 1-based).
    async fn read_stream(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// Reads the global log after `after_position`.
    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// Subscribes to the global log after `after_position` (a checkpoint).
    async fn subscribe(&self, after_position: u64) -> Result<EventStream>;

    /// The stream's current version (0 if it does not exist).
    async fn stream_version(&self, stream: &StreamId) -> Result<u64>;

    /// What this adapter supports.
    fn capabilities(&self) -> StoreCapabilities;
}

/// Convenience methods for every [`EventStore`].
#[async_trait]
pub trait EventStoreExt: EventStore {
    /// Reads a whole stream, page by page.
    async fn read_stream_to_end(&self, stream: &StreamId, from_version: u64) -> Result<Vec<RecordedEvent>> {
        const PAGE: usize = 1024;
        let mut out = Vec::new();
        let mut from = from_version.max(1);
        loop {
            let page = self.read_stream(stream, from, PAGE).await?;
            let n = page.len();
            if let Some(last) = page.last() {
                from = last.version + 1;
            }
            out.extend(page);
            if n < PAGE {
                return Ok(out);
            }
        }
    }
}

impl<T: EventStore + ?Sized> EventStoreExt for T {}

/// Builds a catch-up-then-live subscription from `read_all` and a wake-up signal.
///
/// Adapters whose backend can notify (a watch channel, `LISTEN/NOTIFY`) pass a
/// `wait` future that resolves when new events may exist; polling adapters pass a
/// sleep. Order and gap-freedom come from `read_all`'s contract.
pub fn catch_up_subscription<S, W>(store: Arc<S>, after_position: u64, wait: W) -> EventStream
where
    S: EventStore + ?Sized + 'static,
    W: Fn(u64) -> BoxFuture<'static, ()> + Send + Sync + 'static,
{
    const PAGE: usize = 512;
    let state = (store, after_position, std::collections::VecDeque::<RecordedEvent>::new(), wait);
    Box::pin(futures::stream::unfold(state, |(store, mut after, mut buf, wait)| async move {
        loop {
            if let Some(ev) = buf.pop_front() {
                after = ev.position;
                return Some((Ok(ev), (store, after, buf, wait)));
            }
            match store.read_all(after, PAGE).await {
                Ok(page) if page.is_empty() => wait(after).await,
                Ok(page) => buf.extend(page),
                Err(e) => return Some((Err(e), (store, after, buf, wait))),
            }
        }
    }))
}
