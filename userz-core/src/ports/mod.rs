//! Port traits: what the engine needs from the outside world.
//!
//! Each trait documents its contract in a `# Contract` section; every adapter
//! proves it with the conformance suites of `userz-testkit`. Ports are
//! object-safe and used as `Arc<dyn Port>`.

pub mod blob;
pub mod cache;
pub mod classifier;
pub mod embedder;
pub mod event_store;
pub mod key_provider;
pub mod model;
pub mod rate_limit;
pub mod read_model;
pub mod review_payloads;
pub mod sandbox;
pub mod vcs;
pub mod work_queue;

pub use blob::{BlobCapabilities, BlobKey, BlobListing, BlobMeta, BlobStore};
pub use cache::Cache;
pub use classifier::{Classification, Classifier, ClassifierInput, Label, SignalRecord};
pub use embedder::{cosine, Embedder};
pub use event_store::{catch_up_subscription, AppendResult, EventStore, EventStoreExt, EventStream, StoreCapabilities};
pub use key_provider::{KeyProvider, WrappedKey};
pub use model::{ChatMessage, Completion, CompletionRequest, ModelProvider, Role, StopReason, ToolCall, ToolSpec};
pub use rate_limit::{RateDecision, RateLimit, RateLimiter, RateLimiterCapabilities};
pub use read_model::{CheckpointMove, ReadModelCommit, ReadModelOp, ReadModelStore};
pub use review_payloads::{InboundChange, InboundPrNotice, RepositoryRef, ReviewPayloads};
pub use sandbox::{EgressRecord, Limits, ResourceUsage, Sandbox, SandboxExit, SandboxOutcome, SandboxSpec, Usage};
pub use vcs::{
    provider_kind, ByKindResolver, ChangeReader, PrRef, PrRequest, PushedBranch, RepoTarget, VcsCapabilities,
    VcsProvider, VcsResolver, VcsRouter, Workspace,
};
pub use work_queue::{ClaimedJob, Enqueued, LeaseToken, NewJob, WorkQueue};
