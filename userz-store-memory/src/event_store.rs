use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::sync::watch;
use userz_core::event::{ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use userz_core::ports::{catch_up_subscription, AppendResult, EventStore, EventStream, StoreCapabilities};
use userz_core::{Clock, Error, Result};

#[derive(Debug, Default)]
struct State {
    log: Vec<RecordedEvent>,
    streams: HashMap<StreamId, Vec<usize>>,
    ids: HashSet<userz_core::ids::EventId>,
}

#[derive(Debug)]
struct Shared {
    state: RwLock<State>,
    head: watch::Sender<u64>,
    clock: Arc<dyn Clock>,
}

/// In-memory [`EventStore`]. Cloning shares the same log.
#[derive(Debug, Clone)]
pub struct MemoryEventStore {
    shared: Arc<Shared>,
}

impl MemoryEventStore {
    /// An empty store that stamps events with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let (head, _) = watch::channel(0);
        Self { shared: Arc::new(Shared { state: RwLock::new(State::default()), head, clock }) }
    }

    /// Number of events in the log.
    pub fn len(&self) -> usize {
        self.shared.state.read().log.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        if events.is_empty() {
            return Err(Error::Invalid("append of zero events".into()));
        }
        let now = self.shared.clock.now();
        let mut st = self.shared.state.write();
        let actual = st.streams.get(stream).map_or(0, |v| v.len() as u64);
        if !expected.matches(actual) {
            return Err(Error::Conflict { stream: stream.clone(), expected, actual });
        }
        let mut seen = HashSet::new();
        for e in &events {
            if st.ids.contains(&e.id) || !seen.insert(e.id) {
                return Err(Error::Invalid(format!("duplicate event id {}", e.id)));
            }
        }
        let first_position = st.log.len() as u64 + 1;
        let n = events.len() as u64;
        for (i, e) in events.into_iter().enumerate() {
            let idx = st.log.len();
            st.ids.insert(e.id);
            let rec = RecordedEvent::from_new(e, stream.clone(), actual + 1 + i as u64, idx as u64 + 1, now);
            st.log.push(rec);
            st.streams.entry(stream.clone()).or_default().push(idx);
        }
        let last_position = st.log.len() as u64;
        drop(st);
        self.shared.head.send_replace(last_position);
        Ok(AppendResult { first_version: actual + 1, last_version: actual + n, first_position, last_position })
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let st = self.shared.state.read();
        let Some(idx) = st.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from_version.max(1) - 1).unwrap_or(usize::MAX);
        Ok(idx.iter().skip(start).take(limit).map(|&i| st.log[i].clone()).collect())
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let st = self.shared.state.read();
        let start = usize::try_from(after_position).unwrap_or(usize::MAX);
        Ok(st.log.iter().skip(start).take(limit).cloned().collect())
    }

    async fn subscribe(&self, after_position: u64) -> Result<EventStream> {
        let rx = self.shared.head.subscribe();
        Ok(catch_up_subscription(Arc::new(self.clone()), after_position, move |after| {
            let mut rx = rx.clone();
            Box::pin(async move {
                if rx.wait_for(|head| *head > after).await.is_err() {
                    futures::future::pending::<()>().await;
                }
            })
        }))
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        Ok(self.shared.state.read().streams.get(stream).map_or(0, |v| v.len() as u64))
    }

    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::in_memory()
    }
}
