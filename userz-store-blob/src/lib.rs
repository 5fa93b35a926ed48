//! # userz-store-blob
//!
//! The [`BlobStore`] port on the [`object_store`] crate: screenshots and full
//! run transcripts (DESIGN G18) on the local filesystem (default), in memory
//! (tests) or in S3 or an S3-compatible server. [`BlobStoreBuilder`] makes the
//! store; [`ObjectBlobStore`] adapts any [`ObjectStore`] to the port.
//!
//! Keys are [`BlobKey`]s (`orgs/<org>/…`, checked by `userz-core`); the blob
//! events, the retention sweeper and the transcript upload live in
//! `userz_engine::blobs` over the port.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use userz_core::ids::OrgId;
//! use userz_core::ports::{BlobKey, BlobStore};
//! use userz_store_blob::BlobStoreBuilder;
//!
//! let store = BlobStoreBuilder::memory().build()?;
//! let key = BlobKey::screenshot(OrgId::new(), "shot-1.png")?;
//! store.put(&key, "png bytes".into()).await?;
//! assert_eq!(store.get(&key, Some(3)).await?.as_deref(), Some(&b"png"[..]));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutPayload};
use userz_core::ports::blob::{self, BlobCapabilities, BlobKey, BlobListing, BlobMeta, BlobStore};
use userz_core::Timestamp;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The builder's settings are unusable.
    #[error("configuration: {0}")]
    Config(String),
}

impl From<Error> for userz_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(e) => store_error(e),
            Error::Config(m) => userz_core::Error::Invalid(m),
        }
    }
}

/// The port's error for an object store failure.
fn store_error(e: object_store::Error) -> userz_core::Error {
    use object_store::Error as E;
    match e {
        E::NotFound { path, .. } => userz_core::Error::NotFound(format!("blob {path}")),
        E::InvalidPath { source } => userz_core::Error::Invalid(source.to_string()),
        E::NotSupported { source } => userz_core::Error::Unsupported(source.to_string()),
        E::NotImplemented => userz_core::Error::Unsupported("not implemented by this object store".into()),
        other => userz_core::Error::Unavailable(other.to_string()),
    }
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
    ///
    /// # Errors
    /// [`Error::Config`] for unusable settings, [`Error::Store`] when the backend refuses them.
    pub fn build(self) -> Result<ObjectBlobStore, Error> {
        let durable = !matches!(self.backend, Backend::Memory);
        Ok(ObjectBlobStore { store: self.build_object_store()?, durable })
    }

    /// Builds the underlying [`ObjectStore`] (for tools that need the raw store).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_object_store(self) -> Result<Arc<dyn ObjectStore>, Error> {
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

/// The [`BlobStore`] port on any [`ObjectStore`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    durable: bool,
}

impl ObjectBlobStore {
    /// The port over `store`, whose objects outlive the process (a filesystem,
    /// a bucket); see [`in_memory`](Self::in_memory) for the other kind.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store, durable: true }
    }

    /// The port over a fresh [`InMemory`] store.
    pub fn in_memory() -> Self {
        Self { store: Arc::new(InMemory::new()), durable: false }
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

/// The object store path of `key`. `BlobKey`s are canonical in the sense of
/// [`Path::parse`] (no empty, `.` or `..` segments, no control characters), so
/// the object lands at exactly the key's text, never a percent-encoded variant.
fn path(key: &BlobKey) -> userz_core::Result<Path> {
    Path::parse(key.as_str()).map_err(|e| userz_core::Error::Invalid(e.to_string()))
}

fn meta(m: ObjectMeta) -> BlobMeta {
    BlobMeta {
        key: m.location.to_string(),
        size: m.size,
        last_modified: Timestamp::from_millis(m.last_modified.timestamp_millis()),
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> userz_core::Result<()> {
        self.store.put(&path(key)?, PutPayload::from(bytes)).await.map_err(store_error)?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey, limit: Option<u64>) -> userz_core::Result<Option<Bytes>> {
        let location = path(key)?;
        let found = match limit {
            None => match self.store.get(&location).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            },
            // A ranged read of an empty object (or of zero bytes) is refused by
            // some backends, so the size is asked first.
            Some(n) => match self.store.head(&location).await {
                Ok(m) if m.size == 0 || n == 0 => Ok(Bytes::new()),
                Ok(m) => self.store.get_range(&location, 0..n.min(m.size)).await,
                Err(e) => Err(e),
            },
        };
        match found {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn head(&self, key: &BlobKey) -> userz_core::Result<Option<BlobMeta>> {
        match self.store.head(&path(key)?).await {
            Ok(m) => Ok(Some(meta(m))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> userz_core::Result<()> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    fn list(&self, prefix: &str) -> BlobListing {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Box::pin(self.store.list(None).map(|r| r.map(meta).map_err(store_error)));
        }
        if !blob::is_canonical(trimmed) {
            return blob::invalid_prefix(prefix);
        }
        let Ok(p) = Path::parse(trimmed) else { return blob::invalid_prefix(prefix) };
        Box::pin(self.store.list(Some(&p)).map(|r| r.map(meta).map_err(store_error)))
    }

    fn capabilities(&self) -> BlobCapabilities {
        if self.durable {
            BlobCapabilities::durable()
        } else {
            BlobCapabilities::in_memory()
        }
    }
}
