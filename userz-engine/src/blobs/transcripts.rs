//! Run transcripts into object storage (G18: full run logs live in blobs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use userz_core::ids::RunId;
use userz_core::ports::{BlobKey, Limits, Sandbox, SandboxOutcome, SandboxSpec};

use super::Blobs;

/// Wraps any [`Sandbox`]: after a run, the transcript the sandbox left on the
/// host (`SandboxOutcome::transcript_path`) is stored as the run's transcript
/// blob ([`BlobKey::run_transcript`]), the outcome names that key, and the host
/// file is deleted.
///
/// A failed upload does not fail the run: the outcome then carries no key and
/// the failure is logged (the run's events still hold its usage and timings).
#[derive(Debug, Clone)]
pub struct UploadTranscripts {
    inner: Arc<dyn Sandbox>,
    blobs: Blobs,
}

impl UploadTranscripts {
    /// Uploads the transcripts of `inner` through `blobs`.
    pub fn new(inner: Arc<dyn Sandbox>, blobs: Blobs) -> Self {
        Self { inner, blobs }
    }

    async fn upload(&self, spec: &SandboxSpec, path: &Path) -> Result<String, String> {
        let bytes = tokio::fs::read(path).await.map_err(|e| format!("local file: {e}"))?;
        let key = BlobKey::run_transcript(spec.org, spec.run);
        self.blobs.put(&key, Bytes::from(bytes)).await.map_err(|e| e.to_string())?;
        Ok(key.to_string())
    }
}

#[async_trait]
impl Sandbox for UploadTranscripts {
    async fn allocate_workspace(&self, run: RunId, limits: &Limits) -> userz_core::Result<PathBuf> {
        self.inner.allocate_workspace(run, limits).await
    }

    async fn run(&self, spec: &SandboxSpec) -> userz_core::Result<SandboxOutcome> {
        let mut outcome = self.inner.run(spec).await?;
        if let Some(path) = outcome.transcript_path.take() {
            match self.upload(spec, &path).await {
                Ok(key) => outcome.transcript = Some(key),
                Err(e) => tracing::warn!(run = %spec.run, error = %e, "transcript not stored"),
            }
            if let Err(e) = tokio::fs::remove_file(&path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(run = %spec.run, error = %e, "transcript file not removed");
                }
            }
        }
        Ok(outcome)
    }

    async fn release_workspace(&self, run: RunId) -> userz_core::Result<()> {
        self.inner.release_workspace(run).await
    }
}
