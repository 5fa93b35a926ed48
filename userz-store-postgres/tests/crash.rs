//! SIGKILL a child appending in a loop, 20 times; after each kill PostgreSQL holds
//! only whole events, gap-free versions, a projection that matches its
//! checkpoint, and a subscription resumes from the checkpoint exactly.

use std::sync::Arc;

use userz_core::ports::{EventStore, ReadModelStore};
use userz_store_postgres::PgStoreBuilder;
use userz_testkit::{crash, services};

const SCHEMA_ENV: &str = "USERZ_CRASH_SCHEMA";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the crash child; run by sigkill_twenty_times"]
async fn crash_child() {
    if !crash::is_child() {
        return;
    }
    let url = std::env::var("USERZ_PG_URL").unwrap_or_else(|_| panic!("USERZ_PG_URL"));
    let schema = std::env::var(SCHEMA_ENV).unwrap_or_else(|_| panic!("{SCHEMA_ENV}"));
    let store = Arc::new(PgStoreBuilder::new(url).with_schema(schema).build().await.unwrap_or_else(|e| panic!("{e}")));
    crash::child_main(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times() {
    let Some(url) = services::require("USERZ_PG_URL") else { return };
    let schema = format!("crash_{}", uuid::Uuid::new_v4().simple());
    let seed = std::process::id() as u64;
    eprintln!("kill-moment seed {seed}");
    let reports = crash::kill_rounds(
        20,
        seed,
        || crash::spawn_child("crash_child", &[(SCHEMA_ENV, schema.clone()), ("USERZ_PG_URL", url.clone())]),
        || {
            let (url, schema) = (url.clone(), schema.clone());
            async move {
                let s = Arc::new(
                    PgStoreBuilder::new(url).with_schema(schema).build().await.unwrap_or_else(|e| panic!("{e}")),
                );
                (s.clone() as Arc<dyn EventStore>, s as Arc<dyn ReadModelStore>)
            }
        },
    )
    .await;
    assert!(reports.last().map_or(0, |r| r.events) > 0, "the children appended something");
    assert!(reports.windows(2).all(|w| w[1].events >= w[0].events), "nothing committed is lost between rounds");
}
