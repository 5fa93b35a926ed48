//! The HTTP layer reads the engine's directory (`userz_engine::directory`:
//! keys, Apps, signing-secret versions, repositories by provider), which the
//! engine's supervisor keeps up to date; this module adds the webhook
//! endpoints' repository lookup over it.

use async_trait::async_trait;
use userz_core::ids::RepoId;
use userz_core::ports::ReadModelStore;
use userz_core::Result;

pub use userz_engine::directory::*;

/// [`crate::webhooks::RepoDirectory`] over the directory's repository index.
#[derive(Debug, Clone)]
pub struct DirectoryRepos {
    read_models: std::sync::Arc<dyn ReadModelStore>,
}

impl DirectoryRepos {
    /// Looks repositories up in `read_models` (the engine's directory projection must run).
    pub fn new(read_models: std::sync::Arc<dyn ReadModelStore>) -> Self {
        Self { read_models }
    }
}

#[async_trait]
impl crate::webhooks::RepoDirectory for DirectoryRepos {
    async fn find(
        &self,
        provider: &'static str,
        repository: &userz_engine::review::RepositoryRef,
    ) -> Result<Option<RepoId>> {
        repo_by_provider(self.read_models.as_ref(), provider, &repository.full_name, repository.id).await
    }
}
