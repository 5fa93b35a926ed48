use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use userz_core::ids::JobId;
use userz_core::ports::{ClaimedJob, Enqueued, LeaseToken, NewJob, WorkQueue};
use userz_core::{Clock, Error, Result, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
enum JobState {
    Ready { at: Timestamp },
    Leased { token: uuid::Uuid, expires_at: Timestamp },
    Done,
}

#[derive(Debug)]
struct Entry {
    queue: String,
    payload: Bytes,
    seq: u64,
    deliveries: u32,
    state: JobState,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<JobId, Entry>,
    seq: u64,
}

/// In-memory [`WorkQueue`] with leases measured on the given clock.
#[derive(Debug)]
pub struct MemoryWorkQueue {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl MemoryWorkQueue {
    /// An empty queue.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { state: Mutex::new(State::default()), clock }
    }

    /// Jobs not yet acknowledged (pending or leased), for diagnostics.
    pub fn outstanding(&self) -> usize {
        self.state.lock().jobs.values().filter(|e| e.state != JobState::Done).count()
    }
}

fn lost(job: &JobId) -> Error {
    Error::LeaseLost(job.to_string())
}

#[async_trait]
impl WorkQueue for MemoryWorkQueue {
    async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        if st.jobs.contains_key(&job.id) {
            return Ok(Enqueued::Duplicate);
        }
        st.seq += 1;
        let seq = st.seq;
        st.jobs.insert(
            job.id,
            Entry {
                queue: job.queue,
                payload: job.payload,
                seq,
                deliveries: 0,
                state: JobState::Ready { at: job.not_before.unwrap_or(now) },
            },
        );
        Ok(Enqueued::New)
    }

    async fn claim(&self, queue: &str, _worker: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        let pick = st
            .jobs
            .iter()
            .filter(|(_, e)| e.queue == queue)
            .filter_map(|(id, e)| match e.state {
                JobState::Ready { at } if at <= now => Some((at, e.seq, *id)),
                JobState::Leased { expires_at, .. } if expires_at <= now => Some((expires_at, e.seq, *id)),
                _ => None,
            })
            .min();
        let Some((_, _, id)) = pick else {
            return Ok(None);
        };
        let token = uuid::Uuid::new_v4();
        let expires_at = now + lease;
        let Some(e) = st.jobs.get_mut(&id) else {
            return Ok(None);
        };
        e.deliveries += 1;
        e.state = JobState::Leased { token, expires_at };
        Ok(Some(ClaimedJob {
            id,
            queue: e.queue.clone(),
            payload: e.payload.clone(),
            attempt: e.deliveries,
            lease: LeaseToken { job: id, token },
            lease_expires_at: expires_at,
        }))
    }

    async fn heartbeat(&self, lease: &LeaseToken, extend: Duration) -> Result<Timestamp> {
        let now = self.clock.now();
        let mut st = self.state.lock();
        let e = st.jobs.get_mut(&lease.job).ok_or_else(|| lost(&lease.job))?;
        match e.state {
            JobState::Leased { token, expires_at } if token == lease.token && expires_at > now => {
                let next = now + extend;
                e.state = JobState::Leased { token, expires_at: next };
                Ok(next)
            }
            _ => Err(lost(&lease.job)),
        }
    }

    async fn ack(&self, lease: &LeaseToken) -> Result<()> {
        let mut st = self.state.lock();
        let e = st.jobs.get_mut(&lease.job).ok_or_else(|| lost(&lease.job))?;
        match e.state {
            JobState::Leased { token, .. } if token == lease.token => {
                e.state = JobState::Done;
                e.payload = Bytes::new();
                Ok(())
            }
            _ => Err(lost(&lease.job)),
        }
    }

    async fn nack(&self, lease: &LeaseToken, retry_at: Timestamp) -> Result<()> {
        let mut st = self.state.lock();
        let e = st.jobs.get_mut(&lease.job).ok_or_else(|| lost(&lease.job))?;
        match e.state {
            JobState::Leased { token, .. } if token == lease.token => {
                e.state = JobState::Ready { at: retry_at };
                Ok(())
            }
            _ => Err(lost(&lease.job)),
        }
    }
}
