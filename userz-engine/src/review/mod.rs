//! The review loop's inbound side: verified VCS webhooks become PR commands.
//!
//! [`ReviewWebhooks::handle`] takes one delivery for a repository the caller
//! resolved from the endpoint (each endpoint has its own secret, so the
//! endpoint says which [`RepoId`] it serves):
//!
//! 1. authenticates it with the provider's [`WebhookVerifier`] (signature or
//!    token; no side effects);
//! 2. maps the payload with the [`ReviewPayloads`] mapping given for the
//!    verifier's provider (pure; events that need nothing are
//!    [`ReviewWebhookOutcome::Ignored`]; a provider without one is refused as
//!    `invalid`, as it carries no PR events here);
//! 3. checks the payload's repository is the endpoint's repository;
//! 4. finds the PR by `(repo, number)` in the [`PullRequestProjection`]
//!    read model (unknown → `not_found`);
//! 5. executes the PR command with a command id derived from the delivery id,
//!    so a redelivery (or two racing deliveries) appends nothing new;
//! 6. records the delivery id in the [`ReplayGuard`] only after the command
//!    was stored, so a delivery that failed half-way can be redelivered.
//!
//! A diff comment's [`CommentId`] is derived from the PR and the provider's
//! comment id, so the same comment delivered under a new delivery id is
//! recognised too.
//!
//! The mappings live with their forges (`userz_vcs_github::GitHubReviewPayloads`,
//! `userz_vcs_gitlab::GitLabReviewPayloads`); the composition root hands them
//! over with [`ReviewWebhooks::with_payloads`].
//!
//! [`PullRequestProjection`]: crate::projections::PullRequestProjection

use std::sync::Arc;

use http::HeaderMap;

use crate::projections::pr_by_number;
use crate::{CommandBus, CommandError, CommandMeta};
use userz_core::decider::Rejection;
use userz_core::domain::pr::{DiffComment, PrCommand, PrDecider};
use userz_core::domain::repo::{Provider, RepoDecider, RepoState};
use userz_core::error::Error;
use userz_core::ids::{CommentId, CorrelationId, PrId, RepoId};
use userz_core::ports::{ReadModelStore, ReviewPayloads};
use userz_core::time::Timestamp;
use userz_security::webhooks::{ReplayGuard, WebhookError, WebhookVerifier};

/// The port's data types, where this module used to define them.
pub use userz_core::ports::{InboundChange, InboundPrNotice, RepositoryRef};

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewWebhookOutcome {
    /// A PR command was executed (or recognised as already executed).
    Applied {
        /// The PR.
        pr: PrId,
        /// `close` or `add_comment`.
        command: &'static str,
        /// The delivery (or the comment) was already recorded; nothing new was stored.
        duplicate: bool,
    },
    /// The event needs nothing (another action, a general note, a ping, …).
    Ignored,
}

/// Why a delivery was refused, with a stable [`code`](ReviewWebhookError::code).
#[derive(Debug, thiserror::Error)]
pub enum ReviewWebhookError {
    /// Authentication failed (answer 401 without detail).
    #[error("webhook refused: {0}")]
    Unauthenticated(#[from] WebhookError),
    /// The payload is malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No such repository or PR (answer 404; the provider may retry later).
    #[error("not found: {0}")]
    NotFound(String),
    /// The PR refused the change (e.g. a comment on a closed PR).
    #[error("refused: {0}")]
    Rejected(Rejection),
    /// A port failed; the delivery was not recorded and may be redelivered.
    #[error(transparent)]
    Failed(Error),
}

impl ReviewWebhookError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReviewWebhookError::Unauthenticated(e) => e.code(),
            ReviewWebhookError::Invalid(_) => "invalid",
            ReviewWebhookError::NotFound(_) => "not_found",
            ReviewWebhookError::Rejected(r) => r.rule(),
            ReviewWebhookError::Failed(_) => "unavailable",
        }
    }
}

impl From<Error> for ReviewWebhookError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => ReviewWebhookError::Invalid(m),
            Error::NotFound(m) => ReviewWebhookError::NotFound(m),
            other => ReviewWebhookError::Failed(other),
        }
    }
}

/// Turns verified forge deliveries into PR commands, with the payload
/// mappings it was given.
#[derive(Debug, Clone)]
pub struct ReviewWebhooks {
    bus: CommandBus,
    read_models: Arc<dyn ReadModelStore>,
    guard: ReplayGuard,
    payloads: Vec<Arc<dyn ReviewPayloads>>,
}

impl ReviewWebhooks {
    /// Over the engine's command bus and read models (`Engine::bus`,
    /// `Engine::read_models`), with `guard` remembering delivery ids. It maps
    /// no provider until given mappings with [`with_payloads`](Self::with_payloads).
    pub fn new(bus: CommandBus, read_models: Arc<dyn ReadModelStore>, guard: ReplayGuard) -> Self {
        Self { bus, read_models, guard, payloads: Vec::new() }
    }

    /// Maps deliveries of `payloads.provider()` with `payloads` (replacing a
    /// mapping given before for the same provider).
    pub fn with_payloads(mut self, payloads: Arc<dyn ReviewPayloads>) -> Self {
        self.payloads.retain(|p| p.provider() != payloads.provider());
        self.payloads.push(payloads);
        self
    }

    /// The mapping for `provider`, if one was given.
    pub fn payloads(&self, provider: &str) -> Option<&Arc<dyn ReviewPayloads>> {
        self.payloads.iter().find(|p| p.provider() == provider)
    }

    /// Handles one delivery for `repo` (see the module docs for the steps).
    ///
    /// `verifier.provider()` selects the mapping; one that names an
    /// [`event_header`](ReviewPayloads::event_header) needs that header.
    pub async fn handle(
        &self,
        verifier: &dyn WebhookVerifier,
        repo: RepoId,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<ReviewWebhookOutcome, ReviewWebhookError> {
        let delivery = verifier.authenticate(headers, body, now)?;
        let provider = verifier.provider();
        let Some(payloads) = self.payloads(provider) else {
            return Err(ReviewWebhookError::Invalid(format!("{provider} webhooks carry no PR events")));
        };
        let event = match payloads.event_header() {
            Some(name) => headers
                .get(name)
                .ok_or_else(|| ReviewWebhookError::Invalid(format!("{provider} webhook: {name}: missing header")))?
                .to_str()
                .map_err(|_| ReviewWebhookError::Invalid(format!("{provider} webhook: {name}: not text")))?,
            None => "",
        };
        let notice = payloads.parse(event, body)?;
        let Some(notice) = notice else {
            self.remember(&delivery, verifier).await?;
            return Ok(ReviewWebhookOutcome::Ignored);
        };
        let pr = self.find_pr(repo, &notice).await?;
        let (command, name) = match &notice.change {
            InboundChange::Closed { merged } => (PrCommand::Close { merged: *merged }, "close"),
            InboundChange::DiffComment { provider_comment_id, path, line, body, severity } => (
                PrCommand::AddComment {
                    comment: DiffComment {
                        comment: CommentId::derived(
                            pr.as_uuid(),
                            &format!("{}:comment:{provider_comment_id}", verifier.provider()),
                        ),
                        path: path.clone(),
                        line: *line,
                        body: body.clone(),
                        severity: *severity,
                        resolved: false,
                    },
                },
                "add_comment",
            ),
        };
        let cause = uuid::Uuid::new_v5(
            &repo.as_uuid(),
            format!("webhook:{}:{}", delivery.provider, delivery.delivery_id).as_bytes(),
        );
        let meta = CommandMeta::derived(cause, name, CorrelationId::derived(cause, "webhook"));
        let mut duplicate =
            match self.bus.execute::<PrDecider>(&CommandBus::stream::<PrDecider>(pr), meta, &command).await {
                // A repeated command id, or a change the PR already has (closing a closed PR).
                Ok(outcome) => outcome.duplicate || outcome.events.is_empty(),
                // The same provider comment under another delivery id.
                Err(CommandError::Rejected(Rejection::AlreadyExists { entity: "comment" })) => true,
                Err(CommandError::Rejected(r)) => return Err(ReviewWebhookError::Rejected(r)),
                Err(CommandError::Failed(e)) => return Err(ReviewWebhookError::Failed(e)),
            };
        if !self.remember(&delivery, verifier).await? {
            duplicate = true;
        }
        Ok(ReviewWebhookOutcome::Applied { pr, command: name, duplicate })
    }

    /// Records the delivery id; `Ok(false)` when it was seen before.
    async fn remember(
        &self,
        delivery: &userz_security::webhooks::Delivery,
        verifier: &dyn WebhookVerifier,
    ) -> Result<bool, ReviewWebhookError> {
        match self.guard.first_seen(delivery, verifier.replay_ttl()).await {
            Ok(()) => Ok(true),
            Err(WebhookError::Replayed) => Ok(false),
            Err(e) => Err(ReviewWebhookError::Failed(Error::Unavailable(e.to_string()))),
        }
    }

    async fn find_pr(&self, repo: RepoId, notice: &InboundPrNotice) -> Result<PrId, ReviewWebhookError> {
        let (state, _) = self.bus.load::<RepoDecider>(&CommandBus::stream::<RepoDecider>(repo)).await?;
        let RepoState::Active(r) = state else {
            return Err(ReviewWebhookError::NotFound(format!("repo {repo}")));
        };
        let same = match &r.provider {
            Provider::Github { full_name, .. } => full_name.eq_ignore_ascii_case(&notice.repository.full_name),
            Provider::Gitlab { project, .. } => {
                project == &notice.repository.full_name
                    || notice.repository.id.is_some_and(|id| project == &id.to_string())
            }
            Provider::Git { .. } => false,
        };
        let what = format!("pull request {}#{}", notice.repository.full_name, notice.number);
        if !same {
            return Err(ReviewWebhookError::NotFound(format!("{what} (not the repository of this endpoint)")));
        }
        pr_by_number(self.read_models.as_ref(), repo, notice.number).await?.ok_or(ReviewWebhookError::NotFound(what))
    }
}
