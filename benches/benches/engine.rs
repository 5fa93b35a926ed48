//! Engine benches on the memory store, each beside a raw baseline in the same run:
//! - append: 1,000 events one per append vs in batches of 100, vs pushing the same
//!   records into a mutex-guarded `Vec` (the floor any in-memory log pays);
//! - rehydrate: loading a 10,000-event stream through the command bus (decode +
//!   fold) with snapshots off and on, vs decoding and folding the same payloads
//!   with no store at all. The stream is a run with 9,999 recorded retries: a
//!   small state over a long stream, the case snapshots exist for.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use userz_benches::{pr_stream_events, run_stream_events, runtime};
use userz_core::decider::Decider;
use userz_core::domain::pr::PrDecider;
use userz_core::domain::run::{RunDecider, RunEvent};
use userz_core::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use userz_core::ids::CorrelationId;
use userz_core::ports::EventStore;
use userz_core::{SystemClock, Timestamp};
use userz_engine::codec::encode;
use userz_engine::CommandBus;
use userz_store_memory::{MemoryEventStore, MemoryStores};

fn encoded<A>(events: &[A::Event]) -> Vec<NewEvent>
where
    A: userz_core::decider::Aggregate,
    A::Event: serde::Serialize + serde::de::DeserializeOwned + userz_core::decider::EventName,
    A::State: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    let cor = CorrelationId::new();
    events.iter().map(|e| encode::<A>(e, None, cor).unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let events = encoded::<PrDecider>(&pr_stream_events(1_000));
    let mut g = c.benchmark_group("append_1000");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("baseline_vec_push", |b| {
        b.iter_batched(
            || (parking_lot::Mutex::new(Vec::<RecordedEvent>::with_capacity(1_000)), events.clone()),
            |(log, evs)| {
                let stream = StreamId::for_entity("pr", "bench");
                for (i, e) in evs.into_iter().enumerate() {
                    let mut l = log.lock();
                    let pos = l.len() as u64 + 1;
                    l.push(RecordedEvent::from_new(e, stream.clone(), i as u64 + 1, pos, Timestamp::EPOCH));
                }
                log
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("memory_single", |b| {
        b.iter_batched(
            || (MemoryEventStore::new(Arc::new(SystemClock)), events.clone()),
            |(store, evs)| {
                rt.block_on(async {
                    let stream = StreamId::for_entity("pr", "bench");
                    for (i, e) in evs.into_iter().enumerate() {
                        store
                            .append(&stream, ExpectedVersion::from_version(i as u64), vec![e])
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                });
                store
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("memory_batched_100", |b| {
        b.iter_batched(
            || (MemoryEventStore::new(Arc::new(SystemClock)), events.clone()),
            |(store, evs)| {
                rt.block_on(async {
                    let stream = StreamId::for_entity("pr", "bench");
                    for (i, chunk) in evs.chunks(100).enumerate() {
                        store
                            .append(&stream, ExpectedVersion::from_version(i as u64 * 100), chunk.to_vec())
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                });
                store
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn rehydrate(c: &mut Criterion) {
    let rt = runtime();
    let domain = run_stream_events(10_000);
    let events = encoded::<RunDecider>(&domain);
    let stores = MemoryStores::new(Arc::new(SystemClock));
    let stream = StreamId::for_entity("run", "rehydrate");
    rt.block_on(async {
        for (i, chunk) in events.chunks(500).enumerate() {
            stores
                .events
                .append(&stream, ExpectedVersion::from_version(i as u64 * 500), chunk.to_vec())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    let payloads: Vec<bytes::Bytes> = events.iter().map(|e| e.payload.clone()).collect();
    let plain = CommandBus::new(stores.events.clone(), stores.read_models.clone()).with_snapshot_every(0);
    let snap_stores = MemoryStores::new(Arc::new(SystemClock));
    let snapped = CommandBus::new(stores.events.clone(), snap_stores.read_models.clone()).with_snapshot_every(1_000);
    // The first command after 10,000 replayed events writes the snapshot.
    rt.block_on(async {
        let cmd = userz_core::domain::run::RunCommand::Fail { reason: "bench".into(), at: Timestamp::EPOCH };
        snapped
            .execute::<RunDecider>(&stream, userz_engine::CommandMeta::new(), &cmd)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });

    let mut g = c.benchmark_group("rehydrate_10k");
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(20);
    g.bench_function("baseline_decode_fold", |b| {
        b.iter(|| {
            let evs = payloads.iter().map(|p| serde_json::from_slice::<RunEvent>(p).unwrap_or_else(|e| panic!("{e}")));
            evs.fold(RunDecider::initial_state(), |s, e| RunDecider::evolve(s, &e))
        })
    });
    g.bench_function("bus_load_no_snapshot", |b| {
        b.iter(|| rt.block_on(plain.load::<RunDecider>(&stream)).unwrap_or_else(|e| panic!("{e}")))
    });
    g.bench_function("bus_load_with_snapshot", |b| {
        b.iter(|| rt.block_on(snapped.load::<RunDecider>(&stream)).unwrap_or_else(|e| panic!("{e}")))
    });
    g.finish();
}

criterion_group!(benches, append, rehydrate);
criterion_main!(benches);
