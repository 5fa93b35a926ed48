//! Signed outbound webhooks: each feedback status change is POSTed to the
//! configured endpoints.
//!
//! [`OutboundWebhooks`] follows the event log from its own checkpoint (named
//! [`OutboundConfig::checkpoint`], default `outbound_webhooks`, kept in the
//! [`ReadModelStore`] like a projection's) and, for every feedback event that
//! changes a report's status, sends
//!
//! ```json
//! {
//!   "id": "evt_…",                        // the event id: the same on every retry and redelivery
//!   "type": "feedback.status_changed",
//!   "feedbackId": "fb_…", "orgId": "org_…", "appId": "app_…",
//!   "status": "pr_opened",                // FeedbackStatus wire name
//!   "prUrl": "https://…",                 // once a PR was opened
//!   "guardrail": {"file": "…", "rule": "…"}, // with pr_failed
//!   "position": 42,                       // global log position: orders events per receiver
//!   "at": "2026-01-01T00:00:00.123Z"      // when the change was recorded (RFC 3339 UTC)
//! }
//! ```
//!
//! with `Content-Type: application/json` and `X-Userz-Signature: t=<unix ms>,v1=<hex>`
//! ([`UserzWebhookSigner`]: HMAC-SHA256 with the endpoint's secret over
//! `<t>.<body>`; receivers verify with `UserzWebhookVerifier`).
//!
//! # Delivery
//!
//! Each endpoint gets up to [`OutboundConfig::max_attempts`] attempts, each
//! bounded by [`OutboundConfig::timeout`], with exponential backoff from
//! [`OutboundConfig::backoff_base`] capped at [`OutboundConfig::backoff_max`].
//! A 2xx answer is success; 408, 429, 5xx and transport errors are retried;
//! other statuses are permanent failures. A delivery that ends without
//! success is written to the [`FAILED_TABLE`] read-model table
//! (`<endpoint index>/<position>` → the payload and the last error) and the
//! dispatcher moves on, so one dead receiver cannot stall the others.
//!
//! The checkpoint moves right after each event's deliveries (in the same
//! commit as the dispatcher's own rows), so a restart resends at most the
//! event that was in flight: delivery is at-least-once, and receivers
//! de-duplicate on `id`. Events are sent in log order, one at a time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use http::header::HeaderName;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use userz_core::domain::feedback::{FeedbackEvent, FeedbackStatus, RunResult};
use userz_core::ids::{AppId, FeedbackId, OrgId};
use userz_core::ports::{CheckpointMove, EventStore, ReadModelCommit, ReadModelOp, ReadModelStore};
use userz_core::{Clock, Error, RecordedEvent, Result, Timestamp};
use userz_engine::AnyEvent;
use userz_rest::{ApiBase, Credential, RestClient};
use userz_security::secret::SecretBytes;
use userz_security::webhooks::outbound::SIGNATURE_HEADER;
use userz_security::webhooks::UserzWebhookSigner;

/// The event type sent for status changes.
pub const EVENT_TYPE: &str = "feedback.status_changed";
/// Default checkpoint name.
pub const DEFAULT_CHECKPOINT: &str = "outbound_webhooks";
/// The dispatcher's table of feedback ids → org, App, PR URL.
pub const FEEDBACK_TABLE: &str = "outbound_feedback";
/// Deliveries that ended without success.
pub const FAILED_TABLE: &str = "outbound_failed";
/// Env var: the URL of the one endpoint [`OutboundConfig::from_env`] configures.
pub const ENV_OUTBOUND_URL: &str = "USERZ_OUTBOUND_WEBHOOK_URL";
/// Env var: its HMAC secret (required with the URL; at least 16 bytes).
pub const ENV_OUTBOUND_SECRET: &str = "USERZ_OUTBOUND_WEBHOOK_SECRET";
/// Env var: restricts it to one organization (`org_…`), optional.
pub const ENV_OUTBOUND_ORG: &str = "USERZ_OUTBOUND_WEBHOOK_ORG";
/// Largest response body read from a receiver.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Events applied before the checkpoint moves when none of them is delivered.
const QUIET_BATCH: u64 = 256;

/// One receiver.
pub struct OutboundEndpoint {
    /// `http(s)://host[:port]/path` to POST to.
    pub url: String,
    /// The HMAC secret shared with the receiver.
    pub secret: SecretBytes,
    /// Only this organization's reports (`None`: every organization's).
    pub org: Option<OrgId>,
}

impl fmt::Debug for OutboundEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundEndpoint").field("url", &self.url).field("org", &self.org).finish_non_exhaustive()
    }
}

/// Dispatcher settings.
#[derive(Debug)]
pub struct OutboundConfig {
    /// Receivers.
    pub endpoints: Vec<OutboundEndpoint>,
    /// Attempts per event and endpoint (at least 1; default 5).
    pub max_attempts: u32,
    /// First retry delay (default 1 s), doubled per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay (default 60 s).
    pub backoff_max: Duration,
    /// Per-attempt timeout: connect, request and response (default 10 s).
    pub timeout: Duration,
    /// Checkpoint name (default [`DEFAULT_CHECKPOINT`]).
    pub checkpoint: String,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            max_attempts: 5,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            checkpoint: DEFAULT_CHECKPOINT.to_owned(),
        }
    }
}

impl OutboundConfig {
    /// Defaults plus at most one endpoint from [`ENV_OUTBOUND_URL`],
    /// [`ENV_OUTBOUND_SECRET`] and [`ENV_OUTBOUND_ORG`] (none when the URL is unset).
    ///
    /// # Errors
    ///
    /// `Error::Invalid` naming the variable that is missing or unusable.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env) over any lookup.
    ///
    /// # Errors
    ///
    /// `Error::Invalid` naming the variable that is missing or unusable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut config = Self::default();
        let Some(url) = get(ENV_OUTBOUND_URL) else {
            return Ok(config);
        };
        ApiBase::parse(&url, "").map_err(|e| Error::Invalid(format!("{ENV_OUTBOUND_URL}: {e}")))?;
        let secret = get(ENV_OUTBOUND_SECRET).filter(|s| s.len() >= 16).ok_or_else(|| {
            Error::Invalid(format!("{ENV_OUTBOUND_SECRET}: required with {ENV_OUTBOUND_URL}, at least 16 bytes"))
        })?;
        let org = get(ENV_OUTBOUND_ORG)
            .map(|o| o.parse::<OrgId>())
            .transpose()
            .map_err(|e| Error::Invalid(format!("{ENV_OUTBOUND_ORG}: {e}")))?;
        config.endpoints.push(OutboundEndpoint { url, secret: SecretBytes::new(secret.into_bytes()), org });
        Ok(config)
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
        self.backoff_base.saturating_mul(factor).min(self.backoff_max)
    }
}

struct Endpoint {
    url: String,
    path: String,
    org: Option<OrgId>,
    signer: UserzWebhookSigner,
    client: RestClient,
}

/// The dispatcher (see the module docs).
#[derive(Clone)]
pub struct OutboundWebhooks {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<Endpoint>,
    max_attempts: u32,
    config: OutboundConfig,
    events: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModelStore>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OutboundWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<&str> = self.inner.endpoints.iter().map(|e| e.url.as_str()).collect();
        f.debug_struct("OutboundWebhooks").field("endpoints", &urls).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    org: OrgId,
    app: AppId,
    pr_url: Option<String>,
}

/// The status a feedback event moves its report to, if it moves it.
pub fn status_after(event: &FeedbackEvent) -> Option<FeedbackStatus> {
    Some(match event {
        FeedbackEvent::FeedbackReceived { .. } => FeedbackStatus::Received,
        FeedbackEvent::SanitizingStarted {} => FeedbackStatus::Sanitizing,
        FeedbackEvent::Classified { .. } | FeedbackEvent::BatchClosed {} => FeedbackStatus::Sanitized,
        FeedbackEvent::FeedbackRejected { .. } => FeedbackStatus::Rejected,
        FeedbackEvent::AwaitingManual {} => FeedbackStatus::AwaitingManual,
        FeedbackEvent::BatchPending { .. } => FeedbackStatus::BatchPending,
        FeedbackEvent::FeedbackQueued { .. } => FeedbackStatus::Queued,
        FeedbackEvent::RunStarted { .. } => FeedbackStatus::Running,
        FeedbackEvent::RunCompleted { result, .. } => match result {
            RunResult::PrOpened { .. } => FeedbackStatus::PrOpened,
            RunResult::BranchPushed { .. } => FeedbackStatus::BranchPushed,
            RunResult::PrFailed { .. } => FeedbackStatus::PrFailed,
            RunResult::Failed { .. } => FeedbackStatus::Failed,
        },
        FeedbackEvent::MarkedDuplicate { .. } => FeedbackStatus::Duplicate,
        FeedbackEvent::FeedbackArchived { .. } => FeedbackStatus::Archived,
        FeedbackEvent::DuplicateAttached { .. } | FeedbackEvent::Consolidated { .. } => return None,
    })
}

fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.as_millis()) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.as_millis().to_string())
}

enum Attempt {
    Delivered,
    Retry(String),
    Permanent(String),
}

impl OutboundWebhooks {
    /// A dispatcher over the engine's event store and read models.
    ///
    /// # Errors
    ///
    /// `Error::Invalid` naming the endpoint whose URL is unusable.
    pub fn new(
        config: OutboundConfig,
        events: Arc<dyn EventStore>,
        read_models: Arc<dyn ReadModelStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for (i, ep) in config.endpoints.iter().enumerate() {
            let bad = |e: userz_rest::RestError| Error::Invalid(format!("outbound endpoint {i} ({}): {e}", ep.url));
            let base = ApiBase::parse(&ep.url, "").map_err(bad)?;
            let path = if base.prefix().is_empty() { "/".to_owned() } else { String::new() };
            let client = RestClient::new(base, concat!("userz-webhooks/", env!("CARGO_PKG_VERSION")), vec![])
                .map_err(bad)?
                .with_timeout(config.timeout)
                .with_max_body(MAX_RESPONSE_BYTES);
            endpoints.push(Endpoint {
                url: ep.url.clone(),
                path,
                org: ep.org,
                signer: UserzWebhookSigner::new(ep.secret.clone()),
                client,
            });
        }
        let max_attempts = config.max_attempts.max(1);
        Ok(Self { inner: Arc::new(Inner { endpoints, max_attempts, config, events, read_models, clock }) })
    }

    /// Follows the log from the checkpoint and delivers, until the event
    /// subscription ends or a store fails.
    ///
    /// # Errors
    ///
    /// A store error (the caller restarts; [`spawn`](Self::spawn) does).
    pub async fn run(&self) -> Result<()> {
        let name = self.inner.config.checkpoint.clone();
        'outer: loop {
            let mut checkpoint = self.inner.read_models.checkpoint(&name).await?;
            let mut sub = self.inner.events.subscribe(checkpoint).await?;
            let mut ops = Vec::new();
            let mut last = checkpoint;
            loop {
                let next = match sub.next().now_or_never() {
                    Some(next) => next,
                    None => {
                        // Idle: settle what was read, then wait.
                        if last > checkpoint {
                            match self.commit(&name, checkpoint, last, &mut ops).await {
                                Ok(()) => checkpoint = last,
                                Err(Error::CheckpointConflict { .. }) => continue 'outer,
                                Err(e) => return Err(e),
                            }
                        }
                        sub.next().await
                    }
                };
                let Some(rec) = next else {
                    return Ok(());
                };
                let rec = rec?;
                let delivered = self.apply(&rec, &mut ops).await?;
                last = rec.position;
                if delivered || last.saturating_sub(checkpoint) >= QUIET_BATCH {
                    match self.commit(&name, checkpoint, last, &mut ops).await {
                        Ok(()) => checkpoint = last,
                        Err(Error::CheckpointConflict { .. }) => continue 'outer,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Runs [`run`](Self::run) on the current runtime, restarting it after a
    /// store error (1 s pause). Abort the handle to stop.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run().await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbound webhooks: restarting after a store error");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    async fn commit(&self, name: &str, expected: u64, new: u64, ops: &mut Vec<ReadModelOp>) -> Result<()> {
        let commit = ReadModelCommit {
            checkpoint: Some(CheckpointMove { name: name.to_owned(), expected, new }),
            ops: std::mem::take(ops),
        };
        self.inner.read_models.commit(commit).await
    }

    /// Applies one event; returns whether anything was sent.
    async fn apply(&self, rec: &RecordedEvent, ops: &mut Vec<ReadModelOp>) -> Result<bool> {
        let Some(AnyEvent::Feedback(ev)) = AnyEvent::decode(rec)? else {
            return Ok(false);
        };
        let Some(id) = rec.stream.as_str().strip_prefix("feedback-").and_then(|s| s.parse::<FeedbackId>().ok()) else {
            return Ok(false);
        };
        let key = id.to_string();
        let mut row = match &ev {
            FeedbackEvent::FeedbackReceived { org, app, .. } => Row { org: *org, app: *app, pr_url: None },
            _ => match self.row(&key, ops).await? {
                Some(r) => r,
                None => {
                    tracing::warn!(feedback = %id, "outbound webhooks: no arrival seen for this report; skipped");
                    return Ok(false);
                }
            },
        };
        if let FeedbackEvent::RunCompleted { result: RunResult::PrOpened { url, .. }, .. } = &ev {
            row.pr_url = Some(url.clone());
        }
        ops.push(ReadModelOp::Put {
            table: FEEDBACK_TABLE.to_owned(),
            key: key.clone(),
            value: serde_json::to_vec(&row)?.into(),
        });
        let Some(status) = status_after(&ev) else {
            return Ok(false);
        };
        let mut payload = json!({
            "id": rec.id.to_string(),
            "type": EVENT_TYPE,
            "feedbackId": key,
            "orgId": row.org.to_string(),
            "appId": row.app.to_string(),
            "status": status.as_str(),
            "position": rec.position,
            "at": rfc3339(rec.recorded_at),
        });
        if let Some(url) = &row.pr_url {
            payload["prUrl"] = json!(url);
        }
        if let FeedbackEvent::RunCompleted { result: RunResult::PrFailed { file, rule }, .. } = &ev {
            payload["guardrail"] = json!({ "file": file, "rule": rule });
        }
        let mut sent = false;
        for (i, ep) in self.inner.endpoints.iter().enumerate() {
            if ep.org.is_some_and(|o| o != row.org) {
                continue;
            }
            sent = true;
            if let Err(last) = self.deliver(ep, &payload).await {
                tracing::warn!(endpoint = %ep.url, event = %rec.id, error = %last, "outbound webhook not delivered");
                ops.push(ReadModelOp::Put {
                    table: FAILED_TABLE.to_owned(),
                    key: format!("{i:04}/{:020}", rec.position),
                    value: serde_json::to_vec(&json!({ "url": ep.url, "payload": payload, "error": last }))?.into(),
                });
            }
        }
        Ok(sent)
    }

    /// The dispatcher's row for `key`, seeing this batch's pending writes.
    async fn row(&self, key: &str, ops: &[ReadModelOp]) -> Result<Option<Row>> {
        let pending = ops.iter().rev().find_map(|op| match op {
            ReadModelOp::Put { table, key: k, value } if table == FEEDBACK_TABLE && k == key => Some(value.clone()),
            _ => None,
        });
        let raw = match pending {
            Some(v) => Some(v),
            None => self.inner.read_models.get(FEEDBACK_TABLE, key).await?,
        };
        Ok(match raw {
            Some(b) => Some(serde_json::from_slice(&b)?),
            None => None,
        })
    }

    /// Sends `payload` to `ep` with retries; `Err` holds the last failure.
    async fn deliver(&self, ep: &Endpoint, payload: &Value) -> std::result::Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=self.inner.max_attempts {
            match self.attempt(ep, payload).await {
                Attempt::Delivered => return Ok(()),
                Attempt::Permanent(e) => return Err(e),
                Attempt::Retry(e) => {
                    tracing::debug!(endpoint = %ep.url, attempt, error = %e, "outbound webhook attempt failed");
                    last = e;
                }
            }
            if attempt < self.inner.max_attempts {
                tokio::time::sleep(self.inner.config.backoff(attempt)).await;
            }
        }
        Err(format!("{last} (after {} attempts)", self.inner.max_attempts))
    }

    async fn attempt(&self, ep: &Endpoint, payload: &Value) -> Attempt {
        // `RestClient` serialises `payload` with `serde_json::to_vec`, as here,
        // so the signed bytes are the sent bytes.
        let body = match serde_json::to_vec(payload) {
            Ok(b) => b,
            Err(e) => return Attempt::Permanent(format!("encode: {e}")),
        };
        let signature = ep.signer.sign(&body, self.inner.clock.now());
        let credential = Credential::header(HeaderName::from_static(SIGNATURE_HEADER), &signature);
        match ep.client.send("outbound webhook", Method::POST, &ep.path, Some(credential), Some(payload)).await {
            Ok(r) if (200..300).contains(&r.status) => Attempt::Delivered,
            Ok(r) if r.status == 408 || r.status == 429 || r.status >= 500 => {
                Attempt::Retry(format!("receiver answered {}", r.status))
            }
            Ok(r) => Attempt::Permanent(format!("receiver answered {}", r.status)),
            Err(e) => Attempt::Retry(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = OutboundConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..OutboundConfig::default()
        };
        let delays: Vec<u128> = (1..=6).map(|a| c.backoff(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn env_configures_one_endpoint_and_names_bad_variables() {
        assert!(OutboundConfig::from_lookup(|_| None).unwrap().endpoints.is_empty());
        let vars = |url: &'static str, secret: &'static str| {
            move |k: &str| match k {
                ENV_OUTBOUND_URL => Some(url.to_owned()),
                ENV_OUTBOUND_SECRET => Some(secret.to_owned()),
                _ => None,
            }
        };
        let c = OutboundConfig::from_lookup(vars("https://hooks.example.com/userz", "0123456789abcdef")).unwrap();
        assert_eq!(c.endpoints.len(), 1);
        assert_eq!(c.endpoints[0].url, "https://hooks.example.com/userz");
        let e = OutboundConfig::from_lookup(vars("https://hooks.example.com/userz", "short")).unwrap_err();
        assert!(e.to_string().contains(ENV_OUTBOUND_SECRET), "{e}");
        let e = OutboundConfig::from_lookup(vars("ftp://x", "0123456789abcdef")).unwrap_err();
        assert!(e.to_string().contains(ENV_OUTBOUND_URL), "{e}");
    }

    #[test]
    fn only_status_changes_are_sent() {
        use userz_core::ids::FeedbackId;
        assert_eq!(status_after(&FeedbackEvent::SanitizingStarted {}), Some(FeedbackStatus::Sanitizing));
        assert_eq!(status_after(&FeedbackEvent::DuplicateAttached { duplicate: FeedbackId::new() }), None);
        let failed = FeedbackEvent::RunCompleted {
            run: userz_core::ids::RunId::new(),
            result: RunResult::PrFailed { file: ".github/workflows/ci.yml".into(), rule: "workflows".into() },
        };
        assert_eq!(status_after(&failed), Some(FeedbackStatus::PrFailed));
    }
}
