//! Feedback: one end-user report and its lifecycle.
//!
//! ```text
//! received → sanitizing → sanitized ─┬→ awaiting_manual ─(queue)─┐
//!                          │         ├→ batch_pending ─(close)───┤
//!                          │         └→ queued ◄─────────────────┘
//!                          │              → running → pr_opened | branch_pushed
//!                          │                        | pr_failed{file, rule} | failed{reason}
//!                          └→ rejected{label}            (failed / pr_failed may be queued again)
//! sanitized | awaiting_manual | batch_pending | queued → duplicate{lead}
//! any settled status → archived
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::{Actor, Dedup, ProcessingMode, Severity};
use crate::event_names;
use crate::ids::{AppId, FeedbackId, OrgId, RunId};
use crate::ports::classifier::{Classification, Label, SignalRecord};
use crate::sensitive::Sensitive;
use crate::time::Timestamp;

/// One console entry captured by the widget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleEntry {
    /// `log`, `info`, `warn`, `error`, `debug`.
    pub level: String,
    /// Message (≤ 1000 chars after ingest validation).
    pub message: String,
    /// Client timestamp (ms).
    pub ts: Option<i64>,
}

/// Browser viewport.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Viewport {
    /// Width in CSS px.
    pub w: u32,
    /// Height in CSS px.
    pub h: u32,
    /// Device pixel ratio.
    pub dpr: f32,
}

/// A reference to an uploaded attachment (the bytes live in blob storage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Blob key.
    pub key: String,
    /// `screenshot`, `annotated` or `attachment`.
    pub kind: String,
    /// MIME type.
    pub content_type: String,
    /// Size.
    pub byte_size: u64,
    /// Pixel width, for images.
    pub width: Option<u32>,
    /// Pixel height, for images.
    pub height: Option<u32>,
}

/// Who reported (public mode: as sent; private mode: from the verified token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporter {
    /// The integrator's user id.
    pub id: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// The accepted report. Personal data is [`Sensitive`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackContent {
    /// Report text.
    pub text: Sensitive<String>,
    /// Severity.
    pub severity: Severity,
    /// Page URL.
    pub url: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Viewport.
    pub viewport: Option<Viewport>,
    /// Console entries.
    pub console_logs: Sensitive<Vec<ConsoleEntry>>,
    /// Attachments.
    pub attachments: Vec<AttachmentRef>,
    /// Component the reporter pointed at.
    pub component_target: Option<String>,
    /// Integrator metadata (≤ 4 KB).
    pub metadata: Option<serde_json::Value>,
    /// Reporter identity.
    pub reporter: Sensitive<Option<Reporter>>,
}

impl FeedbackContent {
    /// A report with only text (tests, demos).
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Sensitive::new(text.into()),
            severity: Severity::Medium,
            url: None,
            user_agent: None,
            viewport: None,
            console_logs: Sensitive::new(Vec::new()),
            attachments: Vec::new(),
            component_target: None,
            metadata: None,
            reporter: Sensitive::new(None),
        }
    }
}

/// How a finished run ended, as far as the feedback is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunResult {
    /// A draft PR is open.
    PrOpened {
        /// PR URL.
        url: String,
        /// PR number.
        number: u64,
    },
    /// Branch-only provider: the branch was pushed; no PR exists.
    BranchPushed {
        /// Branch.
        branch: String,
    },
    /// The diff guardrail refused.
    PrFailed {
        /// The first offending file.
        file: String,
        /// The rule.
        rule: String,
    },
    /// Anything else (agent failure, limits, timeout, provider error).
    Failed {
        /// Why.
        reason: String,
    },
}

/// Where a report stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Stage {
    /// Accepted and stored.
    Received,
    /// Being classified.
    Sanitizing,
    /// Classified benign; in `no_pr` mode it stays here (collected).
    Sanitized,
    /// Waits for a manual queue action.
    AwaitingManual,
    /// Waits for its batch window to close.
    BatchPending {
        /// When the window closes.
        closes_at: Timestamp,
    },
    /// Waiting for a run.
    Queued,
    /// A run is in progress.
    Running {
        /// The run.
        run: RunId,
    },
    /// A draft PR is open.
    PrOpened {
        /// URL.
        url: String,
    },
    /// Branch pushed (branch-only provider).
    BranchPushed {
        /// Branch.
        branch: String,
    },
    /// Guardrail refusal.
    PrFailed {
        /// File.
        file: String,
        /// Rule.
        rule: String,
    },
    /// Run failed.
    Failed {
        /// Why.
        reason: String,
    },
    /// Classified non-benign; never reaches an agent.
    Rejected {
        /// The label.
        label: Label,
    },
    /// Folded into a lead report.
    Duplicate {
        /// The lead.
        lead: FeedbackId,
    },
    /// Archived by a person.
    Archived,
}

/// The flat status name used by APIs and read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackStatus {
    /// See [`Stage::Received`].
    Received,
    /// See [`Stage::Sanitizing`].
    Sanitizing,
    /// See [`Stage::Sanitized`].
    Sanitized,
    /// See [`Stage::AwaitingManual`].
    AwaitingManual,
    /// See [`Stage::BatchPending`].
    BatchPending,
    /// See [`Stage::Queued`].
    Queued,
    /// See [`Stage::Running`].
    Running,
    /// See [`Stage::PrOpened`].
    PrOpened,
    /// See [`Stage::BranchPushed`].
    BranchPushed,
    /// See [`Stage::PrFailed`].
    PrFailed,
    /// See [`Stage::Failed`].
    Failed,
    /// See [`Stage::Rejected`].
    Rejected,
    /// See [`Stage::Duplicate`].
    Duplicate,
    /// See [`Stage::Archived`].
    Archived,
}

impl FeedbackStatus {
    /// All statuses.
    pub const ALL: [FeedbackStatus; 14] = [
        FeedbackStatus::Received,
        FeedbackStatus::Sanitizing,
        FeedbackStatus::Sanitized,
        FeedbackStatus::AwaitingManual,
        FeedbackStatus::BatchPending,
        FeedbackStatus::Queued,
        FeedbackStatus::Running,
        FeedbackStatus::PrOpened,
        FeedbackStatus::BranchPushed,
        FeedbackStatus::PrFailed,
        FeedbackStatus::Failed,
        FeedbackStatus::Rejected,
        FeedbackStatus::Duplicate,
        FeedbackStatus::Archived,
    ];

    /// Stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackStatus::Received => "received",
            FeedbackStatus::Sanitizing => "sanitizing",
            FeedbackStatus::Sanitized => "sanitized",
            FeedbackStatus::AwaitingManual => "awaiting_manual",
            FeedbackStatus::BatchPending => "batch_pending",
            FeedbackStatus::Queued => "queued",
            FeedbackStatus::Running => "running",
            FeedbackStatus::PrOpened => "pr_opened",
            FeedbackStatus::BranchPushed => "branch_pushed",
            FeedbackStatus::PrFailed => "pr_failed",
            FeedbackStatus::Failed => "failed",
            FeedbackStatus::Rejected => "rejected",
            FeedbackStatus::Duplicate => "duplicate",
            FeedbackStatus::Archived => "archived",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for FeedbackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Stage {
    /// The flat status.
    pub fn status(&self) -> FeedbackStatus {
        match self {
            Stage::Received => FeedbackStatus::Received,
            Stage::Sanitizing => FeedbackStatus::Sanitizing,
            Stage::Sanitized => FeedbackStatus::Sanitized,
            Stage::AwaitingManual => FeedbackStatus::AwaitingManual,
            Stage::BatchPending { .. } => FeedbackStatus::BatchPending,
            Stage::Queued => FeedbackStatus::Queued,
            Stage::Running { .. } => FeedbackStatus::Running,
            Stage::PrOpened { .. } => FeedbackStatus::PrOpened,
            Stage::BranchPushed { .. } => FeedbackStatus::BranchPushed,
            Stage::PrFailed { .. } => FeedbackStatus::PrFailed,
            Stage::Failed { .. } => FeedbackStatus::Failed,
            Stage::Rejected { .. } => FeedbackStatus::Rejected,
            Stage::Duplicate { .. } => FeedbackStatus::Duplicate,
            Stage::Archived => FeedbackStatus::Archived,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status().as_str())
    }
}

/// The App settings a routing decision needs (a snapshot taken by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// Processing mode.
    pub mode: ProcessingMode,
    /// Duplicate handling.
    pub dedup: Dedup,
    /// Decision time (for batch windows).
    pub now: Timestamp,
}

/// The LLM-consolidated description a lead carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consolidated {
    /// Short theme.
    pub theme: String,
    /// Consolidated description of the cluster.
    pub description: Sensitive<String>,
}

/// Commands on a report.
// `Submit` carries the whole report; commands and events are built and moved
// once each, so the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum FeedbackCommand {
    /// Accepts a validated report.
    Submit {
        /// Id.
        feedback: FeedbackId,
        /// Org.
        org: OrgId,
        /// App.
        app: AppId,
        /// Content (validated at ingest).
        content: FeedbackContent,
        /// Arrival time.
        received_at: Timestamp,
    },
    /// Classification begins.
    StartSanitizing,
    /// Records the classifier's verdict and routes a benign report.
    Classify {
        /// Verdict.
        classification: Classification,
        /// App settings at decision time.
        routing: Routing,
    },
    /// The batch window closed.
    CloseBatch {
        /// Processing mode at close time.
        mode: ProcessingMode,
    },
    /// Queues a run (manual action, or a retry after a failure).
    Queue {
        /// Who asked.
        by: Actor,
    },
    /// A run was created for the queued report.
    StartRun {
        /// The run.
        run: RunId,
    },
    /// Records how the run ended.
    CompleteRun {
        /// The run.
        run: RunId,
        /// Result.
        result: RunResult,
    },
    /// Folds this report into `lead`.
    MarkDuplicate {
        /// Lead report.
        lead: FeedbackId,
        /// Similarity score that matched, if any.
        similarity: Option<f32>,
    },
    /// Records a duplicate on the lead.
    AttachDuplicate {
        /// The duplicate.
        duplicate: FeedbackId,
    },
    /// Stores the consolidated description of the cluster on the lead.
    Consolidate {
        /// Theme and description.
        consolidated: Consolidated,
    },
    /// Archives the report.
    Archive {
        /// Who asked.
        by: Actor,
    },
}

/// Events of a report.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FeedbackEvent {
    /// Accepted.
    FeedbackReceived {
        /// Id.
        feedback: FeedbackId,
        /// Org.
        org: OrgId,
        /// App.
        app: AppId,
        /// Content.
        content: FeedbackContent,
        /// Arrival time.
        received_at: Timestamp,
    },
    /// Classification began.
    SanitizingStarted {},
    /// Classifier verdict (an audit event).
    Classified {
        /// Label.
        label: Label,
        /// Confidence.
        confidence: f32,
        /// Pre-filter signals.
        signals: Vec<SignalRecord>,
        /// Which classifier.
        classifier: String,
    },
    /// Non-benign: stops here.
    FeedbackRejected {
        /// Label.
        label: Label,
    },
    /// Waits for a person.
    AwaitingManual {},
    /// Waits for the batch window.
    BatchPending {
        /// Window close.
        closes_at: Timestamp,
    },
    /// Batch window closed.
    BatchClosed {},
    /// Waiting for a run.
    FeedbackQueued {
        /// Who queued.
        by: Actor,
    },
    /// Run started.
    RunStarted {
        /// Run.
        run: RunId,
    },
    /// Run ended.
    RunCompleted {
        /// Run.
        run: RunId,
        /// Result.
        result: RunResult,
    },
    /// Folded into a lead.
    MarkedDuplicate {
        /// Lead.
        lead: FeedbackId,
        /// Similarity.
        similarity: Option<f32>,
    },
    /// A duplicate joined this lead.
    DuplicateAttached {
        /// Duplicate.
        duplicate: FeedbackId,
    },
    /// Consolidated description stored.
    Consolidated {
        /// Theme and description.
        consolidated: Consolidated,
    },
    /// Archived.
    FeedbackArchived {
        /// Who.
        by: Actor,
    },
}
event_names!(FeedbackEvent {
    FeedbackReceived,
    SanitizingStarted,
    Classified,
    FeedbackRejected,
    AwaitingManual,
    BatchPending,
    BatchClosed,
    FeedbackQueued,
    RunStarted,
    RunCompleted,
    MarkedDuplicate,
    DuplicateAttached,
    Consolidated,
    FeedbackArchived,
});

/// An existing report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Id.
    pub feedback: FeedbackId,
    /// Org.
    pub org: OrgId,
    /// App.
    pub app: AppId,
    /// Content.
    pub content: FeedbackContent,
    /// Arrival.
    pub received_at: Timestamp,
    /// Where it stands.
    pub stage: Stage,
    /// Latest classification.
    pub classification: Option<Classification>,
    /// Duplicates (when this is a lead).
    pub duplicates: Vec<FeedbackId>,
    /// Consolidated description (when this is a lead).
    pub consolidated: Option<Consolidated>,
    /// Runs, in order.
    pub runs: Vec<RunId>,
}

/// State of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum FeedbackState {
    /// Not received.
    #[default]
    None,
    /// Exists.
    Exists(Box<Feedback>),
}

impl FeedbackState {
    /// The report, if it exists.
    pub fn get(&self) -> Option<&Feedback> {
        match self {
            FeedbackState::Exists(f) => Some(f),
            FeedbackState::None => None,
        }
    }
}

/// The feedback decider.
#[derive(Debug, Clone, Copy)]
pub struct FeedbackDecider;

fn route(routing: &Routing) -> Vec<FeedbackEvent> {
    match (routing.mode, routing.dedup) {
        (ProcessingMode::NoPr, _) => vec![],
        (_, Dedup::Batch { window_hours }) => vec![FeedbackEvent::BatchPending {
            closes_at: routing.now + std::time::Duration::from_secs(u64::from(window_hours) * 3600),
        }],
        (ProcessingMode::Manual, _) => vec![FeedbackEvent::AwaitingManual {}],
        (ProcessingMode::AutoPr, _) => vec![FeedbackEvent::FeedbackQueued { by: Actor::System }],
    }
}

fn command_name(c: &FeedbackCommand) -> &'static str {
    match c {
        FeedbackCommand::Submit { .. } => "submit",
        FeedbackCommand::StartSanitizing => "start_sanitizing",
        FeedbackCommand::Classify { .. } => "classify",
        FeedbackCommand::CloseBatch { .. } => "close_batch",
        FeedbackCommand::Queue { .. } => "queue",
        FeedbackCommand::StartRun { .. } => "start_run",
        FeedbackCommand::CompleteRun { .. } => "complete_run",
        FeedbackCommand::MarkDuplicate { .. } => "mark_duplicate",
        FeedbackCommand::AttachDuplicate { .. } => "attach_duplicate",
        FeedbackCommand::Consolidate { .. } => "consolidate",
        FeedbackCommand::Archive { .. } => "archive",
    }
}

impl Decider for FeedbackDecider {
    type Command = FeedbackCommand;
    type Event = FeedbackEvent;
    type State = FeedbackState;

    fn initial_state() -> FeedbackState {
        FeedbackState::None
    }

    fn decide(command: &FeedbackCommand, state: &FeedbackState) -> Result<Vec<FeedbackEvent>, Rejection> {
        let fb = match (command, state) {
            (FeedbackCommand::Submit { feedback, org, app, content, received_at }, FeedbackState::None) => {
                if content.text.expose().trim().is_empty() {
                    return Err(Rejection::input("text", "must not be empty"));
                }
                return Ok(vec![FeedbackEvent::FeedbackReceived {
                    feedback: *feedback,
                    org: *org,
                    app: *app,
                    content: content.clone(),
                    received_at: *received_at,
                }]);
            }
            (FeedbackCommand::Submit { .. }, FeedbackState::Exists(_)) => {
                return Err(Rejection::AlreadyExists { entity: "feedback" })
            }
            (_, FeedbackState::None) => return Err(Rejection::NotFound { entity: "feedback" }),
            (_, FeedbackState::Exists(fb)) => fb,
        };
        let refuse = || Rejection::transition(command_name(command), &fb.stage);
        match command {
            FeedbackCommand::Submit { .. } => Err(Rejection::AlreadyExists { entity: "feedback" }),
            FeedbackCommand::StartSanitizing => match fb.stage {
                Stage::Received => Ok(vec![FeedbackEvent::SanitizingStarted {}]),
                _ => Err(refuse()),
            },
            FeedbackCommand::Classify { classification, routing } => {
                if fb.stage != Stage::Sanitizing {
                    return Err(refuse());
                }
                if !(0.0..=1.0).contains(&classification.confidence) {
                    return Err(Rejection::input("confidence", "must be within 0..=1"));
                }
                let mut events = vec![FeedbackEvent::Classified {
                    label: classification.label,
                    confidence: classification.confidence,
                    signals: classification.signals.clone(),
                    classifier: classification.classifier.clone(),
                }];
                if classification.label == Label::Benign {
                    events.extend(route(routing));
                } else {
                    events.push(FeedbackEvent::FeedbackRejected { label: classification.label });
                }
                Ok(events)
            }
            FeedbackCommand::CloseBatch { mode } => match fb.stage {
                Stage::BatchPending { .. } => {
                    let mut events = vec![FeedbackEvent::BatchClosed {}];
                    match mode {
                        ProcessingMode::AutoPr => events.push(FeedbackEvent::FeedbackQueued { by: Actor::System }),
                        ProcessingMode::Manual => events.push(FeedbackEvent::AwaitingManual {}),
                        ProcessingMode::NoPr => {}
                    }
                    Ok(events)
                }
                _ => Err(refuse()),
            },
            FeedbackCommand::Queue { .. } if fb.classification.as_ref().map(|c| c.label) != Some(Label::Benign) => {
                Err(Rejection::Invariant {
                    rule: "not_benign",
                    message: "only a report classified benign may be queued for a run".into(),
                })
            }
            FeedbackCommand::Queue { by } => match fb.stage {
                Stage::AwaitingManual | Stage::Failed { .. } | Stage::PrFailed { .. } => {
                    Ok(vec![FeedbackEvent::FeedbackQueued { by: by.clone() }])
                }
                Stage::Queued => Ok(vec![]),
                _ => Err(refuse()),
            },
            FeedbackCommand::StartRun { run } => match &fb.stage {
                Stage::Queued => Ok(vec![FeedbackEvent::RunStarted { run: *run }]),
                Stage::Running { run: current } if current == run => Ok(vec![]),
                _ => Err(refuse()),
            },
            FeedbackCommand::CompleteRun { run, result } => match &fb.stage {
                Stage::Running { run: current } if current == run => {
                    Ok(vec![FeedbackEvent::RunCompleted { run: *run, result: result.clone() }])
                }
                Stage::Running { .. } => Err(Rejection::Invariant {
                    rule: "run_mismatch",
                    message: format!("{run} is not the report's current run"),
                }),
                _ => Err(refuse()),
            },
            FeedbackCommand::MarkDuplicate { lead, similarity } => {
                if *lead == fb.feedback {
                    return Err(Rejection::input("lead", "a report cannot duplicate itself"));
                }
                match fb.stage {
                    Stage::Sanitized | Stage::AwaitingManual | Stage::BatchPending { .. } | Stage::Queued => {
                        if !fb.duplicates.is_empty() {
                            return Err(Rejection::Invariant {
                                rule: "lead_has_duplicates",
                                message: "a lead with duplicates cannot itself become a duplicate".into(),
                            });
                        }
                        Ok(vec![FeedbackEvent::MarkedDuplicate { lead: *lead, similarity: *similarity }])
                    }
                    _ => Err(refuse()),
                }
            }
            FeedbackCommand::AttachDuplicate { duplicate } => {
                if *duplicate == fb.feedback {
                    return Err(Rejection::input("duplicate", "a report cannot duplicate itself"));
                }
                match fb.stage {
                    Stage::Received
                    | Stage::Sanitizing
                    | Stage::Rejected { .. }
                    | Stage::Duplicate { .. }
                    | Stage::Archived => Err(refuse()),
                    _ if fb.duplicates.contains(duplicate) => Ok(vec![]),
                    _ => Ok(vec![FeedbackEvent::DuplicateAttached { duplicate: *duplicate }]),
                }
            }
            FeedbackCommand::Consolidate { consolidated } => match fb.stage {
                Stage::Received
                | Stage::Sanitizing
                | Stage::Rejected { .. }
                | Stage::Duplicate { .. }
                | Stage::Archived => Err(refuse()),
                _ => {
                    if consolidated.theme.trim().is_empty() || consolidated.theme.chars().count() > 120 {
                        return Err(Rejection::input("theme", "1-120 characters"));
                    }
                    Ok(vec![FeedbackEvent::Consolidated { consolidated: consolidated.clone() }])
                }
            },
            FeedbackCommand::Archive { by } => match fb.stage {
                Stage::Received | Stage::Sanitizing | Stage::Running { .. } | Stage::Archived => Err(refuse()),
                _ => Ok(vec![FeedbackEvent::FeedbackArchived { by: by.clone() }]),
            },
        }
    }

    fn evolve(state: FeedbackState, event: &FeedbackEvent) -> FeedbackState {
        let mut fb = match (state, event) {
            (FeedbackState::None, FeedbackEvent::FeedbackReceived { feedback, org, app, content, received_at }) => {
                return FeedbackState::Exists(Box::new(Feedback {
                    feedback: *feedback,
                    org: *org,
                    app: *app,
                    content: content.clone(),
                    received_at: *received_at,
                    stage: Stage::Received,
                    classification: None,
                    duplicates: Vec::new(),
                    consolidated: None,
                    runs: Vec::new(),
                }))
            }
            (FeedbackState::Exists(fb), _) => fb,
            (s, _) => return s,
        };
        match event {
            FeedbackEvent::FeedbackReceived { .. } => {}
            FeedbackEvent::SanitizingStarted {} => fb.stage = Stage::Sanitizing,
            FeedbackEvent::Classified { label, confidence, signals, classifier } => {
                fb.classification = Some(Classification {
                    label: *label,
                    confidence: *confidence,
                    signals: signals.clone(),
                    classifier: classifier.clone(),
                });
                fb.stage = Stage::Sanitized;
            }
            FeedbackEvent::FeedbackRejected { label } => fb.stage = Stage::Rejected { label: *label },
            FeedbackEvent::AwaitingManual {} => fb.stage = Stage::AwaitingManual,
            FeedbackEvent::BatchPending { closes_at } => fb.stage = Stage::BatchPending { closes_at: *closes_at },
            FeedbackEvent::BatchClosed {} => fb.stage = Stage::Sanitized,
            FeedbackEvent::FeedbackQueued { .. } => fb.stage = Stage::Queued,
            FeedbackEvent::RunStarted { run } => {
                fb.runs.push(*run);
                fb.stage = Stage::Running { run: *run };
            }
            FeedbackEvent::RunCompleted { result, .. } => {
                fb.stage = match result {
                    RunResult::PrOpened { url, .. } => Stage::PrOpened { url: url.clone() },
                    RunResult::BranchPushed { branch } => Stage::BranchPushed { branch: branch.clone() },
                    RunResult::PrFailed { file, rule } => Stage::PrFailed { file: file.clone(), rule: rule.clone() },
                    RunResult::Failed { reason } => Stage::Failed { reason: reason.clone() },
                }
            }
            FeedbackEvent::MarkedDuplicate { lead, .. } => fb.stage = Stage::Duplicate { lead: *lead },
            FeedbackEvent::DuplicateAttached { duplicate } => fb.duplicates.push(*duplicate),
            FeedbackEvent::Consolidated { consolidated } => fb.consolidated = Some(consolidated.clone()),
            FeedbackEvent::FeedbackArchived { .. } => fb.stage = Stage::Archived,
        }
        FeedbackState::Exists(fb)
    }
}

impl Aggregate for FeedbackDecider {
    const CATEGORY: &'static str = "feedback";
}
