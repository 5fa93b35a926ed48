//! [`EventStore`] conformance.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use userz_core::event::{ExpectedVersion, NewEvent, StreamId};
use userz_core::ids::{CorrelationId, EventId};
use userz_core::ports::{EventStore, EventStoreExt};
use userz_core::Error;

use super::unique;

/// Options for the event-store suite.
#[derive(Debug, Clone, Copy)]
pub struct EventStoreSuite {
    /// Concurrent appenders in the concurrency check.
    pub writers: usize,
    /// Events each appender writes.
    pub per_writer: usize,
}

impl Default for EventStoreSuite {
    fn default() -> Self {
        Self { writers: 8, per_writer: 1000 }
    }
}

/// A test event whose payload is `{"n": n}`.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: "TestEvent".into(),
        schema_version: 1,
        payload: Bytes::from(format!("{{\"n\":{n}}}")),
        causation_id: Some(uuid::Uuid::new_v4()),
        correlation_id: CorrelationId::new(),
    }
}

fn stream() -> StreamId {
    StreamId::new(unique("conf")).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs every check.
pub async fn run_all(store: Arc<dyn EventStore>, suite: EventStoreSuite) {
    append_and_read_back(store.as_ref()).await;
    expected_version_conflicts(store.as_ref()).await;
    empty_append_is_invalid(store.as_ref()).await;
    batch_is_atomic(store.as_ref()).await;
    read_stream_paging(store.as_ref()).await;
    read_all_is_ordered(store.as_ref()).await;
    duplicate_event_id_refused(store.as_ref()).await;
    subscribe_from_checkpoint(store.as_ref()).await;
    concurrent_appenders(store.clone(), suite.writers, suite.per_writer).await;
    subscription_sees_every_event_under_concurrent_writers(store.clone(), suite.writers, 200).await;
}

/// Appended events read back with versions 1..n and every field intact.
pub async fn append_and_read_back(store: &dyn EventStore) {
    let s = stream();
    let evs: Vec<_> = (0..3).map(event).collect();
    let res = store.append(&s, ExpectedVersion::NoStream, evs.clone()).await.unwrap_or_else(|e| panic!("append: {e}"));
    assert_eq!((res.first_version, res.last_version), (1, 3), "versions start at 1");
    assert_eq!(res.last_position - res.first_position, 2, "positions of one batch are consecutive in order");
    let read = store.read_stream_to_end(&s, 1).await.unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(read.len(), 3);
    for (i, (r, e)) in read.iter().zip(&evs).enumerate() {
        assert_eq!(r.version, i as u64 + 1, "gap-free versions");
        assert_eq!(r.stream, s);
        assert_eq!(r.id, e.id, "id round-trips");
        assert_eq!(r.event_type, e.event_type);
        assert_eq!(r.schema_version, e.schema_version);
        assert_eq!(r.payload, e.payload, "payload round-trips byte for byte");
        assert_eq!(r.causation_id, e.causation_id);
        assert_eq!(r.correlation_id, e.correlation_id);
        assert_eq!(r.position, res.first_position + i as u64);
    }
    assert_eq!(store.stream_version(&s).await.unwrap_or(0), 3);
}

/// A wrong expected version is a `Conflict` with the actual version, and writes nothing.
pub async fn expected_version_conflicts(store: &dyn EventStore) {
    let s = stream();
    store.append(&s, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap_or_else(|e| panic!("{e}"));
    for expected in
        [ExpectedVersion::NoStream, ExpectedVersion::Exact(0), ExpectedVersion::Exact(2), ExpectedVersion::Exact(7)]
    {
        match store.append(&s, expected, vec![event(2)]).await {
            Err(Error::Conflict { actual, expected: e, .. }) => {
                assert_eq!(actual, 1, "conflict reports the actual version");
                assert_eq!(e, expected, "conflict reports the expectation");
            }
            other => panic!("expected Conflict for {expected:?}, got {other:?}"),
        }
    }
    assert_eq!(store.stream_version(&s).await.unwrap_or(99), 1, "a conflict writes nothing");
    store.append(&s, ExpectedVersion::Exact(1), vec![event(2)]).await.unwrap_or_else(|e| panic!("{e}"));
    store.append(&s, ExpectedVersion::Any, vec![event(3)]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.stream_version(&s).await.unwrap_or(0), 3);
}

/// Appending nothing is refused as `Invalid`.
pub async fn empty_append_is_invalid(store: &dyn EventStore) {
    let s = stream();
    assert!(matches!(store.append(&s, ExpectedVersion::Any, vec![]).await, Err(Error::Invalid(_))));
}

/// A refused batch leaves no partial write.
pub async fn batch_is_atomic(store: &dyn EventStore) {
    let s = stream();
    store.append(&s, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap_or_else(|e| panic!("{e}"));
    let r = store.append(&s, ExpectedVersion::NoStream, (0..5).map(event).collect()).await;
    assert!(r.is_err());
    assert_eq!(store.read_stream(&s, 1, 100).await.unwrap_or_default().len(), 1, "no partial batch");
}

/// `read_stream` honours `from_version` and `limit`; unknown streams read empty.
pub async fn read_stream_paging(store: &dyn EventStore) {
    let s = stream();
    store.append(&s, ExpectedVersion::NoStream, (0..10).map(event).collect()).await.unwrap_or_else(|e| panic!("{e}"));
    let page = store.read_stream(&s, 4, 3).await.unwrap_or_default();
    assert_eq!(page.iter().map(|r| r.version).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert!(store.read_stream(&s, 11, 10).await.unwrap_or_default().is_empty());
    assert!(store.read_stream(&stream(), 1, 10).await.unwrap_or_default().is_empty());
}

/// `read_all` returns events after a position, in position order.
pub async fn read_all_is_ordered(store: &dyn EventStore) {
    let a = stream();
    let b = stream();
    let r1 = store.append(&a, ExpectedVersion::NoStream, vec![event(1)]).await.unwrap_or_else(|e| panic!("{e}"));
    store.append(&b, ExpectedVersion::NoStream, vec![event(2), event(3)]).await.unwrap_or_else(|e| panic!("{e}"));
    store.append(&a, ExpectedVersion::Exact(1), vec![event(4)]).await.unwrap_or_else(|e| panic!("{e}"));
    let all = store.read_all(r1.first_position - 1, 10_000).await.unwrap_or_default();
    let ours: Vec<_> = all.iter().filter(|r| r.stream == a || r.stream == b).collect();
    assert_eq!(ours.len(), 4);
    assert_eq!(ours[0].stream, a);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position), "positions strictly increase");
    let after = store.read_all(r1.first_position, 2).await.unwrap_or_default();
    assert!(after.iter().all(|r| r.position > r1.first_position));
    assert!(after.len() <= 2, "limit honoured");
}

/// An event id can be stored only once (when the adapter says it enforces this).
pub async fn duplicate_event_id_refused(store: &dyn EventStore) {
    if !store.capabilities().unique_event_ids {
        eprintln!("duplicate_event_id_refused: adapter declares unique_event_ids = false");
        return;
    }
    let s = stream();
    let e = event(1);
    store.append(&s, ExpectedVersion::NoStream, vec![e.clone()]).await.unwrap_or_else(|e| panic!("{e}"));
    let again = store.append(&s, ExpectedVersion::Exact(1), vec![e]).await;
    assert!(again.is_err(), "a duplicate event id must not be stored twice");
    assert_eq!(store.stream_version(&s).await.unwrap_or(0), 1);
}

/// A subscription from a checkpoint yields history then live events, in order.
pub async fn subscribe_from_checkpoint(store: &dyn EventStore) {
    let s = stream();
    let first = store
        .append(&s, ExpectedVersion::NoStream, (0..3).map(event).collect())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let checkpoint = first.first_position; // after the first of ours
    let mut sub = store.subscribe(checkpoint).await.unwrap_or_else(|e| panic!("{e}"));
    let live = store
        .append(&s, ExpectedVersion::Exact(3), (3..5).map(event).collect())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let deadline = std::time::Duration::from_secs(20);
    while seen.last().copied() != Some(live.last_position) {
        let next = tokio::time::timeout(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription stalled after {seen:?}"));
        let r = next.unwrap_or_else(|| panic!("subscription ended")).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.position > checkpoint, "nothing at or before the checkpoint");
        if let Some(prev) = seen.last() {
            assert!(r.position > *prev, "in order, no repeats");
        }
        seen.push(r.position);
    }
    for p in (first.first_position + 1)..=first.last_position {
        assert!(seen.contains(&p), "history event {p} delivered");
    }
    for p in live.first_position..=live.last_position {
        assert!(seen.contains(&p), "live event {p} delivered");
    }
}

/// `writers` tasks append `per_writer` events each to one stream with expected
/// versions: all land, versions gap-free, no duplicates.
pub async fn concurrent_appenders(store: Arc<dyn EventStore>, writers: usize, per_writer: usize) {
    let s = stream();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(per_writer);
            let mut version = 0;
            for i in 0..per_writer {
                let e = event((w * per_writer + i) as u64);
                ids.push(e.id);
                loop {
                    match store.append(&s, ExpectedVersion::from_version(version), vec![e.clone()]).await {
                        Ok(r) => {
                            version = r.last_version;
                            break;
                        }
                        Err(Error::Conflict { actual, .. }) => version = actual,
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
            ids
        }));
    }
    let mut expected = HashSet::new();
    for t in tasks {
        expected.extend(t.await.unwrap_or_else(|e| panic!("writer panicked: {e}")));
    }
    let total = writers * per_writer;
    let read = store.read_stream_to_end(&s, 1).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.len(), total, "every event landed");
    assert!(read.iter().enumerate().all(|(i, r)| r.version == i as u64 + 1), "versions are 1..={total} without gaps");
    let got: HashSet<_> = read.iter().map(|r| r.id).collect();
    assert_eq!(got.len(), total, "no duplicates");
    assert_eq!(got, expected, "exactly the events the writers appended");
}

/// A subscriber running while `writers` tasks append `per_writer` events each (to
/// their own streams, in small batches) sees every appended position exactly once
/// and in increasing order: no event is skipped when commits interleave.
pub async fn subscription_sees_every_event_under_concurrent_writers(
    store: Arc<dyn EventStore>,
    writers: usize,
    per_writer: usize,
) {
    // Start after the current head so other checks' events do not count.
    let marker =
        store.append(&stream(), ExpectedVersion::NoStream, vec![event(0)]).await.unwrap_or_else(|e| panic!("{e}"));
    let mut sub = store.subscribe(marker.last_position).await.unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = stream();
            let mut positions = Vec::with_capacity(per_writer);
            let mut version = 0;
            let mut n = 0;
            while n < per_writer {
                let batch = (1 + (w + n) % 3).min(per_writer - n);
                let r = store
                    .append(
                        &s,
                        ExpectedVersion::from_version(version),
                        (0..batch).map(|k| event((n + k) as u64)).collect(),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("append: {e}"));
                positions.extend(r.first_position..=r.last_position);
                version = r.last_version;
                n += batch;
            }
            positions
        }));
    }
    let mut appended = HashSet::new();
    for t in tasks {
        appended.extend(t.await.unwrap_or_else(|e| panic!("writer panicked: {e}")));
    }
    assert_eq!(appended.len(), writers * per_writer);
    let mut last = marker.last_position;
    let mut seen = HashSet::new();
    while seen.len() < appended.len() {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription stalled: {} of {} events seen", seen.len(), appended.len()));
        let r = next.unwrap_or_else(|| panic!("subscription ended")).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.position > last, "positions increase: {} after {last}", r.position);
        last = r.position;
        if appended.contains(&r.position) {
            assert!(seen.insert(r.position), "position {} delivered twice", r.position);
        }
    }
    assert_eq!(seen, appended, "every appended position was delivered");
}
