//! The memory adapters against the shared conformance suites.

use std::sync::Arc;

use userz_store_memory::MemoryStores;
use userz_testkit::conformance::{blob, cache, event_store, read_model, work_queue};
use userz_testkit::{ManualClock, TimeControl};

fn stores() -> (MemoryStores, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_2026());
    (MemoryStores::new(clock.clone()), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_conformance() {
    let (s, _) = stores();
    // Includes 8 concurrent writers × 1,000 events on one stream.
    event_store::run_all(s.events, event_store::EventStoreSuite::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_conformance() {
    let (s, clock) = stores();
    cache::run_all(s.cache, TimeControl::Manual(clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_conformance() {
    let (s, clock) = stores();
    work_queue::run_all(s.queue, TimeControl::Manual(clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_conformance() {
    let (s, _) = stores();
    read_model::run_all(s.read_models).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_conformance() {
    let (s, _) = stores();
    blob::run_all(s.blobs, None).await;
}
