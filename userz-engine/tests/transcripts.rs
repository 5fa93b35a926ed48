//! The transcript a sandbox returns is stored by the engine through the
//! `BlobStore` port as the run's transcript blob (G18: full run logs live in
//! object storage), and the run records its key; without a blob store the run
//! records none and still completes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::feedback::FeedbackStatus;
use userz_core::domain::run::RunStatus;
use userz_core::ports::{BlobKey, BlobStore};
use userz_engine::blobs::Blobs;
use userz_engine::{CommandBus, Engine, EngineDeps};
use userz_store_memory::{MemoryBlobStore, MemoryStores};
use userz_testkit::doubles::{ScriptedClassifier, ScriptedRepoHost, ScriptedSandbox};
use userz_testkit::scenarios::{seed, submit, test_config, wait_run, wait_status};
use userz_testkit::ManualClock;

async fn run_once(
    with_blobs: bool,
) -> (Option<String>, Option<Arc<MemoryBlobStore>>, userz_core::ids::OrgId, userz_core::ids::RunId) {
    let clock = Arc::new(ManualClock::at_2026());
    let stores = MemoryStores::new(clock.clone());
    let host = ScriptedRepoHost::new();
    let objects = Arc::new(MemoryBlobStore::new(clock.clone()));
    let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: clock.clone(),
        classifier: ScriptedClassifier::new(),
        sandbox: ScriptedSandbox::new(host.clone()),
        vcs: host.clone(),
        changes: host.clone(),
        envelope: None,
        blobs: with_blobs.then(|| Blobs::new(objects.clone(), bus, clock.clone())),
    };
    let engine = Engine::start(deps, test_config());
    let s = seed(engine.bus(), ProcessingMode::AutoPr, Dedup::Off).await;
    let fb = submit(&engine, &s, "The save button does nothing").await;
    let summary = wait_status(stores.read_models.as_ref(), s.org, fb, FeedbackStatus::PrOpened).await;
    let run = summary.latest_run.expect("a run is linked");
    let detail = wait_run(stores.read_models.as_ref(), s.org, run, RunStatus::PrOpened).await;
    engine.shutdown();
    (detail.transcript, with_blobs.then_some(objects), s.org, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stores_the_returned_transcript_under_the_runs_key() {
    let (recorded, objects, org, run) = run_once(true).await;
    let key = BlobKey::run_transcript(org, run);
    assert_eq!(recorded.as_deref(), Some(key.as_str()), "the run records the blob key");
    let stored = objects.unwrap().get(&key, None).await.unwrap().expect("stored");
    assert_eq!(String::from_utf8(stored.to_vec()).unwrap(), format!("{{\"type\":\"stopped\",\"run\":\"{run}\"}}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_blob_store_the_run_records_no_transcript_and_completes() {
    let (recorded, _, _, _) = run_once(false).await;
    assert_eq!(recorded, None);
}
