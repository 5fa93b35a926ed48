//! The NATS adapters against the shared conformance suites and the engine
//! scenarios, on the server `scripts/services.sh` starts. Each test uses its own
//! prefix, so tests share the server but no stream, bucket or subject.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use userz_core::event::{ExpectedVersion, StreamId};
use userz_core::ports::EventStore;
use userz_store_nats::{NatsStore, NatsStoreBuilder};
use userz_testkit::conformance::{cache, event_store, work_queue};
use userz_testkit::TimeControl;

async fn store(url: &str) -> NatsStore {
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    NatsStoreBuilder::new(url).with_prefix(prefix).build().await.unwrap_or_else(|e| panic!("connect: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_conformance() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let s = store(&url).await;
    event_store::run_all(Arc::new(s), event_store::EventStoreSuite::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_conformance() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    // The server expires keys on its own clock, so the checks sleep in real time.
    cache::run_all(Arc::new(store(&url).await), TimeControl::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_conformance() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    // Leases, nack delays and not_before run on the server's clock: real time.
    work_queue::run_all(Arc::new(store(&url).await), TimeControl::Real).await;
}
