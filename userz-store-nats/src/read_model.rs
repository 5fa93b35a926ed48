//! [`ReadModelStore`] on a KV-layout bucket whose stream allows atomic batches.
//!
//! Rows are keys `t.<token(table)>.<token(key)>`, checkpoints `c.<token(name)>`, in
//! the bucket `<prefix>_rm` (stream `KV_<prefix>_rm`, one message per key). A
//! commit is one JetStream atomic batch: the checkpoint move first, guarded by
//! `Nats-Expected-Last-Subject-Sequence` = the checkpoint's revision, then every
//! put and delete (KV delete markers). The server applies all of it or none, so
//! rows and their checkpoint never disagree and two runners cannot both apply a
//! batch. A commit holds at most [`MAX_OPS_PER_COMMIT`] distinct rows (the
//! server's 1,000-message batch cap).

use std::collections::BTreeMap;

use async_nats::header::HeaderMap;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::{self, stream::StorageType};
use async_trait::async_trait;
use bytes::Bytes;
use userz_core::ports::{ReadModelCommit, ReadModelOp, ReadModelStore};
use userz_core::{Error, Result};

use crate::error::{transport, NatsError};
use crate::events::{api, create_stream, scan_stream, storage_name, ERR_WRONG_LAST_SEQUENCE};
use crate::subject::{decode_token, encode_token, Names};
use crate::NatsStore;

/// Distinct rows one commit may change (one batch message is the checkpoint).
pub const MAX_OPS_PER_COMMIT: usize = 999;

#[derive(Debug)]
pub(crate) struct ReadModelState {
    stream: jetstream::stream::Stream,
    bucket: String,
}

pub(crate) async fn open(
    client: &async_nats::Client,
    js: &jetstream::Context,
    names: &Names,
    storage: StorageType,
    replicas: usize,
) -> Result<ReadModelState> {
    let bucket = names.read_model_bucket.clone();
    let stream_name = format!("KV_{bucket}");
    // The layout of a JetStream KV bucket (so `nats kv` tools can read it), plus
    // `allow_atomic`, which the client's KV config cannot set.
    create_stream(
        client,
        serde_json::json!({
            "name": stream_name,
            "subjects": [format!("$KV.{bucket}.>")],
            "retention": "limits",
            "storage": storage_name(storage),
            "num_replicas": replicas,
            "max_msgs_per_subject": 1,
            "discard": "new",
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": 0,
            "allow_direct": true,
            "allow_rollup_hdrs": true,
            "deny_delete": true,
            "allow_atomic": true,
        }),
    )
    .await?;
    let stream = js.get_stream(&stream_name).await.map_err(transport("open read-model bucket"))?;
    Ok(ReadModelState { stream, bucket })
}

fn is_delete(h: Option<&HeaderMap>) -> bool {
    h.and_then(|h| h.get("KV-Operation")).is_some_and(|v| v.as_str() == "DEL" || v.as_str() == "PURGE")
}

impl NatsStore {
    fn rm(&self) -> &ReadModelState {
        &self.inner.read_models
    }

    fn row_subject(&self, table: &str, key: &str) -> String {
        format!("$KV.{}.t.{}.{}", self.rm().bucket, encode_token(table), encode_token(key))
    }

    fn checkpoint_subject(&self, name: &str) -> String {
        format!("$KV.{}.c.{}", self.rm().bucket, encode_token(name))
    }

    /// `(revision, value)` of the last message on `subject`, if it is a live value.
    async fn last_value(&self, subject: &str) -> Result<Option<(u64, Option<Bytes>)>> {
        match self.rm().stream.direct_get_last_for_subject(subject).await {
            Ok(m) => {
                let live = !is_delete(Some(&m.headers));
                Ok(Some((m.sequence, live.then_some(m.payload))))
            }
            Err(e) if matches!(e.kind(), jetstream::stream::DirectGetErrorKind::NotFound) => Ok(None),
            Err(e) => Err(transport("read-model read")(e)),
        }
    }

    /// `(revision, position)` of a checkpoint; revision 0 when never written.
    async fn checkpoint_at(&self, name: &str) -> Result<(u64, u64)> {
        match self.last_value(&self.checkpoint_subject(name)).await? {
            Some((rev, Some(v))) => {
                let pos = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| NatsError::Corrupt(format!("checkpoint {name}")))?;
                Ok((rev, pos))
            }
            Some((rev, None)) => Ok((rev, 0)),
            None => Ok((0, 0)),
        }
    }
}

#[async_trait]
impl ReadModelStore for NatsStore {
    async fn checkpoint(&self, name: &str) -> Result<u64> {
        Ok(self.checkpoint_at(name).await?.1)
    }

    async fn commit(&self, commit: ReadModelCommit) -> Result<()> {
        // Later ops on a key replace earlier ones: one message per key.
        let mut rows: BTreeMap<String, Option<Bytes>> = BTreeMap::new();
        for op in commit.ops {
            match op {
                ReadModelOp::Put { table, key, value } => rows.insert(self.row_subject(&table, &key), Some(value)),
                ReadModelOp::Delete { table, key } => rows.insert(self.row_subject(&table, &key), None),
            };
        }
        if rows.len() > MAX_OPS_PER_COMMIT {
            return Err(Error::Invalid(format!(
                "read-model commit of {} rows: at most {MAX_OPS_PER_COMMIT} fit one JetStream atomic batch",
                rows.len()
            )));
        }
        let mut msgs: Vec<(String, HeaderMap, Bytes)> = Vec::with_capacity(rows.len() + 1);
        let mut guard = None;
        if let Some(cp) = &commit.checkpoint {
            let (rev, at) = self.checkpoint_at(&cp.name).await?;
            if at != cp.expected {
                return Err(Error::CheckpointConflict { name: cp.name.clone(), expected: cp.expected, actual: at });
            }
            let mut h = HeaderMap::new();
            h.insert("Nats-Expected-Last-Subject-Sequence", rev.to_string().as_str());
            msgs.push((self.checkpoint_subject(&cp.name), h, Bytes::from(cp.new.to_string())));
            guard = Some(cp.clone());
        }
        for (subject, value) in rows {
            let mut h = HeaderMap::new();
            let payload = match value {
                Some(v) => v,
                None => {
                    h.insert("KV-Operation", "DEL");
                    Bytes::new()
                }
            };
            msgs.push((subject, h, payload));
        }
        if msgs.is_empty() {
            return Ok(());
        }
        let batch = uuid::Uuid::new_v4().simple().to_string();
        let total = msgs.len();
        let mut reply = None;
        for (i, (subject, mut h, payload)) in msgs.into_iter().enumerate() {
            h.insert("Nats-Batch-Id", batch.as_str());
            h.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            if i + 1 == total {
                h.insert("Nats-Batch-Commit", "1");
                reply = Some(api(&self.inner.client, subject, Some(h), payload).await?);
            } else {
                self.inner
                    .client
                    .publish_with_headers(subject, h, payload)
                    .await
                    .map_err(transport("read-model publish"))?;
            }
        }
        let reply = reply.ok_or_else(|| Error::Invalid("empty commit".into()))?;
        match reply.error {
            None if reply.count == total as u64 => Ok(()),
            None => Err(NatsError::Corrupt(format!("atomic batch stored {} of {total} messages", reply.count)).into()),
            Some(e) if e.err_code == ERR_WRONG_LAST_SEQUENCE => {
                let (name, expected) = guard.map(|g| (g.name, g.expected)).unwrap_or_default();
                let actual = self.checkpoint(&name).await?;
                Err(Error::CheckpointConflict { name, expected, actual })
            }
            Some(e) => Err(NatsError::Api { code: e.err_code, description: e.description }.into()),
        }
    }

    async fn get(&self, table: &str, key: &str) -> Result<Option<Bytes>> {
        Ok(self.last_value(&self.row_subject(table, key)).await?.and_then(|(_, v)| v))
    }

    async fn scan(&self, table: &str, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<(String, Bytes)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Subjects hold encoded keys, whose order differs from the keys' byte
        // order, so read the table's latest values and sort the decoded keys.
        // O(table size) per call.
        let filter = format!("$KV.{}.t.{}.>", self.rm().bucket, encode_token(table));
        let msgs = scan_stream(&self.rm().stream, filter, DeliverPolicy::LastPerSubject, usize::MAX).await?;
        let mut rows = Vec::new();
        for m in msgs {
            if is_delete(m.headers.as_ref()) {
                continue;
            }
            let token = m.subject.rsplit('.').next().unwrap_or_default();
            let key = decode_token(token).ok_or_else(|| NatsError::Corrupt(format!("row key {token}")))?;
            if key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a) {
                rows.push((key, m.payload.clone()));
            }
        }
        rows.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        rows.truncate(limit);
        Ok(rows)
    }
}
