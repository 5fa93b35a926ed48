//! The single writer: one thread owns the write connection and commits every
//! request that queued up while the previous transaction ran in one transaction
//! (group commit), each request inside its own savepoint so that a refused
//! request (a version conflict, say) does not undo its neighbours.

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};
use userz_core::{Error, Result};

type Completion = Box<dyn FnOnce(Option<&str>) + Send>;
type Work = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Handle to the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Work>,
}

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

impl Writer {
    /// Starts the writer thread on `conn`. After each commit it publishes the
    /// log's head position on `head`.
    pub(crate) fn spawn(mut conn: Connection, head: watch::Sender<u64>) -> std::io::Result<Writer> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Work>();
        std::thread::Builder::new().name("userz-sqlite-writer".into()).spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(w) => batch.push(w),
                        Err(_) => break,
                    }
                }
                run_batch(&mut conn, batch, &head);
            }
        })?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next group commit and returns its result once committed.
    ///
    /// An `Err` from `f` rolls back only `f`'s own changes.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Result<R>>();
        let work: Work = Box::new(move |conn| {
            let r = f(conn);
            let keep = r.is_ok();
            let done: Completion = Box::new(move |commit_error| {
                let out = match commit_error {
                    Some(e) => Err(Error::Unavailable(format!("sqlite commit failed: {e}"))),
                    None => r,
                };
                let _ = reply.send(out);
            });
            (keep, done)
        });
        self.tx.send(work).map_err(|_| Error::Unavailable("sqlite writer stopped".into()))?;
        rx.await.map_err(|_| Error::Unavailable("sqlite writer dropped a request".into()))?
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Work>, head: &watch::Sender<u64>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            // Nothing runs: dropping the requests closes their reply channels, so
            // every waiter gets `Unavailable`.
            tracing::error!(error = %e, "sqlite transaction could not start");
            drop(batch);
            return;
        }
    };
    let mut completions = Vec::with_capacity(batch.len());
    for work in batch {
        if let Err(e) = tx.execute_batch("SAVEPOINT req") {
            tracing::error!(error = %e, "savepoint could not start; request dropped");
            continue; // its waiter sees the reply channel close: `Unavailable`
        }
        // A panicking request must not take the writer (and every later request)
        // down: its savepoint is rolled back and its waiter, whose reply sender
        // was dropped in the unwind, gets `Unavailable`.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&tx)));
        let (keep, done) = match outcome {
            Ok((keep, done)) => (keep, Some(done)),
            Err(_) => {
                tracing::error!("sqlite write request panicked; rolled back");
                (false, None)
            }
        };
        let end = if keep { "RELEASE req" } else { "ROLLBACK TO req; RELEASE req" };
        if let Err(e) = tx.execute_batch(end) {
            tracing::error!(error = %e, "savepoint end failed");
        }
        completions.extend(done);
    }
    let commit = tx.commit();
    let err = commit.as_ref().err().map(|e| e.to_string());
    for done in completions {
        done(err.as_deref());
    }
    if err.is_none() {
        if let Ok(h) = conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get::<_, i64>(0)) {
            head.send_replace(u64::try_from(h).unwrap_or(0));
        }
    }
}
