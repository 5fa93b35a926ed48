//! [`EventStore`] on one JetStream stream.
//!
//! Layout: event `k` of stream `s` is a message on `<prefix>.ev.<token(s)>`; its
//! position is the JetStream sequence, its version the `Userz-Version` header (the
//! `k`-th message on that subject). An append publishes every event, then one
//! marker per event id on `<prefix>.evid.<uuid>`, as one atomic batch:
//!
//! - the first event carries `Nats-Expected-Last-Subject-Sequence` = the sequence
//!   of the stream's last event (0 for a new stream), so a concurrent append makes
//!   the whole batch fail (optimistic concurrency);
//! - each marker carries `Nats-Expected-Last-Subject-Sequence: 0`, so an event id
//!   that was ever stored fails the batch, with no time window;
//! - events come first, so their positions are consecutive.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::header::HeaderMap;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, stream::StorageType};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use userz_core::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use userz_core::ids::{CorrelationId, EventId};
use userz_core::ports::{AppendResult, EventStore, EventStream, StoreCapabilities};
use userz_core::{Error, Result, Timestamp};

use crate::error::{transport, NatsError};
use crate::subject::Names;
use crate::NatsStore;

const H_STREAM: &str = "Userz-Stream";
const H_VERSION: &str = "Userz-Version";
const H_ID: &str = "Userz-Event-Id";
const H_TYPE: &str = "Userz-Type";
const H_SCHEMA: &str = "Userz-Schema";
const H_CAUSATION: &str = "Userz-Causation";
const H_CORRELATION: &str = "Userz-Correlation";

/// The server's default cap on messages in one atomic batch is 1000; each event
/// takes two (itself and its id marker).
pub const MAX_EVENTS_PER_APPEND: usize = 500;

/// JetStream error code: "wrong last sequence" (expected-last-subject-sequence).
pub(crate) const ERR_WRONG_LAST_SEQUENCE: u64 = 10071;
/// JetStream error code: "stream name already in use" (another config exists).
const ERR_STREAM_NAME_IN_USE: u64 = 10058;

#[derive(Debug)]
pub(crate) struct EventsState {
    stream: jetstream::stream::Stream,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ApiError {
    #[serde(default)]
    pub(crate) err_code: u64,
    #[serde(default)]
    pub(crate) description: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ApiReply {
    pub(crate) error: Option<ApiError>,
    #[serde(default)]
    pub(crate) seq: u64,
    #[serde(default)]
    pub(crate) count: u64,
}

/// Sends a JetStream API request or publish and decodes its JSON reply.
pub(crate) async fn api(
    client: &async_nats::Client,
    subject: String,
    headers: Option<HeaderMap>,
    body: Bytes,
) -> Result<ApiReply> {
    let reply = match headers {
        Some(h) => client.request_with_headers(subject, h, body).await,
        None => client.request(subject, body).await,
    }
    .map_err(transport("jetstream request"))?;
    serde_json::from_slice(&reply.payload).map_err(|e| {
        NatsError::Corrupt(format!("jetstream reply: {e}: {:?}", String::from_utf8_lossy(&reply.payload))).into()
    })
}

/// Creates a stream through the raw API: the client's `Config` type predates
/// `allow_atomic` (atomic batch publish, nats-server 2.12).
pub(crate) async fn create_stream(client: &async_nats::Client, config: serde_json::Value) -> Result<()> {
    let name = config["name"].as_str().unwrap_or_default().to_string();
    let body = Bytes::from(serde_json::to_vec(&config)?);
    let reply = api(client, format!("$JS.API.STREAM.CREATE.{name}"), None, body.clone()).await?;
    match reply.error {
        None => Ok(()),
        // Exists with other settings (e.g. created by an older version): bring it up
        // to date, which JetStream allows for every setting we use.
        Some(e) if e.err_code == ERR_STREAM_NAME_IN_USE => {
            let r = api(client, format!("$JS.API.STREAM.UPDATE.{name}"), None, body).await?;
            match r.error {
                None => Ok(()),
                Some(e) => Err(NatsError::Api { code: e.err_code, description: e.description }.into()),
            }
        }
        Some(e) => Err(NatsError::Api { code: e.err_code, description: e.description }.into()),
    }
}

pub(crate) fn storage_name(s: StorageType) -> &'static str {
    match s {
        StorageType::Memory => "memory",
        StorageType::File => "file",
    }
}

pub(crate) async fn open(
    client: &async_nats::Client,
    js: &jetstream::Context,
    names: &Names,
    storage: StorageType,
    replicas: usize,
    duplicate_window_ns: u64,
) -> Result<EventsState> {
    create_stream(
        client,
        serde_json::json!({
            "name": names.events_stream,
            "subjects": [names.all_events(), names.all_ids()],
            "retention": "limits",
            "storage": storage_name(storage),
            "num_replicas": replicas,
            "discard": "old",
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "allow_direct": true,
            "allow_atomic": true,
            "duplicate_window": duplicate_window_ns,
        }),
    )
    .await?;
    let stream = js.get_stream(&names.events_stream).await.map_err(transport("open event stream"))?;
    Ok(EventsState { stream })
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Result<&'a str> {
    h.get(name).map(|v| v.as_str()).ok_or_else(|| NatsError::Corrupt(format!("missing header {name}")).into())
}

fn parse<T: std::str::FromStr>(h: &HeaderMap, name: &str) -> Result<T> {
    header(h, name)?.parse().map_err(|_| NatsError::Corrupt(format!("bad header {name}")).into())
}

fn millis(t: time::OffsetDateTime) -> Timestamp {
    Timestamp::from_millis(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

/// Rebuilds a recorded event from a stored message.
fn decode(h: &HeaderMap, payload: Bytes, position: u64, at: time::OffsetDateTime) -> Result<RecordedEvent> {
    let stream = StreamId::new(header(h, H_STREAM)?).map_err(|e| NatsError::Corrupt(e.to_string()))?;
    let causation = match h.get(H_CAUSATION) {
        Some(v) => Some(uuid::Uuid::parse_str(v.as_str()).map_err(|_| NatsError::Corrupt("bad causation".into()))?),
        None => None,
    };
    Ok(RecordedEvent {
        id: parse::<EventId>(h, H_ID)?,
        stream,
        version: parse(h, H_VERSION)?,
        position,
        recorded_at: millis(at),
        event_type: header(h, H_TYPE)?.to_string(),
        schema_version: parse(h, H_SCHEMA)?,
        payload,
        causation_id: causation,
        correlation_id: parse::<CorrelationId>(h, H_CORRELATION)?,
    })
}

fn decode_msg(m: &jetstream::Message) -> Result<RecordedEvent> {
    let info = m.info().map_err(|e| NatsError::Corrupt(format!("message info: {e}")))?;
    let headers = m.headers.as_ref().ok_or_else(|| NatsError::Corrupt("event without headers".into()))?;
    decode(headers, m.payload.clone(), info.stream_sequence, info.published)
}

/// Up to `max` messages of `stream` matching `filter` under `policy`, in order,
/// through a short-lived ephemeral consumer: it reads the consumer's pending count
/// at creation, so later messages do not keep it waiting.
pub(crate) async fn scan_stream(
    stream: &jetstream::stream::Stream,
    filter: String,
    policy: DeliverPolicy,
    max: usize,
) -> Result<Vec<jetstream::Message>> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            deliver_policy: policy,
            ack_policy: AckPolicy::None,
            filter_subject: filter,
            inactive_threshold: Duration::from_secs(10),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(transport("create reader"))?;
    let pending = usize::try_from(consumer.cached_info().num_pending).unwrap_or(usize::MAX);
    let want = max.min(pending);
    let mut out = Vec::with_capacity(want.min(4096));
    if want > 0 {
        let mut msgs =
            consumer.stream().max_messages_per_batch(want.min(1000)).messages().await.map_err(transport("read"))?;
        while out.len() < want {
            match msgs.next().await {
                Some(Ok(m)) => out.push(m),
                Some(Err(e)) => return Err(transport("read")(e)),
                None => return Err(NatsError::Transport("reader ended early".into()).into()),
            }
        }
    }
    let name = consumer.cached_info().name.clone();
    let stream = stream.clone();
    // Cleanup only: the inactivity threshold removes it anyway.
    tokio::spawn(async move {
        let _ = stream.delete_consumer(&name).await;
    });
    Ok(out)
}

impl NatsStore {
    fn events(&self) -> &jetstream::stream::Stream {
        &self.inner.events.stream
    }

    /// `(sequence, version)` of the stream's last event, `(0, 0)` if none.
    async fn last_of(&self, subject: &str) -> Result<(u64, u64)> {
        match self.events().direct_get_last_for_subject(subject).await {
            Ok(m) => Ok((m.sequence, parse(&m.headers, H_VERSION)?)),
            Err(e) if matches!(e.kind(), jetstream::stream::DirectGetErrorKind::NotFound) => Ok((0, 0)),
            Err(e) => Err(transport("read last event")(e)),
        }
    }

    /// Up to `max` messages matching `filter` from sequence `start`, in order.
    async fn scan(&self, filter: String, start: u64, max: usize) -> Result<Vec<jetstream::Message>> {
        scan_stream(self.events(), filter, DeliverPolicy::ByStartSequence { start_sequence: start.max(1) }, max).await
    }

    /// The sequence of version `from` of the stream on `subject` (whose last event
    /// is at `last_seq`). JetStream has no index from version to sequence, but
    /// versions grow with sequences, so a binary search over "first message on
    /// the subject at or after sequence s" finds it in O(log n) direct gets.
    async fn seek(&self, subject: &str, from: u64, last_seq: u64) -> Result<u64> {
        let (mut lo, mut hi) = (1u64, last_seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let raw = self
                .events()
                .direct_get_next_for_subject(subject, Some(mid))
                .await
                .map_err(transport("seek version"))?;
            let m = jetstream::message::StreamMessage::try_from(raw.message)
                .map_err(|e| NatsError::Corrupt(format!("direct get: {e}")))?;
            if parse::<u64>(&m.headers, H_VERSION)? >= from {
                hi = mid;
            } else {
                lo = m.sequence + 1;
            }
        }
        Ok(lo)
    }

    /// Publishes `events` (then their id markers) as one atomic batch. Returns the
    /// sequence of the first event, or `Ok(None)` when the server refused an
    /// expected-last-subject-sequence check.
    async fn publish_batch(
        &self,
        stream: &StreamId,
        subject: &str,
        last_seq: u64,
        last_version: u64,
        events: &[NewEvent],
    ) -> Result<Option<u64>> {
        let client = &self.inner.client;
        let batch = uuid::Uuid::new_v4().simple().to_string();
        let total = events.len() * 2;
        let mut n = 0usize;
        let batch_headers = |n: usize| {
            let mut h = HeaderMap::new();
            h.insert("Nats-Batch-Id", batch.as_str());
            h.insert("Nats-Batch-Sequence", n.to_string().as_str());
            if n == total {
                h.insert("Nats-Batch-Commit", "1");
            }
            h
        };
        let mut commit = None;
        for (i, ev) in events.iter().enumerate() {
            n += 1;
            let mut h = batch_headers(n);
            if i == 0 {
                h.insert("Nats-Expected-Last-Subject-Sequence", last_seq.to_string().as_str());
            }
            h.insert("Nats-Msg-Id", ev.id.to_string().as_str());
            h.insert(H_STREAM, stream.as_str());
            h.insert(H_VERSION, (last_version + i as u64 + 1).to_string().as_str());
            h.insert(H_ID, ev.id.to_string().as_str());
            h.insert(H_TYPE, ev.event_type.as_str());
            h.insert(H_SCHEMA, ev.schema_version.to_string().as_str());
            if let Some(c) = ev.causation_id {
                h.insert(H_CAUSATION, c.to_string().as_str());
            }
            h.insert(H_CORRELATION, ev.correlation_id.to_string().as_str());
            client
                .publish_with_headers(subject.to_string(), h, ev.payload.clone())
                .await
                .map_err(transport("publish event"))?;
        }
        for (i, ev) in events.iter().enumerate() {
            n += 1;
            let mut h = batch_headers(n);
            h.insert("Nats-Expected-Last-Subject-Sequence", "0");
            let marker = Bytes::from(format!("{}@{}", stream.as_str(), last_version + i as u64 + 1));
            let subj = self.inner.names.id_subject(&ev.id);
            if n == total {
                commit = Some(api(client, subj, Some(h), marker).await?);
            } else {
                client.publish_with_headers(subj, h, marker).await.map_err(transport("publish id marker"))?;
            }
        }
        let reply = commit.ok_or_else(|| Error::Invalid("empty batch".into()))?;
        match reply.error {
            Some(e) if e.err_code == ERR_WRONG_LAST_SEQUENCE => Ok(None),
            Some(e) => Err(NatsError::Api { code: e.err_code, description: e.description }.into()),
            None if reply.count != total as u64 => Err(NatsError::Corrupt(format!(
                "atomic batch stored {} of {total} messages (is allow_atomic on, nats-server >= 2.12?)",
                reply.count
            ))
            .into()),
            None => Ok(Some(reply.seq + 1 - total as u64)),
        }
    }
}

#[async_trait]
impl EventStore for NatsStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        if events.is_empty() {
            return Err(Error::Invalid("append of no events".into()));
        }
        if events.len() > MAX_EVENTS_PER_APPEND {
            return Err(Error::Invalid(format!(
                "append of {} events: at most {MAX_EVENTS_PER_APPEND} fit one JetStream atomic batch",
                events.len()
            )));
        }
        let mut ids = HashSet::with_capacity(events.len());
        if !events.iter().all(|e| ids.insert(e.id)) {
            return Err(Error::Invalid("the same event id twice in one append".into()));
        }
        let subject = self.inner.names.event_subject(stream);
        loop {
            let (last_seq, last_version) = self.last_of(&subject).await?;
            if !expected.matches(last_version) {
                return Err(Error::Conflict { stream: stream.clone(), expected, actual: last_version });
            }
            match self.publish_batch(stream, &subject, last_seq, last_version, &events).await? {
                Some(first) => {
                    let n = events.len() as u64;
                    return Ok(AppendResult {
                        first_version: last_version + 1,
                        last_version: last_version + n,
                        first_position: first,
                        last_position: first + n - 1,
                    });
                }
                None => {
                    // Either the stream moved (a concurrent append) or an id marker
                    // already exists (the stream did not move).
                    let (now_seq, now_version) = self.last_of(&subject).await?;
                    if now_seq == last_seq {
                        return Err(Error::Invalid(format!("an event id of this append is already stored ({stream})")));
                    }
                    if !expected.matches(now_version) {
                        return Err(Error::Conflict { stream: stream.clone(), expected, actual: now_version });
                    }
                }
            }
        }
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let from = from_version.max(1);
        let subject = self.inner.names.event_subject(stream);
        let (last_seq, last_version) = self.last_of(&subject).await?;
        if limit == 0 || from > last_version {
            return Ok(Vec::new());
        }
        let start = if from == 1 { 1 } else { self.seek(&subject, from, last_seq).await? };
        let msgs = self.scan(subject, start, limit).await?;
        let events = msgs.iter().map(decode_msg).collect::<Result<Vec<_>>>()?;
        Ok(events.into_iter().filter(|e| e.version >= from).collect())
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let msgs = self.scan(self.inner.names.all_events(), after_position.saturating_add(1), limit).await?;
        msgs.iter().map(decode_msg).collect()
    }

    async fn subscribe(&self, after_position: u64) -> Result<EventStream> {
        let consumer = self
            .events()
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.inner.names.all_events(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: after_position.saturating_add(1) },
                ..Default::default()
            })
            .await
            .map_err(transport("create subscription"))?;
        let messages = consumer.messages().await.map_err(transport("start subscription"))?;
        Ok(Box::pin(messages.map(|r| match r {
            Ok(m) => decode_msg(&m),
            Err(e) => Err(transport("subscription")(e)),
        })))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        Ok(self.last_of(&self.inner.names.event_subject(stream)).await?.1)
    }

    fn capabilities(&self) -> StoreCapabilities {
        if self.inner.durable {
            StoreCapabilities::durable_shared()
        } else {
            // Memory storage: shared between processes, lost when the server stops.
            let mut c = StoreCapabilities::durable_shared();
            c.durable = false;
            c
        }
    }
}
