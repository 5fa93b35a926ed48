//! The SQLite adapter against the shared conformance suites and the engine
//! scenarios, each on a fresh database file.

use std::sync::Arc;

use userz_store_sqlite::{SqliteStore, SqliteStoreBuilder, Synchronous};
use userz_testkit::conformance::{cache, event_store, read_model, work_queue};
use userz_testkit::scenarios::{self, StoreSet};
use userz_testkit::{ManualClock, TimeControl};

async fn open(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> SqliteStore {
    SqliteStoreBuilder::new(dir.path().join("userz.db"))
        .with_clock(clock)
        .with_synchronous(Synchronous::Normal)
        .build()
        .await
        .unwrap_or_else(|e| panic!("open: {e}"))
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_conformance() {
    let dir = tmp();
    let store = open(&dir, Arc::new(ManualClock::at_2026())).await;
    event_store::run_all(Arc::new(store), event_store::EventStoreSuite::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_conformance() {
    let dir = tmp();
    let clock = Arc::new(ManualClock::at_2026());
    let store = open(&dir, clock.clone()).await;
    cache::run_all(Arc::new(store), TimeControl::Manual(clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_conformance() {
    let dir = tmp();
    let clock = Arc::new(ManualClock::at_2026());
    let store = open(&dir, clock.clone()).await;
    work_queue::run_all(Arc::new(store), TimeControl::Manual(clock)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_conformance() {
    let dir = tmp();
    let store = open(&dir, Arc::new(ManualClock::at_2026())).await;
    read_model::run_all(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_scenarios_on_sqlite() {
    let mut dirs = Vec::new();
    let mut sets = Vec::new();
    for _ in 0..scenarios::SCENARIO_COUNT {
        let dir = tmp();
        let clock = Arc::new(ManualClock::at_2026());
        let store = Arc::new(open(&dir, clock.clone()).await);
        sets.push(StoreSet { events: store.clone(), read_models: store.clone(), queue: store, clock });
        dirs.push(dir);
    }
    let mut sets = sets.into_iter();
    scenarios::run_all(|| sets.next().unwrap_or_else(|| panic!("more scenarios than stores"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening_the_file() {
    use userz_core::event::{ExpectedVersion, StreamId};
    use userz_core::ports::{EventStore, ReadModelStore};
    let dir = tmp();
    let clock = Arc::new(ManualClock::at_2026());
    let stream = StreamId::new("durable-1").unwrap_or_else(|e| panic!("{e}"));
    {
        let store = open(&dir, clock.clone()).await;
        store
            .append(&stream, ExpectedVersion::NoStream, (0..5).map(event_store::event).collect())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let store = open(&dir, clock).await;
    assert_eq!(store.stream_version(&stream).await.unwrap_or(0), 5);
    assert_eq!(store.read_all(0, 100).await.unwrap_or_default().len(), 5);
    assert_eq!(store.checkpoint("none").await.unwrap_or(9), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_files_hold_no_plaintext_of_a_sealed_secret() {
    use userz_testkit::at_rest;
    let dir = tmp();
    let store = open(&dir, Arc::new(ManualClock::at_2026())).await;
    let written = at_rest::write_sealed_secret(&store, &store).await;
    drop(store);
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap_or_else(|e| panic!("{e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        all.extend(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    assert!(at_rest::contains(&all, &written.marker), "the search covers the stored data");
    assert!(!at_rest::contains(&all, &written.plaintext), "no plaintext of the secret in the SQLite files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_is_rolled_back_and_the_writer_keeps_going() {
    use userz_core::event::{ExpectedVersion, StreamId};
    use userz_core::ports::EventStore;
    let dir = tmp();
    let store = open(&dir, Arc::new(ManualClock::at_2026())).await;
    let r = store
        .write_raw(|c| -> userz_core::Result<()> {
            c.execute_batch("CREATE TABLE scratch (x INTEGER); INSERT INTO scratch VALUES (1);")
                .map_err(|e| userz_core::Error::Corrupt(e.to_string()))?;
            panic!("request bug");
        })
        .await;
    assert!(matches!(r, Err(userz_core::Error::Unavailable(_))), "the waiter learns the request failed: {r:?}");
    let stream = StreamId::new("after-panic").unwrap_or_else(|e| panic!("{e}"));
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event_store::event(1)])
        .await
        .unwrap_or_else(|e| panic!("the writer still serves requests: {e}"));
    let scratch = store
        .write_raw(|c| {
            Ok(c.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'scratch'", [], |r| r.get::<_, i64>(0))
                .unwrap_or(-1))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scratch, 0, "the panicking request's changes were rolled back");
}
