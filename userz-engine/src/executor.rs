//! Workers: claim jobs and perform effects (classification, agent runs).

use std::sync::Arc;

use crate::commands::{CommandBus, CommandMeta};
use crate::pipeline::exec_tolerant;
use crate::process::Job;
use crate::secrets::open_secret;
use crate::{queues, Inner};
use userz_core::domain::app::{AppDecider, AppState};
use userz_core::domain::feedback::{Feedback, FeedbackCommand, FeedbackDecider, FeedbackState, Routing, Stage};
use userz_core::domain::pr::{DiffComment, PrDecider, PrState};
use userz_core::domain::repo::{Provider, Repo, RepoDecider, RepoState};
use userz_core::domain::run::{AgentRun, RunCommand, RunDecider, RunKind, RunState, RunStatus};
use userz_core::error::{Error, Result};
use userz_core::ports::sandbox::{SandboxExit, SandboxSpec};
use userz_core::ports::{ClaimedJob, ClassifierInput, PrRequest, RepoTarget, Workspace};
use userz_core::sensitive::Sensitive;
use userz_core::time::Timestamp;
use userz_security::envelope::SecretKind;
use userz_security::guardrail::Guardrails;

enum Done {
    Ack,
    Retry(Timestamp),
    /// The lease was lost: another worker owns the job now.
    Abandon,
}

pub(crate) async fn worker_loop(inner: Arc<Inner>, queue: &'static str, worker: String) -> Result<()> {
    loop {
        let Some(job) = inner.deps.queue.claim(queue, &worker, inner.config.lease).await? else {
            tokio::time::sleep(inner.config.poll_interval).await;
            continue;
        };
        let parsed: Job = match serde_json::from_slice(&job.payload) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "undecodable job dropped");
                inner.deps.queue.ack(&job.lease).await?;
                continue;
            }
        };
        let done = match parsed {
            Job::Sanitize { feedback } => sanitize(&inner, &job, feedback).await,
            Job::ExecuteRun { run } => execute_run(&inner, &job, run).await,
        };
        let outcome = match done {
            Ok(Done::Ack) => inner.deps.queue.ack(&job.lease).await,
            Ok(Done::Retry(at)) => inner.deps.queue.nack(&job.lease, at).await,
            Ok(Done::Abandon) => Ok(()),
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "job failed; retrying later");
                let at = inner.deps.clock.now() + inner.config.backoff(job.attempt);
                inner.deps.queue.nack(&job.lease, at).await
            }
        };
        match outcome {
            Ok(()) | Err(Error::LeaseLost(_)) => {}
            Err(e) => return Err(e),
        }
    }
}

fn meta(job: &ClaimedJob, purpose: &str) -> CommandMeta {
    // One command id per job delivery and purpose: a re-delivered job re-decides
    // against the current state instead of replaying the earlier outcome.
    let cause = uuid::Uuid::new_v5(&job.lease.token, purpose.as_bytes());
    CommandMeta::derived(cause, purpose, userz_core::ids::CorrelationId::derived(job.id.as_uuid(), "job"))
}

async fn sanitize(inner: &Inner, job: &ClaimedJob, feedback: userz_core::ids::FeedbackId) -> Result<Done> {
    let stream = CommandBus::stream::<FeedbackDecider>(feedback);
    exec_tolerant::<FeedbackDecider>(
        &inner.bus,
        &stream,
        meta(job, "start_sanitizing"),
        &FeedbackCommand::StartSanitizing,
    )
    .await?;
    let (state, _) = inner.bus.load::<FeedbackDecider>(&stream).await?;
    let FeedbackState::Exists(fb) = state else {
        return Ok(Done::Ack);
    };
    if fb.stage != Stage::Sanitizing {
        return Ok(Done::Ack);
    }
    let input = ClassifierInput {
        text: fb.content.text.clone(),
        url: fb.content.url.clone(),
        console: Sensitive::new(fb.content.console_logs.expose().iter().map(|c| c.message.clone()).collect()),
    };
    let classification = match inner.deps.classifier.classify(&input).await {
        Ok(c) => c,
        Err(e) => {
            // A report is never routed without a verdict: keep retrying, capped.
            tracing::warn!(%feedback, attempt = job.attempt, error = %e, "classifier failed");
            return Ok(Done::Retry(inner.deps.clock.now() + inner.config.backoff(job.attempt)));
        }
    };
    let (app, _) = inner.bus.load::<AppDecider>(&CommandBus::stream::<AppDecider>(fb.app)).await?;
    let AppState::Active(app) = app else {
        return Err(Error::NotFound(format!("app {}", fb.app)));
    };
    let routing =
        Routing { mode: app.settings.processing_mode, dedup: app.settings.dedup, now: inner.deps.clock.now() };
    exec_tolerant::<FeedbackDecider>(
        &inner.bus,
        &stream,
        meta(job, "classify"),
        &FeedbackCommand::Classify { classification, routing },
    )
    .await?;
    Ok(Done::Ack)
}

/// An effect failure inside a run step.
struct StepError {
    step: &'static str,
    error: Error,
}

trait StepExt<T> {
    fn step(self, step: &'static str) -> std::result::Result<T, StepError>;
}

impl<T> StepExt<T> for Result<T> {
    fn step(self, step: &'static str) -> std::result::Result<T, StepError> {
        self.map_err(|error| StepError { step, error })
    }
}

fn repo_target(repo: &Repo) -> RepoTarget {
    let location = match &repo.provider {
        Provider::Github { full_name, .. } => full_name.clone(),
        Provider::Gitlab { project, .. } => project.clone(),
        Provider::Git { remote } => remote.clone(),
    };
    RepoTarget {
        org: repo.org,
        repo: repo.repo,
        location,
        base_branch: repo.base_branch.clone(),
        provider: repo.provider.clone(),
    }
}

async fn load_run(inner: &Inner, run: userz_core::ids::RunId) -> Result<Option<AgentRun>> {
    let (state, _) = inner.bus.load::<RunDecider>(&CommandBus::stream::<RunDecider>(run)).await?;
    Ok(match state {
        RunState::Exists(r) => Some(*r),
        RunState::None => None,
    })
}

async fn execute_run(inner: &Inner, job: &ClaimedJob, run_id: userz_core::ids::RunId) -> Result<Done> {
    let Some(view) = RunView::load(inner, run_id).await? else {
        return Ok(Done::Ack);
    };
    let result = if view.run.status == RunStatus::Pushing && view.run.pushed_head.is_some() {
        // The branch is already pushed (a crash came between push and PR): only the
        // PR step remains, and it is idempotent per branch.
        finish_push(inner, job, &view).await
    } else {
        full_pass(inner, job, &view).await
    };
    match result {
        Ok(done) => Ok(done),
        Err(StepError { step, error }) => {
            let now = inner.deps.clock.now();
            let stream = CommandBus::stream::<RunDecider>(run_id);
            if error.is_retryable() && job.attempt < inner.config.max_attempts {
                let delay = inner.config.backoff(job.attempt);
                let retry_at = now + delay;
                let cmd = RunCommand::ScheduleRetry {
                    step: step.into(),
                    attempt: job.attempt,
                    error: error.to_string(),
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    retry_at,
                };
                exec_tolerant::<RunDecider>(&inner.bus, &stream, meta(job, "retry"), &cmd).await?;
                Ok(Done::Retry(retry_at))
            } else {
                let cmd = RunCommand::Fail { reason: format!("{step}: {error}"), at: now };
                exec_tolerant::<RunDecider>(&inner.bus, &stream, meta(job, "fail"), &cmd).await?;
                Ok(Done::Ack)
            }
        }
    }
}

/// What one delivery of a run job reads, loaded once: the run, its repository,
/// its report and, for a revision, the review comments it answers. Later steps
/// use this view instead of reloading aggregates; only the cancellation check
/// while the agent runs reads the run's status again.
struct RunView {
    run: AgentRun,
    repo: Repo,
    feedback: Feedback,
    comments: Vec<DiffComment>,
    target: RepoTarget,
}

impl RunView {
    /// `None` when the run does not exist or has ended.
    async fn load(inner: &Inner, run: userz_core::ids::RunId) -> Result<Option<Self>> {
        let Some(run) = load_run(inner, run).await? else {
            return Ok(None);
        };
        if run.status.is_terminal() {
            return Ok(None);
        }
        let (repo, _) = inner.bus.load::<RepoDecider>(&CommandBus::stream::<RepoDecider>(run.repo)).await?;
        let RepoState::Active(repo) = repo else {
            return Err(Error::NotFound(format!("repo {}", run.repo)));
        };
        let (fb, _) = inner.bus.load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(run.feedback)).await?;
        let FeedbackState::Exists(feedback) = fb else {
            return Err(Error::NotFound(format!("feedback {}", run.feedback)));
        };
        let mut comments = Vec::new();
        if let RunKind::Revision { pr, comments: ids, .. } = &run.kind {
            let (state, _) = inner.bus.load::<PrDecider>(&CommandBus::stream::<PrDecider>(*pr)).await?;
            if let PrState::Exists(p) = state {
                comments = p.comments.into_iter().filter(|c| ids.contains(&c.comment)).collect();
            }
        }
        let target = repo_target(&repo);
        Ok(Some(Self { run, repo, feedback: *feedback, comments, target }))
    }

    /// The agent's prompt: the report (and, for revisions, the unresolved
    /// review comments it answers) as untrusted data.
    fn prompt(&self) -> userz_security::wrap::Prompt {
        crate::prompt::build(&self.feedback, &self.comments.iter().collect::<Vec<_>>())
    }
}

/// Records `cmd` on `run`'s stream for this job delivery; `Ok(false)` means the
/// decider refused it as stale (the run moved on), a port failure is tagged with
/// `step` for the retry logic.
async fn record(
    inner: &Inner,
    job: &ClaimedJob,
    run: userz_core::ids::RunId,
    step: &'static str,
    cmd: &RunCommand,
) -> std::result::Result<bool, StepError> {
    exec_tolerant::<RunDecider>(&inner.bus, &CommandBus::stream::<RunDecider>(run), meta(job, step), cmd)
        .await
        .step(step)
}

async fn full_pass(inner: &Inner, job: &ClaimedJob, view: &RunView) -> std::result::Result<Done, StepError> {
    let (run, target) = (&view.run, &view.target);
    let now = || inner.deps.clock.now();
    if !record(inner, job, run.run, "provision", &RunCommand::Provision { at: now() }).await? {
        return Ok(Done::Ack);
    }
    let revision = matches!(run.kind, RunKind::Revision { .. });
    let dir = inner.deps.sandbox.allocate_workspace(run.run, &inner.config.limits).await.step("allocate_workspace")?;
    let result = match inner.deps.vcs.prepare_workspace(target, run.run, &run.branch, revision, &dir).await {
        Ok(ws) => {
            let result = with_workspace(inner, job, view, &ws).await;
            // The workspace goes on every path; a failed discard is logged, not fatal.
            if let Err(e) = inner.deps.changes.discard(&ws).await {
                tracing::warn!(run = %run.run, error = %e, "workspace not discarded");
            }
            result
        }
        Err(e) => Err(StepError { step: "prepare_workspace", error: e }),
    };
    if let Err(e) = inner.deps.sandbox.release_workspace(run.run).await {
        tracing::warn!(run = %run.run, error = %e, "workspace storage not released");
    }
    result
}

async fn with_workspace(
    inner: &Inner,
    job: &ClaimedJob,
    view: &RunView,
    ws: &Workspace,
) -> std::result::Result<Done, StepError> {
    let (run, repo, target) = (&view.run, &view.repo, &view.target);
    let now = || inner.deps.clock.now();
    let sandbox = Some(inner.deps.sandbox.describe());
    let cmd = RunCommand::StartAgent { base_commit: ws.base_commit.clone(), sandbox, at: now() };
    if !record(inner, job, run.run, "start_agent", &cmd).await? {
        return Ok(Done::Ack);
    }
    let prompt = view.prompt();
    let model_key = match (&inner.deps.envelope, &inner.config.model_secret) {
        (Some(envelope), Some(slot)) => {
            let kind = SecretKind::AiProviderKey;
            let key = open_secret(&inner.bus, envelope, run.org, kind, slot).await.step("decrypt_secret")?;
            if key.is_some() {
                let cmd =
                    RunCommand::RecordSecretUse { kind: kind.as_str().into(), secret_id: slot.clone(), at: now() };
                if !record(inner, job, run.run, "secret_decrypted", &cmd).await? {
                    return Ok(Done::Ack);
                }
            }
            key
        }
        _ => None,
    };
    let spec = SandboxSpec {
        run: run.run,
        org: run.org,
        workspace: ws.clone(),
        prompt: prompt.user,
        system_prompt: prompt.system,
        limits: inner.config.limits,
        egress_allowlist: inner.config.egress_allowlist.clone(),
        model_key,
    };
    let outcome = {
        let sandbox = inner.deps.sandbox.run(&spec);
        tokio::pin!(sandbox);
        let mut tick = tokio::time::interval(inner.config.heartbeat_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                r = &mut sandbox => break r.step("sandbox")?,
                _ = tick.tick() => {
                    match inner.deps.queue.heartbeat(&job.lease, inner.config.lease).await {
                        Ok(_) => {}
                        Err(Error::LeaseLost(_)) => return Ok(Done::Abandon),
                        Err(e) => tracing::warn!(run = %run.run, error = %e, "heartbeat failed"),
                    }
                    // Dropping the sandbox future destroys the sandbox (port contract).
                    match load_run(inner, run.run).await {
                        Ok(Some(r)) if r.status.is_terminal() => return Ok(Done::Ack),
                        _ => {}
                    }
                }
            }
        }
    };
    let completed = outcome.exit == SandboxExit::Completed;
    let transcript = store_transcript(inner, run, outcome.transcript).await;
    let cmd = RunCommand::FinishAgent {
        exit: outcome.exit,
        usage: outcome.usage,
        transcript,
        egress: outcome.egress,
        at: now(),
    };
    if !record(inner, job, run.run, "finish_agent", &cmd).await? || !completed {
        return Ok(Done::Ack);
    }
    let changes = inner.deps.changes.changes(ws).await.step("read_changes")?;
    if changes.is_empty() {
        let cmd = RunCommand::Fail { reason: NO_CHANGES.into(), at: now() };
        record(inner, job, run.run, "no_changes", &cmd).await?;
        return Ok(Done::Ack);
    }
    store_diff(inner, run, ws).await;
    let violations = Guardrails::default().with_rules(repo.forbidden_paths.iter().cloned()).check(&changes);
    let refused = !violations.is_empty();
    let cmd = RunCommand::RecordGuardrail { changed_paths: changes.len(), violations };
    record(inner, job, run.run, "guardrail", &cmd).await?;
    if refused {
        return Ok(Done::Ack);
    }
    let pushed = inner.deps.vcs.push(target, ws).await.step("push")?;
    let cmd = RunCommand::RecordPush { branch: pushed.branch, head: pushed.head_commit };
    if !record(inner, job, run.run, "record_push", &cmd).await? {
        // The run ended meanwhile (cancelled, timed out): no PR for it.
        return Ok(Done::Ack);
    }
    // The push changed nothing finish_push reads (branch, ids, report).
    finish_push(inner, job, view).await
}

async fn finish_push(inner: &Inner, job: &ClaimedJob, view: &RunView) -> std::result::Result<Done, StepError> {
    let (run, fb, target) = (&view.run, &view.feedback, &view.target);
    let now = inner.deps.clock.now();
    // Asked per repository: with a `VcsRouter` one engine serves branch-only
    // and PR-capable repositories at once.
    let capabilities = inner.deps.vcs.capabilities_for(target).await.step("capabilities")?;
    if !capabilities.pull_requests {
        record(inner, job, run.run, "branch_only", &RunCommand::CompleteBranchOnly { at: now }).await?;
        return Ok(Done::Ack);
    }
    let request = PrRequest {
        target: target.clone(),
        branch: run.branch.clone(),
        title: pr_title(fb),
        body: pr_body(run, fb),
        run: run.run,
        feedback: run.feedback,
    };
    let pr = inner.deps.vcs.open_or_update_pr(&request).await.step("open_pr")?;
    let cmd = RunCommand::RecordPr { number: pr.number, url: pr.url, created: pr.created, at: now };
    record(inner, job, run.run, "record_pr", &cmd).await?;
    Ok(Done::Ack)
}

/// Stores the run's diff (from git objects) as its diff blob, for the run
/// page; a failure is logged, the run goes on.
async fn store_diff(inner: &Inner, run: &AgentRun, ws: &userz_core::ports::vcs::Workspace) {
    let Some(blobs) = &inner.deps.blobs else { return };
    let text = match inner.deps.changes.diff(ws).await {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(run = %run.run, error = %e, "diff not read");
            return;
        }
    };
    let key = userz_core::ports::BlobKey::run_diff(run.org, run.run);
    if let Err(e) = blobs.put(&key, bytes::Bytes::from(text)).await {
        tracing::warn!(run = %run.run, error = %e, "diff not stored");
    }
}

/// Stores the transcript the sandbox returned as the run's transcript blob and
/// returns its key. A failed upload does not fail the run: the run then
/// records no key and the failure is logged (its events still hold usage and
/// timings).
async fn store_transcript(inner: &Inner, run: &AgentRun, transcript: Option<bytes::Bytes>) -> Option<String> {
    let (Some(bytes), Some(blobs)) = (transcript, &inner.deps.blobs) else {
        return None;
    };
    let key = userz_core::ports::BlobKey::run_transcript(run.org, run.run);
    match blobs.put(&key, bytes).await {
        Ok(()) => Some(key.to_string()),
        Err(e) => {
            tracing::warn!(run = %run.run, error = %e, "transcript not stored");
            None
        }
    }
}

/// The failure reason of a run whose agent committed nothing.
pub const NO_CHANGES: &str = "the agent made no changes";

fn pr_title(fb: &Feedback) -> String {
    match &fb.consolidated {
        Some(c) => format!("Userz: {}", c.theme),
        None => format!("Userz: fix for feedback {}", fb.feedback),
    }
}

fn pr_body(run: &AgentRun, fb: &Feedback) -> String {
    format!(
        "> [!WARNING]\n> This change was written by an AI agent from end-user feedback and has not been reviewed by a person. Review it as untrusted code.\n\n\
         Feedback: {}\nDuplicate reports consolidated: {}\nRun: {}\n",
        fb.feedback,
        fb.duplicates.len(),
        run.run
    )
}

#[allow(dead_code)]
const _QUEUES: [&str; 2] = [queues::SANITIZE, queues::RUNS];
