//! [`WorkQueue`] conformance.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use userz_core::ids::JobId;
use userz_core::ports::{Enqueued, NewJob, WorkQueue};
use userz_core::Error;

use super::unique;
use crate::clock::TimeControl;

fn job(queue: &str, n: u8) -> NewJob {
    NewJob { id: JobId::new(), queue: queue.to_string(), payload: Bytes::from(vec![n]), not_before: None }
}

/// Runs every check.
pub async fn run_all(queue: Arc<dyn WorkQueue>, time: TimeControl) {
    enqueue_is_idempotent(queue.as_ref()).await;
    claims_are_exclusive_and_fifo(queue.clone()).await;
    lease_expiry_redelivers(queue.as_ref(), &time).await;
    heartbeat_extends_lease(queue.as_ref(), &time).await;
    ack_completes(queue.as_ref(), &time).await;
    stale_lease_cannot_ack(queue.as_ref(), &time).await;
    nack_delays(queue.as_ref(), &time).await;
    not_before_respected(queue.as_ref(), &time).await;
}

/// Enqueueing the same id twice adds one job.
pub async fn enqueue_is_idempotent(queue: &dyn WorkQueue) {
    let q = unique("q");
    let j = job(&q, 1);
    assert_eq!(queue.enqueue(j.clone()).await.unwrap_or_else(|e| panic!("{e}")), Enqueued::New);
    assert_eq!(queue.enqueue(j).await.unwrap_or_else(|e| panic!("{e}")), Enqueued::Duplicate);
    assert!(queue.claim(&q, "w", Duration::from_secs(60)).await.unwrap_or_default().is_some());
    assert!(queue.claim(&q, "w", Duration::from_secs(60)).await.unwrap_or_default().is_none(), "only one job");
}

/// Jobs go out oldest first, each to one worker.
pub async fn claims_are_exclusive_and_fifo(queue: Arc<dyn WorkQueue>) {
    let q = unique("q");
    for n in 0..20u8 {
        queue.enqueue(job(&q, n)).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let first = queue.claim(&q, "w0", Duration::from_secs(60)).await.unwrap_or_default();
    assert_eq!(first.map(|j| j.payload), Some(Bytes::from(vec![0u8])), "oldest first");
    let mut tasks = Vec::new();
    for w in 0..4 {
        let queue = queue.clone();
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(j) =
                queue.claim(&q, &format!("w{w}"), Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}"))
            {
                got.push(j.payload[0]);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_else(|e| panic!("{e}")));
    }
    all.sort_unstable();
    assert_eq!(all, (1..20u8).collect::<Vec<_>>(), "every job claimed exactly once");
}

/// An expired lease makes the job claimable again with `attempt + 1`.
pub async fn lease_expiry_redelivers(queue: &dyn WorkQueue, time: &TimeControl) {
    let q = unique("q");
    let lease = time.unit();
    queue.enqueue(job(&q, 1)).await.unwrap_or_else(|e| panic!("{e}"));
    let a = queue.claim(&q, "w1", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("claimable"));
    assert_eq!(a.attempt, 1);
    assert!(queue.claim(&q, "w2", lease).await.unwrap_or_default().is_none(), "leased job is not claimable");
    time.advance(lease + lease / 2).await;
    let b =
        queue.claim(&q, "w2", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("expired lease re-delivers"));
    assert_eq!(b.id, a.id);
    assert_eq!(b.attempt, 2, "re-delivery counts attempts");
    assert!(matches!(queue.heartbeat(&a.lease, lease).await, Err(Error::LeaseLost(_))), "old holder lost the lease");
}

/// A heartbeat keeps a job leased past its first expiry.
pub async fn heartbeat_extends_lease(queue: &dyn WorkQueue, time: &TimeControl) {
    let q = unique("q");
    let lease = time.unit();
    queue.enqueue(job(&q, 1)).await.unwrap_or_else(|e| panic!("{e}"));
    let a = queue.claim(&q, "w1", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("claimable"));
    time.advance(lease / 2).await;
    queue.heartbeat(&a.lease, lease * 2).await.unwrap_or_else(|e| panic!("heartbeat on a live lease: {e}"));
    time.advance(lease).await;
    assert!(queue.claim(&q, "w2", lease).await.unwrap_or_default().is_none(), "heartbeat extended the lease");
    queue.ack(&a.lease).await.unwrap_or_else(|e| panic!("{e}"));
}

/// An acked job never comes back.
pub async fn ack_completes(queue: &dyn WorkQueue, time: &TimeControl) {
    let q = unique("q");
    let lease = time.unit();
    let j = job(&q, 1);
    queue.enqueue(j.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    let a = queue.claim(&q, "w1", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("claimable"));
    queue.ack(&a.lease).await.unwrap_or_else(|e| panic!("{e}"));
    time.advance(lease * 2).await;
    assert!(queue.claim(&q, "w1", lease).await.unwrap_or_default().is_none(), "acked job stays done");
    assert_eq!(
        queue.enqueue(j).await.unwrap_or_else(|e| panic!("{e}")),
        Enqueued::Duplicate,
        "ids are remembered after ack"
    );
}

/// After a re-claim, the old lease can neither ack nor nack.
pub async fn stale_lease_cannot_ack(queue: &dyn WorkQueue, time: &TimeControl) {
    let q = unique("q");
    let lease = time.unit();
    queue.enqueue(job(&q, 1)).await.unwrap_or_else(|e| panic!("{e}"));
    let a = queue.claim(&q, "w1", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("claimable"));
    time.advance(lease + lease / 2).await;
    let b = queue.claim(&q, "w2", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("re-delivered"));
    assert!(matches!(queue.ack(&a.lease).await, Err(Error::LeaseLost(_))), "stale ack refused");
    assert!(
        matches!(queue.nack(&a.lease, userz_core::Timestamp::EPOCH).await, Err(Error::LeaseLost(_))),
        "stale nack refused"
    );
    queue.ack(&b.lease).await.unwrap_or_else(|e| panic!("current holder acks: {e}"));
}

/// A nacked job is claimable again only at `retry_at`.
pub async fn nack_delays(queue: &dyn WorkQueue, time: &TimeControl) {
    let q = unique("q");
    let lease = time.unit();
    queue.enqueue(job(&q, 1)).await.unwrap_or_else(|e| panic!("{e}"));
    let a = queue.claim(&q, "w1", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("claimable"));
    let now = match time {
        TimeControl::Manual(c) => userz_core::Clock::now(c.as_ref()),
        TimeControl::Real => userz_core::Clock::now(&userz_core::SystemClock),
    };
    queue.nack(&a.lease, now + lease).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(queue.claim(&q, "w1", lease).await.unwrap_or_default().is_none(), "not before retry_at");
    time.advance(lease + lease / 2).await;
    let b =
        queue.claim(&q, "w1", lease).await.unwrap_or_default().unwrap_or_else(|| panic!("claimable after retry_at"));
    assert_eq!(b.attempt, 2);
}

/// A job is not claimable before `not_before`.
pub async fn not_before_respected(queue: &dyn WorkQueue, time: &TimeControl) {
    let q = unique("q");
    let unit = time.unit();
    let now = match time {
        TimeControl::Manual(c) => userz_core::Clock::now(c.as_ref()),
        TimeControl::Real => userz_core::Clock::now(&userz_core::SystemClock),
    };
    let mut j = job(&q, 1);
    j.not_before = Some(now + unit);
    queue.enqueue(j).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(queue.claim(&q, "w", unit).await.unwrap_or_default().is_none(), "too early");
    time.advance(unit + unit / 2).await;
    assert!(queue.claim(&q, "w", unit).await.unwrap_or_default().is_some(), "due now");
}
