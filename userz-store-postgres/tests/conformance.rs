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
    for _ in 0..scenarios::SCENARIO_COUNT {
        let clock = Arc::new(ManualClock::at_2026());
        let Some(store) = open(clock.clone()).await else { return };
        let store = Arc::new(store);
        sets.push(StoreSet { events: store.clone(), read_models: store.clone(), queue: store, clock });
    }
    let mut sets = sets.into_iter();
    scenarios::run_all(|| sets.next().unwrap_or_else(|| panic!("more scenarios than stores"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_hold_no_plaintext_of_a_sealed_secret() {
    use userz_testkit::at_rest;
    let Some(url) = services::require("USERZ_PG_URL") else { return };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let store =
        PgStoreBuilder::new(url.clone()).with_schema(schema.clone()).build().await.unwrap_or_else(|e| panic!("{e}"));
    let written = at_rest::write_sealed_secret(&store, &store).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(conn);
    // Every column of every table in the schema, rendered as text.
    let tables = client
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", &[&schema])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(tables.len() >= 5, "the adapter's tables exist");
    let mut dump = Vec::new();
    for t in tables {
        let name: String = t.get(0);
        let rows = client
            .query(&format!("SELECT t::text FROM {schema}.{name} t"), &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for r in rows {
            let text: String = r.get(0);
            dump.extend_from_slice(text.as_bytes());
        }
        // BYTEA columns render as hex in a row's text form; decode them too.
        let bytea = client
            .query(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                &[&schema, &name],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for c in bytea {
            let col: String = c.get(0);
            for r in
                client.query(&format!("SELECT {col} FROM {schema}.{name}"), &[]).await.unwrap_or_else(|e| panic!("{e}"))
            {
                let b: Vec<u8> = r.get(0);
                dump.extend(b);
            }
        }
    }
    assert!(at_rest::contains(&dump, &written.marker), "the search covers the stored data");
    assert!(!at_rest::contains(&dump, &written.plaintext), "no plaintext of the secret in the tables");
}
