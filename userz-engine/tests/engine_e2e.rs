//! In-process end-to-end runs of the pipeline on the memory stores with scripted
//! doubles. The same scenarios run on every durable store adapter.

use std::sync::Arc;

use userz_store_memory::MemoryStores;
use userz_testkit::scenarios::{self, StoreSet};
use userz_testkit::ManualClock;

fn stores() -> StoreSet {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    StoreSet { events: m.events, read_models: m.read_models, queue: m.queue, clock }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_pr_opens_draft_pr() {
    scenarios::auto_pr_opens_draft_pr(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_path_ends_pr_failed_with_file_and_rule() {
    scenarios::forbidden_path_ends_pr_failed(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_mode_waits_for_queue() {
    scenarios::manual_mode_waits_for_queue(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pr_mode_never_runs() {
    scenarios::no_pr_mode_never_runs(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_benign_labels_are_rejected_and_never_reach_a_sandbox() {
    scenarios::non_benign_labels_are_rejected(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_push_is_retried_with_backoff_events() {
    scenarios::failing_push_is_retried_with_backoff(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_run_resumes_with_exactly_one_pr() {
    scenarios::crash_mid_run_resumes_with_one_pr(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_pr_created_finds_the_pr_on_retry() {
    scenarios::crash_after_pr_created_finds_it(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_set_before_crash_fires_after_restart() {
    scenarios::deadline_fires_after_restart(stores()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_comments_drive_a_revision_on_the_same_branch_and_pr() {
    scenarios::review_comments_drive_a_revision(stores()).await;
}
