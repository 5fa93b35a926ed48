//! The pipeline process manager: turns events into jobs, follow-up commands and
//! timers; and the timer service that fires due timers.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::codec::AnyEvent;
use crate::commands::{CommandBus, CommandError, CommandMeta};
use crate::projections::due_timers;
use crate::{queues, Inner};
use userz_core::decider::{Aggregate, EventName};
use userz_core::domain::app::{AppDecider, AppState};
use userz_core::domain::feedback::{FeedbackCommand, FeedbackDecider, FeedbackEvent, FeedbackState, RunResult, Stage};
use userz_core::domain::pr::{PrCommand, PrDecider, PrEvent, PrState};
use userz_core::domain::repo::{RepoDecider, RepoState};
use userz_core::domain::run::{RunCommand, RunDecider, RunEvent, RunKind, RunState, RunStatus};
use userz_core::domain::timer::{TimerCommand, TimerDecider, TimerEvent, TimerTarget};
use userz_core::error::{Error, Result};
use userz_core::event::{RecordedEvent, StreamId};
use userz_core::ids::{CorrelationId, FeedbackId, JobId, PrId, RunId, TimerId};
use userz_core::ports::classifier::Label;
use userz_core::ports::{CheckpointMove, NewJob, ReadModelCommit};

/// Checkpoint name of the pipeline.
pub(crate) const PIPELINE: &str = "pipeline";

/// Work items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub(crate) enum Job {
    /// Classify a report.
    Sanitize { feedback: FeedbackId },
    /// Execute (or resume) a run.
    ExecuteRun { run: RunId },
}

pub(crate) async fn enqueue(inner: &Inner, id: JobId, queue: &str, job: &Job) -> Result<()> {
    inner
        .deps
        .queue
        .enqueue(NewJob {
            id,
            queue: queue.to_string(),
            payload: Bytes::from(serde_json::to_vec(job)?),
            not_before: None,
        })
        .await?;
    Ok(())
}

/// Runs a command whose rejection means "already done or no longer relevant":
/// replays after a crash re-issue commands, and deciders refuse the stale ones.
pub(crate) async fn exec_tolerant<A: Aggregate>(
    bus: &CommandBus,
    stream: &StreamId,
    meta: CommandMeta,
    cmd: &A::Command,
) -> Result<bool>
where
    A::Event: Serialize + serde::de::DeserializeOwned + EventName,
    A::State: Serialize + serde::de::DeserializeOwned + Clone,
{
    match bus.execute::<A>(stream, meta, cmd).await {
        Ok(_) => Ok(true),
        Err(CommandError::Rejected(r)) => {
            tracing::debug!(%stream, rule = r.rule(), reason = %r, "command refused (stale)");
            Ok(false)
        }
        Err(CommandError::Failed(e)) => Err(e),
    }
}

/// Issues `command` on aggregate `A`'s stream for `id` as a reaction to `rec`.
/// The command id is derived from the event and `purpose`, so handling the same
/// event again after a crash issues the same command, which the bus recognises.
async fn react<A: Aggregate>(
    inner: &Inner,
    rec: &RecordedEvent,
    id: impl std::fmt::Display,
    purpose: &str,
    command: &A::Command,
) -> Result<bool>
where
    A::Event: Serialize + serde::de::DeserializeOwned + EventName,
    A::State: Serialize + serde::de::DeserializeOwned + Clone,
{
    let meta = CommandMeta::derived(rec.id.as_uuid(), purpose, rec.correlation_id);
    exec_tolerant::<A>(&inner.bus, &CommandBus::stream::<A>(id), meta, command).await
}

pub(crate) fn id_from_stream<T: FromStr>(stream: &StreamId) -> Result<T> {
    stream
        .as_str()
        .split_once('-')
        .and_then(|(_, id)| T::from_str(id).ok())
        .ok_or_else(|| Error::Corrupt(format!("no id in stream {stream}")))
}

/// Runs the pipeline from its checkpoint until an error.
pub(crate) async fn run(inner: Arc<Inner>) -> Result<()> {
    let store = inner.deps.read_models.clone();
    let mut checkpoint = store.checkpoint(PIPELINE).await?;
    let mut sub = inner.deps.events.subscribe(checkpoint).await?;
    while let Some(rec) = sub.next().await {
        let rec = rec?;
        handle(&inner, &rec).await?;
        let next = rec.position;
        store
            .commit(ReadModelCommit {
                checkpoint: Some(CheckpointMove { name: PIPELINE.into(), expected: checkpoint, new: next }),
                ops: vec![],
            })
            .await?;
        checkpoint = next;
    }
    Ok(())
}

async fn handle(inner: &Inner, rec: &RecordedEvent) -> Result<()> {
    let Some(any) = AnyEvent::decode(rec)? else {
        return Ok(());
    };
    let cause = rec.id.as_uuid();
    match any {
        AnyEvent::Feedback(FeedbackEvent::FeedbackReceived { feedback, .. }) => {
            enqueue(inner, JobId::derived(cause, "sanitize"), queues::SANITIZE, &Job::Sanitize { feedback }).await
        }
        AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { .. }) => {
            start_run(inner, rec, id_from_stream(&rec.stream)?).await
        }
        AnyEvent::Feedback(FeedbackEvent::BatchPending { closes_at }) => {
            let feedback: FeedbackId = id_from_stream(&rec.stream)?;
            let timer = TimerId::derived(cause, "batch_window");
            let cmd =
                TimerCommand::Schedule { timer, fire_at: closes_at, target: TimerTarget::BatchWindow { feedback } };
            react::<TimerDecider>(inner, rec, timer, "schedule", &cmd).await?;
            Ok(())
        }
        AnyEvent::Run(RunEvent::ProvisioningStarted { deadline_at, .. }) => {
            let run: RunId = id_from_stream(&rec.stream)?;
            let timer = TimerId::derived(run.as_uuid(), "deadline");
            let cmd = TimerCommand::Schedule { timer, fire_at: deadline_at, target: TimerTarget::RunDeadline { run } };
            react::<TimerDecider>(inner, rec, timer, "schedule", &cmd).await?;
            Ok(())
        }
        AnyEvent::Run(
            ref ev @ (RunEvent::PrOpened { .. }
            | RunEvent::BranchOnlyCompleted { .. }
            | RunEvent::GuardrailRefused { .. }
            | RunEvent::RunFailed { .. }
            | RunEvent::RunTimedOut { .. }
            | RunEvent::RunCancelled { .. }),
        ) => run_ended(inner, rec, ev).await,
        AnyEvent::Timer(TimerEvent::TimerFired { target, at, .. }) => match target {
            TimerTarget::RunDeadline { run } => {
                react::<RunDecider>(inner, rec, run, "time_out", &RunCommand::TimeOut { at }).await?;
                Ok(())
            }
            TimerTarget::BatchWindow { feedback } => {
                let (fb, _) =
                    inner.bus.load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(feedback)).await?;
                let Some(fb) = fb.get() else { return Ok(()) };
                let (app, _) = inner.bus.load::<AppDecider>(&CommandBus::stream::<AppDecider>(fb.app)).await?;
                let AppState::Active(app) = app else {
                    return Ok(());
                };
                let cmd = FeedbackCommand::CloseBatch { mode: app.settings.processing_mode };
                react::<FeedbackDecider>(inner, rec, feedback, "close_batch", &cmd).await?;
                Ok(())
            }
        },
        AnyEvent::Pr(PrEvent::RevisionRequested { run, comments }) => {
            let pr: PrId = id_from_stream(&rec.stream)?;
            let (state, _) = inner.bus.load::<PrDecider>(&rec.stream).await?;
            let PrState::Exists(p) = state else {
                return Ok(());
            };
            let (fb, _) = inner.bus.load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(p.feedback)).await?;
            let Some(fb) = fb.get() else { return Ok(()) };
            let cmd = RunCommand::Request {
                run,
                org: p.org,
                app: fb.app,
                repo: p.repo,
                feedback: p.feedback,
                branch: p.branch.clone(),
                kind: RunKind::Revision { pr, pr_number: p.number, comments },
                wall_clock: inner.config.run_wall_clock,
                at: inner.deps.clock.now(),
            };
            react::<RunDecider>(inner, rec, run, "request", &cmd).await?;
            enqueue(inner, JobId::derived(run.as_uuid(), "execute"), queues::RUNS, &Job::ExecuteRun { run }).await
        }
        _ => Ok(()),
    }
}

async fn start_run(inner: &Inner, rec: &RecordedEvent, feedback: FeedbackId) -> Result<()> {
    let cause = rec.id.as_uuid();
    let (state, _) = inner.bus.load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(feedback)).await?;
    let FeedbackState::Exists(fb) = state else {
        return Ok(());
    };
    let run = RunId::derived(cause, "run");
    // Resume: the run may already exist (crash after creating it).
    let already = matches!(&fb.stage, Stage::Running { run: r } if *r == run);
    if fb.stage != Stage::Queued && !already {
        return Ok(());
    }
    // Defence in depth for G3: only a report classified benign may reach an agent.
    if fb.classification.as_ref().map(|c| c.label) != Some(Label::Benign) {
        tracing::error!(%feedback, "queued report is not classified benign; not starting a run");
        return Ok(());
    }
    let (app, _) = inner.bus.load::<AppDecider>(&CommandBus::stream::<AppDecider>(fb.app)).await?;
    let AppState::Active(app) = app else {
        return Ok(());
    };
    let Some(repo_id) = app.repo else {
        tracing::warn!(%feedback, app = %app.app, "app has no linked repo; report stays queued");
        return Ok(());
    };
    let (repo, _) = inner.bus.load::<RepoDecider>(&CommandBus::stream::<RepoDecider>(repo_id)).await?;
    let RepoState::Active(repo) = repo else {
        return Ok(());
    };
    let fb_hex = feedback.as_uuid().simple().to_string();
    let run_hex = run.as_uuid().simple().to_string();
    let branch = format!("{}fb-{}-{}", repo.branch_prefix, &fb_hex[fb_hex.len() - 12..], &run_hex[run_hex.len() - 8..]);
    let cmd = RunCommand::Request {
        run,
        org: fb.org,
        app: fb.app,
        repo: repo_id,
        feedback,
        branch,
        kind: RunKind::Initial,
        wall_clock: inner.config.run_wall_clock,
        at: inner.deps.clock.now(),
    };
    react::<RunDecider>(inner, rec, run, "request", &cmd).await?;
    react::<FeedbackDecider>(inner, rec, feedback, "start_run", &FeedbackCommand::StartRun { run }).await?;
    enqueue(inner, JobId::derived(run.as_uuid(), "execute"), queues::RUNS, &Job::ExecuteRun { run }).await
}

async fn run_ended(inner: &Inner, rec: &RecordedEvent, ev: &RunEvent) -> Result<()> {
    let (state, _) = inner.bus.load::<RunDecider>(&rec.stream).await?;
    let RunState::Exists(run) = state else {
        return Ok(());
    };
    if run.deadline_at.is_some() {
        // The run is over: its deadline timer has nothing left to do.
        let timer = TimerId::derived(run.run.as_uuid(), "deadline");
        react::<TimerDecider>(inner, rec, timer, "cancel_deadline", &TimerCommand::Cancel).await?;
    }
    match &run.kind {
        RunKind::Initial => {
            let result = match ev {
                RunEvent::PrOpened { number, url, .. } => RunResult::PrOpened { url: url.clone(), number: *number },
                RunEvent::BranchOnlyCompleted { .. } => RunResult::BranchPushed { branch: run.branch.clone() },
                RunEvent::GuardrailRefused { file, rule, .. } => {
                    RunResult::PrFailed { file: file.clone(), rule: rule.clone() }
                }
                RunEvent::RunFailed { reason, .. } => RunResult::Failed { reason: reason.clone() },
                RunEvent::RunTimedOut { .. } => RunResult::Failed { reason: "timed_out".into() },
                _ => RunResult::Failed { reason: "cancelled".into() },
            };
            if let RunEvent::PrOpened { number, url, .. } = ev {
                let pr = PrId::derived(run.run.as_uuid(), "pr");
                let cmd = PrCommand::Open {
                    pr,
                    org: run.org,
                    repo: run.repo,
                    feedback: run.feedback,
                    run: run.run,
                    number: *number,
                    url: url.clone(),
                    branch: run.branch.clone(),
                };
                react::<PrDecider>(inner, rec, pr, "open_pr", &cmd).await?;
            }
            let cmd = FeedbackCommand::CompleteRun { run: run.run, result };
            react::<FeedbackDecider>(inner, rec, run.feedback, "complete_run", &cmd).await?;
        }
        RunKind::Revision { pr, .. } => {
            let updated = matches!(run.status, RunStatus::PrOpened);
            let cmd = PrCommand::CompleteRevision { run: run.run, updated };
            react::<PrDecider>(inner, rec, *pr, "complete_revision", &cmd).await?;
        }
    }
    Ok(())
}

/// Fires due timers, forever.
pub(crate) async fn run_timers(inner: Arc<Inner>) -> Result<()> {
    loop {
        let now = inner.deps.clock.now();
        for timer in due_timers(inner.deps.read_models.as_ref(), now, 64).await? {
            let meta = CommandMeta::derived(timer.as_uuid(), "fire", CorrelationId::derived(timer.as_uuid(), "timer"));
            exec_tolerant::<TimerDecider>(
                &inner.bus,
                &CommandBus::stream::<TimerDecider>(timer),
                meta,
                &TimerCommand::Fire { now },
            )
            .await?;
        }
        tokio::time::sleep(inner.config.poll_interval.min(Duration::from_secs(1))).await;
    }
}
