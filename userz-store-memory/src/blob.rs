use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use userz_core::ports::blob::{self, BlobCapabilities, BlobKey, BlobListing, BlobMeta, BlobStore};
use userz_core::{Clock, Result, Timestamp};

/// In-memory [`BlobStore`]; write times come from the given clock.
#[derive(Debug)]
pub struct MemoryBlobStore {
    objects: Mutex<BTreeMap<String, (Bytes, Timestamp)>>,
    clock: Arc<dyn Clock>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { objects: Mutex::new(BTreeMap::new()), clock }
    }
}

fn meta(key: &str, bytes: &Bytes, at: Timestamp) -> BlobMeta {
    BlobMeta { key: key.to_owned(), size: bytes.len() as u64, last_modified: at }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<()> {
        let now = self.clock.now();
        self.objects.lock().insert(key.as_str().to_owned(), (bytes, now));
        Ok(())
    }

    async fn get(&self, key: &BlobKey, limit: Option<u64>) -> Result<Option<Bytes>> {
        Ok(self.objects.lock().get(key.as_str()).map(|(b, _)| match limit {
            Some(n) => b.slice(..usize::try_from(n).unwrap_or(usize::MAX).min(b.len())),
            None => b.clone(),
        }))
    }

    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>> {
        Ok(self.objects.lock().get(key.as_str()).map(|(b, at)| meta(key.as_str(), b, *at)))
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        self.objects.lock().remove(key.as_str());
        Ok(())
    }

    fn list(&self, prefix: &str) -> BlobListing {
        let trimmed = prefix.trim_end_matches('/');
        if !trimmed.is_empty() && !blob::is_canonical(trimmed) {
            return blob::invalid_prefix(prefix);
        }
        let found: Vec<Result<BlobMeta>> = self
            .objects
            .lock()
            .iter()
            .filter(|(k, _)| blob::is_under(k, trimmed))
            .map(|(k, (b, at))| Ok(meta(k, b, *at)))
            .collect();
        Box::pin(futures::stream::iter(found))
    }

    fn capabilities(&self) -> BlobCapabilities {
        BlobCapabilities::in_memory()
    }
}
