//! # userz-store-blob
//!
//! Object storage for the Userz engine: screenshots and full run transcripts
//! (DESIGN G18), kept 30 days unless marked for retention.
//!
//! - Storage is any [`object_store::ObjectStore`]; [`BlobStoreBuilder`] makes the
//!   three this project uses: the local filesystem (default), in-memory (tests)
//!   and S3 or an S3-compatible server.
//! - [`layout`] names keys per organization (`orgs/<org>/screenshots/<id>`,
//!   `orgs/<org>/runs/<run>/transcript.jsonl`).
//! - [`Blobs`] writes an object and records a `BlobStored` event for it; retention
//!   marks are `BlobRetained` / `BlobReleased` events of the same stream
//!   ([`userz_core::domain::blob`]).
//! - [`Sweeper`] deletes what aged out, recording `BlobDeleted` first.
//!
//! ```
//! # async fn demo() -> Result<(), userz_store_blob::Error> {
//! use std::sync::Arc;
//! use userz_engine::CommandBus;
//! use userz_core::ids::OrgId;
//! use userz_core::SystemClock;
//! use userz_store_blob::{layout, BlobStoreBuilder, Blobs, Sweeper};
//! use userz_store_memory::MemoryStores;
//!
//! let stores = MemoryStores::new(Arc::new(SystemClock));
//! let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
//! let store = BlobStoreBuilder::memory().build()?;
//! let blobs = Blobs::new(store.clone(), bus.clone(), Arc::new(SystemClock));
//! let org = OrgId::new();
//! blobs.put(org, &layout::screenshot(org, "shot-1.png")?, "png bytes".into()).await?;
//! let report = Sweeper::new(store, bus, Arc::new(SystemClock)).sweep().await?;
//! assert_eq!(report.deleted, 0); // nothing is 30 days old yet
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```

pub mod layout;
mod sweeper;
mod transcripts;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use userz_core::domain::blob::{BlobCommand, BlobDecider, BlobId};
use userz_core::domain::common::Actor;
use userz_core::ids::{CommandId, CorrelationId, OrgId};
use userz_core::Clock;
use userz_engine::{CommandBus, CommandError, CommandMeta};

pub use sweeper::{SweepReport, Sweeper, DEFAULT_MAX_AGE};
pub use transcripts::UploadTranscripts;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Recording a blob event failed (a rejection names its rule).
    #[error("blob event: {0}")]
    Command(#[from] CommandError),
    /// A name used in a key broke the layout's rules.
    #[error("{field}: {reason}")]
    InvalidName {
        /// Which name.
        field: &'static str,
        /// The rule.
        reason: &'static str,
    },
    /// The builder's settings are unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading a local file to upload failed.
    #[error("local file: {0}")]
    Io(String),
}

/// Settings of the S3 backend.
#[derive(Clone)]
struct S3Settings {
    bucket: String,
    region: String,
    endpoint: Option<String>,
    allow_http: bool,
    credentials: Option<(String, String)>,
}

#[derive(Clone)]
enum Backend {
    Local(PathBuf),
    Memory,
    S3(S3Settings),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(p) => f.debug_tuple("Local").field(p).finish(),
            Backend::Memory => f.write_str("Memory"),
            // Credentials stay out of logs.
            Backend::S3(s) => f
                .debug_struct("S3")
                .field("bucket", &s.bucket)
                .field("region", &s.region)
                .field("endpoint", &s.endpoint)
                .field("allow_http", &s.allow_http)
                .finish_non_exhaustive(),
        }
    }
}

/// Builds the object store blobs live in.
#[derive(Debug, Clone)]
pub struct BlobStoreBuilder {
    backend: Backend,
}

impl Default for BlobStoreBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlobStoreBuilder {
    /// The default: the local filesystem under `./blobs`.
    pub fn new() -> Self {
        Self::local("blobs")
    }

    /// Objects as files under `root` (created if missing).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self { backend: Backend::Local(root.into()) }
    }

    /// Objects in memory (tests, demos): gone when the process ends.
    pub fn memory() -> Self {
        Self { backend: Backend::Memory }
    }

    /// Objects in the S3 bucket `bucket` (region `us-east-1` unless set).
    /// Credentials come from [`with_credentials`](Self::with_credentials) or the
    /// usual `AWS_*` environment variables.
    pub fn s3(bucket: impl Into<String>) -> Self {
        Self {
            backend: Backend::S3(S3Settings {
                bucket: bucket.into(),
                region: "us-east-1".into(),
                endpoint: None,
                allow_http: false,
                credentials: None,
            }),
        }
    }

    /// From the environment: `USERZ_S3_BUCKET` selects S3 (with
    /// `USERZ_S3_ENDPOINT` for an S3-compatible server, which also switches to
    /// path-style requests and allows `http://` when the endpoint uses it);
    /// otherwise the local filesystem under `USERZ_BLOB_DIR` (default `./blobs`).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match var("USERZ_S3_BUCKET") {
            Some(bucket) => {
                let b = Self::s3(bucket);
                match var("USERZ_S3_ENDPOINT") {
                    Some(e) => b.with_endpoint(e),
                    None => b,
                }
            }
            None => Self::local(var("USERZ_BLOB_DIR").unwrap_or_else(|| "blobs".into())),
        }
    }

    /// An S3-compatible endpoint (`http://127.0.0.1:9000`): requests become
    /// path-style (`/<bucket>/<key>`), and `http://` is allowed when the endpoint
    /// uses it. Ignored by the other backends.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        if let Backend::S3(s) = &mut self.backend {
            let endpoint = endpoint.into();
            s.allow_http = endpoint.starts_with("http://");
            s.endpoint = Some(endpoint);
        }
        self
    }

    /// The S3 region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        if let Backend::S3(s) = &mut self.backend {
            s.region = region.into();
        }
        self
    }

    /// Static S3 credentials.
    pub fn with_credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        if let Backend::S3(s) = &mut self.backend {
            s.credentials = Some((access_key_id.into(), secret_access_key.into()));
        }
        self
    }

    /// Builds the store.
    pub fn build(self) -> Result<Arc<dyn ObjectStore>, Error> {
        Ok(match self.backend {
            Backend::Memory => Arc::new(InMemory::new()),
            Backend::Local(root) => {
                std::fs::create_dir_all(&root)
                    .map_err(|e| Error::Config(format!("cannot create {}: {e}", root.display())))?;
                Arc::new(LocalFileSystem::new_with_prefix(&root)?)
            }
            Backend::S3(s) => {
                // S3 refuses bucket names under 3 characters; say so before any request.
                if s.bucket.len() < 3 || s.bucket.len() > 63 {
                    return Err(Error::Config(format!("bucket name {:?} must be 3-63 characters", s.bucket)));
                }
                let mut b = AmazonS3Builder::from_env().with_bucket_name(&s.bucket).with_region(&s.region);
                if let Some(endpoint) = &s.endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(s.allow_http);
                }
                if let Some((id, secret)) = &s.credentials {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                }
                Arc::new(b.build()?)
            }
        })
    }
}

/// Writes blobs and records their events.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    bus: CommandBus,
    clock: Arc<dyn Clock>,
}

impl Blobs {
    /// Blobs in `store`, events through `bus`, times from `clock`.
    pub fn new(store: Arc<dyn ObjectStore>, bus: CommandBus, clock: Arc<dyn Clock>) -> Self {
        Self { store, bus, clock }
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Stores `bytes` at `key` (a [`layout`] key of `org`).
    ///
    /// The `BlobStored` event is recorded *before* the object is written: a crash
    /// in between leaves an event without an object, which the sweeper deletes in
    /// due course, rather than an object no event knows about.
    pub async fn put(&self, org: OrgId, key: &Path, bytes: Bytes) -> Result<(), Error> {
        let at = self.clock.now();
        let id = BlobId::for_key(key.as_ref());
        let cmd =
            BlobCommand::Record { org, key: key.to_string(), size: u64::try_from(bytes.len()).unwrap_or(u64::MAX), at };
        let meta = CommandMeta {
            command_id: CommandId::derived(id.0, &format!("record:{}", at.as_millis())),
            correlation_id: CorrelationId::new(),
        };
        self.bus.execute::<BlobDecider>(&CommandBus::stream::<BlobDecider>(id), meta, &cmd).await?;
        self.store.put(key, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Reads the object at `key`.
    pub async fn get(&self, key: &Path) -> Result<Bytes, Error> {
        Ok(self.store.get(key).await?.bytes().await?)
    }

    /// Marks the blob at `key` for retention (a `BlobRetained` event).
    pub async fn retain(&self, key: &Path, by: Actor) -> Result<(), Error> {
        self.command(key, BlobCommand::Retain { by }).await
    }

    /// Lifts the retention mark (a `BlobReleased` event).
    pub async fn release(&self, key: &Path, by: Actor) -> Result<(), Error> {
        self.command(key, BlobCommand::Release { by }).await
    }

    async fn command(&self, key: &Path, cmd: BlobCommand) -> Result<(), Error> {
        let stream = CommandBus::stream::<BlobDecider>(BlobId::for_key(key.as_ref()));
        self.bus.execute::<BlobDecider>(&stream, CommandMeta::new(), &cmd).await?;
        Ok(())
    }
}
