//! Shared helpers for the benches.

use userz_core::domain::pr::{CommentSeverity, DiffComment, PrEvent};
use userz_core::domain::run::{RunEvent, RunKind};
use userz_core::ids::{AppId, CommentId, FeedbackId, OrgId, PrId, RepoId, RunId};
use userz_core::Sensitive;
use userz_core::Timestamp;

/// A current-thread Tokio runtime for driving async ports from criterion.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// A PR stream of `n` events: opened, then `n - 1` review comments.
pub fn pr_stream_events(n: usize) -> Vec<PrEvent> {
    let mut v = Vec::with_capacity(n);
    v.push(PrEvent::PullRequestOpened {
        pr: PrId::new(),
        org: OrgId::new(),
        repo: RepoId::new(),
        feedback: FeedbackId::new(),
        run: RunId::new(),
        number: 1,
        url: "https://forge.invalid/pr/1".into(),
        branch: "userz/bench".into(),
    });
    for i in 1..n {
        v.push(PrEvent::CommentAdded {
            comment: DiffComment {
                comment: CommentId::new(),
                path: format!("src/module_{}.rs", i % 50),
                line: (i % 400) as u32 + 1,
                body: Sensitive::new(format!("Consider handling the error case here ({i}).")),
                severity: CommentSeverity::Suggestion,
                resolved: false,
            },
        });
    }
    v
}

/// A run stream of `n` events: queued, then `n - 1` recorded retries.
pub fn run_stream_events(n: usize) -> Vec<RunEvent> {
    let mut v = Vec::with_capacity(n);
    v.push(RunEvent::RunQueued {
        run: RunId::new(),
        org: OrgId::new(),
        app: AppId::new(),
        repo: RepoId::new(),
        feedback: FeedbackId::new(),
        branch: "userz/bench".into(),
        kind: RunKind::Initial,
        wall_clock_ms: 1_200_000,
        at: Timestamp::EPOCH,
    });
    for i in 1..n {
        v.push(RunEvent::RetryScheduled {
            step: "push".into(),
            attempt: i as u32,
            error: "unavailable: connection reset".into(),
            delay_ms: 1000,
            retry_at: Timestamp::from_millis(i as i64 * 1000),
        });
    }
    v
}
