//! # userz-engine
//!
//! The engine of Userz: command handling, process managers, workers, timers,
//! projections and the review loop, driving the pure deciders of `userz-core`
//! over its ports.
//!
//! ```text
//!  commands ──► CommandBus ──► EventStore ──► global log ──┬─► projections (read models + checkpoints)
//!                  ▲                                       ├─► pipeline process manager ──► jobs / commands / timers
//!                  │                                       │
//!                  └──── workers (sanitize, execute run) ◄─┘ WorkQueue (leases, heartbeats)
//!                  └──── timer service (due timers from the pending-timers read model)
//! ```
//!
//! Every effect is idempotent by an id derived from its cause (command ids, job
//! ids, run ids, timer ids), so replaying the log after a crash re-issues the same
//! commands and jobs, which the stores deduplicate.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod blobs;
pub mod codec;
pub mod commands;
pub mod directory;
mod executor;
pub mod intake;
mod pipeline;
pub mod process;
pub mod projections;
mod prompt;
pub mod rate_limit;
pub mod review;
pub mod secrets;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use userz_core::domain::app::{AppDecider, AppState};
use userz_core::domain::feedback::FeedbackContent;
use userz_core::error::{Error, Result};
use userz_core::ids::{AppId, OrgId};
use userz_core::ports::{ChangeReader, Classifier, EventStore, ReadModelStore, Sandbox, VcsProvider, WorkQueue};
use userz_core::time::Clock;

pub use codec::AnyEvent;
pub use commands::{CommandBus, CommandError, CommandMeta, Outcome};
pub use executor::NO_CHANGES;
pub use projections::{
    AuditEntry, AuditLogProjection, FeedbackListProjection, FeedbackPage, FeedbackQuery, FeedbackSummary,
    PendingTimersProjection, Projection, ProjectionTx, RunDetail, RunDetailProjection,
};
pub use rate_limit::LocalRateLimiter;

/// Queue names.
pub mod queues {
    /// Classification jobs.
    pub const SANITIZE: &str = "sanitize";
    /// Agent-run jobs.
    pub const RUNS: &str = "runs";
}

/// Tunables. Defaults are production values; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Idle poll interval of workers and the timer service.
    pub poll_interval: Duration,
    /// Work-queue lease.
    pub lease: Duration,
    /// Heartbeat (and run-status check) interval while a run executes.
    pub heartbeat_interval: Duration,
    /// Attempts of a failing step before the run fails.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Retry delay cap.
    pub backoff_max: Duration,
    /// Wall-clock budget of a run.
    pub run_wall_clock: Duration,
    /// Resource caps of a run.
    pub limits: userz_core::ports::Limits,
    /// Egress allowlist handed to the sandbox.
    pub egress_allowlist: Vec<String>,
    /// The AI-provider key slot (`SecretKind::AiProviderKey`, e.g. `"openai"`)
    /// a run decrypts from its org's secrets, when the org has set it.
    pub model_secret: Option<String>,
    /// Worker tasks per queue.
    pub workers: usize,
    /// Worker name prefix (unique per process).
    pub worker_id: String,
    /// Events per projection commit.
    pub projection_batch: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let limits = userz_core::ports::Limits::default();
        Self {
            poll_interval: Duration::from_millis(200),
            lease: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(10),
            max_attempts: 5,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            run_wall_clock: limits.wall_clock,
            limits,
            egress_allowlist: Vec::new(),
            model_secret: None,
            workers: 2,
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            projection_batch: 256,
        }
    }
}

impl EngineConfig {
    /// The delay before retry number `attempt` (1-based): base · 2^(attempt-1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
        self.backoff_base.saturating_mul(factor).min(self.backoff_max)
    }
}

/// The ports the engine drives.
#[derive(Debug, Clone)]
pub struct EngineDeps {
    /// Event store.
    pub events: Arc<dyn EventStore>,
    /// Read models, checkpoints and snapshots.
    pub read_models: Arc<dyn ReadModelStore>,
    /// Work queue.
    pub queue: Arc<dyn WorkQueue>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Classifier.
    pub classifier: Arc<dyn Classifier>,
    /// Sandbox.
    pub sandbox: Arc<dyn Sandbox>,
    /// VCS provider.
    pub vcs: Arc<dyn VcsProvider>,
    /// Change reader.
    pub changes: Arc<dyn ChangeReader>,
    /// Opens org secrets for runs (G13); `None`: runs use the deployment's own
    /// model key configured in the sandbox.
    pub envelope: Option<userz_security::envelope::Envelope>,
    /// Where each run's transcript is stored (`BlobKey::run_transcript`);
    /// `None` keeps none.
    pub blobs: Option<blobs::Blobs>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) bus: CommandBus,
    pub(crate) deps: EngineDeps,
    pub(crate) config: EngineConfig,
}

/// A running engine. Dropping it stops every task at once (like a crash: nothing
/// is flushed, which is exactly what the stores' contracts are built for).
#[derive(Debug)]
pub struct Engine {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Starts projections, the pipeline process manager, workers and timers.
    ///
    /// Must be called inside a Tokio runtime.
    pub fn start(deps: EngineDeps, config: EngineConfig) -> Engine {
        Self::start_with_projections(deps, config, Vec::new())
    }

    /// As [`Engine::start`], also running `extra` projections under the same
    /// supervision.
    pub fn start_with_projections(deps: EngineDeps, config: EngineConfig, extra: Vec<Arc<dyn Projection>>) -> Engine {
        let bus = CommandBus::new(deps.events.clone(), deps.read_models.clone());
        let inner = Arc::new(Inner { bus, deps, config });
        let mut tasks = Vec::new();
        let projections: Vec<Arc<dyn Projection>> = vec![
            Arc::new(FeedbackListProjection),
            Arc::new(RunDetailProjection),
            Arc::new(AuditLogProjection),
            Arc::new(PendingTimersProjection),
            Arc::new(projections::PullRequestProjection),
            Arc::new(directory::DirectoryProjection),
        ];
        let projections: Vec<Arc<dyn Projection>> = projections.into_iter().chain(extra).collect();
        for p in projections {
            let inner = inner.clone();
            tasks.push(tokio::spawn(async move {
                supervise(p.name(), || {
                    projections::run_projection(
                        p.clone(),
                        inner.deps.events.clone(),
                        inner.deps.read_models.clone(),
                        inner.config.projection_batch,
                    )
                })
                .await
            }));
        }
        {
            let inner = inner.clone();
            tasks.push(tokio::spawn(async move { supervise("pipeline", || pipeline::run(inner.clone())).await }));
        }
        {
            let inner = inner.clone();
            tasks.push(tokio::spawn(async move { supervise("timers", || pipeline::run_timers(inner.clone())).await }));
        }
        for queue in [queues::SANITIZE, queues::RUNS] {
            for n in 0..inner.config.workers.max(1) {
                let inner = inner.clone();
                let name = format!("{}-{queue}-{n}", inner.config.worker_id);
                tasks.push(tokio::spawn(async move {
                    supervise("worker", || executor::worker_loop(inner.clone(), queue, name.clone())).await
                }));
            }
        }
        Engine { inner, tasks }
    }

    /// Runs another log consumer (an outbound webhook dispatcher, a
    /// notifier…) under the engine's supervisor: `make` is called again, with
    /// capped exponential backoff, whenever the loop it returns fails, and the
    /// task stops with the engine.
    pub fn supervise<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(async move { supervise(name, make).await }));
    }

    /// The command bus.
    pub fn bus(&self) -> &CommandBus {
        &self.inner.bus
    }

    /// The read-model store (for queries).
    pub fn read_models(&self) -> &Arc<dyn ReadModelStore> {
        &self.inner.deps.read_models
    }

    /// The ports.
    pub fn deps(&self) -> &EngineDeps {
        &self.inner.deps
    }

    /// Accepts a validated report for `app` of `org` through the application
    /// layer's rules ([`intake::submit`]); `idempotency_key` makes a retried
    /// submission return the same report.
    ///
    /// Refuses (as `NotFound`) an App that does not exist or belongs to another
    /// org, and an archived App.
    pub async fn submit_feedback(
        &self,
        org: OrgId,
        app: AppId,
        content: FeedbackContent,
        idempotency_key: Option<&str>,
    ) -> std::result::Result<intake::Submitted, intake::SubmitError> {
        let (state, _) = self
            .inner
            .bus
            .load::<AppDecider>(&CommandBus::stream::<AppDecider>(app))
            .await
            .map_err(CommandError::from)?;
        match state {
            AppState::Active(a) if a.org == org && !a.archived => {}
            _ => return Err(CommandError::from(Error::NotFound(format!("app {app}"))).into()),
        }
        let now = self.inner.deps.clock.now();
        intake::submit(&self.inner.bus, intake::Submission { org, app, content, idempotency_key, received_at: now })
            .await
    }

    /// Stops every task now.
    pub fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Restarts a failing loop with capped exponential backoff; a loop that returns
/// `Ok` (its input ended) is not restarted.
async fn supervise<F, Fut>(name: &str, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut delay = Duration::from_millis(10);
    loop {
        match make().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(task = name, error = %e, "engine task failed; restarting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
