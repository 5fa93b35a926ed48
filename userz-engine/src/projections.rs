//! Read models: projections of the event log with transactional checkpoints.
//!
//! A [`Projection`] turns events into table changes. The runner applies a batch of
//! events and moves the projection's checkpoint in the same
//! [`ReadModelStore::commit`], so rows and checkpoint never disagree; after a crash
//! the projection resumes from its checkpoint. Queries read tables, never the log.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};

use crate::codec::AnyEvent;
use userz_core::domain::feedback::{FeedbackEvent, FeedbackStatus, RunResult};
use userz_core::domain::org::OrgEvent;
use userz_core::domain::pr::PrEvent;
use userz_core::domain::run::{RunEvent, RunKind, RunStatus};
use userz_core::domain::timer::TimerEvent;
use userz_core::domain::Severity;
use userz_core::error::{Error, Result};
use userz_core::event::RecordedEvent;
use userz_core::ids::{AppId, FeedbackId, OrgId, PrId, RepoId, RunId, TimerId};
use userz_core::ports::classifier::Label;
use userz_core::ports::sandbox::Usage;
use userz_core::ports::{CheckpointMove, EventStore, ReadModelCommit, ReadModelOp, ReadModelStore};
use userz_core::sensitive::Sensitive;
use userz_core::time::Timestamp;
use userz_security::guardrail::Violation;

/// Pending changes of one projection batch, with read-your-writes.
#[derive(Debug)]
pub struct ProjectionTx<'a> {
    store: &'a dyn ReadModelStore,
    overlay: BTreeMap<(String, String), Option<Bytes>>,
}

impl<'a> ProjectionTx<'a> {
    /// A transaction over `store`.
    pub fn new(store: &'a dyn ReadModelStore) -> Self {
        Self { store, overlay: BTreeMap::new() }
    }

    /// Reads a row, seeing this batch's own writes.
    pub async fn get(&self, table: &str, key: &str) -> Result<Option<Bytes>> {
        if let Some(v) = self.overlay.get(&(table.to_string(), key.to_string())) {
            return Ok(v.clone());
        }
        self.store.get(table, key).await
    }

    /// Reads and decodes a JSON row.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, table: &str, key: &str) -> Result<Option<T>> {
        match self.get(table, key).await? {
            Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
            None => Ok(None),
        }
    }

    /// Writes a row.
    pub fn put(&mut self, table: &str, key: impl Into<String>, value: Bytes) {
        self.overlay.insert((table.to_string(), key.into()), Some(value));
    }

    /// Writes a JSON row.
    pub fn put_json<T: Serialize>(&mut self, table: &str, key: impl Into<String>, value: &T) -> Result<()> {
        self.put(table, key, Bytes::from(serde_json::to_vec(value)?));
        Ok(())
    }

    /// Deletes a row.
    pub fn delete(&mut self, table: &str, key: impl Into<String>) {
        self.overlay.insert((table.to_string(), key.into()), None);
    }

    fn into_ops(self) -> Vec<ReadModelOp> {
        self.overlay
            .into_iter()
            .map(|((table, key), v)| match v {
                Some(value) => ReadModelOp::Put { table, key, value },
                None => ReadModelOp::Delete { table, key },
            })
            .collect()
    }
}

/// Turns events into read-model rows.
#[async_trait]
pub trait Projection: Send + Sync + std::fmt::Debug {
    /// Unique name; also the checkpoint name.
    fn name(&self) -> &'static str;
    /// Applies one event.
    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()>;
}

/// Runs one projection until the returned future is dropped.
///
/// Batches up to `batch` events per commit. A checkpoint conflict (another runner
/// moved it) makes the runner re-read the checkpoint and continue from there.
pub async fn run_projection(
    projection: Arc<dyn Projection>,
    events: Arc<dyn EventStore>,
    store: Arc<dyn ReadModelStore>,
    batch: usize,
) -> Result<()> {
    'outer: loop {
        let mut checkpoint = store.checkpoint(projection.name()).await?;
        let mut sub = events.subscribe(checkpoint).await?;
        loop {
            let Some(first) = sub.next().await else {
                return Ok(());
            };
            let mut recs = vec![first?];
            while recs.len() < batch {
                match sub.next().now_or_never() {
                    Some(Some(r)) => recs.push(r?),
                    _ => break,
                }
            }
            match commit_batch(projection.as_ref(), store.as_ref(), checkpoint, &recs).await? {
                Some(last) => checkpoint = last,
                None => continue 'outer,
            }
        }
    }
}

/// Applies `recs` (which follow checkpoint `from`) and moves the checkpoint to
/// the last of them, in one commit. `None` when another runner moved the
/// checkpoint meanwhile (nothing of this batch is kept).
async fn commit_batch(
    projection: &dyn Projection,
    store: &dyn ReadModelStore,
    from: u64,
    recs: &[RecordedEvent],
) -> Result<Option<u64>> {
    let mut tx = ProjectionTx::new(store);
    for r in recs {
        projection.apply(r, &mut tx).await?;
    }
    let last = recs.last().map(|r| r.position).unwrap_or(from);
    let commit = ReadModelCommit {
        checkpoint: Some(CheckpointMove { name: projection.name().to_string(), expected: from, new: last }),
        ops: tx.into_ops(),
    };
    match store.commit(commit).await {
        Ok(()) => Ok(Some(last)),
        Err(Error::CheckpointConflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Applies every event after `projection`'s checkpoint, in batches of up to
/// `batch`, and returns once it has reached the head of the log it saw; returns
/// the final checkpoint.
///
/// For short-lived processes (an admin command) that need a read model up to
/// date without running the engine. A checkpoint conflict (a long-running
/// runner of the same projection moved it meanwhile) re-reads the checkpoint
/// and goes on from there, so both may run at once.
pub async fn catch_up_projection(
    projection: &dyn Projection,
    events: &dyn EventStore,
    store: &dyn ReadModelStore,
    batch: usize,
) -> Result<u64> {
    let batch = batch.max(1);
    let mut checkpoint = store.checkpoint(projection.name()).await?;
    loop {
        let recs = events.read_all(checkpoint, batch).await?;
        if recs.is_empty() {
            return Ok(checkpoint);
        }
        checkpoint = match commit_batch(projection, store, checkpoint, &recs).await? {
            Some(last) => last,
            None => store.checkpoint(projection.name()).await?,
        };
    }
}

// ---------------------------------------------------------------------------
// Feedback list
// ---------------------------------------------------------------------------

/// Table of feedback summaries, keyed by feedback id.
pub const FEEDBACK_TABLE: &str = "feedback";
/// Index table for paging.
pub const FEEDBACK_INDEX: &str = "feedback_idx";

/// One row of the feedback list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackSummary {
    /// Id.
    pub id: FeedbackId,
    /// Org.
    pub org: OrgId,
    /// App.
    pub app: AppId,
    /// Status.
    pub status: FeedbackStatus,
    /// Label, once classified.
    pub label: Option<Label>,
    /// Lead, when a duplicate.
    pub duplicate_of: Option<FeedbackId>,
    /// Duplicates, when a lead.
    pub duplicates: Vec<FeedbackId>,
    /// Latest run.
    pub latest_run: Option<RunId>,
    /// PR URL, once opened.
    pub pr_url: Option<String>,
    /// Guardrail refusal.
    pub guardrail: Option<Violation>,
    /// Failure reason.
    pub failure: Option<String>,
    /// Arrival.
    pub received_at: Timestamp,
    /// Global position of the arrival event (the list order).
    pub seq: u64,
    /// The report's first line, clipped to [`TITLE_CHARS`] characters.
    #[serde(default)]
    pub title: Sensitive<String>,
    /// Severity the reporter chose.
    #[serde(default)]
    pub severity: Severity,
    /// The classifier's confidence in its label.
    #[serde(default)]
    pub confidence: Option<f32>,
    /// The pre-filter signals that fired (their codes, each once, in order).
    #[serde(default)]
    pub signals: Vec<String>,
    /// The branch pushed, for a branch-only repository.
    #[serde(default)]
    pub branch: Option<String>,
}

/// How many characters of a report's first line the feedback list keeps.
pub const TITLE_CHARS: usize = 120;

/// The first non-blank line of `text`, trimmed and clipped to `max` characters
/// (an ellipsis marks a cut).
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let mut out: String = line.chars().take(max).collect();
    if line.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// The feedback list projection: summaries plus paging indexes by org, app and
/// status, with and without duplicates.
#[derive(Debug, Default)]
pub struct FeedbackListProjection;

fn index_keys(s: &FeedbackSummary) -> Vec<String> {
    // Newest first: invert the sequence so ascending key order is descending age.
    let seq = format!("{:020}", u64::MAX - s.seq);
    let mut keys = Vec::with_capacity(8);
    for app in [s.app.to_string(), "*".to_string()] {
        for status in ["*".to_string(), s.status.as_str().to_string()] {
            keys.push(format!("{}/{app}/all/{status}/{seq}", s.org));
            if s.duplicate_of.is_none() {
                keys.push(format!("{}/{app}/leads/{status}/{seq}", s.org));
            }
        }
    }
    keys
}

#[async_trait]
impl Projection for FeedbackListProjection {
    fn name(&self) -> &'static str {
        "feedback_list"
    }

    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()> {
        let Some(AnyEvent::Feedback(ev)) = AnyEvent::decode(event)? else {
            return Ok(());
        };
        let id_key = event.stream.as_str().trim_start_matches("feedback-").to_string();
        let mut row: FeedbackSummary = match &ev {
            FeedbackEvent::FeedbackReceived { feedback, org, app, received_at, content } => FeedbackSummary {
                id: *feedback,
                org: *org,
                app: *app,
                status: FeedbackStatus::Received,
                label: None,
                duplicate_of: None,
                duplicates: Vec::new(),
                latest_run: None,
                pr_url: None,
                guardrail: None,
                failure: None,
                received_at: *received_at,
                seq: event.position,
                title: Sensitive::new(first_line(content.text.expose(), TITLE_CHARS)),
                severity: content.severity,
                confidence: None,
                signals: Vec::new(),
                branch: None,
            },
            _ => match tx.get_json(FEEDBACK_TABLE, &id_key).await? {
                Some(r) => r,
                None => return Err(Error::Corrupt(format!("feedback list: no row for {}", event.stream))),
            },
        };
        let old_keys = if matches!(ev, FeedbackEvent::FeedbackReceived { .. }) { vec![] } else { index_keys(&row) };
        match &ev {
            FeedbackEvent::FeedbackReceived { .. } => {}
            FeedbackEvent::SanitizingStarted {} => row.status = FeedbackStatus::Sanitizing,
            FeedbackEvent::Classified { label, confidence, signals, .. } => {
                row.label = Some(*label);
                row.confidence = Some(*confidence);
                row.signals.clear();
                for s in signals {
                    if !row.signals.contains(&s.kind) {
                        row.signals.push(s.kind.clone());
                    }
                }
                row.status = FeedbackStatus::Sanitized;
            }
            FeedbackEvent::FeedbackRejected { .. } => row.status = FeedbackStatus::Rejected,
            FeedbackEvent::AwaitingManual {} => row.status = FeedbackStatus::AwaitingManual,
            FeedbackEvent::BatchPending { .. } => row.status = FeedbackStatus::BatchPending,
            FeedbackEvent::BatchClosed {} => row.status = FeedbackStatus::Sanitized,
            FeedbackEvent::FeedbackQueued { .. } => row.status = FeedbackStatus::Queued,
            FeedbackEvent::RunStarted { run } => {
                row.status = FeedbackStatus::Running;
                row.latest_run = Some(*run);
                // The list shows the latest run's outcome, not an earlier one's.
                row.failure = None;
                row.guardrail = None;
            }
            FeedbackEvent::RunCompleted { result, .. } => match result {
                RunResult::PrOpened { url, .. } => {
                    row.status = FeedbackStatus::PrOpened;
                    row.pr_url = Some(url.clone());
                }
                RunResult::BranchPushed { branch } => {
                    row.status = FeedbackStatus::BranchPushed;
                    row.branch = Some(branch.clone());
                }
                RunResult::PrFailed { file, rule } => {
                    row.status = FeedbackStatus::PrFailed;
                    row.guardrail = Some(Violation { file: file.clone(), rule: rule.clone() });
                }
                RunResult::Failed { reason } => {
                    row.status = FeedbackStatus::Failed;
                    row.failure = Some(reason.clone());
                }
            },
            FeedbackEvent::MarkedDuplicate { lead, .. } => {
                row.status = FeedbackStatus::Duplicate;
                row.duplicate_of = Some(*lead);
            }
            FeedbackEvent::DuplicateAttached { duplicate } => {
                if !row.duplicates.contains(duplicate) {
                    row.duplicates.push(*duplicate);
                }
            }
            FeedbackEvent::Consolidated { .. } => {}
            FeedbackEvent::FeedbackArchived { .. } => row.status = FeedbackStatus::Archived,
        }
        for k in old_keys {
            tx.delete(FEEDBACK_INDEX, k);
        }
        let id = row.id.to_string();
        for k in index_keys(&row) {
            tx.put(FEEDBACK_INDEX, k, Bytes::from(id.clone()));
        }
        tx.put_json(FEEDBACK_TABLE, id_key, &row)
    }
}

/// A page request on the feedback list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackQuery {
    /// Org (always required: nothing crosses orgs).
    pub org: OrgId,
    /// App filter.
    pub app: Option<AppId>,
    /// Status filter.
    pub status: Option<FeedbackStatus>,
    /// Show duplicates too (hidden by default).
    pub include_duplicates: bool,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Page size (1–100).
    pub limit: usize,
}

/// One page.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackPage {
    /// Rows, newest first.
    pub items: Vec<FeedbackSummary>,
    /// Cursor for the next page, if there may be one.
    pub next_cursor: Option<String>,
}

/// Reads a page of the feedback list.
pub async fn feedback_page(store: &dyn ReadModelStore, q: &FeedbackQuery) -> Result<FeedbackPage> {
    if !(1..=100).contains(&q.limit) {
        return Err(Error::Invalid("limit: must be 1-100".into()));
    }
    let app = q.app.map(|a| a.to_string()).unwrap_or_else(|| "*".into());
    let status = q.status.map(|s| s.as_str().to_string()).unwrap_or_else(|| "*".into());
    let set = if q.include_duplicates { "all" } else { "leads" };
    let prefix = format!("{}/{app}/{set}/{status}/", q.org);
    let after = match &q.cursor {
        Some(c) => {
            if c.len() != 20 || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::Invalid("cursor: malformed".into()));
            }
            Some(format!("{prefix}{c}"))
        }
        None => None,
    };
    let rows = store.scan(FEEDBACK_INDEX, &prefix, after.as_deref(), q.limit).await?;
    let mut items = Vec::with_capacity(rows.len());
    for (_, id) in &rows {
        let id = std::str::from_utf8(id).map_err(|e| Error::Corrupt(e.to_string()))?;
        if let Some(raw) = store.get(FEEDBACK_TABLE, id).await? {
            items.push(serde_json::from_slice(&raw)?);
        }
    }
    let next_cursor = if rows.len() == q.limit {
        rows.last().and_then(|(k, _)| k.rsplit('/').next().map(str::to_string))
    } else {
        None
    };
    Ok(FeedbackPage { items, next_cursor })
}

/// Reads one summary, only if it belongs to `org`.
pub async fn feedback_summary(
    store: &dyn ReadModelStore,
    org: OrgId,
    id: FeedbackId,
) -> Result<Option<FeedbackSummary>> {
    let Some(raw) = store.get(FEEDBACK_TABLE, &id.to_string()).await? else {
        return Ok(None);
    };
    let row: FeedbackSummary = serde_json::from_slice(&raw)?;
    Ok((row.org == org).then_some(row))
}

// ---------------------------------------------------------------------------
// Run detail
// ---------------------------------------------------------------------------

/// Table of run details, keyed by run id.
pub const RUN_TABLE: &str = "runs";

/// One timeline entry of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Event type.
    pub event: String,
    /// When recorded.
    pub at: Timestamp,
    /// Global position.
    pub position: u64,
}

/// The run detail read model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// Id.
    pub run: RunId,
    /// Org.
    pub org: OrgId,
    /// Lead report.
    pub feedback: FeedbackId,
    /// Kind.
    pub kind: RunKind,
    /// Status.
    pub status: RunStatus,
    /// Branch.
    pub branch: String,
    /// Usage (provider, model, tokens, cost).
    pub usage: Usage,
    /// PR URL.
    pub pr_url: Option<String>,
    /// Guardrail refusal.
    pub guardrail: Option<Violation>,
    /// Failure reason.
    pub failure: Option<String>,
    /// Transcript key.
    pub transcript: Option<String>,
    /// Queued.
    pub queued_at: Timestamp,
    /// Agent started.
    pub started_at: Option<Timestamp>,
    /// Finished.
    pub finished_at: Option<Timestamp>,
    /// Deadline.
    pub deadline_at: Option<Timestamp>,
    /// Retries.
    pub retries: u32,
    /// Connections the run's egress proxy refused.
    #[serde(default)]
    pub egress_denied: u32,
    /// The sandbox the agent ran in (backend and boundary).
    #[serde(default)]
    pub sandbox: Option<String>,
    /// Every event, in order.
    pub timeline: Vec<TimelineEntry>,
}

/// The run detail projection.
#[derive(Debug, Default)]
pub struct RunDetailProjection;

#[async_trait]
impl Projection for RunDetailProjection {
    fn name(&self) -> &'static str {
        "run_detail"
    }

    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()> {
        let Some(AnyEvent::Run(ev)) = AnyEvent::decode(event)? else {
            return Ok(());
        };
        let key = event.stream.as_str().trim_start_matches("run-").to_string();
        let mut d: RunDetail = match &ev {
            RunEvent::RunQueued { run, org, feedback, kind, branch, at, .. } => RunDetail {
                run: *run,
                org: *org,
                feedback: *feedback,
                kind: kind.clone(),
                status: RunStatus::Queued,
                branch: branch.clone(),
                usage: Usage::default(),
                pr_url: None,
                guardrail: None,
                failure: None,
                transcript: None,
                queued_at: *at,
                started_at: None,
                finished_at: None,
                deadline_at: None,
                retries: 0,
                egress_denied: 0,
                sandbox: None,
                timeline: Vec::new(),
            },
            _ => match tx.get_json(RUN_TABLE, &key).await? {
                Some(d) => d,
                None => return Err(Error::Corrupt(format!("run detail: no row for {}", event.stream))),
            },
        };
        match &ev {
            RunEvent::RunQueued { .. } => {}
            RunEvent::ProvisioningStarted { deadline_at, .. } => {
                d.status = RunStatus::Provisioning;
                d.deadline_at = Some(*deadline_at);
            }
            RunEvent::AgentStarted { at, sandbox, .. } => {
                d.status = RunStatus::Running;
                d.started_at = Some(*at);
                d.sandbox = sandbox.clone();
            }
            RunEvent::AgentFinished { usage, transcript, .. } => {
                d.status = RunStatus::Checking;
                d.usage = usage.clone();
                d.transcript = transcript.clone();
            }
            RunEvent::EgressDenied { .. } => d.egress_denied += 1,
            RunEvent::EgressTruncated { denied, .. } => d.egress_denied += denied,
            RunEvent::EgressAllowed { .. } | RunEvent::SecretDecrypted { .. } => {}
            RunEvent::GuardrailPassed { .. } => d.status = RunStatus::Pushing,
            RunEvent::GuardrailRefused { file, rule, .. } => {
                d.status = RunStatus::PrFailed;
                d.guardrail = Some(Violation { file: file.clone(), rule: rule.clone() });
                d.finished_at = Some(event.recorded_at);
            }
            RunEvent::BranchPushed { .. } => {}
            RunEvent::PrOpened { url, at, .. } => {
                d.status = RunStatus::PrOpened;
                d.pr_url = Some(url.clone());
                d.finished_at = Some(*at);
            }
            RunEvent::BranchOnlyCompleted { at } => {
                d.status = RunStatus::BranchPushed;
                d.finished_at = Some(*at);
            }
            RunEvent::RetryScheduled { .. } => d.retries += 1,
            RunEvent::RunFailed { reason, at } => {
                d.status = RunStatus::Failed;
                d.failure = Some(reason.clone());
                d.finished_at = Some(*at);
            }
            RunEvent::RunTimedOut { at } => {
                d.status = RunStatus::TimedOut;
                d.finished_at = Some(*at);
            }
            RunEvent::RunCancelled { at, .. } => {
                d.status = RunStatus::Cancelled;
                d.finished_at = Some(*at);
            }
        }
        d.timeline.push(TimelineEntry {
            event: event.event_type.clone(),
            at: event.recorded_at,
            position: event.position,
        });
        tx.put_json(RUN_TABLE, key, &d)
    }
}

/// Reads a run's detail, only if it belongs to `org`.
pub async fn run_detail(store: &dyn ReadModelStore, org: OrgId, run: RunId) -> Result<Option<RunDetail>> {
    let Some(raw) = store.get(RUN_TABLE, &run.to_string()).await? else {
        return Ok(None);
    };
    let d: RunDetail = serde_json::from_slice(&raw)?;
    Ok((d.org == org).then_some(d))
}

// ---------------------------------------------------------------------------
// Pull requests
// ---------------------------------------------------------------------------

/// Table of PR summaries, keyed by PR id.
pub const PR_TABLE: &str = "pull_requests";
/// Index of PRs by repository and provider number, keyed `repo/number` (number
/// zero-padded to 20 digits); the value is the PR id.
pub const PR_BY_NUMBER: &str = "pull_requests_by_number";

/// The PR read model: what a reviewer and the webhook handler need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrSummary {
    /// Id.
    pub pr: PrId,
    /// Org.
    pub org: OrgId,
    /// Repo.
    pub repo: RepoId,
    /// Lead report.
    pub feedback: FeedbackId,
    /// Provider number.
    pub number: u64,
    /// URL.
    pub url: String,
    /// Head branch.
    pub branch: String,
    /// The runs that opened or revised it, in order.
    pub runs: Vec<RunId>,
    /// Comments received.
    pub comments: usize,
    /// Comments not yet resolved.
    pub unresolved: usize,
    /// A revision run in progress.
    pub revision_in_flight: Option<RunId>,
    /// `None` while open; `Some(merged)` once closed.
    pub closed: Option<bool>,
}

fn pr_number_key(repo: RepoId, number: u64) -> String {
    format!("{repo}/{number:020}")
}

/// The PR projection: [`PrSummary`] rows plus the `(repo, number)` index.
#[derive(Debug, Default)]
pub struct PullRequestProjection;

#[async_trait]
impl Projection for PullRequestProjection {
    fn name(&self) -> &'static str {
        "pull_requests"
    }

    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()> {
        let Some(AnyEvent::Pr(ev)) = AnyEvent::decode(event)? else {
            return Ok(());
        };
        let key = event.stream.as_str().trim_start_matches("pr-").to_string();
        let mut row: PrSummary = match &ev {
            PrEvent::PullRequestOpened { pr, org, repo, feedback, run, number, url, branch } => {
                tx.put(PR_BY_NUMBER, pr_number_key(*repo, *number), Bytes::from(pr.to_string()));
                PrSummary {
                    pr: *pr,
                    org: *org,
                    repo: *repo,
                    feedback: *feedback,
                    number: *number,
                    url: url.clone(),
                    branch: branch.clone(),
                    runs: vec![*run],
                    comments: 0,
                    unresolved: 0,
                    revision_in_flight: None,
                    closed: None,
                }
            }
            _ => match tx.get_json(PR_TABLE, &key).await? {
                Some(r) => r,
                None => return Err(Error::Corrupt(format!("pull requests: no row for {}", event.stream))),
            },
        };
        match &ev {
            PrEvent::PullRequestOpened { .. } => {}
            PrEvent::CommentAdded { .. } => {
                row.comments += 1;
                row.unresolved += 1;
            }
            PrEvent::CommentResolved { .. } => row.unresolved = row.unresolved.saturating_sub(1),
            PrEvent::RevisionRequested { run, .. } => {
                if !row.runs.contains(run) {
                    row.runs.push(*run);
                }
                row.revision_in_flight = Some(*run);
            }
            PrEvent::RevisionCompleted { .. } => row.revision_in_flight = None,
            PrEvent::PullRequestClosed { merged } => row.closed = Some(*merged),
        }
        tx.put_json(PR_TABLE, key, &row)
    }
}

/// The PR of `repo` with provider number `number`, if the projection has seen it.
pub async fn pr_by_number(store: &dyn ReadModelStore, repo: RepoId, number: u64) -> Result<Option<PrId>> {
    let Some(raw) = store.get(PR_BY_NUMBER, &pr_number_key(repo, number)).await? else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&raw).map_err(|e| Error::Corrupt(e.to_string()))?;
    let id = text.parse::<PrId>().map_err(|_| Error::Corrupt(format!("pull requests: bad id {text:?}")))?;
    Ok(Some(id))
}

/// Reads one PR summary, only if it belongs to `org`.
pub async fn pr_summary(store: &dyn ReadModelStore, org: OrgId, pr: PrId) -> Result<Option<PrSummary>> {
    let Some(raw) = store.get(PR_TABLE, &pr.to_string()).await? else {
        return Ok(None);
    };
    let row: PrSummary = serde_json::from_slice(&raw)?;
    Ok((row.org == org).then_some(row))
}

/// One run of a PR with what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrRun {
    /// Run.
    pub run: RunId,
    /// Initial or revision.
    pub kind: RunKind,
    /// Status (from the run detail; `queued` until it is projected).
    pub status: RunStatus,
    /// Model usage and cost (`cost_micros`, micro-USD).
    pub usage: Usage,
}

/// A PR's runs in order (the run that opened it first, then each revision),
/// with status and cost from the run details. `None` if the PR is unknown or
/// belongs to another org.
pub async fn pr_runs(store: &dyn ReadModelStore, org: OrgId, pr: PrId) -> Result<Option<Vec<PrRun>>> {
    let Some(summary) = pr_summary(store, org, pr).await? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(summary.runs.len());
    for (i, run) in summary.runs.iter().enumerate() {
        let row = match run_detail(store, org, *run).await? {
            Some(d) => PrRun { run: *run, kind: d.kind, status: d.status, usage: d.usage },
            None => {
                // Not projected yet: the first run opened the PR, later ones are revisions.
                let kind = if i == 0 {
                    RunKind::Initial
                } else {
                    RunKind::Revision { pr, pr_number: summary.number, comments: Vec::new() }
                };
                PrRun { run: *run, kind, status: RunStatus::Queued, usage: Usage::default() }
            }
        };
        out.push(row);
    }
    Ok(Some(out))
}

// ---------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------

/// Table of audit entries, keyed `org/position`.
pub const AUDIT_TABLE: &str = "audit";

/// One security decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Org.
    pub org: OrgId,
    /// What kind of decision (`classifier_label`, `guardrail_refused`, …).
    pub kind: String,
    /// The subject (stream).
    pub subject: String,
    /// Details (never plaintext secrets or report text).
    pub detail: serde_json::Value,
    /// When.
    pub at: Timestamp,
    /// Global position of the source event.
    pub position: u64,
}

/// The audit log projection: every security decision recorded in the log.
#[derive(Debug, Default)]
pub struct AuditLogProjection;

#[async_trait]
impl Projection for AuditLogProjection {
    fn name(&self) -> &'static str {
        "audit_log"
    }

    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()> {
        let Some(any) = AnyEvent::decode(event)? else {
            return Ok(());
        };
        let (kind, detail) = match &any {
            AnyEvent::Feedback(FeedbackEvent::FeedbackReceived { org, .. })
            | AnyEvent::Run(RunEvent::RunQueued { org, .. })
            | AnyEvent::Org(OrgEvent::OrgCreated { org, .. }) => {
                tx.put_json("audit_streams", event.stream.as_str(), org)?;
                return Ok(());
            }
            AnyEvent::Org(OrgEvent::ApiKeyIssued { name, stored, by, .. }) => {
                ("api_key_issued", serde_json::json!({"prefix": stored.prefix, "name": name, "by": by}))
            }
            AnyEvent::Org(OrgEvent::ApiKeyRevoked { prefix, by, .. }) => {
                ("api_key_revoked", serde_json::json!({"prefix": prefix, "by": by}))
            }
            AnyEvent::Org(OrgEvent::UserTokenMinted { app, by, expires_at }) => {
                ("token_minted", serde_json::json!({"app": app, "by": by, "expires_at": expires_at}))
            }
            AnyEvent::Org(OrgEvent::AuthFailed { code, reason, app, credential }) => (
                "auth_failure",
                serde_json::json!({"code": code, "reason": reason, "app": app, "credential": credential}),
            ),
            AnyEvent::Org(OrgEvent::SecretOpened { kind, secret_id, purpose }) => {
                ("secret_decrypted", serde_json::json!({"kind": kind, "secret_id": secret_id, "purpose": purpose}))
            }
            AnyEvent::Feedback(FeedbackEvent::Classified { label, confidence, signals, classifier }) => (
                "classifier_label",
                serde_json::json!({"label": label, "confidence": confidence, "signals": signals.len(), "classifier": classifier}),
            ),
            AnyEvent::Run(RunEvent::GuardrailRefused { file, rule, violations }) => {
                ("guardrail_refused", serde_json::json!({"file": file, "rule": rule, "violations": violations.len()}))
            }
            AnyEvent::Run(RunEvent::EgressDenied { target, rule, .. }) => {
                ("egress_denied", serde_json::json!({"target": target, "rule": rule}))
            }
            AnyEvent::Run(RunEvent::SecretDecrypted { kind, secret_id, .. }) => {
                ("secret_decrypted", serde_json::json!({"kind": kind, "secret_id": secret_id}))
            }
            AnyEvent::Run(RunEvent::EgressAllowed { target, rule, .. }) => {
                ("egress_allowed", serde_json::json!({"target": target, "rule": rule}))
            }
            AnyEvent::Run(RunEvent::EgressTruncated { allowed, denied, .. }) => {
                ("egress_truncated", serde_json::json!({"allowed": allowed, "denied": denied}))
            }
            AnyEvent::Run(RunEvent::RunTimedOut { .. }) => ("run_timed_out", serde_json::json!({})),
            _ => return Ok(()),
        };
        // The org of a stream is recorded from its first event (see above).
        let Some(org) = tx.get_json::<OrgId>("audit_streams", event.stream.as_str()).await? else {
            return Ok(());
        };
        let entry = AuditEntry {
            org,
            kind: kind.to_string(),
            subject: event.stream.to_string(),
            detail,
            at: event.recorded_at,
            position: event.position,
        };
        tx.put_json(AUDIT_TABLE, format!("{org}/{:020}", event.position), &entry)
    }
}

/// Reads an org's audit log in order.
pub async fn audit_log(
    store: &dyn ReadModelStore,
    org: OrgId,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<AuditEntry>> {
    let prefix = format!("{org}/");
    let after = after.map(|p| format!("{prefix}{p:020}"));
    store
        .scan(AUDIT_TABLE, &prefix, after.as_deref(), limit)
        .await?
        .into_iter()
        .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
        .collect()
}

// ---------------------------------------------------------------------------
// Pending timers
// ---------------------------------------------------------------------------

/// Table of pending timers, keyed `fire_at/timer`.
pub const TIMER_TABLE: &str = "timers_pending";

/// The pending-timers projection the timer service scans.
#[derive(Debug, Default)]
pub struct PendingTimersProjection;

fn timer_key(fire_at: Timestamp, timer: TimerId) -> String {
    format!("{:020}/{}", fire_at.as_millis().max(0), timer.as_uuid())
}

#[async_trait]
impl Projection for PendingTimersProjection {
    fn name(&self) -> &'static str {
        "pending_timers"
    }

    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()> {
        let Some(AnyEvent::Timer(ev)) = AnyEvent::decode(event)? else {
            return Ok(());
        };
        let stream = event.stream.as_str().to_string();
        match ev {
            TimerEvent::TimerScheduled { timer, fire_at, .. } => {
                let key = timer_key(fire_at, timer);
                tx.put("timers_by_stream", stream, Bytes::from(key.clone()));
                tx.put(TIMER_TABLE, key, Bytes::from(timer.as_uuid().to_string()));
            }
            TimerEvent::TimerFired { .. } | TimerEvent::TimerCancelled { .. } => {
                if let Some(key) = tx.get("timers_by_stream", &stream).await? {
                    let key = String::from_utf8_lossy(&key).to_string();
                    tx.delete(TIMER_TABLE, key);
                    tx.delete("timers_by_stream", stream);
                }
            }
        }
        Ok(())
    }
}

/// Timers due at `now` (up to `limit`), oldest first.
pub async fn due_timers(store: &dyn ReadModelStore, now: Timestamp, limit: usize) -> Result<Vec<TimerId>> {
    let rows = store.scan(TIMER_TABLE, "", None, limit).await?;
    let mut out = Vec::new();
    for (key, value) in rows {
        let fire_at: i64 = key.split('/').next().and_then(|s| s.parse().ok()).unwrap_or(i64::MAX);
        if fire_at > now.as_millis() {
            break;
        }
        let id = uuid::Uuid::parse_str(&String::from_utf8_lossy(&value)).map_err(|e| Error::Corrupt(e.to_string()))?;
        out.push(TimerId(id));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn the_list_keeps_the_first_non_blank_line_clipped() {
        assert_eq!(first_line("\n   \n  Save does nothing  \nsecond", 120), "Save does nothing");
        assert_eq!(first_line("", 120), "");
        assert_eq!(first_line("ééééé", 3), "ééé…");
        assert_eq!(first_line("abc", 3), "abc");
    }
}
