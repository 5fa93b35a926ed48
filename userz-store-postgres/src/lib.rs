//! # userz-store-postgres
//!
//! PostgreSQL adapters for the Userz engine: [`EventStore`], [`ReadModelStore`]
//! and [`WorkQueue`] on one database, for deployments where several workers
//! share the engine.
//!
//! - **Gap-free global positions.** Appenders take the single `userz_head` row
//!   lock until they commit and draw positions from it, so positions are assigned
//!   in commit order without holes. A subscriber that has seen position `p` can
//!   trust that no event below `p` will appear later (the classic in-flight
//!   sequence gap of `BIGSERIAL` positions cannot happen).
//! - **Wake-ups by `LISTEN/NOTIFY`**: each append notifies in its transaction;
//!   subscribers also poll as a fallback.
//! - **Work queue with `FOR UPDATE SKIP LOCKED`** and leases on the adapter's clock.
//! - **Read models and checkpoints** change in one transaction.
//! - **Migrations** run on `build()` under an advisory lock.
//!
//! ```no_run
//! # async fn demo() -> userz_core::Result<()> {
//! use userz_store_postgres::PgStoreBuilder;
//! let store = PgStoreBuilder::new("postgres://postgres@127.0.0.1:5432/postgres").build().await?;
//! # let _ = store; Ok(()) }
//! ```

mod schema;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, Row};
use userz_core::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use userz_core::ids::{CorrelationId, EventId, JobId};
use userz_core::ports::{
    catch_up_subscription, AppendResult, ClaimedJob, Enqueued, EventStore, EventStream, LeaseToken, NewJob,
    ReadModelCommit, ReadModelOp, ReadModelStore, StoreCapabilities, WorkQueue,
};
use userz_core::{Clock, Error, Result, SystemClock, Timestamp};

/// Builds a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgStoreBuilder {
    url: String,
    schema: Option<String>,
    clock: Arc<dyn Clock>,
    pool_size: usize,
    poll_interval: Duration,
}

impl PgStoreBuilder {
    /// A store on the database at `url` (`postgres://user@host:port/db`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            clock: Arc::new(SystemClock),
            pool_size: 16,
            poll_interval: Duration::from_millis(500),
        }
    }

    /// Reads the URL from `USERZ_PG_URL`.
    pub fn from_env() -> Result<Self> {
        std::env::var("USERZ_PG_URL").map(Self::new).map_err(|_| Error::Invalid("USERZ_PG_URL is not set".into()))
    }

    /// Keeps every table in this PostgreSQL schema (created if missing).
    /// Names are `[a-z0-9_]`, 1–50 characters.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The clock for `recorded_at` and leases.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Connection pool size (default 16).
    pub fn with_pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Fallback poll interval of subscribers (default 500 ms).
    pub fn with_poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Connects, runs migrations and starts the notification listener.
    pub async fn build(self) -> Result<PgStore> {
        let mut config =
            tokio_postgres::Config::from_str(&self.url).map_err(|e| Error::Invalid(format!("USERZ_PG_URL: {e}")))?;
        let schema = self.schema.clone().unwrap_or_else(|| "public".into());
        let valid = !schema.is_empty()
            && schema.len() <= 50
            && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(Error::Invalid(format!("schema {schema:?}: use 1-50 characters of [a-z0-9_]")));
        }
        {
            let (client, conn) = config.connect(NoTls).await.map_err(pg)?;
            let driver = tokio::spawn(conn);
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await.map_err(pg)?;
            drop(client);
            let _ = driver.await;
        }
        config.options(format!("-c search_path={schema}"));
        let mgr =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool =
            Pool::builder(mgr).max_size(self.pool_size).build().map_err(|e| Error::Invalid(format!("pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(pool_err)?;
            schema::migrate(&mut client).await.map_err(pg)?;
        }
        let channel = format!("userz_events_{schema}");
        let (head, _) = watch::channel(0u64);
        let listener = tokio::spawn(listen(config, channel.clone(), head.clone()));
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                head,
                listener,
                channel,
                clock: self.clock,
                poll_interval: self.poll_interval,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    head: watch::Sender<u64>,
    listener: JoinHandle<()>,
    channel: String,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Forwards `NOTIFY` payloads (head positions) to `head`, reconnecting on loss.
async fn listen(config: tokio_postgres::Config, channel: String, head: watch::Sender<u64>) {
    loop {
        if let Ok((client, mut conn)) = config.connect(NoTls).await {
            let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
            let driver = tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                while let Some(Ok(msg)) = messages.next().await {
                    if let AsyncMessage::Notification(n) = msg {
                        if let Ok(p) = n.payload().parse::<u64>() {
                            let _ = tx.send(p);
                        }
                    }
                }
            });
            if client.batch_execute(&format!("LISTEN \"{channel}\"")).await.is_ok() {
                while let Some(p) = rx.recv().await {
                    head.send_modify(|h| *h = (*h).max(p));
                }
            }
            driver.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The PostgreSQL adapter. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

fn pg(e: tokio_postgres::Error) -> Error {
    if e.is_closed() || e.code().is_none() {
        return Error::Unavailable(format!("postgres: {e}"));
    }
    match e.code() {
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            Error::Unavailable(format!("postgres: {e}"))
        }
        _ => Error::Corrupt(format!("postgres: {e}")),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> Error {
    Error::Unavailable(format!("postgres pool: {e}"))
}

fn is_unique(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const EVENT_COLUMNS: &str =
    "position, id, stream, version, recorded_at, event_type, schema_version, payload, causation_id, correlation_id";

fn row_to_event(r: &Row) -> Result<RecordedEvent> {
    let stream: String = r.get(2);
    Ok(RecordedEvent {
        position: u(r.get(0)),
        id: EventId(r.get(1)),
        stream: StreamId::new(stream).map_err(|e| Error::Corrupt(e.to_string()))?,
        version: u(r.get(3)),
        recorded_at: Timestamp::from_millis(r.get(4)),
        event_type: r.get(5),
        schema_version: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
        payload: Bytes::from(r.get::<_, Vec<u8>>(7)),
        causation_id: r.get(8),
        correlation_id: CorrelationId(r.get(9)),
    })
}

impl PgStore {
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.inner.pool.get().await.map_err(pool_err)
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        if events.is_empty() {
            return Err(Error::Invalid("append of zero events".into()));
        }
        let now = self.now().as_millis();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute(
            "INSERT INTO userz_streams (stream, version) VALUES ($1, 0) ON CONFLICT (stream) DO NOTHING",
            &[&stream.as_str()],
        )
        .await
        .map_err(pg)?;
        let actual = u(tx
            .query_one("SELECT version FROM userz_streams WHERE stream = $1 FOR UPDATE", &[&stream.as_str()])
            .await
            .map_err(pg)?
            .get(0));
        if !expected.matches(actual) {
            return Err(Error::Conflict { stream: stream.clone(), expected, actual });
        }
        let n = events.len() as u64;
        let last_position = u(tx
            .query_one("UPDATE userz_head SET position = position + $1 WHERE id = 1 RETURNING position", &[&i(n)])
            .await
            .map_err(pg)?
            .get(0));
        let first_position = last_position + 1 - n;
        let insert = tx
            .prepare(
                "INSERT INTO userz_events (position, id, stream, version, recorded_at, event_type, schema_version, payload, causation_id, correlation_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .await
            .map_err(pg)?;
        for (k, e) in events.iter().enumerate() {
            let k = k as u64;
            let schema_version = i32::try_from(e.schema_version).unwrap_or(i32::MAX);
            tx.execute(
                &insert,
                &[
                    &i(first_position + k),
                    &e.id.as_uuid(),
                    &stream.as_str(),
                    &i(actual + 1 + k),
                    &now,
                    &e.event_type,
                    &schema_version,
                    &e.payload.as_ref(),
                    &e.causation_id,
                    &e.correlation_id.as_uuid(),
                ],
            )
            .await
            .map_err(|err| {
                if is_unique(&err) {
                    Error::Invalid(format!("duplicate event id {}", e.id))
                } else {
                    pg(err)
                }
            })?;
        }
        tx.execute("UPDATE userz_streams SET version = $2 WHERE stream = $1", &[&stream.as_str(), &i(actual + n)])
            .await
            .map_err(pg)?;
        tx.execute("SELECT pg_notify($1, $2)", &[&self.inner.channel, &last_position.to_string()]).await.map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(AppendResult { first_version: actual + 1, last_version: actual + n, first_position, last_position })
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM userz_events WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"),
                &[&stream.as_str(), &i(from_version.max(1)), &i(limit as u64)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {EVENT_COLUMNS} FROM userz_events WHERE position > $1 ORDER BY position LIMIT $2"),
                &[&i(after_position), &i(limit as u64)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn subscribe(&self, after_position: u64) -> Result<EventStream> {
        let rx = self.inner.head.subscribe();
        let poll = self.inner.poll_interval;
        Ok(catch_up_subscription(Arc::new(self.clone()), after_position, move |after| {
            let mut rx = rx.clone();
            Box::pin(async move {
                let _ = tokio::time::timeout(poll, rx.wait_for(|h| *h > after)).await;
            })
        }))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT version FROM userz_streams WHERE stream = $1", &[&stream.as_str()])
            .await
            .map_err(pg)?
            .map_or(0, |r| u(r.get(0))))
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::durable_shared()
    }
}

#[async_trait]
impl ReadModelStore for PgStore {
    async fn checkpoint(&self, name: &str) -> Result<u64> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT position FROM userz_rm_checkpoints WHERE name = $1", &[&name])
            .await
            .map_err(pg)?
            .map_or(0, |r| u(r.get(0))))
    }

    async fn commit(&self, commit: ReadModelCommit) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        if let Some(cp) = &commit.checkpoint {
            tx.execute(
                "INSERT INTO userz_rm_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
                &[&cp.name],
            )
            .await
            .map_err(pg)?;
            let actual = u(tx
                .query_one("SELECT position FROM userz_rm_checkpoints WHERE name = $1 FOR UPDATE", &[&cp.name])
                .await
                .map_err(pg)?
                .get(0));
            if actual != cp.expected {
                return Err(Error::CheckpointConflict { name: cp.name.clone(), expected: cp.expected, actual });
            }
        }
        if !commit.ops.is_empty() {
            let put = tx
                .prepare("INSERT INTO userz_rm_rows (tbl, key, value) VALUES ($1, $2, $3) ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value")
                .await
                .map_err(pg)?;
            let del = tx.prepare("DELETE FROM userz_rm_rows WHERE tbl = $1 AND key = $2").await.map_err(pg)?;
            for op in &commit.ops {
                match op {
                    ReadModelOp::Put { table, key, value } => {
                        tx.execute(&put, &[table, key, &value.as_ref()]).await.map_err(pg)?;
                    }
                    ReadModelOp::Delete { table, key } => {
                        tx.execute(&del, &[table, key]).await.map_err(pg)?;
                    }
                }
            }
        }
        if let Some(cp) = &commit.checkpoint {
            tx.execute("UPDATE userz_rm_checkpoints SET position = $2 WHERE name = $1", &[&cp.name, &i(cp.new)])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn get(&self, table: &str, key: &str) -> Result<Option<Bytes>> {
        let client = self.client().await?;
        Ok(client
            .query_opt("SELECT value FROM userz_rm_rows WHERE tbl = $1 AND key = $2", &[&table, &key])
            .await
            .map_err(pg)?
            .map(|r| Bytes::from(r.get::<_, Vec<u8>>(0))))
    }

    async fn scan(&self, table: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, Bytes)>> {
        let client = self.client().await?;
        let after = after.unwrap_or("");
        let rows = client
            .query(
                "SELECT key, value FROM userz_rm_rows
                 WHERE tbl = $1 AND starts_with(key, $2) AND key > $3
                 ORDER BY key LIMIT $4",
                &[&table, &prefix, &after, &i(limit as u64)],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get::<_, String>(0), Bytes::from(r.get::<_, Vec<u8>>(1)))).collect())
    }
}

fn lost(job: &JobId) -> Error {
    Error::LeaseLost(job.to_string())
}

#[async_trait]
impl WorkQueue for PgStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let ready_at = job.not_before.unwrap_or_else(|| self.now()).as_millis();
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO userz_jobs (id, queue, payload, state, ready_at) VALUES ($1, $2, $3, 0, $4) ON CONFLICT (id) DO NOTHING",
                &[&job.id.as_uuid(), &job.queue, &job.payload.as_ref(), &ready_at],
            )
            .await
            .map_err(pg)?;
        Ok(if n == 1 { Enqueued::New } else { Enqueued::Duplicate })
    }

    async fn claim(&self, queue: &str, _worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let now = self.now();
        let expires_at = now + lease;
        let token = uuid::Uuid::new_v4();
        let client = self.client().await?;
        let row = client
            .query_opt(
                "WITH c AS (
                    SELECT id FROM userz_jobs
                    WHERE queue = $1 AND ((state = 0 AND ready_at <= $2) OR (state = 1 AND expires_at <= $2))
                    ORDER BY CASE WHEN state = 0 THEN ready_at ELSE expires_at END, seq
                    LIMIT 1
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE userz_jobs j SET state = 1, token = $3, expires_at = $4, deliveries = j.deliveries + 1
                 FROM c WHERE j.id = c.id
                 RETURNING j.id, j.payload, j.deliveries",
                &[&queue, &now.as_millis(), &token, &expires_at.as_millis()],
            )
            .await
            .map_err(pg)?;
        Ok(row.map(|r| {
            let id = JobId(r.get(0));
            ClaimedJob {
                id,
                queue: queue.to_string(),
                payload: Bytes::from(r.get::<_, Vec<u8>>(1)),
                attempt: u32::try_from(r.get::<_, i32>(2)).unwrap_or(u32::MAX),
                lease: LeaseToken { job: id, token },
                lease_expires_at: expires_at,
            }
        }))
    }

    async fn heartbeat(&self, lease: &LeaseToken, extend: Duration) -> Result<Timestamp> {
        let now = self.now();
        let next = now + extend;
        self.lease_update(
            lease,
            "UPDATE userz_jobs SET expires_at = $3 WHERE id = $1 AND state = 1 AND token = $2 AND expires_at > $4",
            &[next.as_millis(), now.as_millis()],
        )
        .await?;
        Ok(next)
    }

    async fn ack(&self, lease: &LeaseToken) -> Result<()> {
        self.lease_update(
            lease,
            "UPDATE userz_jobs SET state = 2, payload = '\\x'::bytea, token = NULL WHERE id = $1 AND state = 1 AND token = $2",
            &[],
        )
        .await
    }

    async fn nack(&self, lease: &LeaseToken, retry_at: Timestamp) -> Result<()> {
        self.lease_update(
            lease,
            "UPDATE userz_jobs SET state = 0, ready_at = $3, token = NULL WHERE id = $1 AND state = 1 AND token = $2",
            &[retry_at.as_millis()],
        )
        .await
    }
}

impl PgStore {
    /// Runs a one-row update guarded by the lease (`$1` job id, `$2` token, then
    /// `extra` as `$3`, `$4`, …); no row updated means the lease is not current.
    async fn lease_update(&self, lease: &LeaseToken, sql: &str, extra: &[i64]) -> Result<()> {
        let client = self.client().await?;
        let id = lease.job.as_uuid();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&id, &lease.token];
        params.extend(extra.iter().map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync)));
        let n = client.execute(sql, &params).await.map_err(pg)?;
        if n == 1 {
            Ok(())
        } else {
            Err(lost(&lease.job))
        }
    }
}
