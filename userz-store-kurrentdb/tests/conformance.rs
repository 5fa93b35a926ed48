//! KurrentDB against the shared event-store conformance suite and the engine
//! scenarios. No server package exists on the registries this project installs
//! from, so these tests are `#[ignore]`d: the test command reports them as
//! skipped, with the reason. Run them against a real server with
//! `USERZ_KURRENTDB_URL=esdb://… cargo nextest run -p userz-store-kurrentdb --run-ignored all`
//! (see the crate README); run that way without the variable, they fail.

use std::sync::Arc;

use userz_store_kurrentdb::{KurrentStore, KurrentStoreBuilder};
use userz_store_memory::MemoryStores;
use userz_testkit::conformance::event_store;
use userz_testkit::scenarios::{self, StoreSet};
use userz_testkit::ManualClock;

async fn open() -> KurrentStore {
    let url = std::env::var("USERZ_KURRENTDB_URL").unwrap_or_else(|_| {
        panic!("USERZ_KURRENTDB_URL is not set: KurrentDB conformance cannot run (see userz-store-kurrentdb/README.md)")
    });
    let prefix = format!("t{}-", uuid::Uuid::new_v4().simple());
    KurrentStoreBuilder::new(url).with_stream_prefix(prefix).build().await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a KurrentDB server in USERZ_KURRENTDB_URL (none installs here)"]
async fn event_store_conformance() {
    let store = open().await;
    event_store::run_all(Arc::new(store), event_store::EventStoreSuite::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a KurrentDB server in USERZ_KURRENTDB_URL (none installs here)"]
async fn engine_scenarios_on_kurrentdb_events() {
    let mut sets = Vec::new();
    for _ in 0..scenarios::SCENARIO_COUNT {
        let store = open().await;
        let clock = Arc::new(ManualClock::at_2026());
        let m = MemoryStores::new(clock.clone());
        sets.push(StoreSet { events: Arc::new(store), read_models: m.read_models, queue: m.queue, clock });
    }
    let mut sets = sets.into_iter();
    scenarios::run_all(|| sets.next().unwrap_or_else(|| panic!("more scenarios than stores"))).await;
}
