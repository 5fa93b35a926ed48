//! The PostgreSQL adapter against the shared conformance suites and the engine
//! scenarios, on the server `scripts/services.sh` starts (`USERZ_PG_URL`). Each
//! test works in its own PostgreSQL schema.

use std::sync::Arc;

use userz_store_postgres::{PgStore, PgStoreBuilder};
use userz_testkit::conformance::{event_store, read_model, work_queue};
use userz_testkit::scenarios::{self, StoreSet};
use userz_testkit::{services, ManualClock, TimeControl};

async fn open(clock: Arc<ManualClock>) -> Option<PgStore> {
    let url = services::require("USERZ_PG_URL")?;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    Some(
        PgStoreBuilder::new(url)
            .with_schema(schema)
            .with_clock(clock)
            .with_pool_size(12)
            .build()
            .await
            .unwrap_or_else(|e| panic!("open: {e}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_conformance() {
    let Some(store) = open(Arc::new(ManualClock::at_2026())).await else { return };
    event_store::run_all(Arc::new(store), event_store::EventStoreSuite::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_conformance() {
    let clock = Arc::new(ManualClock::at_2026());
    let Some(store) = open(clock.clone()).await else { return };
    work_queue::run_all(Arc::new(store), TimeControl::Manual(clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_conformance() {
    let Some(store) = open(Arc::new(ManualClock::at_2026())).await else { return };
    read_model::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_scenarios_on_postgres() {
    let mut sets = Vec::new();
    for _ in 0..9 {
        let clock = Arc::new(ManualClock::at_2026());
        let Some(store) = open(clock.clone()).await else { return };
        let store = Arc::new(store);
        sets.push(StoreSet { events: store.clone(), read_models: store.clone(), queue: store, clock });
    }
    let mut sets = sets.into_iter();
    scenarios::run_all(|| sets.next().unwrap_or_else(|| panic!("more scenarios than stores"))).await;
}
