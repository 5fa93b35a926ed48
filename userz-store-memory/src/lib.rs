//! # userz-store-memory
//!
//! In-memory adapters for the Userz engine's storage ports: [`MemoryEventStore`],
//! [`MemoryCache`], [`MemoryWorkQueue`], [`MemoryReadModelStore`] and
//! [`MemoryBlobStore`]. They honour
//! the same contracts as the durable adapters (and pass the same conformance
//! suites) but keep nothing across a process restart. Use them for tests, demos
//! and embedding where durability is not needed.
//!
//! ```
//! use std::sync::Arc;
//! use userz_core::{SystemClock, StreamId, ExpectedVersion};
//! use userz_core::ports::EventStore;
//! use userz_store_memory::MemoryStores;
//!
//! # tokio_test_block_on(async {
//! let stores = MemoryStores::new(Arc::new(SystemClock));
//! let stream = StreamId::new("demo-1").unwrap();
//! assert_eq!(stores.events.stream_version(&stream).await.unwrap(), 0);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

mod blob;
mod cache;
mod event_store;
mod queue;
mod read_model;

use std::sync::Arc;

use userz_core::Clock;

pub use blob::MemoryBlobStore;
pub use cache::MemoryCache;
pub use event_store::MemoryEventStore;
pub use queue::MemoryWorkQueue;
pub use read_model::MemoryReadModelStore;

/// All the memory adapters sharing one clock.
#[derive(Debug, Clone)]
pub struct MemoryStores {
    /// Event store.
    pub events: Arc<MemoryEventStore>,
    /// Cache.
    pub cache: Arc<MemoryCache>,
    /// Work queue.
    pub queue: Arc<MemoryWorkQueue>,
    /// Read models.
    pub read_models: Arc<MemoryReadModelStore>,
    /// Blobs.
    pub blobs: Arc<MemoryBlobStore>,
}

impl MemoryStores {
    /// Fresh, empty stores.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            events: Arc::new(MemoryEventStore::new(clock.clone())),
            cache: Arc::new(MemoryCache::new(clock.clone())),
            queue: Arc::new(MemoryWorkQueue::new(clock.clone())),
            read_models: Arc::new(MemoryReadModelStore::new()),
            blobs: Arc::new(MemoryBlobStore::new(clock)),
        }
    }
}
