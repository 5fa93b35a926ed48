//! The pipeline's process manager as a pure reaction: one event from the log
//! and a view of the aggregates it concerns → the actions that follow (jobs to
//! enqueue, commands to issue, timers to schedule or cancel).
//!
//! [`needs`] says which aggregates an event's reaction reads; the shell
//! (`pipeline.rs`) loads them into a [`PipelineView`], calls [`react`] and
//! carries out the [`Action`]s in order. Every action's id is derived from the
//! causing event (or the run), so handling the same event again after a crash
//! yields the same actions, which the stores and the command bus recognise.
//!
//! ```
//! use userz_engine::process::{react, Action, Cause, Job, PipelineView, Policy};
//! use userz_engine::AnyEvent;
//! use userz_core::domain::feedback::{FeedbackContent, FeedbackEvent};
//! use userz_core::ids::{AppId, FeedbackId, OrgId};
//! use userz_core::{StreamId, Timestamp};
//!
//! let feedback = FeedbackId::new();
//! let received = AnyEvent::Feedback(FeedbackEvent::FeedbackReceived {
//!     feedback, org: OrgId::new(), app: AppId::new(),
//!     content: FeedbackContent::text("Save does nothing"), received_at: Timestamp::from_millis(0),
//! });
//! let cause = Cause { event: uuid::Uuid::new_v4(), stream: StreamId::new(format!("feedback-{feedback}")).unwrap() };
//! let actions = react(&cause, &received, &PipelineView::default(), &Policy::default()).unwrap();
//! assert!(matches!(&actions[..], [Action::Enqueue { job: Job::Sanitize { .. }, .. }]));
//! ```

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use userz_core::domain::app::App;
use userz_core::domain::feedback::{Feedback, FeedbackCommand, FeedbackEvent, RunResult, Stage};
use userz_core::domain::pr::{PrCommand, PrEvent, PullRequest};
use userz_core::domain::repo::Repo;
use userz_core::domain::run::{AgentRun, RunCommand, RunEvent, RunKind, RunStatus};
use userz_core::domain::timer::{TimerCommand, TimerEvent, TimerTarget};
use userz_core::error::{Error, Result};
use userz_core::event::StreamId;
use userz_core::ids::{FeedbackId, JobId, PrId, RunId, TimerId};
use userz_core::ports::classifier::Label;
use userz_core::time::Timestamp;

use crate::codec::AnyEvent;
use crate::queues;

/// Work items on the queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Classify a report.
    Sanitize {
        /// The report.
        feedback: FeedbackId,
    },
    /// Execute (or resume) a run.
    ExecuteRun {
        /// The run.
        run: RunId,
    },
}

/// What the reaction to one event asks for. Command ids are derived by the
/// shell from the causing event and `purpose`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Enqueue a job with a derived id (the queue deduplicates it).
    Enqueue {
        /// Job id.
        id: JobId,
        /// Queue name ([`queues`]).
        queue: &'static str,
        /// The job.
        job: Job,
    },
    /// A command on a timer.
    Timer {
        /// Timer id.
        id: TimerId,
        /// Purpose (part of the command id).
        purpose: &'static str,
        /// The command.
        command: TimerCommand,
    },
    /// A command on a run.
    Run {
        /// Run id.
        id: RunId,
        /// Purpose.
        purpose: &'static str,
        /// The command.
        command: RunCommand,
    },
    /// A command on a report.
    Feedback {
        /// Report id.
        id: FeedbackId,
        /// Purpose.
        purpose: &'static str,
        /// The command.
        command: FeedbackCommand,
    },
    /// A command on a pull request.
    Pr {
        /// Pull-request id.
        id: PrId,
        /// Purpose.
        purpose: &'static str,
        /// The command.
        command: PrCommand,
    },
}

/// The causing event's identity.
#[derive(Debug, Clone)]
pub struct Cause {
    /// The event id (the seed of every derived id).
    pub event: uuid::Uuid,
    /// The stream it was recorded on (names the aggregate).
    pub stream: StreamId,
}

/// Engine settings the reaction uses.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Wall-clock budget given to a new run.
    pub run_wall_clock: Duration,
    /// Now, for commands that record a time.
    pub now: Timestamp,
}

impl Default for Policy {
    fn default() -> Self {
        Self { run_wall_clock: Duration::from_secs(20 * 60), now: Timestamp::from_millis(0) }
    }
}

/// Which aggregates the reaction to an event reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// A report, by id.
    pub feedback: Option<FeedbackId>,
    /// The report of [`pr`](Self::pr) (when `feedback` is not known up front).
    pub feedback_of_pr: bool,
    /// The report's App.
    pub app: bool,
    /// The App's linked repository.
    pub repo: bool,
    /// A run, by id.
    pub run: Option<RunId>,
    /// A pull request, by id.
    pub pr: Option<PrId>,
}

/// The aggregates an event's reaction reads, as loaded by the shell; absent
/// ones (never created, or not needed) are `None`.
#[derive(Debug, Clone, Default)]
pub struct PipelineView {
    /// The report.
    pub feedback: Option<Feedback>,
    /// Its App, when active.
    pub app: Option<App>,
    /// The App's repository, when active.
    pub repo: Option<Repo>,
    /// The run.
    pub run: Option<AgentRun>,
    /// The pull request.
    pub pr: Option<PullRequest>,
}

/// The id in a stream name `<kind>-<id>`.
pub fn id_from_stream<T: FromStr>(stream: &StreamId) -> Result<T> {
    stream
        .as_str()
        .split_once('-')
        .and_then(|(_, id)| T::from_str(id).ok())
        .ok_or_else(|| Error::Corrupt(format!("no id in stream {stream}")))
}

/// What [`react`] will read for `event` (recorded on `stream`).
pub fn needs(event: &AnyEvent, stream: &StreamId) -> Result<Needs> {
    Ok(match event {
        AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { .. }) => {
            Needs { feedback: Some(id_from_stream(stream)?), app: true, repo: true, ..Needs::default() }
        }
        AnyEvent::Run(
            RunEvent::PrOpened { .. }
            | RunEvent::BranchOnlyCompleted { .. }
            | RunEvent::GuardrailRefused { .. }
            | RunEvent::RunFailed { .. }
            | RunEvent::RunTimedOut { .. }
            | RunEvent::RunCancelled { .. },
        ) => Needs { run: Some(id_from_stream(stream)?), ..Needs::default() },
        AnyEvent::Timer(TimerEvent::TimerFired { target: TimerTarget::BatchWindow { feedback }, .. }) => {
            Needs { feedback: Some(*feedback), app: true, ..Needs::default() }
        }
        AnyEvent::Pr(PrEvent::RevisionRequested { .. }) => {
            Needs { pr: Some(id_from_stream(stream)?), feedback_of_pr: true, ..Needs::default() }
        }
        _ => Needs::default(),
    })
}

/// The reaction to `event`: pure, deterministic for the same inputs.
pub fn react(cause: &Cause, event: &AnyEvent, view: &PipelineView, policy: &Policy) -> Result<Vec<Action>> {
    let seed = cause.event;
    Ok(match event {
        AnyEvent::Feedback(FeedbackEvent::FeedbackReceived { feedback, .. }) => vec![Action::Enqueue {
            id: JobId::derived(seed, "sanitize"),
            queue: queues::SANITIZE,
            job: Job::Sanitize { feedback: *feedback },
        }],
        AnyEvent::Feedback(FeedbackEvent::FeedbackQueued { .. }) => {
            start_run(cause, id_from_stream(&cause.stream)?, view, policy)
        }
        AnyEvent::Feedback(FeedbackEvent::BatchPending { closes_at }) => {
            let feedback: FeedbackId = id_from_stream(&cause.stream)?;
            let timer = TimerId::derived(seed, "batch_window");
            vec![Action::Timer {
                id: timer,
                purpose: "schedule",
                command: TimerCommand::Schedule {
                    timer,
                    fire_at: *closes_at,
                    target: TimerTarget::BatchWindow { feedback },
                },
            }]
        }
        AnyEvent::Run(RunEvent::ProvisioningStarted { deadline_at, .. }) => {
            let run: RunId = id_from_stream(&cause.stream)?;
            let timer = TimerId::derived(run.as_uuid(), "deadline");
            vec![Action::Timer {
                id: timer,
                purpose: "schedule",
                command: TimerCommand::Schedule {
                    timer,
                    fire_at: *deadline_at,
                    target: TimerTarget::RunDeadline { run },
                },
            }]
        }
        AnyEvent::Run(
            ev @ (RunEvent::PrOpened { .. }
            | RunEvent::BranchOnlyCompleted { .. }
            | RunEvent::GuardrailRefused { .. }
            | RunEvent::RunFailed { .. }
            | RunEvent::RunTimedOut { .. }
            | RunEvent::RunCancelled { .. }),
        ) => run_ended(view, ev),
        AnyEvent::Timer(TimerEvent::TimerFired { target, at, .. }) => match target {
            TimerTarget::RunDeadline { run } => {
                vec![Action::Run { id: *run, purpose: "time_out", command: RunCommand::TimeOut { at: *at } }]
            }
            TimerTarget::BatchWindow { feedback } => match (&view.feedback, &view.app) {
                (Some(_), Some(app)) => vec![Action::Feedback {
                    id: *feedback,
                    purpose: "close_batch",
                    command: FeedbackCommand::CloseBatch { mode: app.settings.processing_mode },
                }],
                _ => vec![],
            },
        },
        AnyEvent::Pr(PrEvent::RevisionRequested { run, comments }) => {
            let pr: PrId = id_from_stream(&cause.stream)?;
            let (Some(p), Some(fb)) = (&view.pr, &view.feedback) else {
                return Ok(vec![]);
            };
            vec![
                Action::Run {
                    id: *run,
                    purpose: "request",
                    command: RunCommand::Request {
                        run: *run,
                        org: p.org,
                        app: fb.app,
                        repo: p.repo,
                        feedback: p.feedback,
                        branch: p.branch.clone(),
                        kind: RunKind::Revision { pr, pr_number: p.number, comments: comments.clone() },
                        wall_clock: policy.run_wall_clock,
                        at: policy.now,
                    },
                },
                Action::Enqueue {
                    id: JobId::derived(run.as_uuid(), "execute"),
                    queue: queues::RUNS,
                    job: Job::ExecuteRun { run: *run },
                },
            ]
        }
        _ => vec![],
    })
}

fn start_run(cause: &Cause, feedback: FeedbackId, view: &PipelineView, policy: &Policy) -> Vec<Action> {
    let Some(fb) = &view.feedback else { return vec![] };
    let run = RunId::derived(cause.event, "run");
    // Resume: the run may already exist (crash after creating it).
    let already = matches!(&fb.stage, Stage::Running { run: r } if *r == run);
    if fb.stage != Stage::Queued && !already {
        return vec![];
    }
    // Defence in depth for G3: only a report classified benign may reach an agent.
    if fb.classification.as_ref().map(|c| c.label) != Some(Label::Benign) {
        tracing::error!(%feedback, "queued report is not classified benign; not starting a run");
        return vec![];
    }
    let Some(app) = &view.app else { return vec![] };
    let Some(repo_id) = app.repo else {
        tracing::warn!(%feedback, app = %app.app, "app has no linked repo; report stays queued");
        return vec![];
    };
    let Some(repo) = view.repo.as_ref().filter(|r| r.repo == repo_id) else { return vec![] };
    let fb_hex = feedback.as_uuid().simple().to_string();
    let run_hex = run.as_uuid().simple().to_string();
    let branch = format!("{}fb-{}-{}", repo.branch_prefix, &fb_hex[fb_hex.len() - 12..], &run_hex[run_hex.len() - 8..]);
    vec![
        Action::Run {
            id: run,
            purpose: "request",
            command: RunCommand::Request {
                run,
                org: fb.org,
                app: fb.app,
                repo: repo_id,
                feedback,
                branch,
                kind: RunKind::Initial,
                wall_clock: policy.run_wall_clock,
                at: policy.now,
            },
        },
        Action::Feedback { id: feedback, purpose: "start_run", command: FeedbackCommand::StartRun { run } },
        Action::Enqueue {
            id: JobId::derived(run.as_uuid(), "execute"),
            queue: queues::RUNS,
            job: Job::ExecuteRun { run },
        },
    ]
}

fn run_ended(view: &PipelineView, ev: &RunEvent) -> Vec<Action> {
    let Some(run) = &view.run else { return vec![] };
    let mut actions = Vec::new();
    if run.deadline_at.is_some() {
        // The run is over: its deadline timer has nothing left to do.
        let timer = TimerId::derived(run.run.as_uuid(), "deadline");
        actions.push(Action::Timer { id: timer, purpose: "cancel_deadline", command: TimerCommand::Cancel });
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
                actions.push(Action::Pr {
                    id: pr,
                    purpose: "open_pr",
                    command: PrCommand::Open {
                        pr,
                        org: run.org,
                        repo: run.repo,
                        feedback: run.feedback,
                        run: run.run,
                        number: *number,
                        url: url.clone(),
                        branch: run.branch.clone(),
                    },
                });
            }
            actions.push(Action::Feedback {
                id: run.feedback,
                purpose: "complete_run",
                command: FeedbackCommand::CompleteRun { run: run.run, result },
            });
        }
        RunKind::Revision { pr, .. } => {
            let updated = matches!(run.status, RunStatus::PrOpened);
            actions.push(Action::Pr {
                id: *pr,
                purpose: "complete_revision",
                command: PrCommand::CompleteRevision { run: run.run, updated },
            });
        }
    }
    actions
}
