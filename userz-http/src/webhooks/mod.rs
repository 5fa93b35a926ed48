//! Inbound webhooks (guarantee G16): Stripe, GitHub, GitLab, Slack, Discord.
//!
//! | route | verifier | becomes |
//! |---|---|---|
//! | `POST /v1/webhooks/stripe` | `Stripe-Signature` | a `BillingEventRecorded` on `billing-<org>` |
//! | `POST /v1/webhooks/github` | `X-Hub-Signature-256`, `X-GitHub-Delivery`, `X-GitHub-Event` | PR close / diff comment through [`ReviewWebhooks`] |
//! | `POST /v1/webhooks/gitlab` | `X-Gitlab-Token` (and/or Standard Webhooks signature), `Idempotency-Key` or `X-Gitlab-Event-UUID` | the same |
//! | `POST /v1/webhooks/slack` | `X-Slack-Signature`, `X-Slack-Request-Timestamp` | `FeedbackCommand::Queue` / `Archive` |
//! | `POST /v1/webhooks/discord` | `X-Signature-Ed25519`, `X-Signature-Timestamp` | the same |
//!
//! Every route:
//!
//! 1. reads the body under [`WEBHOOK_BODY_LIMIT`] (1 MiB; `413 payload_too_large`);
//! 2. answers `404 not_found` with details `{"provider","rule":"not_configured","config":<env var>}`
//!    when the deployment has no secret for the provider;
//! 3. authenticates with the provider's verifier from
//!    `userz_security::webhooks` (signature and timestamp tolerance);
//!    a failure is `401 invalid_signature` with details
//!    `{"provider","rule":<bad_signature|timestamp_out_of_tolerance|missing_header|malformed_header>,"header"?}`;
//! 4. refuses a delivery id already recorded in the [`ReplayGuard`] with
//!    `401 invalid_signature` and details `{"provider","rule":"replayed"}`
//!    (the same code as a forged request: a replay is an authentication
//!    failure, and no new error code is needed);
//! 5. applies the effect with a command id derived from the delivery id, so a
//!    racing duplicate appends nothing new;
//! 6. records the delivery id only once the effect is stored, so a delivery
//!    that failed half-way (`503 unavailable`) can be redelivered.
//!
//! Slack's `url_verification` is answered `{"challenge": …}` and Discord's PING
//! `{"type":1}`, both after verification, as the providers specify.
//!
//! # Chat-ops
//!
//! A Slack button (`block_actions`, `actions[0].value`), a Slack slash command
//! (`text`), a Discord button (`data.custom_id`) or a Discord application
//! command (options `action`, `feedback`) carries `queue:<fb id>` or
//! `archive:<fb id>`. It becomes `FeedbackCommand::Queue` / `Archive` with
//! `Actor::ChatOps { integration: "slack"|"discord", user: <chat user id> }`.
//! With [`WebhookSecrets::chatops_org`] set, only that organization's reports
//! can be acted on (others answer `not_found`). A refused transition is
//! `409 invalid_transition` with the decider's rule in details.
//!
//! # Stripe
//!
//! The organization comes from `data.object.metadata.userz_org_id` (set it on
//! the Stripe customer/subscription when creating them). An event without it,
//! or naming an unknown organization, is acknowledged (`200`) as
//! `{"outcome":"ignored","reason":…}`, since Stripe would otherwise retry it
//! for days.
//!
//! # GitHub and GitLab
//!
//! One secret per provider for the deployment, and the forge's payload
//! mapping ([`ReviewPayloads`], e.g. `userz_vcs_github::GitHubReviewPayloads`)
//! given with [`WebhookState::with_review_payloads`]; a provider without
//! either answers `404 not_found` with `"rule":"not_configured"` (`"config"` is
//! the secret's env var, or `"review_payloads"` for a missing mapping). The
//! repository is resolved from the payload (`repository.full_name` /
//! `project.path_with_namespace` or its numeric id) through a
//! [`RepoDirectory`] the embedder provides (the reference server can use
//! [`StaticRepoDirectory`]). An unknown repository or PR is `404 not_found`.

mod chatops;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};
use userz_core::decider::Rejection;
use userz_core::domain::billing::{BillingCommand, BillingDecider, BillingRecord};
use userz_core::domain::common::Actor;
use userz_core::domain::feedback::{FeedbackCommand, FeedbackDecider, FeedbackState};
use userz_core::domain::org::{OrgDecider, OrgState};
use userz_core::ids::{CorrelationId, FeedbackId, OrgId, RepoId};
use userz_core::ports::{Cache, InboundPrNotice, ReadModelStore, RepositoryRef, ReviewPayloads};
use userz_core::{Clock, Timestamp};
use userz_engine::review::{ReviewWebhookError, ReviewWebhookOutcome, ReviewWebhooks};
use userz_engine::{CommandBus, CommandError, CommandMeta};
use userz_security::body_limit::read_to_bytes;
use userz_security::secret::SecretBytes;
use userz_security::webhooks::{
    Delivery, DiscordVerifier, GitHubVerifier, GitLabVerifier, ReplayGuard, SlackVerifier, StandardWebhookSecret,
    StripeVerifier, WebhookError, WebhookVerifier,
};

pub use chatops::{parse_action_value, parse_discord, parse_slack, ChatAction, ChatRequest};

use crate::error::{ApiError, ErrorCode};

/// Body cap for every webhook route: 1 MiB.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// Env var: Stripe endpoint signing secret (`whsec_…`, used as raw bytes, as Stripe does).
pub const ENV_STRIPE_SECRET: &str = "USERZ_STRIPE_WEBHOOK_SECRET";
/// Env var: GitHub webhook secret.
pub const ENV_GITHUB_SECRET: &str = "USERZ_GITHUB_WEBHOOK_SECRET";
/// Env var: GitLab webhook secret token (`X-Gitlab-Token`).
pub const ENV_GITLAB_TOKEN: &str = "USERZ_GITLAB_WEBHOOK_TOKEN";
/// Env var: GitLab signing token (`whsec_<base64>`, Standard Webhooks), optional.
pub const ENV_GITLAB_SIGNING: &str = "USERZ_GITLAB_WEBHOOK_SIGNING_SECRET";
/// Env var: Slack app signing secret.
pub const ENV_SLACK_SECRET: &str = "USERZ_SLACK_SIGNING_SECRET";
/// Env var: Discord application public key (64 hex chars).
pub const ENV_DISCORD_KEY: &str = "USERZ_DISCORD_PUBLIC_KEY";
/// Env var: the organization chat-ops may act on (`org_…`), optional.
pub const ENV_CHATOPS_ORG: &str = "USERZ_CHATOPS_ORG";

/// The replay-guard scope of these routes.
pub const REPLAY_SCOPE: &str = "userz-http:webhooks";

/// The deployment's webhook secrets: one optional entry per provider. A
/// provider without one answers `404 not_found` naming the missing setting.
#[derive(Default)]
pub struct WebhookSecrets {
    /// Stripe endpoint secret.
    pub stripe: Option<SecretBytes>,
    /// GitHub webhook secret.
    pub github: Option<SecretBytes>,
    /// GitLab secret token.
    pub gitlab_token: Option<SecretBytes>,
    /// GitLab Standard Webhooks signing secret (when set, signatures are required).
    pub gitlab_signing: Option<StandardWebhookSecret>,
    /// Slack signing secret.
    pub slack: Option<SecretBytes>,
    /// Discord application public key, 64 hex chars.
    pub discord_public_key: Option<String>,
    /// Restricts chat-ops to one organization's reports.
    pub chatops_org: Option<OrgId>,
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("stripe", &self.stripe.is_some())
            .field("github", &self.github.is_some())
            .field("gitlab_token", &self.gitlab_token.is_some())
            .field("gitlab_signing", &self.gitlab_signing.is_some())
            .field("slack", &self.slack.is_some())
            .field("discord_public_key", &self.discord_public_key)
            .field("chatops_org", &self.chatops_org)
            .finish()
    }
}

impl WebhookSecrets {
    /// Reads the `ENV_*` variables of this module; unset or empty ones stay `None`.
    ///
    /// # Errors
    ///
    /// `Error::Invalid` naming the variable when one is set but unusable.
    pub fn from_env() -> Result<Self, userz_core::Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env) over any lookup (for tests and config files).
    ///
    /// # Errors
    ///
    /// `Error::Invalid` naming the variable when one is set but unusable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, userz_core::Error> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let secret = |k: &str| get(k).map(|v| SecretBytes::new(v.into_bytes()));
        let gitlab_signing = get(ENV_GITLAB_SIGNING)
            .map(|v| StandardWebhookSecret::parse(v.trim()))
            .transpose()
            .map_err(|e| userz_core::Error::Invalid(format!("{ENV_GITLAB_SIGNING}: {e}")))?;
        let discord_public_key = get(ENV_DISCORD_KEY);
        if let Some(k) = &discord_public_key {
            DiscordVerifier::from_hex(k).map_err(|e| userz_core::Error::Invalid(format!("{ENV_DISCORD_KEY}: {e}")))?;
        }
        let chatops_org = get(ENV_CHATOPS_ORG)
            .map(|v| v.trim().parse::<OrgId>())
            .transpose()
            .map_err(|e| userz_core::Error::Invalid(format!("{ENV_CHATOPS_ORG}: {e}")))?;
        Ok(Self {
            stripe: secret(ENV_STRIPE_SECRET),
            github: secret(ENV_GITHUB_SECRET),
            gitlab_token: secret(ENV_GITLAB_TOKEN),
            gitlab_signing,
            slack: secret(ENV_SLACK_SECRET),
            discord_public_key,
            chatops_org,
        })
    }
}

/// Finds the Userz repository a VCS webhook is about.
#[async_trait]
pub trait RepoDirectory: Send + Sync + fmt::Debug {
    /// The repository linked for `provider` (`github` or `gitlab`) and the
    /// payload's `repository`, if any.
    async fn find(&self, provider: &'static str, repository: &RepositoryRef) -> userz_core::Result<Option<RepoId>>;
}

/// A fixed map from provider repository names (case-insensitive) or numeric
/// ids to Userz repositories.
#[derive(Debug, Clone, Default)]
pub struct StaticRepoDirectory {
    by_name: HashMap<(String, String), RepoId>,
    by_id: HashMap<(String, u64), RepoId>,
}

impl StaticRepoDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Links `full_name` (`owner/name`, GitLab `path_with_namespace`) on
    /// `provider` (`github` or `gitlab`) to `repo`.
    pub fn with_name(mut self, provider: &str, full_name: &str, repo: RepoId) -> Self {
        self.by_name.insert((provider.to_owned(), full_name.to_ascii_lowercase()), repo);
        self
    }

    /// Links the provider's numeric repository/project id to `repo`.
    pub fn with_id(mut self, provider: &str, id: u64, repo: RepoId) -> Self {
        self.by_id.insert((provider.to_owned(), id), repo);
        self
    }
}

#[async_trait]
impl RepoDirectory for StaticRepoDirectory {
    async fn find(&self, provider: &'static str, r: &RepositoryRef) -> userz_core::Result<Option<RepoId>> {
        if let Some(repo) = self.by_name.get(&(provider.to_owned(), r.full_name.to_ascii_lowercase())) {
            return Ok(Some(*repo));
        }
        Ok(r.id.and_then(|id| self.by_id.get(&(provider.to_owned(), id)).copied()))
    }
}

/// What the webhook routes need: the verifiers built from [`WebhookSecrets`],
/// the engine's command bus and read models, a [`Cache`] for the replay guard,
/// a [`RepoDirectory`] and a clock. Cheap to clone.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    stripe: Option<StripeVerifier>,
    github: Option<GitHubVerifier>,
    gitlab: Option<GitLabVerifier>,
    slack: Option<SlackVerifier>,
    discord: Option<DiscordVerifier>,
    chatops_org: Option<OrgId>,
    guard: ReplayGuard,
    review: ReviewWebhooks,
    bus: CommandBus,
    repos: Arc<dyn RepoDirectory>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("WebhookState")
            .field("stripe", &i.stripe.is_some())
            .field("github", &i.github.is_some())
            .field("gitlab", &i.gitlab.is_some())
            .field("slack", &i.slack.is_some())
            .field("discord", &i.discord.is_some())
            .field("chatops_org", &i.chatops_org)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    /// Builds the verifiers from `secrets`.
    ///
    /// `bus` and `read_models` are the engine's (`Engine::bus()`,
    /// `Engine::read_models()`); `cache` holds replay-guard entries (use the
    /// shared cache in a multi-node deployment).
    ///
    /// # Errors
    ///
    /// [`WebhookError::Config`] when the Discord key or GitLab secrets are unusable.
    pub fn new(
        secrets: WebhookSecrets,
        bus: CommandBus,
        read_models: Arc<dyn ReadModelStore>,
        cache: Arc<dyn Cache>,
        repos: Arc<dyn RepoDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, WebhookError> {
        let gitlab = if secrets.gitlab_token.is_some() || secrets.gitlab_signing.is_some() {
            Some(GitLabVerifier::new(secrets.gitlab_token, secrets.gitlab_signing)?)
        } else {
            None
        };
        let discord = secrets.discord_public_key.as_deref().map(DiscordVerifier::from_hex).transpose()?;
        let guard = ReplayGuard::new(cache).with_scope(REPLAY_SCOPE);
        Ok(Self {
            inner: Arc::new(Inner {
                stripe: secrets.stripe.map(StripeVerifier::new),
                github: secrets.github.map(GitHubVerifier::new),
                gitlab,
                slack: secrets.slack.map(SlackVerifier::new),
                discord,
                chatops_org: secrets.chatops_org,
                review: ReviewWebhooks::new(bus.clone(), read_models, guard.clone()),
                guard,
                bus,
                repos,
                clock,
            }),
        })
    }

    /// Maps GitHub or GitLab review deliveries (`payloads.provider()`) with
    /// `payloads`; without one, that provider's route answers
    /// `404 not_configured` even when its secret is set.
    pub fn with_review_payloads(self, payloads: Arc<dyn ReviewPayloads>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.review = inner.review.with_payloads(payloads);
        Self { inner: Arc::new(inner) }
    }
}

/// The webhook routes (absolute paths under `/v1/webhooks/`), ready to merge
/// into the server's router. They carry their own body cap and need no
/// authentication layer (the signature is the authentication).
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/v1/webhooks/stripe", post(stripe))
        .route("/v1/webhooks/github", post(github))
        .route("/v1/webhooks/gitlab", post(gitlab))
        .route("/v1/webhooks/slack", post(slack))
        .route("/v1/webhooks/discord", post(discord))
        .with_state(state)
}

// ------------------------------------------------------------------ helpers

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    read_to_bytes(body, WEBHOOK_BODY_LIMIT).await.map_err(|e| {
        if e.is_length_limit() {
            ApiError::new(ErrorCode::PayloadTooLarge, format!("webhook body exceeds {WEBHOOK_BODY_LIMIT} bytes"))
                .with_details(json!({ "limit": WEBHOOK_BODY_LIMIT }))
        } else {
            ApiError::invalid_field("body", "unreadable", "body: could not be read")
        }
    })
}

/// A forge whose secret is set but whose review payload mapping was not given:
/// answered like a missing secret, naming what is missing.
fn no_review_payloads(provider: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("{provider} webhooks are not configured on this server (no {provider} review payload mapping)"),
    )
    .with_details(json!({ "provider": provider, "rule": "not_configured", "config": "review_payloads" }))
}

fn not_configured(provider: &str, config: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("{provider} webhooks are not configured on this server (set {config})"))
        .with_details(json!({ "provider": provider, "rule": "not_configured", "config": config }))
}

/// Maps a verification failure to the API error (see the module docs).
pub fn signature_error(provider: &str, e: &WebhookError) -> ApiError {
    match e {
        WebhookError::GuardUnavailable(_) => {
            tracing::warn!(provider, error = %e, "replay guard unavailable");
            ApiError::new(ErrorCode::Unavailable, "temporarily unavailable").with_retry_after(1)
        }
        WebhookError::Config(_) => ApiError::internal(e),
        WebhookError::MissingHeader(h) | WebhookError::MalformedHeader(h) => {
            ApiError::new(ErrorCode::InvalidSignature, format!("{provider} webhook: {e}"))
                .with_details(json!({ "provider": provider, "rule": e.code(), "header": h }))
        }
        WebhookError::Replayed => ApiError::new(
            ErrorCode::InvalidSignature,
            format!("{provider} webhook: this delivery was already accepted"),
        )
        .with_details(json!({ "provider": provider, "rule": e.code() })),
        _ => ApiError::new(ErrorCode::InvalidSignature, format!("{provider} webhook: {e}"))
            .with_details(json!({ "provider": provider, "rule": e.code() })),
    }
}

fn rejection_error(r: &Rejection) -> ApiError {
    match r {
        Rejection::NotFound { entity } => ApiError::not_found(entity),
        other => {
            ApiError::new(ErrorCode::InvalidTransition, other.to_string()).with_details(json!({ "rule": r.rule() }))
        }
    }
}

fn command_error(e: CommandError) -> ApiError {
    match e {
        CommandError::Rejected(r) => rejection_error(&r),
        CommandError::Failed(e) => e.into(),
    }
}

impl Inner {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Steps 3 and 4: authenticate, then refuse a known delivery id.
    async fn admit(&self, v: &dyn WebhookVerifier, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, ApiError> {
        let delivery = v.authenticate(headers, body, self.now()).map_err(|e| signature_error(v.provider(), &e))?;
        if self.guard.was_seen(&delivery).await.map_err(|e| signature_error(v.provider(), &e))? {
            return Err(signature_error(v.provider(), &WebhookError::Replayed));
        }
        Ok(delivery)
    }

    /// Step 6: record the delivery id (a concurrent twin that got here first
    /// makes this one a replay; its effect was idempotent).
    async fn remember(&self, v: &dyn WebhookVerifier, delivery: &Delivery) -> Result<(), ApiError> {
        self.guard.first_seen(delivery, v.replay_ttl()).await.map_err(|e| signature_error(v.provider(), &e))
    }

    /// Executes a chat-ops action.
    async fn chat_action(
        &self,
        delivery: &Delivery,
        action: ChatAction,
        feedback: FeedbackId,
        user: Option<String>,
    ) -> Result<&'static str, ApiError> {
        let stream = CommandBus::stream::<FeedbackDecider>(feedback);
        let (state, _) = self.bus.load::<FeedbackDecider>(&stream).await?;
        let FeedbackState::Exists(fb) = state else {
            return Err(ApiError::not_found("feedback"));
        };
        if self.chatops_org.is_some_and(|org| org != fb.org) {
            return Err(ApiError::not_found("feedback"));
        }
        let by = Actor::ChatOps { integration: delivery.provider.to_owned(), user };
        let command = match action {
            ChatAction::Queue => FeedbackCommand::Queue { by },
            ChatAction::Archive => FeedbackCommand::Archive { by },
        };
        let cause = uuid::Uuid::new_v5(
            &feedback.as_uuid(),
            format!("chatops:{}:{}", delivery.provider, delivery.delivery_id).as_bytes(),
        );
        let meta = CommandMeta::derived(cause, action.as_str(), CorrelationId::derived(cause, "chatops"));
        self.bus.execute::<FeedbackDecider>(&stream, meta, &command).await.map_err(command_error)?;
        Ok(match action {
            ChatAction::Queue => "Queued",
            ChatAction::Archive => "Archived",
        })
    }

    async fn review(
        &self,
        v: &dyn WebhookVerifier,
        headers: &HeaderMap,
        body: &[u8],
        notice: Option<InboundPrNotice>,
        delivery: &Delivery,
    ) -> Result<Json<Value>, ApiError> {
        let provider = v.provider();
        let Some(notice) = notice else {
            self.remember(v, delivery).await?;
            return Ok(Json(json!({ "received": true, "provider": provider, "outcome": "ignored" })));
        };
        let repo = self.repos.find(provider, &notice.repository).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no repository is linked for {provider} repository {}", notice.repository.full_name),
            )
            .with_details(json!({ "provider": provider, "rule": "unknown_repository" }))
        })?;
        let outcome = self.review.handle(v, repo, headers, body, self.now()).await.map_err(|e| match e {
            ReviewWebhookError::Unauthenticated(w) => signature_error(provider, &w),
            ReviewWebhookError::Invalid(m) => ApiError::new(ErrorCode::InvalidBody, m)
                .with_details(json!({ "provider": provider, "rule": "payload" })),
            ReviewWebhookError::NotFound(m) => ApiError::new(ErrorCode::NotFound, format!("not found: {m}")),
            ReviewWebhookError::Rejected(r) => rejection_error(&r),
            ReviewWebhookError::Failed(e) => e.into(),
        })?;
        Ok(Json(match outcome {
            ReviewWebhookOutcome::Applied { pr, command, duplicate } => json!({
                "received": true, "provider": provider, "outcome": "applied",
                "pr": pr.to_string(), "command": command, "duplicate": duplicate,
            }),
            ReviewWebhookOutcome::Ignored => json!({ "received": true, "provider": provider, "outcome": "ignored" }),
        }))
    }
}

fn invalid_payload(provider: &str, e: userz_core::Error) -> ApiError {
    let msg = match e {
        userz_core::Error::Invalid(m) => m,
        other => other.to_string(),
    };
    ApiError::new(ErrorCode::InvalidBody, msg).with_details(json!({ "provider": provider, "rule": "payload" }))
}

// ------------------------------------------------------------------ routes

async fn stripe(State(s): State<WebhookState>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    let s = &s.inner;
    let body = read_body(body).await?;
    let v = s.stripe.as_ref().ok_or_else(|| not_configured("stripe", ENV_STRIPE_SECRET))?;
    let delivery = s.admit(v, &headers, &body).await?;
    let event: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::invalid_field("body", "json", "body: not JSON"))?;
    let text = |field: &'static str, value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::invalid_field(field, "missing", format!("{field}: missing or not a string")))
    };
    let event_id = text("id", event.get("id"))?;
    let event_type = text("type", event.get("type"))?;
    let object = event.pointer("/data/object");
    let ignored =
        |reason: &str| Json(json!({ "received": true, "provider": "stripe", "outcome": "ignored", "reason": reason }));
    let Some(org_text) = object.and_then(|o| o.pointer("/metadata/userz_org_id")).and_then(Value::as_str) else {
        s.remember(v, &delivery).await?;
        return Ok(ignored("no data.object.metadata.userz_org_id"));
    };
    let org: OrgId = org_text.parse().map_err(|_| {
        ApiError::invalid_field(
            "data.object.metadata.userz_org_id",
            "org_id",
            "data.object.metadata.userz_org_id: not an organization id",
        )
    })?;
    let (org_state, _) = s.bus.load::<OrgDecider>(&CommandBus::stream::<OrgDecider>(org)).await?;
    if matches!(org_state, OrgState::None) {
        s.remember(v, &delivery).await?;
        return Ok(ignored("unknown organization"));
    }
    let occurred = event.get("created").and_then(Value::as_i64).unwrap_or(0);
    let record = BillingRecord {
        provider: "stripe".into(),
        event_id: event_id.clone(),
        event_type: event_type.clone(),
        object_id: object.and_then(|o| o.get("id")).and_then(Value::as_str).map(str::to_owned),
        livemode: event.get("livemode").and_then(Value::as_bool).unwrap_or(false),
        occurred_at: Timestamp::from_millis(occurred.saturating_mul(1000)),
        recorded_at: s.now(),
    };
    let cause = uuid::Uuid::new_v5(&org.as_uuid(), format!("stripe:{event_id}").as_bytes());
    let meta = CommandMeta::derived(cause, "billing_record", CorrelationId::derived(cause, "stripe"));
    let out = s
        .bus
        .execute::<BillingDecider>(
            &CommandBus::stream::<BillingDecider>(org),
            meta,
            &BillingCommand::Record { org, record },
        )
        .await
        .map_err(command_error)?;
    s.remember(v, &delivery).await?;
    Ok(Json(json!({
        "received": true, "provider": "stripe", "outcome": "recorded",
        "eventType": event_type, "duplicate": out.duplicate || out.events.is_empty(),
    })))
}

async fn github(State(s): State<WebhookState>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    let s = &s.inner;
    let body = read_body(body).await?;
    let v = s.github.as_ref().ok_or_else(|| not_configured("github", ENV_GITHUB_SECRET))?;
    s.forge_review(v, &headers, &body).await
}

async fn gitlab(State(s): State<WebhookState>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    let s = &s.inner;
    let body = read_body(body).await?;
    let v = s.gitlab.as_ref().ok_or_else(|| not_configured("gitlab", ENV_GITLAB_TOKEN))?;
    s.forge_review(v, &headers, &body).await
}

impl Inner {
    /// A forge review delivery whose secret is configured: needs the forge's
    /// payload mapping, then authenticates, maps and applies it.
    async fn forge_review(
        &self,
        v: &dyn WebhookVerifier,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Json<Value>, ApiError> {
        let provider = v.provider();
        let payloads = self.review.payloads(provider).cloned().ok_or_else(|| no_review_payloads(provider))?;
        let delivery = self.admit(v, headers, body).await?;
        let event = match payloads.event_header() {
            Some(name) => headers
                .get(name)
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| ApiError::invalid_field(name, "missing", format!("{name}: missing header")))?,
            None => "",
        };
        let notice = payloads.parse(event, body).map_err(|e| invalid_payload(provider, e))?;
        self.review(v, headers, body, notice, &delivery).await
    }
}

async fn slack(State(s): State<WebhookState>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    let s = &s.inner;
    let body = read_body(body).await?;
    let v = s.slack.as_ref().ok_or_else(|| not_configured("slack", ENV_SLACK_SECRET))?;
    let delivery = s.admit(v, &headers, &body).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|h| h.to_str().ok());
    let answer = match parse_slack(content_type, &body)? {
        ChatRequest::SlackChallenge(challenge) => json!({ "challenge": challenge }),
        ChatRequest::Action { action, feedback, user } => {
            let done = s.chat_action(&delivery, action, feedback, user).await?;
            json!({ "response_type": "ephemeral", "text": format!("{done} {feedback}.") })
        }
        ChatRequest::DiscordPing | ChatRequest::Ignored(_) => json!({ "ok": true }),
    };
    s.remember(v, &delivery).await?;
    Ok(Json(answer))
}

async fn discord(State(s): State<WebhookState>, headers: HeaderMap, body: Body) -> Result<Json<Value>, ApiError> {
    let s = &s.inner;
    let body = read_body(body).await?;
    let v = s.discord.as_ref().ok_or_else(|| not_configured("discord", ENV_DISCORD_KEY))?;
    let delivery = s.admit(v, &headers, &body).await?;
    let message = |content: String| json!({ "type": 4, "data": { "content": content, "flags": 64 } });
    let answer = match parse_discord(&body)? {
        ChatRequest::DiscordPing => json!({ "type": 1 }),
        ChatRequest::Action { action, feedback, user } => {
            let done = s.chat_action(&delivery, action, feedback, user).await?;
            message(format!("{done} {feedback}."))
        }
        ChatRequest::SlackChallenge(_) | ChatRequest::Ignored(_) => message("Nothing to do.".into()),
    };
    s.remember(v, &delivery).await?;
    Ok(Json(answer))
}
