//! The engine's storage, selected by configuration: `[store] kind = "sqlite" |
//! "postgres" | "nats"` and `[cache] kind = "store" | "redis" | "memory"`.
//!
//! Every choice yields the same four ports ([`EventStore`], [`ReadModelStore`],
//! [`WorkQueue`], [`Cache`]) as trait objects, so nothing after this module
//! knows which engine it runs on. A store that cannot be reached stops start-up
//! with an error naming the setting.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use userz_core::ports::{BlobKey, BlobStore, Cache, EventStore, RateLimiter, ReadModelStore, WorkQueue};
use userz_core::Clock;

use crate::config::{BlobKind, CacheKind, Config, RateLimitKind, StoreKind};
use crate::ServerError;

/// The SQLite file in the data directory (the embedded default).
pub const DB_FILE: &str = "userz.db";

/// The storage ports the engine, the HTTP layer and the dashboard share.
#[derive(Clone)]
pub struct Stores {
    /// Which store the events live in.
    pub kind: StoreKind,
    /// The event log.
    pub events: Arc<dyn EventStore>,
    /// Read models and projection checkpoints.
    pub read_models: Arc<dyn ReadModelStore>,
    /// Sanitize and run jobs.
    pub queue: Arc<dyn WorkQueue>,
    /// Sessions, upload tickets, replay guard.
    pub cache: Arc<dyn Cache>,
    /// Screenshots, attachments, run transcripts.
    pub blobs: Arc<dyn BlobStore>,
    /// The API's token buckets.
    pub rate_limiter: Arc<dyn RateLimiter>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// What a store offers: events, read models, queue, and its own cache if any.
type Opened = (Arc<dyn EventStore>, Arc<dyn ReadModelStore>, Arc<dyn WorkQueue>, Option<Arc<dyn Cache>>);

/// The SQLite file a configuration uses.
pub fn sqlite_path(config: &Config) -> PathBuf {
    config.store.path.clone().unwrap_or_else(|| config.data_dir.join(DB_FILE))
}

fn unreachable(field: &'static str, what: &str, e: impl fmt::Display) -> ServerError {
    ServerError::Setup(format!("{field}: cannot open the {what}: {e}"))
}

impl Stores {
    /// Opens (and, where needed, creates) the configured store and cache.
    pub async fn open(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, ServerError> {
        let url = config.store_url()?;
        let namespace = config.store.namespace.clone().unwrap_or_else(|| "userz".into());
        let (events, read_models, queue, own_cache): Opened = match config.store.kind {
            StoreKind::Sqlite => {
                let path = sqlite_path(config);
                let s = userz_store_sqlite::SqliteStoreBuilder::new(&path)
                    .with_clock(clock.clone())
                    .build()
                    .await
                    .map_err(|e| unreachable("store.path", &format!("SQLite store at {}", path.display()), e))?;
                let s = Arc::new(s);
                (s.clone(), s.clone(), s.clone(), Some(s))
            }
            StoreKind::Postgres => {
                // Invariant: store_url() returns Some for every networked kind.
                let url = url.ok_or_else(|| ServerError::Setup("store.url: missing".into()))?;
                let s = userz_store_postgres::PgStoreBuilder::new(url)
                    .with_schema(namespace)
                    .with_clock(clock.clone())
                    .build()
                    .await
                    .map_err(|e| unreachable("store.url", "PostgreSQL store", e))?;
                let s = Arc::new(s);
                (s.clone(), s.clone(), s, None)
            }
            StoreKind::Nats => {
                let url = url.ok_or_else(|| ServerError::Setup("store.url: missing".into()))?;
                let mut b =
                    userz_store_nats::NatsStoreBuilder::new(url).with_prefix(namespace).with_clock(clock.clone());
                if let Some(n) = config.store.replicas {
                    b = b.with_replicas(n);
                }
                let s = b.build().await.map_err(|e| unreachable("store.url", "NATS JetStream store", e))?;
                let s = Arc::new(s);
                (s.clone(), s.clone(), s.clone(), Some(s))
            }
        };
        let cache: Arc<dyn Cache> = match config.cache.kind {
            CacheKind::Store => own_cache.ok_or_else(|| {
                ServerError::Setup(format!(
                    "cache.kind: the {} store has no cache; set cache.kind = \"redis\" or \"memory\"",
                    config.store.kind.as_str()
                ))
            })?,
            CacheKind::Memory => Arc::new(userz_store_memory::MemoryCache::new(clock.clone())),
            CacheKind::Redis => {
                let url = config.cache_url()?.ok_or_else(|| ServerError::Setup("cache.url: missing".into()))?;
                let c = userz_store_redis::RedisCacheBuilder::new(url)
                    .build()
                    .await
                    .map_err(|e| unreachable("cache.url", "Redis cache", e))?;
                Arc::new(c)
            }
        };
        let blobs: Arc<dyn BlobStore> = {
            let b = &config.blobs;
            let builder = match b.kind {
                BlobKind::Fs => userz_store_blob::BlobStoreBuilder::local(
                    b.path.clone().unwrap_or_else(|| config.data_dir.join("blobs")),
                ),
                BlobKind::Memory => userz_store_blob::BlobStoreBuilder::memory(),
                BlobKind::S3 => {
                    let mut s3 = userz_store_blob::BlobStoreBuilder::s3(b.bucket.clone().unwrap_or_default());
                    if let Some(e) = &b.endpoint {
                        s3 = s3.with_endpoint(e.clone());
                    }
                    if let Some(r) = &b.region {
                        s3 = s3.with_region(r.clone());
                    }
                    s3
                }
            };
            let field = if b.kind == BlobKind::S3 { "blobs.bucket" } else { "blobs.path" };
            let store: Arc<dyn BlobStore> = Arc::new(builder.build().map_err(|e| unreachable(field, "blob store", e))?);
            if b.kind == BlobKind::S3 {
                // Building an S3 client contacts nothing: ask for one object
                // now, so a wrong endpoint, bucket or credentials stop start-up
                // here rather than failing the first upload. Absent is fine.
                let probe =
                    BlobKey::run_transcript(userz_core::ids::OrgId(uuid_nil()), userz_core::ids::RunId(uuid_nil()));
                store.head(&probe).await.map_err(|e| unreachable(field, "S3 bucket", e))?;
            }
            store
        };
        let rate_limiter: Arc<dyn RateLimiter> = match config.rate_limits.kind {
            RateLimitKind::Local => Arc::new(userz_engine::LocalRateLimiter::new(clock.clone())),
            RateLimitKind::Redis => {
                let url =
                    config.rate_limit_url()?.ok_or_else(|| ServerError::Setup("rate_limits.url: missing".into()))?;
                let c = userz_store_redis::RedisCacheBuilder::new(url)
                    .build()
                    .await
                    .map_err(|e| unreachable("rate_limits.url", "Redis rate limiter", e))?;
                Arc::new(c.rate_limiter().with_clock(clock.clone()))
            }
        };
        Ok(Self { kind: config.store.kind, events, read_models, queue, cache, blobs, rate_limiter })
    }

    /// Whether the event log is empty (a new deployment).
    pub async fn is_empty(&self) -> Result<bool, ServerError> {
        Ok(self.events.read_all(0, 1).await?.is_empty())
    }
}

/// The all-zero id: names no real org or run.
fn uuid_nil() -> uuid::Uuid {
    uuid::Uuid::nil()
}
