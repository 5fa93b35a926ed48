//! KurrentDB against the shared event-store conformance suite and the engine
//! scenarios. No server package exists on the registries this project installs
//! from, so this runs only when `USERZ_KURRENTDB_URL` points at a server (see the
//! crate README); without it the tests say so and return.

use std::sync::Arc;

use userz_store_kurrentdb::{KurrentStore, KurrentStoreBuilder};
use userz_store_memory::MemoryStores;
use userz_testkit::conformance::event_store;
use userz_testkit::scenarios::{self, StoreSet};
use userz_testkit::ManualClock;

async fn open() -> Option<KurrentStore> {
    let Ok(url) = std::env::var("USERZ_KURRENTDB_URL") else {
        eprintln!(
            "USERZ_KURRENTDB_URL is not set: KurrentDB conformance not run (see userz-store-kurrentdb/README.md)"
        );
        return None;
    };
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    Some(KurrentStoreBuilder::new(url).with_stream_prefix(prefix).build().await.unwrap_or_else(|e| panic!("{e}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_conformance() {
    let Some(store) = open().await else { return };
    event_store::run_all(Arc::new(store), event_store::EventStoreSuite::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_scenarios_on_kurrentdb_events() {
    let mut sets = Vec::new();
    for _ in 0..scenarios::SCENARIO_COUNT {
        let Some(store) = open().await else { return };
        let clock = Arc::new(ManualClock::at_2026());
        let m = MemoryStores::new(clock.clone());
        sets.push(StoreSet { events: Arc::new(store), read_models: m.read_models, queue: m.queue, clock });
    }
    let mut sets = sets.into_iter();
    scenarios::run_all(|| sets.next().unwrap_or_else(|| panic!("more scenarios than stores"))).await;
}
