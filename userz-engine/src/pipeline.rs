//! The pipeline process manager's shell: follows the log from its checkpoint,
//! loads the view each event's reaction needs, and carries out the actions of
//! the pure reaction in [`crate::process`]; and the timer service that fires
//! due timers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::codec::AnyEvent;
use crate::commands::{CommandBus, CommandError, CommandMeta};
use crate::process::{self, Action, Job, PipelineView};
use crate::projections::due_timers;
use crate::Inner;
use userz_core::decider::{Aggregate, EventName};
use userz_core::domain::app::{AppDecider, AppState};
use userz_core::domain::feedback::{FeedbackDecider, FeedbackState};
use userz_core::domain::pr::{PrDecider, PrState};
use userz_core::domain::repo::{RepoDecider, RepoState};
use userz_core::domain::run::{RunDecider, RunState};
use userz_core::domain::timer::{TimerCommand, TimerDecider};
use userz_core::error::Result;
use userz_core::event::{RecordedEvent, StreamId};
use userz_core::ids::{CorrelationId, JobId};
use userz_core::ports::{CheckpointMove, NewJob, ReadModelCommit};

/// Checkpoint name of the pipeline.
pub(crate) const PIPELINE: &str = "pipeline";

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

/// Issues `command` on aggregate `A`'s stream for `id` as a reaction to the
/// event `cause`. The command id is derived from the event and `purpose`, so
/// handling the same event again after a crash issues the same command, which
/// the bus recognises.
async fn issue<A: Aggregate>(
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
    let Some(event) = AnyEvent::decode(rec)? else {
        return Ok(());
    };
    let view = load_view(inner, &process::needs(&event, &rec.stream)?).await?;
    let cause = process::Cause { event: rec.id.as_uuid(), stream: rec.stream.clone() };
    let policy = process::Policy { run_wall_clock: inner.config.run_wall_clock, now: inner.deps.clock.now() };
    for action in process::react(&cause, &event, &view, &policy)? {
        match action {
            Action::Enqueue { id, queue, job } => enqueue(inner, id, queue, &job).await?,
            Action::Timer { id, purpose, command } => {
                issue::<TimerDecider>(inner, rec, id, purpose, &command).await?;
            }
            Action::Run { id, purpose, command } => {
                issue::<RunDecider>(inner, rec, id, purpose, &command).await?;
            }
            Action::Feedback { id, purpose, command } => {
                issue::<FeedbackDecider>(inner, rec, id, purpose, &command).await?;
            }
            Action::Pr { id, purpose, command } => {
                issue::<PrDecider>(inner, rec, id, purpose, &command).await?;
            }
        }
    }
    Ok(())
}

/// Loads what the reaction reads, in dependency order (a PR names its report,
/// a report its App, an App its repository).
async fn load_view(inner: &Inner, needs: &process::Needs) -> Result<PipelineView> {
    let mut view = PipelineView::default();
    if let Some(pr) = needs.pr {
        if let (PrState::Exists(p), _) = inner.bus.load::<PrDecider>(&CommandBus::stream::<PrDecider>(pr)).await? {
            view.pr = Some(*p);
        }
    }
    let feedback = needs.feedback.or(if needs.feedback_of_pr { view.pr.as_ref().map(|p| p.feedback) } else { None });
    if let Some(id) = feedback {
        if let (FeedbackState::Exists(fb), _) =
            inner.bus.load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(id)).await?
        {
            view.feedback = Some(*fb);
        }
    }
    if needs.app {
        if let Some(app) = view.feedback.as_ref().map(|f| f.app) {
            if let (AppState::Active(a), _) =
                inner.bus.load::<AppDecider>(&CommandBus::stream::<AppDecider>(app)).await?
            {
                view.app = Some(a);
            }
        }
    }
    if needs.repo {
        if let Some(repo) = view.app.as_ref().and_then(|a| a.repo) {
            if let (RepoState::Active(r), _) =
                inner.bus.load::<RepoDecider>(&CommandBus::stream::<RepoDecider>(repo)).await?
            {
                view.repo = Some(r);
            }
        }
    }
    if let Some(run) = needs.run {
        if let (RunState::Exists(r), _) = inner.bus.load::<RunDecider>(&CommandBus::stream::<RunDecider>(run)).await? {
            view.run = Some(*r);
        }
    }
    Ok(view)
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
