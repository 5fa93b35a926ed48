//! The application layer's feedback submission: the rules every entry point
//! shares (the HTTP route, [`Engine::submit_feedback`](crate::Engine::submit_feedback),
//! a chat integration): attachments must be uploads of the submitting org, an
//! idempotency key makes a retried submission return the same report, and the
//! report id is derived from the command id so a retry can never create a
//! second one.

use userz_core::domain::feedback::{FeedbackCommand, FeedbackContent, FeedbackDecider};
use userz_core::ids::{AppId, CommandId, CorrelationId, FeedbackId, OrgId};
use userz_core::ports::BlobKey;
use userz_core::Timestamp;

use crate::{CommandBus, CommandError, CommandMeta};

/// Longest accepted idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A report to accept.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The submitting org (from the caller's credentials, never the body).
    pub org: OrgId,
    /// The App it was submitted to.
    pub app: AppId,
    /// The validated content.
    pub content: FeedbackContent,
    /// The caller's `Idempotency-Key`, if any: the same key for the same App
    /// yields the same report.
    pub idempotency_key: Option<&'a str>,
    /// When it arrived.
    pub received_at: Timestamp,
}

/// An accepted report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its id.
    pub feedback: FeedbackId,
    /// Its status's wire name right after the submission (`received`, or
    /// further along for a replayed key).
    pub status: &'static str,
    /// Whether this was a replay of an earlier submission (same key).
    pub duplicate: bool,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// A field breaks a rule; `field` and `rule` are stable.
    #[error("{message}")]
    Invalid {
        /// The field (`attachments[0].key`, `Idempotency-Key`).
        field: String,
        /// The rule (`foreign_key`, `too_long`).
        rule: &'static str,
        /// For people.
        message: String,
    },
    /// The command was refused or the store failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// Checks the shared rules and records the report.
pub async fn submit(bus: &CommandBus, s: Submission<'_>) -> Result<Submitted, SubmitError> {
    for (i, a) in s.content.attachments.iter().enumerate() {
        if BlobKey::parse(s.org, &a.key).is_none() {
            return Err(SubmitError::Invalid {
                field: format!("attachments[{i}].key"),
                rule: "foreign_key",
                message: format!("attachments[{i}].key: not an upload of this App's organization (use upload-url)"),
            });
        }
    }
    let meta = match s.idempotency_key {
        Some(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY => {
            CommandMeta { command_id: CommandId::derived(s.app.as_uuid(), k), correlation_id: CorrelationId::new() }
        }
        Some(_) => {
            return Err(SubmitError::Invalid {
                field: "Idempotency-Key".into(),
                rule: "too_long",
                message: format!("Idempotency-Key: 1-{MAX_IDEMPOTENCY_KEY} characters"),
            })
        }
        None => CommandMeta::new(),
    };
    let feedback = FeedbackId::derived(meta.command_id.as_uuid(), "feedback");
    let cmd =
        FeedbackCommand::Submit { feedback, org: s.org, app: s.app, content: s.content, received_at: s.received_at };
    let outcome = bus.execute::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(feedback), meta, &cmd).await?;
    let status = outcome.state.get().map(|f| f.stage.status().as_str()).unwrap_or("received");
    Ok(Submitted { feedback, status, duplicate: outcome.duplicate })
}
