//! NATS JetStream adapter benches, each beside a raw JetStream baseline in the
//! same run, against the server at `USERZ_NATS_URL` (start one with
//! `source scripts/services.sh; USERZ_SERVICES=nats services_start`):
//! - append 1,000 events: the adapter in appends of 100 (one atomic batch each:
//!   100 events + 100 id markers, committed with `Nats-Expected-Last-Subject-Sequence`)
//!   vs raw atomic batches of 100 plain messages, vs 1,000 raw async publishes with
//!   every ack awaited together (no atomicity, no concurrency check);
//! - subscription catch-up over 10,000 events: the adapter's `subscribe(0)`
//!   (ordered consumer + decoding every event) vs a raw ordered consumer reading
//!   the same messages undecoded.

use std::time::Duration;

use async_nats::header::HeaderMap;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;
use userz_core::event::{ExpectedVersion, NewEvent, StreamId};
use userz_core::ids::{CorrelationId, EventId};
use userz_core::ports::EventStore;
use userz_store_nats::{NatsStore, NatsStoreBuilder};

/// The shared bench runtime has no I/O driver; the NATS client needs one.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn url() -> Option<String> {
    let url = std::env::var("USERZ_NATS_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("store_nats: USERZ_NATS_URL is not set; skipping (see scripts/services.sh)");
    }
    url
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: "BenchEvent".into(),
        schema_version: 1,
        payload: Bytes::from(format!("{{\"n\":{n},\"text\":\"a typical small event payload\"}}")),
        causation_id: None,
        correlation_id: CorrelationId::new(),
    }
}

async fn open(url: &str) -> NatsStore {
    let prefix = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    NatsStoreBuilder::new(url).with_prefix(prefix).build().await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// One raw atomic batch of `n` plain messages on `subject`.
async fn raw_batch(client: &async_nats::Client, subject: &str, n: usize, payload: &Bytes) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    for i in 1..=n {
        let mut h = HeaderMap::new();
        h.insert("Nats-Batch-Id", id.as_str());
        h.insert("Nats-Batch-Sequence", i.to_string().as_str());
        if i == n {
            h.insert("Nats-Batch-Commit", "1");
            let r = client.request_with_headers(subject.to_string(), h, payload.clone()).await;
            let r = r.unwrap_or_else(|e| panic!("commit: {e}"));
            assert!(!r.payload.starts_with(b"{\"error\""), "{:?}", String::from_utf8_lossy(&r.payload));
        } else {
            client
                .publish_with_headers(subject.to_string(), h, payload.clone())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn append(c: &mut Criterion) {
    let Some(url) = url() else { return };
    let rt = runtime();
    let store = rt.block_on(open(&url));
    let raw_subject = format!("{}.raw", store.event_subject(&StreamId::new("x").unwrap_or_else(|e| panic!("{e}"))));
    let payload = event(0).payload;
    let mut g = c.benchmark_group("nats_append_1000");
    g.throughput(Throughput::Elements(1_000));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("raw_publish_acks_awaited_together", |b| {
        b.iter(|| {
            rt.block_on(async {
                let js = store.jetstream();
                let mut acks = Vec::with_capacity(1_000);
                for _ in 0..1_000 {
                    acks.push(js.publish(raw_subject.clone(), payload.clone()).await.unwrap_or_else(|e| panic!("{e}")));
                }
                for a in futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
                    a.unwrap_or_else(|e| panic!("{e}"));
                }
            })
        })
    });
    g.bench_function("raw_atomic_batches_of_100", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..10 {
                    raw_batch(store.client(), &raw_subject, 100, &payload).await;
                }
            })
        })
    });
    g.bench_function("adapter_appends_of_100", |b| {
        b.iter(|| {
            rt.block_on(async {
                let s =
                    StreamId::new(format!("bench-{}", uuid::Uuid::new_v4().simple())).unwrap_or_else(|e| panic!("{e}"));
                let mut v = 0;
                for k in 0..10u64 {
                    let evs = (0..100).map(|i| event(k * 100 + i)).collect();
                    v = store
                        .append(&s, ExpectedVersion::from_version(v), evs)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"))
                        .last_version;
                }
            })
        })
    });
    g.finish();
}

fn catch_up(c: &mut Criterion) {
    let Some(url) = url() else { return };
    let rt = runtime();
    let store = rt.block_on(open(&url));
    const N: usize = 10_000;
    rt.block_on(async {
        let s = StreamId::new("catch-up").unwrap_or_else(|e| panic!("{e}"));
        for k in 0..(N as u64 / 100) {
            let evs = (0..100).map(|i| event(k * 100 + i)).collect();
            store.append(&s, ExpectedVersion::Exact(k * 100), evs).await.unwrap_or_else(|e| panic!("{e}"));
        }
    });
    let filter = format!(
        "{}.>",
        store.event_subject(&StreamId::new("x").unwrap_or_else(|e| panic!("{e}"))).trim_end_matches(".x")
    );
    let mut g = c.benchmark_group("nats_catch_up_10000");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("raw_ordered_consumer", |b| {
        b.iter(|| {
            rt.block_on(async {
                let stream =
                    store.jetstream().get_stream(store.events_stream_name()).await.unwrap_or_else(|e| panic!("{e}"));
                let consumer = stream
                    .create_consumer(pull::OrderedConfig {
                        filter_subject: filter.clone(),
                        deliver_policy: DeliverPolicy::All,
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut msgs = consumer.messages().await.unwrap_or_else(|e| panic!("{e}"));
                for _ in 0..N {
                    msgs.next().await.unwrap_or_else(|| panic!("ended")).unwrap_or_else(|e| panic!("{e}"));
                }
            })
        })
    });
    g.bench_function("adapter_subscribe", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut sub = store.subscribe(0).await.unwrap_or_else(|e| panic!("{e}"));
                for _ in 0..N {
                    sub.next().await.unwrap_or_else(|| panic!("ended")).unwrap_or_else(|e| panic!("{e}"));
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, append, catch_up);
criterion_main!(benches);
