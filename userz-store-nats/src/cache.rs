//! [`Cache`] on a JetStream KV bucket.
//!
//! Each key holds one message on `$KV.<bucket>.<token(key)>` (history 1). Its value
//! is an 8-byte big-endian expiry (milliseconds since the epoch on the adapter's
//! clock, 0 = none) followed by the user's bytes. The message also carries
//! `Nats-TTL` (whole seconds, rounded up), so the server drops it eventually;
//! the stored expiry makes reads exact in between. Conditional writes use
//! `Nats-Expected-Last-Subject-Sequence` (the KV revision), so `set_if_absent`
//! and `incr` are atomic compare-and-set loops.

use std::time::Duration;

use async_nats::header::HeaderMap;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream::StorageType};
use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use userz_core::ports::Cache;
use userz_core::{Error, Result, Timestamp};

use crate::error::{transport, NatsError};
use crate::events::{api, ERR_WRONG_LAST_SEQUENCE};
use crate::subject::{encode_token, Names};
use crate::NatsStore;

#[derive(Debug)]
pub(crate) struct CacheState {
    kv: kv::Store,
    bucket: String,
}

pub(crate) async fn open(
    js: &jetstream::Context,
    names: &Names,
    storage: StorageType,
    replicas: usize,
) -> Result<CacheState> {
    let kv = js
        .create_key_value(kv::Config {
            bucket: names.cache_bucket.clone(),
            history: 1,
            storage,
            num_replicas: replicas,
            // Turns on per-message TTLs (`allow_msg_ttl`, nats-server 2.11+).
            limit_markers: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .map_err(transport("open cache bucket"))?;
    Ok(CacheState { kv, bucket: names.cache_bucket.clone() })
}

/// A live value, or why there is none.
enum Slot {
    /// No message, or a delete marker, at this revision (0 = never written).
    Absent(u64),
    /// Present but past its expiry.
    Expired(u64),
    /// Live: expiry (0 = none), value, revision.
    Live(i64, Bytes, u64),
}

fn envelope(expires: i64, value: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + value.len());
    b.put_i64(expires);
    b.put_slice(value);
    b.freeze()
}

/// Either the write landed, or the key moved underneath (retry).
enum Cas {
    Done,
    Moved,
}

impl NatsStore {
    fn key(&self, key: &str) -> String {
        // `k` keeps encoded keys clear of KV's reserved `_kv` names.
        format!("k{}", encode_token(key))
    }

    fn expiry(&self, ttl: Option<Duration>) -> i64 {
        ttl.map_or(0, |t| (self.inner.clock.now() + t).as_millis())
    }

    async fn slot(&self, key: &str) -> Result<Slot> {
        let entry = self.inner.cache.kv.entry(key).await.map_err(transport("cache read"))?;
        let Some(e) = entry else { return Ok(Slot::Absent(0)) };
        if e.operation != Operation::Put {
            return Ok(Slot::Absent(e.revision));
        }
        if e.value.len() < 8 {
            return Err(NatsError::Corrupt(format!("cache value of {} bytes", e.value.len())).into());
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&e.value[..8]);
        let exp = i64::from_be_bytes(exp);
        if exp != 0 && self.inner.clock.now() >= Timestamp::from_millis(exp) {
            return Ok(Slot::Expired(e.revision));
        }
        Ok(Slot::Live(exp, e.value.slice(8..), e.revision))
    }

    /// Writes `value` with expiry `expires`; with `expect`, only if the key's last
    /// revision is still that (0: never written).
    async fn write(&self, key: &str, expires: i64, value: &[u8], expect: Option<u64>) -> Result<Cas> {
        let mut h = HeaderMap::new();
        if let Some(rev) = expect {
            h.insert("Nats-Expected-Last-Subject-Sequence", rev.to_string().as_str());
        }
        if expires != 0 {
            let left_ms = expires.saturating_sub(self.inner.clock.now().as_millis()).max(1);
            let secs = (left_ms + 999) / 1000;
            h.insert("Nats-TTL", format!("{secs}s").as_str());
        }
        let subject = format!("$KV.{}.{key}", self.inner.cache.bucket);
        let reply = api(&self.inner.client, subject, Some(h), envelope(expires, value)).await?;
        match reply.error {
            None => Ok(Cas::Done),
            Some(e) if e.err_code == ERR_WRONG_LAST_SEQUENCE => Ok(Cas::Moved),
            Some(e) => Err(NatsError::Api { code: e.err_code, description: e.description }.into()),
        }
    }
}

#[async_trait]
impl Cache for NatsStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.slot(&self.key(key)).await? {
            Slot::Live(_, v, _) => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        match self.write(&self.key(key), self.expiry(ttl), &value, None).await? {
            Cas::Done => Ok(()),
            Cas::Moved => Err(Error::Unavailable("unconditional cache write refused".into())),
        }
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let k = self.key(key);
        loop {
            let rev = match self.slot(&k).await? {
                Slot::Live(..) => return Ok(false),
                Slot::Absent(rev) | Slot::Expired(rev) => rev,
            };
            if let Cas::Done = self.write(&k, self.expiry(ttl), &value, Some(rev)).await? {
                return Ok(true);
            }
        }
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let k = self.key(key);
        loop {
            let (current, expires, rev) = match self.slot(&k).await? {
                Slot::Live(exp, v, rev) => {
                    let text =
                        std::str::from_utf8(&v).map_err(|_| Error::Invalid(format!("{key} is not a counter")))?;
                    let n: i64 = text.parse().map_err(|_| Error::Invalid(format!("{key} is not a counter")))?;
                    (n, exp, rev)
                }
                Slot::Absent(rev) | Slot::Expired(rev) => (0, self.expiry(ttl), rev),
            };
            let new =
                current.checked_add(delta).ok_or_else(|| Error::Invalid(format!("counter {key} would overflow")))?;
            if let Cas::Done = self.write(&k, expires, new.to_string().as_bytes(), Some(rev)).await? {
                return Ok(new);
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let k = self.key(key);
        loop {
            let (live, rev) = match self.slot(&k).await? {
                Slot::Absent(_) => return Ok(false),
                Slot::Expired(rev) => (false, rev),
                Slot::Live(_, _, rev) => (true, rev),
            };
            // A KV delete marker, written only if the key did not move meanwhile.
            let mut h = HeaderMap::new();
            h.insert("KV-Operation", "DEL");
            h.insert("Nats-Expected-Last-Subject-Sequence", rev.to_string().as_str());
            let subject = format!("$KV.{}.{k}", self.inner.cache.bucket);
            let reply = api(&self.inner.client, subject, Some(h), Bytes::new()).await?;
            match reply.error {
                None => return Ok(live),
                Some(e) if e.err_code == ERR_WRONG_LAST_SEQUENCE => continue,
                Some(e) => return Err(NatsError::Api { code: e.err_code, description: e.description }.into()),
            }
        }
    }
}
