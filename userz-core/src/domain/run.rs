//! AgentRun: one attempt at turning a report into a change.
//!
//! ```text
//! queued → provisioning → running → checking → pushing → pr_opened | branch_pushed
//!                                      └→ pr_failed{file, rule}
//! any non-terminal → failed{reason} | timed_out | cancelled
//! ```
//! A revision run reuses the branch and PR of an earlier run.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::Actor;
use crate::event_names;
use crate::guardrail::Violation;
use crate::ids::{AppId, CommentId, FeedbackId, OrgId, PrId, RepoId, RunId};
use crate::ports::sandbox::{EgressRecord, SandboxExit, Usage};
use crate::time::Timestamp;

/// Run status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Workspace and sandbox being prepared.
    Provisioning,
    /// The agent is working.
    Running,
    /// The host is checking the diff.
    Checking,
    /// Pushing the branch and opening the PR.
    Pushing,
    /// Draft PR open (or updated, for revisions).
    PrOpened,
    /// Branch pushed; the provider has no PR API.
    BranchPushed,
    /// Guardrail refusal.
    PrFailed,
    /// Failed.
    Failed,
    /// Wall clock ran out.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

impl RunStatus {
    /// Whether no further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::PrOpened
                | RunStatus::BranchPushed
                | RunStatus::PrFailed
                | RunStatus::Failed
                | RunStatus::TimedOut
                | RunStatus::Cancelled
        )
    }

    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Provisioning => "provisioning",
            RunStatus::Running => "running",
            RunStatus::Checking => "checking",
            RunStatus::Pushing => "pushing",
            RunStatus::PrOpened => "pr_opened",
            RunStatus::BranchPushed => "branch_pushed",
            RunStatus::PrFailed => "pr_failed",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// First attempt or revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunKind {
    /// Answers the report; opens a new PR.
    Initial,
    /// Answers review comments on an open PR; commits on the same branch.
    Revision {
        /// The PR.
        pr: PrId,
        /// Its number.
        pr_number: u64,
        /// The unresolved comments handed to the agent.
        comments: Vec<CommentId>,
    },
}

/// Run timings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Queued.
    pub queued_at: Option<Timestamp>,
    /// Provisioning began.
    pub provisioning_at: Option<Timestamp>,
    /// Agent started.
    pub agent_started_at: Option<Timestamp>,
    /// Agent finished.
    pub agent_finished_at: Option<Timestamp>,
    /// Terminal state reached.
    pub finished_at: Option<Timestamp>,
}

/// Commands on a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunCommand {
    /// Creates the run.
    Request {
        /// Id.
        run: RunId,
        /// Org.
        org: OrgId,
        /// App.
        app: AppId,
        /// Repo.
        repo: RepoId,
        /// Lead report.
        feedback: FeedbackId,
        /// Branch to commit on.
        branch: String,
        /// Initial or revision.
        kind: RunKind,
        /// Wall-clock budget.
        wall_clock: Duration,
        /// Now.
        at: Timestamp,
    },
    /// Begins (or resumes after a crash) provisioning.
    Provision {
        /// Now.
        at: Timestamp,
    },
    /// The agent started in its sandbox.
    StartAgent {
        /// Commit the branch started from.
        base_commit: String,
        /// The sandbox backend and its boundary ([`Sandbox::describe`](crate::ports::Sandbox::describe)).
        sandbox: Option<String>,
        /// Now.
        at: Timestamp,
    },
    /// Records that the run decrypted one of its org's secrets (an audit event).
    RecordSecretUse {
        /// Secret kind (`ai_provider_key`, …).
        kind: String,
        /// Slot id.
        secret_id: String,
        /// Now.
        at: Timestamp,
    },
    /// The sandbox exited.
    FinishAgent {
        /// How.
        exit: SandboxExit,
        /// Usage.
        usage: Usage,
        /// Transcript blob key.
        transcript: Option<String>,
        /// The egress proxy's decisions; each becomes an audit event
        /// ([`RunEvent::EgressAllowed`] / [`RunEvent::EgressDenied`]).
        egress: Vec<EgressRecord>,
        /// Now.
        at: Timestamp,
    },
    /// Records the guardrail check of the change list.
    RecordGuardrail {
        /// Number of changed paths checked.
        changed_paths: usize,
        /// Violations (empty: passed).
        violations: Vec<Violation>,
    },
    /// The branch was pushed.
    RecordPush {
        /// Branch.
        branch: String,
        /// Head commit.
        head: String,
    },
    /// The PR was opened or updated.
    RecordPr {
        /// Number.
        number: u64,
        /// URL.
        url: String,
        /// Whether this run created it.
        created: bool,
        /// Now.
        at: Timestamp,
    },
    /// Ends a branch-only run after its push.
    CompleteBranchOnly {
        /// Now.
        at: Timestamp,
    },
    /// A step failed and will be retried.
    ScheduleRetry {
        /// Step name.
        step: String,
        /// Attempt that failed (1-based).
        attempt: u32,
        /// The error.
        error: String,
        /// The backoff delay chosen for this attempt, in ms.
        delay_ms: u64,
        /// Next attempt time.
        retry_at: Timestamp,
    },
    /// Fails the run.
    Fail {
        /// Why.
        reason: String,
        /// Now.
        at: Timestamp,
    },
    /// The deadline timer fired.
    TimeOut {
        /// Now.
        at: Timestamp,
    },
    /// Cancels the run.
    Cancel {
        /// Who.
        by: Actor,
        /// Now.
        at: Timestamp,
    },
}

/// Egress decisions recorded one event each per agent run (denials first);
/// the rest are counted in one [`RunEvent::EgressTruncated`] (a runaway agent
/// cannot flood the log).
pub const MAX_EGRESS_EVENTS: usize = 100;

/// One audit event per egress decision, denials first, capped.
fn egress_events(egress: &[EgressRecord], at: Timestamp) -> Vec<RunEvent> {
    let denied = egress.iter().filter(|e| !e.allowed);
    let allowed = egress.iter().filter(|e| e.allowed);
    let mut events: Vec<RunEvent> = denied
        .chain(allowed)
        .take(MAX_EGRESS_EVENTS)
        .map(|e| {
            let (target, rule) = (e.target.clone(), e.rule.clone());
            if e.allowed {
                RunEvent::EgressAllowed { target, rule, at }
            } else {
                RunEvent::EgressDenied { target, rule, at }
            }
        })
        .collect();
    let kept_denied = events.iter().filter(|e| matches!(e, RunEvent::EgressDenied { .. })).count();
    let kept_allowed = events.len() - kept_denied;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let total_denied = egress.iter().filter(|e| !e.allowed).count();
    let more_denied = total_denied - kept_denied;
    let more_allowed = (egress.len() - total_denied) - kept_allowed;
    if more_denied + more_allowed > 0 {
        events.push(RunEvent::EgressTruncated { allowed: count(more_allowed), denied: count(more_denied), at });
    }
    events
}

/// Events of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RunEvent {
    /// Created.
    RunQueued {
        /// Id.
        run: RunId,
        /// Org.
        org: OrgId,
        /// App.
        app: AppId,
        /// Repo.
        repo: RepoId,
        /// Lead report.
        feedback: FeedbackId,
        /// Branch.
        branch: String,
        /// Kind.
        kind: RunKind,
        /// Wall-clock budget in ms.
        wall_clock_ms: u64,
        /// Time.
        at: Timestamp,
    },
    /// Provisioning began; `deadline_at` is fixed by the first one.
    ProvisioningStarted {
        /// Time.
        at: Timestamp,
        /// Deadline.
        deadline_at: Timestamp,
        /// 1 on first start, +1 on each resume after a crash.
        attempt: u32,
    },
    /// Agent started.
    AgentStarted {
        /// Base commit.
        base_commit: String,
        /// The sandbox backend and its boundary (absent in older events).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<String>,
        /// Time.
        at: Timestamp,
    },
    /// Agent exited.
    AgentFinished {
        /// How.
        exit: SandboxExit,
        /// Usage.
        usage: Usage,
        /// Transcript key.
        transcript: Option<String>,
        /// Time.
        at: Timestamp,
    },
    /// The run decrypted one of its org's secrets (an audit event; never the value).
    SecretDecrypted {
        /// Secret kind.
        kind: String,
        /// Slot id.
        secret_id: String,
        /// Time.
        at: Timestamp,
    },
    /// The run's egress proxy let a connection through (an audit event).
    EgressAllowed {
        /// What the sandbox asked for.
        target: String,
        /// The rule that allowed it (`allowlisted`, `model_route`, …).
        rule: String,
        /// Time.
        at: Timestamp,
    },
    /// Egress decisions beyond [`MAX_EGRESS_EVENTS`], counted.
    EgressTruncated {
        /// Allowed decisions not recorded one by one.
        allowed: u32,
        /// Denied decisions not recorded one by one.
        denied: u32,
        /// Time.
        at: Timestamp,
    },
    /// The run's egress proxy refused a connection (an audit event).
    EgressDenied {
        /// What the sandbox asked for.
        target: String,
        /// The rule that refused it.
        rule: String,
        /// Time.
        at: Timestamp,
    },
    /// Diff check passed.
    GuardrailPassed {
        /// Paths checked.
        changed_paths: usize,
    },
    /// Diff check refused (an audit event).
    GuardrailRefused {
        /// First file.
        file: String,
        /// Its rule.
        rule: String,
        /// All violations.
        violations: Vec<Violation>,
    },
    /// Branch pushed.
    BranchPushed {
        /// Branch.
        branch: String,
        /// Head.
        head: String,
    },
    /// PR opened or updated.
    PrOpened {
        /// Number.
        number: u64,
        /// URL.
        url: String,
        /// Created by this run.
        created: bool,
        /// Time.
        at: Timestamp,
    },
    /// Branch-only run done.
    BranchOnlyCompleted {
        /// Time.
        at: Timestamp,
    },
    /// A retry is scheduled.
    RetryScheduled {
        /// Step.
        step: String,
        /// Failed attempt.
        attempt: u32,
        /// Error.
        error: String,
        /// Backoff delay in ms.
        delay_ms: u64,
        /// Next attempt.
        retry_at: Timestamp,
    },
    /// Failed.
    RunFailed {
        /// Why.
        reason: String,
        /// Time.
        at: Timestamp,
    },
    /// Timed out.
    RunTimedOut {
        /// Time.
        at: Timestamp,
    },
    /// Cancelled.
    RunCancelled {
        /// Who.
        by: Actor,
        /// Time.
        at: Timestamp,
    },
}
event_names!(RunEvent {
    RunQueued,
    ProvisioningStarted,
    AgentStarted,
    AgentFinished,
    SecretDecrypted,
    EgressAllowed,
    EgressDenied,
    EgressTruncated,
    GuardrailPassed,
    GuardrailRefused,
    BranchPushed,
    PrOpened,
    BranchOnlyCompleted,
    RetryScheduled,
    RunFailed,
    RunTimedOut,
    RunCancelled,
});

/// An existing run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    /// Id.
    pub run: RunId,
    /// Org.
    pub org: OrgId,
    /// App.
    pub app: AppId,
    /// Repo.
    pub repo: RepoId,
    /// Lead report.
    pub feedback: FeedbackId,
    /// Branch.
    pub branch: String,
    /// Kind.
    pub kind: RunKind,
    /// Status.
    pub status: RunStatus,
    /// Wall-clock budget (ms).
    pub wall_clock_ms: u64,
    /// Deadline (set at first provisioning).
    pub deadline_at: Option<Timestamp>,
    /// Provisioning attempts.
    pub attempts: u32,
    /// Base commit.
    pub base_commit: Option<String>,
    /// The sandbox the agent ran in, as its backend described itself.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// Pushed head.
    pub pushed_head: Option<String>,
    /// Usage.
    pub usage: Usage,
    /// Transcript key.
    pub transcript: Option<String>,
    /// Guardrail refusal.
    pub violation: Option<Violation>,
    /// PR number and URL.
    pub pr: Option<(u64, String)>,
    /// Failure reason.
    pub failure: Option<String>,
    /// Retries so far.
    pub retries: u32,
    /// Timings.
    pub timings: Timings,
}

/// State of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum RunState {
    /// Not requested.
    #[default]
    None,
    /// Exists.
    Exists(Box<AgentRun>),
}

impl RunState {
    /// The run, if it exists.
    pub fn get(&self) -> Option<&AgentRun> {
        match self {
            RunState::Exists(r) => Some(r),
            RunState::None => None,
        }
    }
}

/// The run decider.
#[derive(Debug, Clone, Copy)]
pub struct RunDecider;

fn command_name(c: &RunCommand) -> &'static str {
    match c {
        RunCommand::Request { .. } => "request",
        RunCommand::Provision { .. } => "provision",
        RunCommand::StartAgent { .. } => "start_agent",
        RunCommand::RecordSecretUse { .. } => "record_secret_use",
        RunCommand::FinishAgent { .. } => "finish_agent",
        RunCommand::RecordGuardrail { .. } => "record_guardrail",
        RunCommand::RecordPush { .. } => "record_push",
        RunCommand::RecordPr { .. } => "record_pr",
        RunCommand::CompleteBranchOnly { .. } => "complete_branch_only",
        RunCommand::ScheduleRetry { .. } => "schedule_retry",
        RunCommand::Fail { .. } => "fail",
        RunCommand::TimeOut { .. } => "time_out",
        RunCommand::Cancel { .. } => "cancel",
    }
}

impl Decider for RunDecider {
    type Command = RunCommand;
    type Event = RunEvent;
    type State = RunState;

    fn initial_state() -> RunState {
        RunState::None
    }

    fn decide(command: &RunCommand, state: &RunState) -> Result<Vec<RunEvent>, Rejection> {
        let run = match (command, state) {
            (RunCommand::Request { run, org, app, repo, feedback, branch, kind, wall_clock, at }, RunState::None) => {
                if branch.is_empty() || branch.contains("..") || branch.starts_with('/') || branch.contains(' ') {
                    return Err(Rejection::input("branch", "not a valid branch name"));
                }
                if wall_clock.is_zero() {
                    return Err(Rejection::input("wall_clock", "must be positive"));
                }
                return Ok(vec![RunEvent::RunQueued {
                    run: *run,
                    org: *org,
                    app: *app,
                    repo: *repo,
                    feedback: *feedback,
                    branch: branch.clone(),
                    kind: kind.clone(),
                    wall_clock_ms: u64::try_from(wall_clock.as_millis()).unwrap_or(u64::MAX),
                    at: *at,
                }]);
            }
            (RunCommand::Request { .. }, RunState::Exists(_)) => {
                return Err(Rejection::AlreadyExists { entity: "run" })
            }
            (_, RunState::None) => return Err(Rejection::NotFound { entity: "run" }),
            (_, RunState::Exists(r)) => r,
        };
        let refuse = || Rejection::transition(command_name(command), run.status);
        if run.status.is_terminal() {
            return Err(refuse());
        }
        use RunStatus as S;
        match command {
            RunCommand::Request { .. } => Err(Rejection::AlreadyExists { entity: "run" }),
            // Provisioning again resumes a run whose workspace was lost (a crash or a
            // retried step): everything before the push is redone in a fresh sandbox.
            RunCommand::Provision { at } => match run.status {
                S::Queued | S::Provisioning | S::Running | S::Checking => {
                    let deadline_at = run.deadline_at.unwrap_or(*at + Duration::from_millis(run.wall_clock_ms));
                    Ok(vec![RunEvent::ProvisioningStarted { at: *at, deadline_at, attempt: run.attempts + 1 }])
                }
                S::Pushing if run.pushed_head.is_none() => {
                    let deadline_at = run.deadline_at.unwrap_or(*at + Duration::from_millis(run.wall_clock_ms));
                    Ok(vec![RunEvent::ProvisioningStarted { at: *at, deadline_at, attempt: run.attempts + 1 }])
                }
                _ => Err(refuse()),
            },
            RunCommand::StartAgent { base_commit, sandbox, at } => match run.status {
                S::Provisioning => Ok(vec![RunEvent::AgentStarted {
                    base_commit: base_commit.clone(),
                    sandbox: sandbox.clone(),
                    at: *at,
                }]),
                _ => Err(refuse()),
            },
            RunCommand::RecordSecretUse { kind, secret_id, at } => match run.status {
                S::Running => {
                    Ok(vec![RunEvent::SecretDecrypted { kind: kind.clone(), secret_id: secret_id.clone(), at: *at }])
                }
                _ => Err(refuse()),
            },
            RunCommand::FinishAgent { exit, usage, transcript, egress, at } => match run.status {
                S::Running => {
                    let mut events = egress_events(egress, *at);
                    events.push(RunEvent::AgentFinished {
                        exit: exit.clone(),
                        usage: usage.clone(),
                        transcript: transcript.clone(),
                        at: *at,
                    });
                    match exit {
                        SandboxExit::Completed => {}
                        SandboxExit::TimedOut => events.push(RunEvent::RunTimedOut { at: *at }),
                        SandboxExit::AgentFailed { reason } => {
                            events.push(RunEvent::RunFailed { reason: format!("agent failed: {reason}"), at: *at })
                        }
                        SandboxExit::LimitExceeded { limit } => events
                            .push(RunEvent::RunFailed { reason: format!("sandbox limit exceeded: {limit}"), at: *at }),
                    }
                    Ok(events)
                }
                _ => Err(refuse()),
            },
            RunCommand::RecordGuardrail { changed_paths, violations } => match run.status {
                S::Checking => match violations.first() {
                    None => Ok(vec![RunEvent::GuardrailPassed { changed_paths: *changed_paths }]),
                    Some(first) => Ok(vec![RunEvent::GuardrailRefused {
                        file: first.file.clone(),
                        rule: first.rule.clone(),
                        violations: violations.clone(),
                    }]),
                },
                _ => Err(refuse()),
            },
            RunCommand::RecordPush { branch, head } => match run.status {
                S::Pushing if run.pushed_head.as_deref() == Some(head.as_str()) => Ok(vec![]),
                S::Pushing => {
                    if branch != &run.branch {
                        return Err(Rejection::Invariant {
                            rule: "branch_mismatch",
                            message: format!("pushed {branch}, run branch is {}", run.branch),
                        });
                    }
                    Ok(vec![RunEvent::BranchPushed { branch: branch.clone(), head: head.clone() }])
                }
                _ => Err(refuse()),
            },
            RunCommand::RecordPr { number, url, created, at } => match run.status {
                S::Pushing if run.pushed_head.is_some() => {
                    Ok(vec![RunEvent::PrOpened { number: *number, url: url.clone(), created: *created, at: *at }])
                }
                S::Pushing => Err(Rejection::Invariant {
                    rule: "push_first",
                    message: "the branch must be pushed before a PR".into(),
                }),
                _ => Err(refuse()),
            },
            RunCommand::CompleteBranchOnly { at } => match run.status {
                S::Pushing if run.pushed_head.is_some() => Ok(vec![RunEvent::BranchOnlyCompleted { at: *at }]),
                S::Pushing => {
                    Err(Rejection::Invariant { rule: "push_first", message: "the branch must be pushed first".into() })
                }
                _ => Err(refuse()),
            },
            RunCommand::ScheduleRetry { step, attempt, error, delay_ms, retry_at } => {
                Ok(vec![RunEvent::RetryScheduled {
                    step: step.clone(),
                    attempt: *attempt,
                    error: error.clone(),
                    delay_ms: *delay_ms,
                    retry_at: *retry_at,
                }])
            }
            RunCommand::Fail { reason, at } => Ok(vec![RunEvent::RunFailed { reason: reason.clone(), at: *at }]),
            RunCommand::TimeOut { at } => match run.deadline_at {
                Some(deadline) if *at >= deadline => Ok(vec![RunEvent::RunTimedOut { at: *at }]),
                Some(_) => Err(Rejection::Invariant {
                    rule: "deadline_not_reached",
                    message: "the deadline has not passed".into(),
                }),
                None => Err(refuse()),
            },
            RunCommand::Cancel { by, at } => Ok(vec![RunEvent::RunCancelled { by: by.clone(), at: *at }]),
        }
    }

    fn evolve(state: RunState, event: &RunEvent) -> RunState {
        let mut r = match (state, event) {
            (
                RunState::None,
                RunEvent::RunQueued { run, org, app, repo, feedback, branch, kind, wall_clock_ms, at },
            ) => {
                return RunState::Exists(Box::new(AgentRun {
                    run: *run,
                    org: *org,
                    app: *app,
                    repo: *repo,
                    feedback: *feedback,
                    branch: branch.clone(),
                    kind: kind.clone(),
                    status: RunStatus::Queued,
                    wall_clock_ms: *wall_clock_ms,
                    deadline_at: None,
                    attempts: 0,
                    base_commit: None,
                    sandbox: None,
                    pushed_head: None,
                    usage: Usage::default(),
                    transcript: None,
                    violation: None,
                    pr: None,
                    failure: None,
                    retries: 0,
                    timings: Timings { queued_at: Some(*at), ..Timings::default() },
                }))
            }
            (RunState::Exists(r), _) => r,
            (s, _) => return s,
        };
        match event {
            RunEvent::RunQueued { .. } => {}
            RunEvent::ProvisioningStarted { at, deadline_at, attempt } => {
                r.status = RunStatus::Provisioning;
                r.deadline_at = Some(*deadline_at);
                r.attempts = *attempt;
                r.timings.provisioning_at.get_or_insert(*at);
            }
            RunEvent::AgentStarted { base_commit, sandbox, at } => {
                r.status = RunStatus::Running;
                r.base_commit = Some(base_commit.clone());
                r.sandbox = sandbox.clone();
                r.timings.agent_started_at = Some(*at);
            }
            RunEvent::AgentFinished { usage, transcript, at, .. } => {
                r.status = RunStatus::Checking;
                r.usage = usage.clone();
                r.transcript = transcript.clone();
                r.timings.agent_finished_at = Some(*at);
            }
            RunEvent::SecretDecrypted { .. }
            | RunEvent::EgressAllowed { .. }
            | RunEvent::EgressDenied { .. }
            | RunEvent::EgressTruncated { .. } => {}
            RunEvent::GuardrailPassed { .. } => r.status = RunStatus::Pushing,
            RunEvent::GuardrailRefused { file, rule, .. } => {
                r.status = RunStatus::PrFailed;
                r.violation = Some(Violation { file: file.clone(), rule: rule.clone() });
                r.timings.finished_at = r.timings.agent_finished_at;
            }
            RunEvent::BranchPushed { head, .. } => r.pushed_head = Some(head.clone()),
            RunEvent::PrOpened { number, url, at, .. } => {
                r.status = RunStatus::PrOpened;
                r.pr = Some((*number, url.clone()));
                r.timings.finished_at = Some(*at);
            }
            RunEvent::BranchOnlyCompleted { at } => {
                r.status = RunStatus::BranchPushed;
                r.timings.finished_at = Some(*at);
            }
            RunEvent::RetryScheduled { .. } => r.retries += 1,
            RunEvent::RunFailed { reason, at } => {
                r.status = RunStatus::Failed;
                r.failure = Some(reason.clone());
                r.timings.finished_at = Some(*at);
            }
            RunEvent::RunTimedOut { at } => {
                r.status = RunStatus::TimedOut;
                r.timings.finished_at = Some(*at);
            }
            RunEvent::RunCancelled { at, .. } => {
                r.status = RunStatus::Cancelled;
                r.timings.finished_at = Some(*at);
            }
        }
        RunState::Exists(r)
    }
}

impl Aggregate for RunDecider {
    const CATEGORY: &'static str = "run";
}
