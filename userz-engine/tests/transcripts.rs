//! Transcripts a sandbox leaves on the host end up in object storage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use userz_core::ids::{OrgId, RunId};
use userz_core::ports::{BlobKey, BlobStore, Limits, Sandbox, SandboxExit, SandboxOutcome, SandboxSpec, Workspace};
use userz_engine::blobs::{Blobs, UploadTranscripts};
use userz_engine::CommandBus;
use userz_store_memory::{MemoryBlobStore, MemoryStores};
use userz_testkit::ManualClock;

/// Leaves a transcript file behind, like a real sandbox adapter.
#[derive(Debug)]
struct Leaves(PathBuf);

#[async_trait]
impl Sandbox for Leaves {
    async fn allocate_workspace(&self, _run: RunId, _limits: &Limits) -> userz_core::Result<PathBuf> {
        Ok(PathBuf::new())
    }
    async fn run(&self, _spec: &SandboxSpec) -> userz_core::Result<SandboxOutcome> {
        std::fs::write(&self.0, "{\"type\":\"stopped\"}\n").unwrap();
        Ok(SandboxOutcome { transcript_path: Some(self.0.clone()), ..SandboxOutcome::new(SandboxExit::Completed) })
    }
    async fn release_workspace(&self, _run: RunId) -> userz_core::Result<()> {
        Ok(())
    }
}

fn spec(org: OrgId, run: RunId) -> SandboxSpec {
    SandboxSpec {
        run,
        org,
        workspace: Workspace { run, path: PathBuf::new(), branch: "userz/x".into(), base_commit: "b".into() },
        system_prompt: String::new(),
        prompt: String::new(),
        limits: Limits::default(),
        egress_allowlist: vec![],
        model_key: None,
    }
}

#[tokio::test]
async fn transcript_is_stored_under_the_runs_key_and_the_host_file_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("transcript.jsonl");
    let clock = Arc::new(ManualClock::at_2026());
    let stores = MemoryStores::new(clock.clone());
    let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
    let store = Arc::new(MemoryBlobStore::new(clock.clone()));
    let sandbox = UploadTranscripts::new(Arc::new(Leaves(file.clone())), Blobs::new(store.clone(), bus, clock));
    let (org, run) = (OrgId::new(), RunId::new());
    let outcome = sandbox.run(&spec(org, run)).await.unwrap();
    let key = BlobKey::run_transcript(org, run);
    assert_eq!(outcome.transcript.as_deref(), Some(key.as_str()));
    assert!(outcome.transcript_path.is_none());
    let stored = store.get(&key, None).await.unwrap().unwrap();
    assert_eq!(&stored[..], b"{\"type\":\"stopped\"}\n");
    assert!(!file.exists(), "host copy removed");

    // A missing file is logged, not fatal: the run's outcome stands without a key.
    #[derive(Debug)]
    struct Gone;
    #[async_trait]
    impl Sandbox for Gone {
        async fn allocate_workspace(&self, _r: RunId, _l: &Limits) -> userz_core::Result<PathBuf> {
            Ok(PathBuf::new())
        }
        async fn run(&self, _s: &SandboxSpec) -> userz_core::Result<SandboxOutcome> {
            Ok(SandboxOutcome {
                transcript_path: Some(PathBuf::from("/nonexistent/t.jsonl")),
                ..SandboxOutcome::new(SandboxExit::Completed)
            })
        }
        async fn release_workspace(&self, _r: RunId) -> userz_core::Result<()> {
            Ok(())
        }
    }
    let clock = Arc::new(ManualClock::at_2026());
    let stores = MemoryStores::new(clock.clone());
    let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
    let sandbox =
        UploadTranscripts::new(Arc::new(Gone), Blobs::new(Arc::new(MemoryBlobStore::new(clock.clone())), bus, clock));
    let outcome = sandbox.run(&spec(org, RunId::new())).await.unwrap();
    assert_eq!(outcome.exit, SandboxExit::Completed);
    assert!(outcome.transcript.is_none());
}
