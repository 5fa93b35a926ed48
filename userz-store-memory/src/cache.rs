use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use userz_core::ports::Cache;
use userz_core::{Clock, Error, Result, Timestamp};

/// In-memory [`Cache`] with TTLs measured on the given clock.
#[derive(Debug)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Bytes, Option<Timestamp>)>>,
    clock: Arc<dyn Clock>,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { entries: Mutex::new(HashMap::new()), clock }
    }

    fn live<'a>(
        map: &'a mut HashMap<String, (Bytes, Option<Timestamp>)>,
        key: &str,
        now: Timestamp,
    ) -> Option<&'a mut (Bytes, Option<Timestamp>)> {
        let expired = matches!(map.get(key), Some((_, Some(exp))) if *exp <= now);
        if expired {
            map.remove(key);
        }
        map.get_mut(key)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let now = self.clock.now();
        let mut m = self.entries.lock();
        Ok(Self::live(&mut m, key, now).map(|(v, _)| v.clone()))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let now = self.clock.now();
        self.entries.lock().insert(key.to_string(), (value, ttl.map(|t| now + t)));
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        let now = self.clock.now();
        let mut m = self.entries.lock();
        if Self::live(&mut m, key, now).is_some() {
            return Ok(false);
        }
        m.insert(key.to_string(), (value, ttl.map(|t| now + t)));
        Ok(true)
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        let now = self.clock.now();
        let mut m = self.entries.lock();
        if let Some((v, _)) = Self::live(&mut m, key, now) {
            let cur: i64 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::Invalid(format!("{key} is not a counter")))?;
            let next = cur.checked_add(delta).ok_or_else(|| Error::Invalid(format!("{key} overflows")))?;
            *v = Bytes::from(next.to_string());
            return Ok(next);
        }
        m.insert(key.to_string(), (Bytes::from(delta.to_string()), ttl.map(|t| now + t)));
        Ok(delta)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let now = self.clock.now();
        let mut m = self.entries.lock();
        let live = Self::live(&mut m, key, now).is_some();
        m.remove(key);
        Ok(live)
    }
}
