//! Durable store benches, each beside a raw baseline in the same run:
//! - append 1,000 events in batches of 100 through the adapter vs 1,000 raw row
//!   inserts in 100-row transactions with the same driver (SQLite, PostgreSQL);
//!   plus 8 concurrent single-event appenders (group commit at work on SQLite);
//! - rehydrate a 10,000-event stream through the command bus;
//! - subscription catch-up over 10,000 events vs raw `read_all` paging.
//!
//! PostgreSQL groups run when `USERZ_PG_URL` is set (`scripts/services.sh`).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures::StreamExt;
use userz_benches::{run_stream_events, runtime};
use userz_core::domain::run::RunDecider;
use userz_core::event::{ExpectedVersion, NewEvent, StreamId};
use userz_core::ids::CorrelationId;
use userz_core::ports::{EventStore, ReadModelStore};
use userz_core::SystemClock;
use userz_engine::codec::encode;
use userz_engine::CommandBus;
use userz_store_postgres::PgStoreBuilder;
use userz_store_sqlite::SqliteStoreBuilder;

fn events(n: usize) -> Vec<NewEvent> {
    let cor = CorrelationId::new();
    run_stream_events(n).iter().map(|e| encode::<RunDecider>(e, None, cor).unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn fresh_events(n: usize) -> Vec<NewEvent> {
    // New ids each time: event ids are unique per store.
    events(n)
}

async fn append_batched(store: &dyn EventStore, evs: Vec<NewEvent>) {
    let stream = StreamId::new(format!("bench-{}", uuid::Uuid::new_v4().simple())).unwrap_or_else(|e| panic!("{e}"));
    for (i, chunk) in evs.chunks(100).enumerate() {
        store
            .append(&stream, ExpectedVersion::from_version(i as u64 * 100), chunk.to_vec())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn append_concurrent_single(store: Arc<dyn EventStore>, evs: Vec<NewEvent>) {
    let mut tasks = Vec::new();
    for chunk in evs.chunks(evs.len() / 8) {
        let store = store.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let stream =
                StreamId::new(format!("bench-{}", uuid::Uuid::new_v4().simple())).unwrap_or_else(|e| panic!("{e}"));
            for (i, e) in chunk.into_iter().enumerate() {
                store
                    .append(&stream, ExpectedVersion::from_version(i as u64), vec![e])
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn catch_up(store: &dyn EventStore, after: u64, n: usize) -> usize {
    let mut sub = store.subscribe(after).await.unwrap_or_else(|e| panic!("{e}"));
    let mut got = 0;
    while got < n {
        sub.next().await.unwrap_or_else(|| panic!("ended")).unwrap_or_else(|e| panic!("{e}"));
        got += 1;
    }
    got
}

async fn raw_paging(store: &dyn EventStore, after: u64, n: usize) -> usize {
    let mut got = 0;
    let mut after = after;
    while got < n {
        let page = store.read_all(after, 512).await.unwrap_or_else(|e| panic!("{e}"));
        after = page.last().map_or(after, |r| r.position);
        got += page.len();
    }
    got
}

/// Seeds a 10,000-event run stream and returns (stream, first position - 1).
async fn seed_10k(store: &dyn EventStore) -> (StreamId, u64) {
    let stream = StreamId::new(format!("run-{}", uuid::Uuid::new_v4().simple())).unwrap_or_else(|e| panic!("{e}"));
    let mut start = 0;
    for (i, chunk) in events(10_000).chunks(500).enumerate() {
        let r = store
            .append(&stream, ExpectedVersion::from_version(i as u64 * 500), chunk.to_vec())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if i == 0 {
            start = r.first_position - 1;
        }
    }
    (stream, start)
}

/// Rehydration and catch-up over a 10,000-event stream, beside raw paging.
fn rehydrate_and_catch_up<S>(c: &mut Criterion, rt: &tokio::runtime::Runtime, group: &str, store: Arc<S>)
where
    S: EventStore + ReadModelStore + 'static,
{
    let (stream, start) = rt.block_on(seed_10k(store.as_ref()));
    let bus = CommandBus::new(store.clone(), store.clone() as Arc<dyn ReadModelStore>).with_snapshot_every(0);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(10);
    g.bench_function("rehydrate_bus_load", |b| {
        b.iter(|| rt.block_on(bus.load::<RunDecider>(&stream)).unwrap_or_else(|e| panic!("{e}")))
    });
    g.bench_function("baseline_read_all_paging", |b| b.iter(|| rt.block_on(raw_paging(store.as_ref(), start, 10_000))));
    g.bench_function("subscription_catch_up", |b| b.iter(|| rt.block_on(catch_up(store.as_ref(), start, 10_000))));
    g.finish();
}

fn sqlite(c: &mut Criterion) {
    let rt = runtime_mt();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store =
        rt.block_on(SqliteStoreBuilder::new(dir.path().join("bench.db")).build()).unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let raw = rusqlite::Connection::open(dir.path().join("raw.db")).unwrap_or_else(|e| panic!("{e}"));
    raw.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE ev (position INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB UNIQUE, stream TEXT, version INTEGER, payload BLOB, UNIQUE(stream, version));",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let mut g = c.benchmark_group("sqlite_append_1000");
    g.throughput(Throughput::Elements(1_000));
    g.sample_size(10);
    g.bench_function("baseline_raw_inserts_100_per_txn", |b| {
        b.iter_batched(
            || fresh_events(1_000),
            |evs| {
                let stream = uuid::Uuid::new_v4().to_string();
                for (i, chunk) in evs.chunks(100).enumerate() {
                    let tx = raw.unchecked_transaction().unwrap_or_else(|e| panic!("{e}"));
                    {
                        let mut st = tx
                            .prepare_cached("INSERT INTO ev (id, stream, version, payload) VALUES (?1, ?2, ?3, ?4)")
                            .unwrap_or_else(|e| panic!("{e}"));
                        for (k, e) in chunk.iter().enumerate() {
                            st.execute(rusqlite::params![
                                e.id.as_uuid().as_bytes().as_slice(),
                                stream,
                                (i * 100 + k) as i64,
                                e.payload.as_ref()
                            ])
                            .unwrap_or_else(|e| panic!("{e}"));
                        }
                    }
                    tx.commit().unwrap_or_else(|e| panic!("{e}"));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("adapter_batched_100", |b| {
        b.iter_batched(
            || fresh_events(1_000),
            |evs| rt.block_on(append_batched(store.as_ref(), evs)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("adapter_8_concurrent_single", |b| {
        b.iter_batched(
            || fresh_events(1_000),
            |evs| rt.block_on(append_concurrent_single(store.clone(), evs)),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    rehydrate_and_catch_up(c, &rt, "sqlite_10k", store.clone());
}

fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("USERZ_PG_URL") else {
        eprintln!("USERZ_PG_URL not set: PostgreSQL benches skipped");
        return;
    };
    let rt = runtime_mt();
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let store = rt
        .block_on(
            PgStoreBuilder::new(url.clone()).with_schema(schema.clone()).with_clock(Arc::new(SystemClock)).build(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(store);
    let raw = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.raw_ev (position BIGSERIAL PRIMARY KEY, id UUID UNIQUE, stream TEXT, version BIGINT, payload BYTEA, UNIQUE(stream, version))"
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        client
    });
    let raw = tokio::sync::Mutex::new(raw);

    let mut g = c.benchmark_group("postgres_append_1000");
    g.throughput(Throughput::Elements(1_000));
    g.sample_size(10);
    g.bench_function("baseline_raw_inserts_100_per_txn", |b| {
        b.iter_batched(
            || fresh_events(1_000),
            |evs| {
                rt.block_on(async {
                    let mut client = raw.lock().await;
                    let stream = uuid::Uuid::new_v4().to_string();
                    for (i, chunk) in evs.chunks(100).enumerate() {
                        let tx = client.transaction().await.unwrap_or_else(|e| panic!("{e}"));
                        let st = tx
                            .prepare(&format!(
                                "INSERT INTO {schema}.raw_ev (id, stream, version, payload) VALUES ($1, $2, $3, $4)"
                            ))
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        for (k, e) in chunk.iter().enumerate() {
                            tx.execute(&st, &[&e.id.as_uuid(), &stream, &((i * 100 + k) as i64), &e.payload.as_ref()])
                                .await
                                .unwrap_or_else(|e| panic!("{e}"));
                        }
                        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("adapter_batched_100", |b| {
        b.iter_batched(
            || fresh_events(1_000),
            |evs| rt.block_on(append_batched(store.as_ref(), evs)),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    rehydrate_and_catch_up(c, &rt, "postgres_10k", store.clone());
}

fn runtime_mt() -> tokio::runtime::Runtime {
    let _ = runtime; // the single-threaded helper serves the in-memory benches
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| panic!("{e}"))
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
