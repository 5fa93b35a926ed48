//! The NATS adapters against the shared conformance suites and the engine
//! scenarios, on the server `scripts/services.sh` starts. Each test uses its own
//! prefix, so tests share the server but no stream, bucket or subject.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use userz_core::event::{ExpectedVersion, StreamId};
use userz_core::ports::EventStore;
use userz_store_nats::{NatsStore, NatsStoreBuilder};
use userz_testkit::conformance::{cache, event_store, read_model, work_queue};
use userz_testkit::scenarios::{self, StoreSet};
use userz_testkit::{ManualClock, TimeControl};

fn prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn store(url: &str) -> NatsStore {
    NatsStoreBuilder::new(url).with_prefix(prefix()).build().await.unwrap_or_else(|e| panic!("connect: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_conformance() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    event_store::run_all(Arc::new(store(&url).await), event_store::EventStoreSuite::default()).await;
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
    // Nack delays and `not_before` are held back by the server: real time.
    work_queue::run_all(Arc::new(store(&url).await), TimeControl::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_conformance() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    read_model::run_all(Arc::new(store(&url).await)).await;
}

/// Every store of the engine on NATS: events, jobs and read models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_scenarios_on_nats() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let mut sets = Vec::new();
    for _ in 0..scenarios::SCENARIO_COUNT {
        let clock = Arc::new(ManualClock::at_2026());
        let nats = Arc::new(
            NatsStoreBuilder::new(&url)
                .with_prefix(prefix())
                .with_clock(clock.clone())
                .build()
                .await
                .unwrap_or_else(|e| panic!("connect: {e}")),
        );
        sets.push(StoreSet { events: nats.clone(), read_models: nats.clone(), queue: nats, clock });
    }
    let mut sets = sets.into_iter();
    scenarios::run_all(|| sets.next().unwrap_or_else(|| panic!("more scenarios than stores"))).await;
}

/// Subscriptions never skip an event under 8 concurrent writers: a live
/// subscriber and a later catch-up subscriber each see exactly the positions the
/// writers were given, in strictly increasing order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_never_skip_under_concurrent_writers() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let store = Arc::new(store(&url).await);
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 60;
    let live = store.subscribe(0).await.unwrap_or_else(|e| panic!("subscribe: {e}"));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = StreamId::new(format!("writer.{w}:x")).unwrap_or_else(|e| panic!("{e}"));
            let mut positions = Vec::new();
            let mut version = 0;
            for i in 0..APPENDS {
                // Mix single events and batches of three.
                let n = if i % 4 == 0 { 3 } else { 1 };
                let events = (0..n).map(|k| event_store::event(w * 1000 + i * 10 + k)).collect();
                let r = store
                    .append(&s, ExpectedVersion::from_version(version), events)
                    .await
                    .unwrap_or_else(|e| panic!("append: {e}"));
                version = r.last_version;
                positions.extend(r.first_position..=r.last_position);
            }
            positions
        }));
    }
    let mut appended = BTreeSet::new();
    for t in tasks {
        appended.extend(t.await.unwrap_or_else(|e| panic!("writer: {e}")));
    }
    let total = appended.len();
    assert_eq!(total as u64, WRITERS * APPENDS * 6 / 4, "every append landed");

    let collect = |mut sub: userz_core::ports::EventStream| async move {
        let mut seen = Vec::with_capacity(total);
        while seen.len() < total {
            let next = tokio::time::timeout(Duration::from_secs(20), sub.next())
                .await
                .unwrap_or_else(|_| panic!("subscription stalled after {} events", seen.len()));
            let ev = next.unwrap_or_else(|| panic!("subscription ended")).unwrap_or_else(|e| panic!("{e}"));
            seen.push(ev.position);
        }
        seen
    };
    let live_seen = collect(live).await;
    let catch_up_seen = collect(store.subscribe(0).await.unwrap_or_else(|e| panic!("subscribe: {e}"))).await;
    for seen in [live_seen, catch_up_seen] {
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "positions strictly increase");
        let got: BTreeSet<u64> = seen.into_iter().collect();
        assert_eq!(got, appended, "exactly the appended positions, none skipped");
    }
    let all = store.read_all(0, 10_000).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.iter().map(|e| e.position).collect::<BTreeSet<_>>(), appended, "read_all agrees");
}

/// Event ids stay unique after JetStream's `Nats-Msg-Id` window has passed (the
/// id markers, not the window, refuse them), and a refused append writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_id_is_refused_after_the_duplicate_window() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let store = NatsStoreBuilder::new(&url)
        .with_prefix(prefix())
        .with_duplicate_window(Duration::from_secs(1))
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let a = StreamId::new("dup-a").unwrap_or_else(|e| panic!("{e}"));
    let b = StreamId::new("dup.b").unwrap_or_else(|e| panic!("{e}"));
    let e = event_store::event(1);
    store.append(&a, ExpectedVersion::NoStream, vec![e.clone()]).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = store.append(&b, ExpectedVersion::NoStream, vec![event_store::event(2), e]).await;
    assert!(matches!(again, Err(userz_core::Error::Invalid(_))), "a stored id is refused for good: {again:?}");
    assert_eq!(store.stream_version(&b).await.unwrap_or(99), 0, "nothing of the refused batch landed");
    assert_eq!(store.read_all(0, 100).await.unwrap_or_default().len(), 1, "the log holds the first copy only");
}

/// A job id stays `Duplicate` after JetStream's `Nats-Msg-Id` window has passed
/// (the job-id bucket, not the window, remembers it), even when still queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_id_is_duplicate_after_the_duplicate_window() {
    use userz_core::ports::{Enqueued, NewJob, WorkQueue};
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let store = NatsStoreBuilder::new(&url)
        .with_prefix(prefix())
        .with_duplicate_window(Duration::from_secs(1))
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let job = NewJob {
        id: userz_core::ids::JobId::new(),
        queue: "q.1".into(),
        payload: bytes::Bytes::from_static(b"x"),
        not_before: None,
    };
    assert_eq!(store.enqueue(job.clone()).await.unwrap_or_else(|e| panic!("{e}")), Enqueued::New);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.enqueue(job).await.unwrap_or_else(|e| panic!("{e}")), Enqueued::Duplicate);
    let lease = Duration::from_secs(30);
    assert!(store.claim("q.1", "w", lease).await.unwrap_or_default().is_some());
    assert!(store.claim("q.1", "w", lease).await.unwrap_or_default().is_none(), "one job, not two");
}

/// `read_stream` from any version finds it (binary search over sequences) even
/// when other streams' events and id markers sit in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_stream_from_any_version_among_other_streams() {
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let store = store(&url).await;
    let x = StreamId::new("x.1").unwrap_or_else(|e| panic!("{e}"));
    let y = StreamId::new("y:1").unwrap_or_else(|e| panic!("{e}"));
    let (mut vx, mut vy) = (0, 0);
    for i in 0..40u64 {
        let n = 1 + i % 7;
        let r = store
            .append(&x, ExpectedVersion::from_version(vx), (0..n).map(event_store::event).collect())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        vx = r.last_version;
        let r = store
            .append(&y, ExpectedVersion::from_version(vy), vec![event_store::event(i)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        vy = r.last_version;
    }
    for from in [1, 2, 3, 17, 64, 99, vx - 1, vx] {
        let page = store.read_stream(&x, from, 5).await.unwrap_or_else(|e| panic!("{e}"));
        let want: Vec<u64> = (from..=vx).take(5).collect();
        assert_eq!(page.iter().map(|e| e.version).collect::<Vec<_>>(), want, "from {from}");
        assert!(page.iter().all(|e| e.stream == x));
    }
    assert!(store.read_stream(&x, vx + 1, 5).await.unwrap_or_else(|e| panic!("{e}")).is_empty());
}

/// Eight runners commit the same checkpoint move at once: exactly one batch of
/// rows lands, and the checkpoint names that runner's position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_read_model_commits_apply_exactly_one() {
    use userz_core::ports::{CheckpointMove, ReadModelCommit, ReadModelOp, ReadModelStore};
    let Some(url) = userz_testkit::services::require("USERZ_NATS_URL") else { return };
    let store = Arc::new(store(&url).await);
    let mut tasks = Vec::new();
    for r in 1..=8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let ops = (0..50)
                .map(|k| ReadModelOp::Put {
                    table: "t.1".into(),
                    key: format!("row/{r}/{k}"),
                    value: bytes::Bytes::from(r.to_string()),
                })
                .collect();
            let cp = Some(CheckpointMove { name: "proj".into(), expected: 0, new: r });
            (r, store.commit(ReadModelCommit { checkpoint: cp, ops }).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("{e}")) {
            (r, Ok(())) => winners.push(r),
            (_, Err(userz_core::Error::CheckpointConflict { .. })) => {}
            (_, Err(e)) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one runner applies its batch: {winners:?}");
    let winner = winners[0];
    assert_eq!(store.checkpoint("proj").await.unwrap_or(0), winner);
    let rows = store.scan("t.1", "row/", None, 1000).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 50, "only the winner's rows");
    assert!(rows.iter().all(|(k, _)| k.starts_with(&format!("row/{winner}/"))));
}
