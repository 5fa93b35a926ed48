//! [`WorkQueue`] on a work-queue-retention JetStream stream.
//!
//! - Jobs of queue `q` are messages on `<prefix>.job.<token(q)>`, read by one
//!   durable pull consumer per queue (`q_<token(q)>`, explicit acks). A claim is a
//!   no-wait fetch of one message; JetStream hands each message to one consumer
//!   client at a time, oldest first.
//! - Leases: the consumer's ack wait is the lease of the queue's first claim and is
//!   the server-side backstop when a process dies. Inside a process the adapter's
//!   clock decides: a claim first gives back (`-NAK`) this process's expired leases
//!   on that queue, and a background task sends `+WPI` (work in progress) for
//!   live leases longer than the ack wait, so `heartbeat(extend)` means `extend`.
//! - `nack(retry_at)` is `-NAK` with a delay; `ack` is a confirmed `+ACK`.
//! - `attempt` is JetStream's delivery count, minus deliveries the adapter gave
//!   back because `not_before` had not come yet (counted in the job's id record).
//! - Idempotency: JetStream's `Nats-Msg-Id` window is time-limited, so every id
//!   also gets a record in the KV bucket `<prefix>_jobids`, created with
//!   "create only if absent", before the job is published: an id ever seen stays
//!   `Duplicate` for good. A record left at "publishing" (crash between the two
//!   steps) makes the next enqueue of that id publish again.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use async_nats::header::HeaderMap;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::kv;
use async_nats::jetstream::{self, stream::StorageType};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use userz_core::ids::JobId;
use userz_core::ports::{ClaimedJob, Enqueued, LeaseToken, NewJob, WorkQueue};
use userz_core::{Error, Result, Timestamp};

use crate::error::{transport, NatsError};
use crate::events::{api, create_stream, storage_name};
use crate::subject::Names;
use crate::{Inner, NatsStore};

const H_JOB: &str = "Userz-Job-Id";
const H_NOT_BEFORE: &str = "Userz-Not-Before";

/// How often the keep-alive task looks at live leases.
const KEEPALIVE_TICK: Duration = Duration::from_millis(100);

/// Id record values: the job is being published / is in the stream. A number
/// after `q:` counts early deliveries (before `not_before`).
const REC_PUBLISHING: &[u8] = b"p";

#[derive(Debug)]
pub(crate) struct QueueState {
    stream: jetstream::stream::Stream,
    ids: kv::Store,
    consumers: tokio::sync::Mutex<HashMap<String, (PullConsumer, Duration)>>,
    leases: Mutex<Leases>,
}

#[derive(Debug, Default)]
struct Leases {
    by_token: HashMap<uuid::Uuid, Lease>,
    /// Stream sequence → the token of its latest claim in this process.
    current: HashMap<u64, uuid::Uuid>,
}

#[derive(Debug)]
struct Lease {
    queue: String,
    seq: u64,
    reply: String,
    expires_at: Timestamp,
    ack_wait: Duration,
    touched: Instant,
}

pub(crate) async fn open(
    client: &async_nats::Client,
    js: &jetstream::Context,
    names: &Names,
    storage: StorageType,
    replicas: usize,
    duplicate_window_ns: u64,
) -> Result<QueueState> {
    create_stream(
        client,
        serde_json::json!({
            "name": names.jobs_stream,
            "subjects": [names.all_jobs()],
            "retention": "workqueue",
            "storage": storage_name(storage),
            "num_replicas": replicas,
            "discard": "old",
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "duplicate_window": duplicate_window_ns,
        }),
    )
    .await?;
    let stream = js.get_stream(&names.jobs_stream).await.map_err(transport("open job stream"))?;
    let ids = js
        .create_key_value(kv::Config {
            bucket: names.jobs_bucket.clone(),
            history: 1,
            storage,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(transport("open job id bucket"))?;
    Ok(QueueState {
        stream,
        ids,
        consumers: tokio::sync::Mutex::new(HashMap::new()),
        leases: Mutex::new(Leases::default()),
    })
}

/// Sends `+WPI` for every live lease that would otherwise run out on the server
/// before its expiry on the adapter's clock. Ends when the store is dropped.
pub(crate) fn spawn_keepalive(inner: Weak<Inner>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KEEPALIVE_TICK).await;
            let Some(inner) = inner.upgrade() else { return };
            let now = inner.clock.now();
            let due: Vec<String> = {
                let mut leases = inner.queue.leases.lock();
                leases
                    .by_token
                    .values_mut()
                    .filter(|l| l.expires_at > now && l.touched.elapsed() >= l.ack_wait / 3)
                    .map(|l| {
                        l.touched = Instant::now();
                        l.reply.clone()
                    })
                    .collect()
            };
            for reply in due {
                // Best effort: a lost +WPI only makes the server's backstop fire early.
                let _ = inner.client.publish(reply, Bytes::from_static(b"+WPI")).await;
            }
        }
    });
}

fn lease_lost(job: &JobId) -> Error {
    Error::LeaseLost(job.to_string())
}

impl NatsStore {
    fn q(&self) -> &QueueState {
        &self.inner.queue
    }

    async fn consumer(&self, queue: &str, lease: Duration) -> Result<(PullConsumer, Duration)> {
        let mut map = self.q().consumers.lock().await;
        if let Some(c) = map.get(queue) {
            return Ok(c.clone());
        }
        let name = self.inner.names.queue_consumer(queue);
        let ack_wait = lease.max(Duration::from_secs(1));
        let consumer: PullConsumer = self
            .q()
            .stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.inner.names.job_subject(queue),
                    ack_policy: AckPolicy::Explicit,
                    deliver_policy: DeliverPolicy::All,
                    ack_wait,
                    max_deliver: self.inner.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .map_err(transport("open queue consumer"))?;
        let ack_wait = consumer.cached_info().config.ack_wait;
        map.insert(queue.to_string(), (consumer.clone(), ack_wait));
        Ok((consumer, ack_wait))
    }

    async fn publish_job(&self, job: &NewJob) -> Result<()> {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", job.id.to_string().as_str());
        h.insert(H_JOB, job.id.to_string().as_str());
        if let Some(nb) = job.not_before {
            h.insert(H_NOT_BEFORE, nb.as_millis().to_string().as_str());
        }
        let reply =
            api(&self.inner.client, self.inner.names.job_subject(&job.queue), Some(h), job.payload.clone()).await?;
        match reply.error {
            None => Ok(()),
            Some(e) => Err(NatsError::Api { code: e.err_code, description: e.description }.into()),
        }
    }

    fn id_key(id: &JobId) -> String {
        id.as_uuid().simple().to_string()
    }

    /// Early deliveries recorded for a job.
    async fn early_count(&self, id: &JobId) -> Result<u64> {
        let rec = self.q().ids.get(Self::id_key(id)).await.map_err(transport("read job record"))?;
        Ok(rec
            .as_deref()
            .and_then(|r| r.strip_prefix(b"q:"))
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// Counts one early delivery of `id` (compare-and-set on the record).
    async fn bump_early(&self, id: &JobId) -> Result<()> {
        let key = Self::id_key(id);
        for _ in 0..32 {
            let entry = self.q().ids.entry(key.clone()).await.map_err(transport("read job record"))?;
            let (n, rev) = match &entry {
                Some(e) => {
                    let n = e
                        .value
                        .strip_prefix(b"q:")
                        .and_then(|n| std::str::from_utf8(n).ok())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                    (n, e.revision)
                }
                None => (0, 0),
            };
            let value = Bytes::from(format!("q:{}", n + 1));
            let ok = if rev == 0 {
                self.q().ids.create(&key, value).await.is_ok()
            } else {
                self.q().ids.update(&key, value, rev).await.is_ok()
            };
            if ok {
                return Ok(());
            }
        }
        Err(Error::Unavailable("job record kept moving".into()))
    }

    /// Gives back this process's leases on `queue` that expired on the adapter's
    /// clock, so the server re-delivers them now.
    async fn release_expired(&self, queue: &str) {
        let now = self.inner.clock.now();
        let expired: Vec<String> = {
            let mut leases = self.q().leases.lock();
            let Leases { by_token, current } = &mut *leases;
            let mut out = Vec::new();
            // Leases given back long ago whose holder never came back (a crashed
            // engine) are only kept to accept a late ack; drop them after a while.
            let stale = now - Duration::from_secs(3600);
            by_token.retain(|_, l| l.expires_at > stale || current.contains_key(&l.seq));
            for (token, l) in by_token.iter() {
                if l.queue == queue && l.expires_at <= now && current.get(&l.seq) == Some(token) {
                    current.remove(&l.seq);
                    out.push(l.reply.clone());
                }
            }
            out
        };
        for reply in expired {
            // A request: the server confirms once the job is back in line, so the
            // fetch that follows can see it.
            let _ = self.inner.client.request(reply, Bytes::from_static(b"-NAK")).await;
        }
    }

    /// The live lease record of `lease`: its reply subject, or `LeaseLost`.
    fn check_lease(&self, lease: &LeaseToken, need_live: bool) -> Result<(String, u64)> {
        let leases = self.q().leases.lock();
        let l = leases.by_token.get(&lease.token).ok_or_else(|| lease_lost(&lease.job))?;
        match leases.current.get(&l.seq) {
            Some(t) if *t == lease.token => {}
            // Given back on expiry but not claimed again: a late ack is fine.
            None if !need_live => {}
            _ => return Err(lease_lost(&lease.job)),
        }
        if need_live && l.expires_at <= self.inner.clock.now() {
            return Err(lease_lost(&lease.job));
        }
        Ok((l.reply.clone(), l.seq))
    }

    fn forget(&self, token: &uuid::Uuid) {
        let mut leases = self.q().leases.lock();
        if let Some(l) = leases.by_token.remove(token) {
            if leases.current.get(&l.seq) == Some(token) {
                leases.current.remove(&l.seq);
            }
        }
    }
}

#[async_trait]
impl WorkQueue for NatsStore {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let key = Self::id_key(&job.id);
        match self.q().ids.create(&key, Bytes::from_static(REC_PUBLISHING)).await {
            Ok(_) => {
                self.publish_job(&job).await?;
                self.q().ids.put(&key, Bytes::from_static(b"q:0")).await.map_err(transport("mark job queued"))?;
                Ok(Enqueued::New)
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let rec = self.q().ids.get(&key).await.map_err(transport("read job record"))?;
                if rec.as_deref() == Some(REC_PUBLISHING) {
                    // An earlier enqueue stopped between the record and the publish:
                    // publish now (Nats-Msg-Id drops a copy that did land recently).
                    self.publish_job(&job).await?;
                    self.q().ids.put(&key, Bytes::from_static(b"q:0")).await.map_err(transport("mark job queued"))?;
                }
                Ok(Enqueued::Duplicate)
            }
            Err(e) => Err(transport("create job record")(e)),
        }
    }

    async fn claim(&self, queue: &str, _worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        self.release_expired(queue).await;
        let (consumer, ack_wait) = self.consumer(queue, lease).await?;
        // Bounded: each early job skipped is given back with a delay.
        for _ in 0..64 {
            let mut batch = consumer.fetch().max_messages(1).messages().await.map_err(transport("claim"))?;
            let msg = match batch.next().await {
                None => return Ok(None),
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(transport("claim")(e)),
            };
            let (seq, delivered) = {
                let info = msg.info().map_err(|e| NatsError::Corrupt(format!("job info: {e}")))?;
                (info.stream_sequence, u64::try_from(info.delivered).unwrap_or(1))
            };
            let reply = msg
                .reply
                .as_ref()
                .map(|s| s.to_string())
                .ok_or_else(|| NatsError::Corrupt("job without reply subject".into()))?;
            let headers = msg.headers.clone().unwrap_or_default();
            let id: JobId = headers
                .get(H_JOB)
                .and_then(|v| v.as_str().parse().ok())
                .ok_or_else(|| NatsError::Corrupt("job without id".into()))?;
            let now = self.inner.clock.now();
            let not_before =
                headers.get(H_NOT_BEFORE).and_then(|v| v.as_str().parse::<i64>().ok()).map(Timestamp::from_millis);
            let mut early = 0;
            if not_before.is_some() {
                early = self.early_count(&id).await?;
            }
            if let Some(nb) = not_before.filter(|nb| *nb > now) {
                self.bump_early(&id).await?;
                let delay = nb.saturating_since(now);
                let body = format!("-NAK {{\"delay\":{}}}", delay.as_nanos());
                self.inner.client.request(reply, Bytes::from(body)).await.map_err(transport("defer job"))?;
                continue;
            }
            let token = uuid::Uuid::new_v4();
            let expires_at = now + lease;
            {
                let mut leases = self.q().leases.lock();
                // Older claims of this job are superseded: their holders get LeaseLost.
                leases.by_token.retain(|_, l| l.seq != seq);
                leases.current.insert(seq, token);
                leases.by_token.insert(
                    token,
                    Lease { queue: queue.to_string(), seq, reply, expires_at, ack_wait, touched: Instant::now() },
                );
            }
            let attempt = u32::try_from(delivered.saturating_sub(early).max(1)).unwrap_or(u32::MAX);
            return Ok(Some(ClaimedJob {
                id,
                queue: queue.to_string(),
                payload: msg.payload.clone(),
                attempt,
                lease: LeaseToken { job: id, token },
                lease_expires_at: expires_at,
            }));
        }
        Ok(None)
    }

    async fn heartbeat(&self, lease: &LeaseToken, extend: Duration) -> Result<Timestamp> {
        let (reply, _) = self.check_lease(lease, true)?;
        let expires_at = self.inner.clock.now() + extend;
        {
            let mut leases = self.q().leases.lock();
            if let Some(l) = leases.by_token.get_mut(&lease.token) {
                l.expires_at = expires_at;
                l.touched = Instant::now();
            }
        }
        self.inner.client.request(reply, Bytes::from_static(b"+WPI")).await.map_err(transport("heartbeat"))?;
        Ok(expires_at)
    }

    async fn ack(&self, lease: &LeaseToken) -> Result<()> {
        let (reply, _) = self.check_lease(lease, false)?;
        // A request, so the server confirms the ack (double ack).
        self.inner.client.request(reply, Bytes::from_static(b"+ACK")).await.map_err(transport("ack"))?;
        self.forget(&lease.token);
        Ok(())
    }

    async fn nack(&self, lease: &LeaseToken, retry_at: Timestamp) -> Result<()> {
        let (reply, _) = self.check_lease(lease, false)?;
        let delay = retry_at.saturating_since(self.inner.clock.now());
        let body =
            if delay.is_zero() { "-NAK".to_string() } else { format!("-NAK {{\"delay\":{}}}", delay.as_nanos()) };
        self.inner.client.request(reply, Bytes::from(body)).await.map_err(transport("nack"))?;
        self.forget(&lease.token);
        Ok(())
    }
}
