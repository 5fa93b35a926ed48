//! Plain runs: the sandbox starts, reports and cleans up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test]
async fn true_runs_and_leaves_no_cgroup() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, verdicts) = h.run_probe(&run, limits(), &["status"]).await;
    eprintln!("{outcome:?}\n{}", String::from_utf8_lossy(&outcome.stderr));
    let v = contained(&outcome, &verdicts);
    assert_eq!(v["detail"]["uid"], "1000");
    assert!(cgroups_left(&run.run).is_empty());
}
