//! Crash safety: a child process appends and projects in a loop; the parent kills
//! it with SIGKILL at a random moment, reopens the store and checks that it holds
//! only whole events, gap-free versions, and a projection whose rows match its
//! checkpoint exactly, then resumes a subscription from that checkpoint.
//!
//! The child is the test binary itself, re-run with `--exact <child_test>
//! --ignored` and `USERZ_CRASH_CHILD=1`; the child test calls [`child_main`].

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use userz_core::event::{ExpectedVersion, StreamId};
use userz_core::ports::{CheckpointMove, EventStore, EventStoreExt, ReadModelCommit, ReadModelOp, ReadModelStore};
use userz_core::Error;

use crate::conformance::event_store::event;

/// Env var that turns the child test on.
pub const CHILD_ENV: &str = "USERZ_CRASH_CHILD";
const PROJECTION: &str = "crash_projection";
const TABLE: &str = "crash_rows";

/// Whether this process is the crash child.
pub fn is_child() -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok("1")
}

/// The child: appends batches to four streams and runs a projection that writes
/// one row per event with its checkpoint, forever (until killed).
pub async fn child_main(events: Arc<dyn EventStore>, models: Arc<dyn ReadModelStore>) {
    let projector = {
        let events = events.clone();
        tokio::spawn(async move {
            let mut cp = models.checkpoint(PROJECTION).await.unwrap_or_else(|e| panic!("{e}"));
            let mut sub = events.subscribe(cp).await.unwrap_or_else(|e| panic!("{e}"));
            while let Some(Ok(first)) = sub.next().await {
                let mut batch = vec![first];
                while batch.len() < 16 {
                    match futures::FutureExt::now_or_never(sub.next()) {
                        Some(Some(Ok(r))) => batch.push(r),
                        _ => break,
                    }
                }
                let new = batch.last().map_or(cp, |r| r.position);
                let ops = batch
                    .iter()
                    .map(|r| ReadModelOp::Put {
                        table: TABLE.into(),
                        key: format!("{:020}", r.position),
                        value: Bytes::from(r.id.to_string()),
                    })
                    .collect();
                models
                    .commit(ReadModelCommit {
                        checkpoint: Some(CheckpointMove { name: PROJECTION.into(), expected: cp, new }),
                        ops,
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                cp = new;
            }
        })
    };
    let mut n: u64 = 0;
    loop {
        let stream = StreamId::new(format!("crash-{}", n % 4)).unwrap_or_else(|e| panic!("{e}"));
        let version = events.stream_version(&stream).await.unwrap_or_else(|e| panic!("{e}"));
        let batch = 1 + (n % 5) as usize;
        match events
            .append(
                &stream,
                ExpectedVersion::from_version(version),
                (0..batch).map(|k| event(n * 10 + k as u64)).collect(),
            )
            .await
        {
            Ok(_) | Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("append: {e}"),
        }
        n += 1;
        if projector.is_finished() {
            panic!("projector stopped");
        }
    }
}

/// Spawns the child: this test binary running only `child_test`, with `envs`.
pub fn spawn_child(child_test: &str, envs: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", child_test, "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("spawn child: {e}"))
}

/// What one round found.
#[derive(Debug, Clone, Copy)]
pub struct RoundReport {
    /// Events in the log.
    pub events: usize,
    /// The projection's checkpoint.
    pub checkpoint: u64,
}

/// Checks the store after a kill: whole events with decodable payloads, strictly
/// increasing positions, gap-free versions per stream, projection rows exactly
/// `1..=checkpoint` of the log, and a subscription from the checkpoint that
/// delivers exactly the rest of the log, once each.
pub async fn verify(events: &dyn EventStore, models: &dyn ReadModelStore) -> RoundReport {
    let all = {
        let mut v = Vec::new();
        let mut after = 0;
        loop {
            let page = events.read_all(after, 1000).await.unwrap_or_else(|e| panic!("read_all: {e}"));
            let Some(last) = page.last() else { break };
            after = last.position;
            v.extend(page);
        }
        v
    };
    let mut versions: BTreeMap<StreamId, u64> = BTreeMap::new();
    let mut prev = 0;
    for r in &all {
        assert!(r.position > prev, "positions strictly increase ({} after {prev})", r.position);
        prev = r.position;
        let v: serde_json::Value =
            serde_json::from_slice(&r.payload).unwrap_or_else(|e| panic!("torn payload at {}: {e}", r.position));
        assert!(v.get("n").is_some(), "whole payload at {}", r.position);
        let last = versions.entry(r.stream.clone()).or_insert(0);
        assert_eq!(r.version, *last + 1, "gap-free versions in {}", r.stream);
        *last = r.version;
    }
    for (stream, v) in &versions {
        assert_eq!(events.stream_version(stream).await.unwrap_or(0), *v, "stream head of {stream} matches its events");
        assert_eq!(events.read_stream_to_end(stream, 1).await.unwrap_or_default().len() as u64, *v);
    }
    let checkpoint = models.checkpoint(PROJECTION).await.unwrap_or_else(|e| panic!("{e}"));
    let rows = {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = models.scan(TABLE, "", after.as_deref(), 1000).await.unwrap_or_else(|e| panic!("{e}"));
            let Some((k, _)) = page.last() else { break };
            after = Some(k.clone());
            rows.extend(page.into_iter().map(|(k, _)| k.parse::<u64>().unwrap_or(0)));
        }
        rows
    };
    let upto: Vec<u64> = all.iter().map(|r| r.position).filter(|p| *p <= checkpoint).collect();
    assert_eq!(rows, upto, "projection rows are exactly the events up to its checkpoint {checkpoint}");
    let rest: Vec<u64> = all.iter().map(|r| r.position).filter(|p| *p > checkpoint).collect();
    if !rest.is_empty() {
        let mut sub = events.subscribe(checkpoint).await.unwrap_or_else(|e| panic!("{e}"));
        let mut got = Vec::with_capacity(rest.len());
        let mut seen = HashSet::new();
        while got.len() < rest.len() {
            let r = tokio::time::timeout(Duration::from_secs(20), sub.next())
                .await
                .unwrap_or_else(|_| panic!("resumed subscription stalled"))
                .unwrap_or_else(|| panic!("subscription ended"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(seen.insert(r.position), "no repeats");
            got.push(r.position);
        }
        assert_eq!(got, rest, "the resumed subscription delivers exactly the events after the checkpoint");
    }
    RoundReport { events: all.len(), checkpoint }
}

/// Kills a freshly spawned child `rounds` times at pseudo-random moments (seeded,
/// 150–650 ms after start) and verifies the store after each kill with `open`.
pub async fn kill_rounds<F, Fut>(rounds: usize, seed: u64, spawn: impl Fn() -> Child, open: F) -> Vec<RoundReport>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Arc<dyn EventStore>, Arc<dyn ReadModelStore>)>,
{
    let mut reports = Vec::with_capacity(rounds);
    let mut x = seed | 1;
    for round in 0..rounds {
        // xorshift: reproducible kill moments from the printed seed.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let wait = Duration::from_millis(150 + x % 500);
        let mut child = spawn();
        tokio::time::sleep(wait).await;
        child.kill().unwrap_or_else(|e| panic!("kill: {e}"));
        let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        assert!(!status.success(), "round {round}: the child was killed, not finished");
        let (events, models) = open().await;
        let report = verify(events.as_ref(), models.as_ref()).await;
        eprintln!("round {round}: killed after {wait:?}; {} events, checkpoint {}", report.events, report.checkpoint);
        reports.push(report);
    }
    reports
}
