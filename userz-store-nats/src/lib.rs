//! # userz-store-nats
//!
//! NATS JetStream adapters for the Userz engine: the event log
//! ([`EventStore`](userz_core::ports::EventStore)), the job queue
//! ([`WorkQueue`](userz_core::ports::WorkQueue)), the projections
//! ([`ReadModelStore`](userz_core::ports::ReadModelStore)) and the ephemeral
//! [`Cache`](userz_core::ports::Cache), for deployments where many workers share
//! one NATS cluster. Needs nats-server 2.12+ (atomic batch publish, message TTLs).
//!
//! - **Events**: one JetStream stream; each event is one message on
//!   `<prefix>.ev.<encoded stream id>`, and its global position is the JetStream
//!   sequence. An append is one *atomic batch* (`Nats-Batch-*` headers) guarded by
//!   `Nats-Expected-Last-Subject-Sequence`, so a multi-event append lands whole or
//!   not at all, with consecutive positions. Every event id also writes a marker
//!   on `<prefix>.evid.<id>` in the same batch, guarded by "no earlier message on
//!   this subject", so an event id is refused forever, not only inside
//!   JetStream's duplicate window.
//! - **Jobs**: a work-queue-retention stream and one durable pull consumer per
//!   queue; leases are ack-wait plus the adapter's clock, heartbeats `+WPI`,
//!   `nack` a delayed `-NAK`. A KV record per job id keeps "seen" ids forever.
//! - **Read models**: a KV-layout bucket whose stream allows atomic batches; a
//!   commit (checkpoint move + rows) is one batch guarded by the checkpoint's
//!   revision, so rows and checkpoint never disagree.
//! - **Cache**: a KV bucket with per-message TTL (`Nats-TTL`), with the expiry
//!   also stored beside the value so reads are exact to the millisecond.
//!
//! Limits: at most [`MAX_EVENTS_PER_APPEND`] events per append and
//! [`MAX_OPS_PER_COMMIT`] rows per read-model commit (the server's 1,000-message
//! batch cap); `scan` reads the whole table (O(table size)).
//!
//! ```no_run
//! # async fn demo() -> userz_core::Result<()> {
//! use userz_store_nats::NatsStoreBuilder;
//! let store = NatsStoreBuilder::new("nats://127.0.0.1:4222").with_prefix("userz").build().await?;
//! # let _ = store; Ok(()) }
//! ```

mod cache;
mod error;
mod events;
mod queue;
mod read_model;
mod subject;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use userz_core::{Clock, Error, Result, SystemClock};

pub use error::NatsError;
pub use events::MAX_EVENTS_PER_APPEND;
pub use read_model::MAX_OPS_PER_COMMIT;

/// Builds a [`NatsStore`].
#[derive(Debug, Clone)]
pub struct NatsStoreBuilder {
    url: String,
    prefix: String,
    clock: Arc<dyn Clock>,
    replicas: usize,
    memory_storage: bool,
    max_deliver: i64,
    request_timeout: Duration,
    duplicate_window: Duration,
}

impl NatsStoreBuilder {
    /// A store on the server at `url` (`nats://host:port`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "userz".into(),
            clock: Arc::new(SystemClock),
            replicas: 1,
            memory_storage: false,
            max_deliver: -1,
            request_timeout: Duration::from_secs(10),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// Reads the server address from `USERZ_NATS_URL` (default `nats://127.0.0.1:4222`).
    pub fn from_env() -> Self {
        Self::new(std::env::var("USERZ_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()))
    }

    /// Names every stream, subject and bucket this store uses (`[A-Za-z0-9_-]`,
    /// default `userz`); stores with different prefixes share nothing.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The clock for lease and cache expiry as reported to callers (default: system
    /// time). The server enforces leases and TTLs on its own clock; see the README.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Stream replicas (default 1; use 3 on a cluster).
    pub fn with_replicas(mut self, n: usize) -> Self {
        self.replicas = n.max(1);
        self
    }

    /// Keep streams in memory instead of files (tests and benches only: not durable).
    pub fn with_memory_storage(mut self, yes: bool) -> Self {
        self.memory_storage = yes;
        self
    }

    /// Deliveries after which JetStream gives up on a job (default: unlimited; the
    /// engine counts attempts itself).
    pub fn with_max_deliver(mut self, n: i64) -> Self {
        self.max_deliver = n;
        self
    }

    /// How long one JetStream API request may take (default 10 s).
    pub fn with_request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// JetStream's `Nats-Msg-Id` duplicate window on the event and job streams
    /// (default 2 min). It only absorbs retried publishes: event-id and job-id
    /// uniqueness do not depend on it (id markers and the job-id bucket do that).
    pub fn with_duplicate_window(mut self, d: Duration) -> Self {
        self.duplicate_window = d;
        self
    }

    /// Connects and creates (or opens) the streams and buckets.
    pub async fn build(self) -> Result<NatsStore> {
        let ok = !self.prefix.is_empty()
            && self.prefix.len() <= 32
            && self.prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(Error::Invalid(format!("NATS prefix {:?}: 1-32 characters of [A-Za-z0-9_-]", self.prefix)));
        }
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(self.request_timeout))
            .connect(&self.url)
            .await
            .map_err(|e| NatsError::Connect(e.to_string()))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.request_timeout);
        let names = subject::Names::new(&self.prefix);
        let storage = if self.memory_storage {
            jetstream::stream::StorageType::Memory
        } else {
            jetstream::stream::StorageType::File
        };
        let dup = u64::try_from(self.duplicate_window.as_nanos()).unwrap_or(u64::MAX);
        let events = events::open(&client, &js, &names, storage, self.replicas, dup).await?;
        let queue = queue::open(&client, &js, &names, storage, self.replicas, dup).await?;
        let cache = cache::open(&js, &names, storage, self.replicas).await?;
        let read_models = read_model::open(&client, &js, &names, storage, self.replicas).await?;
        let store = NatsStore {
            inner: Arc::new(Inner {
                client,
                js,
                names,
                clock: self.clock,
                events,
                queue,
                cache,
                read_models,
                max_deliver: self.max_deliver,
                durable: !self.memory_storage,
            }),
        };
        queue::spawn_keepalive(Arc::downgrade(&store.inner));
        Ok(store)
    }
}

/// JetStream-backed event store, work queue, read models and cache. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NatsStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    names: subject::Names,
    clock: Arc<dyn Clock>,
    events: events::EventsState,
    queue: queue::QueueState,
    cache: cache::CacheState,
    read_models: read_model::ReadModelState,
    max_deliver: i64,
    durable: bool,
}

impl NatsStore {
    /// The underlying client (for health checks and metrics).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context (raw access beside the adapter, e.g. in benches).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The JetStream stream holding the event log.
    pub fn events_stream_name(&self) -> &str {
        &self.inner.names.events_stream
    }

    /// The subject an event of `stream` is published on.
    pub fn event_subject(&self, stream: &userz_core::StreamId) -> String {
        self.inner.names.event_subject(stream)
    }
}
