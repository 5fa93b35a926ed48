//! # userz-store-sqlite
//!
//! The embedded default storage of the Userz engine: one SQLite file (WAL mode)
//! holds the event log, the read models with their checkpoints, the work queue
//! and the cache. Zero set-up: give it a path.
//!
//! - One writer thread commits every request that queued up meanwhile in a single
//!   transaction (group commit); each request runs in its own savepoint, so a
//!   refused append does not undo its neighbours.
//! - Reads use a small pool of read connections; WAL lets them run beside the
//!   writer, and a reader only ever sees whole transactions, so global positions
//!   become visible in order.
//! - Read-model rows and their checkpoint change in the same transaction.
//!
//! ```no_run
//! # async fn demo() -> userz_core::Result<()> {
//! use userz_store_sqlite::SqliteStoreBuilder;
//! let store = SqliteStoreBuilder::new("/var/lib/userz/userz.db").build().await?;
//! # let _ = store; Ok(()) }
//! ```

mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::watch;
use userz_core::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use userz_core::ids::{CorrelationId, EventId, JobId};
use userz_core::ports::{
    catch_up_subscription, AppendResult, Cache, ClaimedJob, Enqueued, EventStore, EventStream, LeaseToken, NewJob,
    ReadModelCommit, ReadModelOp, ReadModelStore, StoreCapabilities, WorkQueue,
};
use userz_core::{Clock, Error, Result, SystemClock, Timestamp};

use writer::Writer;

/// How hard SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is on disk before it is acknowledged (survives power loss).
    #[default]
    Full,
    /// Commits survive a process crash; the last ones may be lost on power loss.
    Normal,
}

/// Builds a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    synchronous: Synchronous,
    poll_interval: Duration,
    readers: usize,
}

impl SqliteStoreBuilder {
    /// A store in the file at `path` (created if missing).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            clock: Arc::new(SystemClock),
            synchronous: Synchronous::Full,
            poll_interval: Duration::from_millis(250),
            readers: 4,
        }
    }

    /// Reads the path from `USERZ_SQLITE_PATH` (default `userz.db`).
    pub fn from_env() -> Self {
        Self::new(std::env::var("USERZ_SQLITE_PATH").unwrap_or_else(|_| "userz.db".into()))
    }

    /// The clock for `recorded_at`, TTLs and leases.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sync mode (default `Full`).
    pub fn with_synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// How often subscribers look for events written by another process
    /// (in-process appends wake them at once). Default 250 ms.
    pub fn with_poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Opens the file, runs migrations and starts the writer.
    pub async fn build(self) -> Result<SqliteStore> {
        tokio::task::spawn_blocking(move || self.open_blocking())
            .await
            .map_err(|e| Error::Unavailable(format!("open task: {e}")))?
    }

    fn open_blocking(self) -> Result<SqliteStore> {
        let mut conn = Connection::open(&self.path).map_err(db)?;
        let sync = match self.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;"
        ))
        .map_err(db)?;
        schema::migrate(&mut conn).map_err(db)?;
        let head0: i64 =
            conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0)).map_err(db)?;
        let (head, _) = watch::channel(u64::try_from(head0).unwrap_or(0));
        let writer =
            Writer::spawn(conn, head.clone()).map_err(|e| Error::Unavailable(format!("writer thread: {e}")))?;
        let readers = Readers { path: self.path.clone(), idle: Mutex::new(Vec::new()), max_idle: self.readers };
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                readers,
                head,
                clock: self.clock,
                poll_interval: self.poll_interval,
                path: self.path,
            }),
        })
    }
}

#[derive(Debug)]
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Readers {
    fn take(&self) -> Result<Connection> {
        if let Some(c) = self.idle.lock().pop() {
            return Ok(c);
        }
        let c =
            Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(db)?;
        c.execute_batch("PRAGMA busy_timeout = 5000;").map_err(db)?;
        Ok(c)
    }

    fn put(&self, c: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(c);
        }
    }
}

#[derive(Debug)]
struct Inner {
    writer: Writer,
    readers: Readers,
    head: watch::Sender<u64>,
    clock: Arc<dyn Clock>,
    poll_interval: Duration,
    path: PathBuf,
}

/// The SQLite adapter: implements [`EventStore`], [`ReadModelStore`],
/// [`WorkQueue`] and [`Cache`] on one database file. Cloning shares it.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn db(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            Error::Unavailable(e.to_string())
        }
        _ => Error::Corrupt(format!("sqlite: {e}")),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uuid_of(b: Vec<u8>) -> rusqlite::Result<uuid::Uuid> {
    uuid::Uuid::from_slice(&b)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))
}

const EVENT_COLUMNS: &str =
    "position, id, stream, version, recorded_at, event_type, schema_version, payload, causation_id, correlation_id";

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let stream: String = r.get(2)?;
    Ok(RecordedEvent {
        position: u(r.get(0)?),
        id: EventId(uuid_of(r.get(1)?)?),
        stream: StreamId::new(stream)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e)))?,
        version: u(r.get(3)?),
        recorded_at: Timestamp::from_millis(r.get(4)?),
        event_type: r.get(5)?,
        schema_version: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        payload: Bytes::from(r.get::<_, Vec<u8>>(7)?),
        causation_id: r.get::<_, Option<Vec<u8>>>(8)?.map(uuid_of).transpose()?,
        correlation_id: CorrelationId(uuid_of(r.get(9)?)?),
    })
}

impl SqliteStore {
    /// Runs `f` as a write in the next group commit (tests and maintenance).
    #[doc(hidden)]
    pub async fn write_raw<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.readers.take()?;
            let r = f(&conn);
            inner.readers.put(conn);
            r
        })
        .await
        .map_err(|e| Error::Unavailable(format!("read task: {e}")))?
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        if events.is_empty() {
            return Err(Error::Invalid("append of zero events".into()));
        }
        let stream = stream.clone();
        let now = self.now().as_millis();
        self.inner
            .writer
            .write(move |c| {
                let actual: u64 = c
                    .query_row("SELECT version FROM streams WHERE stream = ?1", [stream.as_str()], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(db)?
                    .map_or(0, u);
                if !expected.matches(actual) {
                    return Err(Error::Conflict { stream, expected, actual });
                }
                let mut stmt = c
                    .prepare_cached(
                        "INSERT INTO events (id, stream, version, recorded_at, event_type, schema_version, payload, causation_id, correlation_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .map_err(db)?;
                let n = events.len() as u64;
                let mut first_position = 0;
                for (k, e) in events.into_iter().enumerate() {
                    let version = actual + 1 + k as u64;
                    stmt.execute(params![
                        e.id.as_uuid().as_bytes().as_slice(),
                        stream.as_str(),
                        i(version),
                        now,
                        e.event_type,
                        i64::from(e.schema_version),
                        e.payload.as_ref(),
                        e.causation_id.as_ref().map(|c| c.as_bytes().to_vec()),
                        e.correlation_id.as_uuid().as_bytes().as_slice(),
                    ])
                    .map_err(|err| {
                        if is_unique_violation(&err) {
                            Error::Invalid(format!("duplicate event id {}", e.id))
                        } else {
                            db(err)
                        }
                    })?;
                    if k == 0 {
                        first_position = u(c.last_insert_rowid());
                    }
                }
                let last_position = u(c.last_insert_rowid());
                c.execute(
                    "INSERT INTO streams (stream, version) VALUES (?1, ?2)
                     ON CONFLICT (stream) DO UPDATE SET version = excluded.version",
                    params![stream.as_str(), i(actual + n)],
                )
                .map_err(db)?;
                Ok(AppendResult { first_version: actual + 1, last_version: actual + n, first_position, last_position })
            })
            .await
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let stream = stream.as_str().to_string();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version LIMIT ?3"
                ))
                .map_err(db)?;
            let rows =
                stmt.query_map(params![stream, i(from_version.max(1)), i(limit as u64)], row_to_event).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = stmt.query_map(params![i(after_position), i(limit as u64)], row_to_event).map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn subscribe(&self, after_position: u64) -> Result<EventStream> {
        let rx = self.inner.head.subscribe();
        let poll = self.inner.poll_interval;
        Ok(catch_up_subscription(Arc::new(self.clone()), after_position, move |after| {
            let mut rx = rx.clone();
            Box::pin(async move {
                // In-process appends wake us at once; the timeout catches appends
                // made by another process on the same file.
                let _ = tokio::time::timeout(poll, rx.wait_for(|h| *h > after)).await;
            })
        }))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        let stream = stream.as_str().to_string();
        self.read(move |c| {
            Ok(c.query_row("SELECT version FROM streams WHERE stream = ?1", [stream], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(db)?
                .map_or(0, u))
        })
        .await
    }

    fn capabilities(&self) -> StoreCapabilities {
        // Durable; one process writes (other processes may read and will be seen
        // by subscribers through polling).
        StoreCapabilities::durable_shared().single_process()
    }
}

#[async_trait]
impl ReadModelStore for SqliteStore {
    async fn checkpoint(&self, name: &str) -> Result<u64> {
        let name = name.to_string();
        self.read(move |c| {
            Ok(c.query_row("SELECT position FROM rm_checkpoints WHERE name = ?1", [name], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(db)?
                .map_or(0, u))
        })
        .await
    }

    async fn commit(&self, commit: ReadModelCommit) -> Result<()> {
        self.inner
            .writer
            .write(move |c| {
                if let Some(cp) = &commit.checkpoint {
                    let actual = c
                        .query_row("SELECT position FROM rm_checkpoints WHERE name = ?1", [&cp.name], |r| r.get::<_, i64>(0))
                        .optional()
                        .map_err(db)?
                        .map_or(0, u);
                    if actual != cp.expected {
                        return Err(Error::CheckpointConflict { name: cp.name.clone(), expected: cp.expected, actual });
                    }
                }
                {
                    let mut put = c
                        .prepare_cached("INSERT INTO rm_rows (tbl, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value")
                        .map_err(db)?;
                    let mut del = c.prepare_cached("DELETE FROM rm_rows WHERE tbl = ?1 AND key = ?2").map_err(db)?;
                    for op in &commit.ops {
                        match op {
                            ReadModelOp::Put { table, key, value } => {
                                put.execute(params![table, key, value.as_ref()]).map_err(db)?;
                            }
                            ReadModelOp::Delete { table, key } => {
                                del.execute(params![table, key]).map_err(db)?;
                            }
                        }
                    }
                }
                if let Some(cp) = &commit.checkpoint {
                    c.execute(
                        "INSERT INTO rm_checkpoints (name, position) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                        params![cp.name, i(cp.new)],
                    )
                    .map_err(db)?;
                }
                Ok(())
            })
            .await
    }

    async fn get(&self, table: &str, key: &str) -> Result<Option<Bytes>> {
        let (table, key) = (table.to_string(), key.to_string());
        self.read(move |c| {
            c.query_row("SELECT value FROM rm_rows WHERE tbl = ?1 AND key = ?2", [table, key], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()
            .map(|v| v.map(Bytes::from))
            .map_err(db)
        })
        .await
    }

    async fn scan(&self, table: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, Bytes)>> {
        let (table, prefix) = (table.to_string(), prefix.to_string());
        let start = match after {
            Some(a) if a >= prefix.as_str() => a.to_string(),
            _ => String::new(),
        };
        self.read(move |c| {
            // Keys compare byte-wise (BINARY collation), as the contract asks.
            let mut stmt = c
                .prepare_cached("SELECT key, value FROM rm_rows WHERE tbl = ?1 AND key >= ?2 AND key > ?3 ORDER BY key")
                .map_err(db)?;
            let mut rows = stmt.query(params![table, prefix, start]).map_err(db)?;
            let mut out = Vec::new();
            while out.len() < limit {
                let Some(row) = rows.next().map_err(db)? else { break };
                let key: String = row.get(0).map_err(db)?;
                if !key.starts_with(&prefix) {
                    break;
                }
                out.push((key, Bytes::from(row.get::<_, Vec<u8>>(1).map_err(db)?)));
            }
            Ok(out)
        })
        .await
    }
}

fn lost(job: &JobId) -> Error {
    Error::LeaseLost(job.to_string())
}

#[async_trait]
impl WorkQueue for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let now = self.now();
        self.inner
            .writer
            .write(move |c| {
                let seq: i64 = c.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs", [], |r| r.get(0)).map_err(db)?;
                let n = c
                    .execute(
                        "INSERT OR IGNORE INTO jobs (id, queue, payload, seq, state, ready_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                        params![
                            job.id.as_uuid().as_bytes().as_slice(),
                            job.queue,
                            job.payload.as_ref(),
                            seq,
                            job.not_before.unwrap_or(now).as_millis()
                        ],
                    )
                    .map_err(db)?;
                Ok(if n == 1 { Enqueued::New } else { Enqueued::Duplicate })
            })
            .await
    }

    async fn claim(&self, queue: &str, _worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let now = self.now();
        let expires_at = now + lease;
        let queue = queue.to_string();
        self.inner
            .writer
            .write(move |c| {
                let found = c
                    .query_row(
                        "SELECT id, payload, deliveries FROM jobs
                         WHERE queue = ?1 AND ((state = 0 AND ready_at <= ?2) OR (state = 1 AND expires_at <= ?2))
                         ORDER BY CASE state WHEN 0 THEN ready_at ELSE expires_at END, seq
                         LIMIT 1",
                        params![queue, now.as_millis()],
                        |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?)),
                    )
                    .optional()
                    .map_err(db)?;
                let Some((id, payload, deliveries)) = found else { return Ok(None) };
                let token = uuid::Uuid::new_v4();
                c.execute(
                    "UPDATE jobs SET state = 1, token = ?2, expires_at = ?3, deliveries = deliveries + 1 WHERE id = ?1",
                    params![id, token.as_bytes().as_slice(), expires_at.as_millis()],
                )
                .map_err(db)?;
                let job = JobId(uuid_of(id).map_err(db)?);
                Ok(Some(ClaimedJob {
                    id: job,
                    queue,
                    payload: Bytes::from(payload),
                    attempt: u32::try_from(deliveries + 1).unwrap_or(u32::MAX),
                    lease: LeaseToken { job, token },
                    lease_expires_at: expires_at,
                }))
            })
            .await
    }

    async fn heartbeat(&self, lease: &LeaseToken, extend: Duration) -> Result<Timestamp> {
        let now = self.now();
        let next = now + extend;
        self.lease_update(
            lease,
            "UPDATE jobs SET expires_at = ?3 WHERE id = ?1 AND state = 1 AND token = ?2 AND expires_at > ?4",
            [next.as_millis(), now.as_millis()],
        )
        .await?;
        Ok(next)
    }

    async fn ack(&self, lease: &LeaseToken) -> Result<()> {
        self.lease_update(
            lease,
            "UPDATE jobs SET state = 2, payload = x'', token = NULL WHERE id = ?1 AND state = 1 AND token = ?2",
            [],
        )
        .await
    }

    async fn nack(&self, lease: &LeaseToken, retry_at: Timestamp) -> Result<()> {
        self.lease_update(
            lease,
            "UPDATE jobs SET state = 0, ready_at = ?3, token = NULL WHERE id = ?1 AND state = 1 AND token = ?2",
            [retry_at.as_millis()],
        )
        .await
    }
}

impl SqliteStore {
    /// Runs a one-row update guarded by the lease (`?1` job id, `?2` token,
    /// then `extra` as `?3`, `?4`, …); no row updated means the lease is not
    /// current.
    async fn lease_update<const N: usize>(&self, lease: &LeaseToken, sql: &'static str, extra: [i64; N]) -> Result<()> {
        let lease = lease.clone();
        self.inner
            .writer
            .write(move |c| {
                use rusqlite::types::Value;
                let values = [
                    Value::Blob(lease.job.as_uuid().as_bytes().to_vec()),
                    Value::Blob(lease.token.as_bytes().to_vec()),
                ]
                .into_iter()
                .chain(extra.into_iter().map(Value::Integer));
                let n = c.execute(sql, rusqlite::params_from_iter(values)).map_err(db)?;
                if n == 1 {
                    Ok(())
                } else {
                    Err(lost(&lease.job))
                }
            })
            .await
    }
}

fn expiry(now: Timestamp, ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| (now + t).as_millis())
}

/// Removes `key` if it has expired (inside a write).
fn purge_expired(c: &Connection, key: &str, now: Timestamp) -> Result<()> {
    c.execute(
        "DELETE FROM cache WHERE key = ?1 AND expires_at IS NOT NULL AND expires_at <= ?2",
        params![key, now.as_millis()],
    )
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl Cache for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let now = self.now();
        let key = key.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT value FROM cache WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                params![key, now.as_millis()],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()
            .map(|v| v.map(Bytes::from))
            .map_err(db)
        })
        .await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let exp = expiry(self.now(), ttl);
        let key = key.to_string();
        self.inner
            .writer
            .write(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO cache (key, value, expires_at) VALUES (?1, ?2, ?3)",
                    params![key, value.as_ref(), exp],
                )
                .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let now = self.now();
        let exp = expiry(now, ttl);
        let key = key.to_string();
        self.inner
            .writer
            .write(move |c| {
                purge_expired(c, &key, now)?;
                let n = c
                    .execute(
                        "INSERT OR IGNORE INTO cache (key, value, expires_at) VALUES (?1, ?2, ?3)",
                        params![key, value.as_ref(), exp],
                    )
                    .map_err(db)?;
                Ok(n == 1)
            })
            .await
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let now = self.now();
        let exp = expiry(now, ttl);
        let key = key.to_string();
        self.inner
            .writer
            .write(move |c| {
                purge_expired(c, &key, now)?;
                let current = c
                    .query_row("SELECT value FROM cache WHERE key = ?1", [&key], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
                    .map_err(db)?;
                match current {
                    Some(v) => {
                        let cur: i64 = std::str::from_utf8(&v)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| Error::Invalid(format!("{key} is not a counter")))?;
                        let next = cur.checked_add(delta).ok_or_else(|| Error::Invalid(format!("{key} overflows")))?;
                        c.execute(
                            "UPDATE cache SET value = ?2 WHERE key = ?1",
                            params![key, next.to_string().as_bytes()],
                        )
                        .map_err(db)?;
                        Ok(next)
                    }
                    None => {
                        c.execute(
                            "INSERT INTO cache (key, value, expires_at) VALUES (?1, ?2, ?3)",
                            params![key, delta.to_string().as_bytes(), exp],
                        )
                        .map_err(db)?;
                        Ok(delta)
                    }
                }
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let now = self.now();
        let key = key.to_string();
        self.inner
            .writer
            .write(move |c| {
                purge_expired(c, &key, now)?;
                let n = c.execute("DELETE FROM cache WHERE key = ?1", [key]).map_err(db)?;
                Ok(n == 1)
            })
            .await
    }
}
