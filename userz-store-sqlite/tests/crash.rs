//! SIGKILL a child appending in a loop, 20 times; after each kill the SQLite file
//! holds only whole events, gap-free versions, a projection that matches its
//! checkpoint, and a subscription resumes from the checkpoint exactly.

use std::sync::Arc;

use userz_core::ports::{EventStore, ReadModelStore};
use userz_store_sqlite::SqliteStoreBuilder;
use userz_testkit::crash;

const DB_ENV: &str = "USERZ_CRASH_DB";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the crash child; run by sigkill_twenty_times"]
async fn crash_child() {
    if !crash::is_child() {
        return;
    }
    let path = std::env::var(DB_ENV).unwrap_or_else(|_| panic!("{DB_ENV}"));
    let store = Arc::new(SqliteStoreBuilder::new(path).build().await.unwrap_or_else(|e| panic!("{e}")));
    crash::child_main(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let db = dir.path().join("crash.db").display().to_string();
    let seed = std::process::id() as u64;
    eprintln!("kill-moment seed {seed}");
    let reports = crash::kill_rounds(
        20,
        seed,
        || crash::spawn_child("crash_child", &[(DB_ENV, db.clone())]),
        || {
            let db = db.clone();
            async move {
                let s = Arc::new(SqliteStoreBuilder::new(db).build().await.unwrap_or_else(|e| panic!("{e}")));
                (s.clone() as Arc<dyn EventStore>, s as Arc<dyn ReadModelStore>)
            }
        },
    )
    .await;
    assert!(reports.last().map_or(0, |r| r.events) > 0, "the children appended something");
    assert!(reports.windows(2).all(|w| w[1].events >= w[0].events), "nothing committed is lost between rounds");
}
