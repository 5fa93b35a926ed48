//! The command bus: idempotent command ids, bounded conflict retries, snapshots
//! and upcasting of old event schemas.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use userz_core::decider::{Aggregate, Decider, Rejection};
use userz_core::domain::pr::*;
use userz_core::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use userz_core::ids::*;
use userz_core::ports::{AppendResult, EventStore, EventStream, StoreCapabilities};
use userz_core::{Error, Result, Sensitive};
use userz_engine::{CommandBus, CommandError, CommandMeta};
use userz_store_memory::MemoryStores;
use userz_testkit::ManualClock;

fn stores() -> MemoryStores {
    MemoryStores::new(Arc::new(ManualClock::at_2026()))
}

async fn open_pr(bus: &CommandBus) -> StreamId {
    let pr = PrId::new();
    let stream = CommandBus::stream::<PrDecider>(pr);
    let cmd = PrCommand::Open {
        pr,
        org: OrgId::new(),
        repo: RepoId::new(),
        feedback: FeedbackId::new(),
        run: RunId::new(),
        number: 1,
        url: "u".into(),
        branch: "userz/b".into(),
    };
    bus.execute::<PrDecider>(&stream, CommandMeta::new(), &cmd).await.unwrap_or_else(|e| panic!("{e}"));
    stream
}

fn add_comment(n: u32) -> PrCommand {
    PrCommand::AddComment {
        comment: DiffComment {
            comment: CommentId::new(),
            path: format!("src/f{n}.rs"),
            line: n + 1,
            body: Sensitive::new(format!("comment {n}")),
            severity: CommentSeverity::Suggestion,
            resolved: false,
        },
    }
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_first_outcome_and_appends_nothing() {
    let s = stores();
    let bus = CommandBus::new(s.events.clone(), s.read_models.clone());
    let stream = open_pr(&bus).await;
    let meta = CommandMeta::new();
    let cmd = add_comment(1);
    let first = bus.execute::<PrDecider>(&stream, meta, &cmd).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!first.duplicate);
    let again = bus.execute::<PrDecider>(&stream, meta, &cmd).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(again.duplicate, "recognised as a repeat");
    assert_eq!(again.events, first.events, "same outcome");
    assert_eq!(again.version, first.version, "nothing appended");
    assert_eq!(s.events.stream_version(&stream).await.unwrap_or(0), 2);
    // The same id with a different command still returns the first outcome.
    let other = bus.execute::<PrDecider>(&stream, meta, &add_comment(2)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.events, first.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_on_one_stream_all_land_through_conflict_retries() {
    let s = stores();
    let bus = CommandBus::new(s.events.clone(), s.read_models.clone()).with_max_conflict_retries(50);
    let stream = open_pr(&bus).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let bus = bus.clone();
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            bus.execute::<PrDecider>(&stream, CommandMeta::new(), &add_comment(n)).await.map(|o| o.version)
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}")));
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<u64>>(), "each command appended exactly once");
    let (state, _) = bus.load::<PrDecider>(&stream).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.get().map(|p| p.comments.len()), Some(8));
}

/// A store whose appends always conflict.
#[derive(Debug)]
struct AlwaysConflicts {
    inner: Arc<dyn EventStore>,
    appends: AtomicUsize,
}

#[async_trait]
impl EventStore for AlwaysConflicts {
    async fn append(&self, stream: &StreamId, expected: ExpectedVersion, _: Vec<NewEvent>) -> Result<AppendResult> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        Err(Error::Conflict { stream: stream.clone(), expected, actual: 999 })
    }
    async fn read_stream(&self, s: &StreamId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.inner.read_stream(s, from, limit).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.inner.read_all(after, limit).await
    }
    async fn subscribe(&self, after: u64) -> Result<EventStream> {
        self.inner.subscribe(after).await
    }
    async fn stream_version(&self, s: &StreamId) -> Result<u64> {
        self.inner.stream_version(s).await
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
}

#[tokio::test]
async fn conflict_retries_are_bounded() {
    let s = stores();
    let store = Arc::new(AlwaysConflicts { inner: s.events.clone(), appends: AtomicUsize::new(0) });
    let bus = CommandBus::new(store.clone(), s.read_models.clone()).with_max_conflict_retries(3);
    let r = bus
        .execute::<PrDecider>(
            &CommandBus::stream::<PrDecider>(PrId::new()),
            CommandMeta::new(),
            &PrCommand::Close { merged: true },
        )
        .await;
    // Closing a PR that does not exist is a rejection, decided before any append.
    assert!(matches!(r, Err(CommandError::Rejected(Rejection::NotFound { .. }))));
    let pr = PrId::new();
    let cmd = PrCommand::Open {
        pr,
        org: OrgId::new(),
        repo: RepoId::new(),
        feedback: FeedbackId::new(),
        run: RunId::new(),
        number: 1,
        url: "u".into(),
        branch: "b".into(),
    };
    let r = bus.execute::<PrDecider>(&CommandBus::stream::<PrDecider>(pr), CommandMeta::new(), &cmd).await;
    assert!(matches!(r, Err(CommandError::Failed(Error::Conflict { actual: 999, .. }))), "{r:?}");
    assert_eq!(store.appends.load(Ordering::SeqCst), 4, "one try plus three retries");
}

/// Counts how many events reads return, to prove snapshots shorten hydration.
#[derive(Debug)]
struct CountingReads {
    inner: Arc<dyn EventStore>,
    read: AtomicUsize,
}

#[async_trait]
impl EventStore for CountingReads {
    async fn append(&self, s: &StreamId, e: ExpectedVersion, ev: Vec<NewEvent>) -> Result<AppendResult> {
        self.inner.append(s, e, ev).await
    }
    async fn read_stream(&self, s: &StreamId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let r = self.inner.read_stream(s, from, limit).await?;
        self.read.fetch_add(r.len(), Ordering::SeqCst);
        Ok(r)
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.inner.read_all(after, limit).await
    }
    async fn subscribe(&self, after: u64) -> Result<EventStream> {
        self.inner.subscribe(after).await
    }
    async fn stream_version(&self, s: &StreamId) -> Result<u64> {
        self.inner.stream_version(s).await
    }
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
}

#[tokio::test]
async fn long_streams_load_from_a_snapshot_and_match_a_full_replay() {
    let s = stores();
    let counting = Arc::new(CountingReads { inner: s.events.clone(), read: AtomicUsize::new(0) });
    let bus = CommandBus::new(counting.clone(), s.read_models.clone()).with_snapshot_every(100);
    let stream = open_pr(&bus).await;
    for n in 0..449 {
        bus.execute::<PrDecider>(&stream, CommandMeta::new(), &add_comment(n)).await.unwrap_or_else(|e| panic!("{e}"));
    }
    counting.read.store(0, Ordering::SeqCst);
    let (state, version) = bus.load::<PrDecider>(&stream).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(version, 450);
    assert!(counting.read.load(Ordering::SeqCst) < 100, "hydration read only the tail after the snapshot");
    let replayed = PrDecider::replay(
        bus.read::<PrDecider>(&stream).await.unwrap_or_else(|e| panic!("{e}")).iter().map(|(_, e)| e),
    );
    assert_eq!(state, replayed, "snapshot + tail equals a full replay");
    // A repeated command from before the snapshot is still recognised.
    let meta = CommandMeta::new();
    let stream2 = open_pr(&bus).await;
    let first = bus.execute::<PrDecider>(&stream2, meta, &add_comment(1)).await.unwrap_or_else(|e| panic!("{e}"));
    for n in 0..120 {
        bus.execute::<PrDecider>(&stream2, CommandMeta::new(), &add_comment(n)).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let again = bus.execute::<PrDecider>(&stream2, meta, &add_comment(1)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(again.duplicate && again.events == first.events);
}

// --- Upcasting ------------------------------------------------------------

/// A counter whose event renamed `n` (v1) to `amount` (v2).
struct Counter;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum CounterEvent {
    Added { amount: i64 },
}
userz_core::event_names!(CounterEvent { Added });

impl Decider for Counter {
    type Command = i64;
    type Event = CounterEvent;
    type State = i64;
    fn initial_state() -> i64 {
        0
    }
    fn decide(c: &i64, _: &i64) -> std::result::Result<Vec<CounterEvent>, Rejection> {
        Ok(vec![CounterEvent::Added { amount: *c }])
    }
    fn evolve(s: i64, e: &CounterEvent) -> i64 {
        match e {
            CounterEvent::Added { amount } => s + amount,
        }
    }
}

impl Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    const SCHEMA_VERSION: u32 = 2;
    fn upcast(event_type: &str, version: u32, mut payload: serde_json::Value) -> Result<serde_json::Value> {
        match (event_type, version) {
            ("Added", 1) => {
                let n = payload.get("n").cloned().ok_or_else(|| Error::Corrupt("v1 Added without n".into()))?;
                payload["amount"] = n;
                Ok(payload)
            }
            (_, 2) => Ok(payload),
            _ => Err(Error::Corrupt(format!("{event_type} v{version} unknown"))),
        }
    }
}

#[tokio::test]
async fn old_schema_versions_are_upcast_when_read() {
    let s = stores();
    let bus = CommandBus::new(s.events.clone(), s.read_models.clone());
    let stream = StreamId::for_entity("counter", "c1");
    let v1 = NewEvent {
        id: EventId::new(),
        event_type: "Added".into(),
        schema_version: 1,
        payload: Bytes::from_static(br#"{"type":"Added","n":5}"#),
        causation_id: None,
        correlation_id: CorrelationId::new(),
    };
    s.events.append(&stream, ExpectedVersion::NoStream, vec![v1]).await.unwrap_or_else(|e| panic!("{e}"));
    bus.execute::<Counter>(&stream, CommandMeta::new(), &7).await.unwrap_or_else(|e| panic!("{e}"));
    let (total, version) = bus.load::<Counter>(&stream).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((total, version), (12, 2), "v1 event upcast and folded with the v2 one");
    let stored = s.events.read_stream(&stream, 2, 1).await.unwrap_or_default();
    assert_eq!(stored[0].schema_version, 2, "new events carry the current version");

    let future = NewEvent {
        id: EventId::new(),
        event_type: "Added".into(),
        schema_version: 9,
        payload: Bytes::from_static(br#"{"type":"Added","amount":1}"#),
        causation_id: None,
        correlation_id: CorrelationId::new(),
    };
    s.events.append(&stream, ExpectedVersion::Exact(2), vec![future]).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(bus.load::<Counter>(&stream).await, Err(Error::Corrupt(_))),
        "unknown versions are refused, not guessed"
    );
}
