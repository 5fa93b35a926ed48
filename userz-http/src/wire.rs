//! camelCase JSON of the API (DESIGN §2). Times are milliseconds since the
//! Unix epoch.

use serde_json::{json, Map, Value};
use userz_core::domain::common::{Dedup, ProcessingMode, Severity};
use userz_core::domain::feedback::{self as fbd, Feedback, FeedbackContent, Reporter, Stage};
use userz_core::domain::run::RunKind;
use userz_core::Sensitive;
use userz_engine::projections::{FeedbackSummary, RunDetail};
use userz_security::ingest::{self, FeedbackSubmission};
use userz_security::widget_auth::UserTokenClaims;

use crate::directory::AppRow;

fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn severity(s: ingest::Severity) -> Severity {
    match s {
        ingest::Severity::Low => Severity::Low,
        ingest::Severity::Medium => Severity::Medium,
        ingest::Severity::High => Severity::High,
    }
}

fn str_field(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Turns a validated submission into the report's content. Public mode keeps
/// the declared identity; private mode takes the id from the token's `sub`
/// (and `email`/`name` from its `ctx`, when strings).
pub(crate) fn content(sub: FeedbackSubmission, claims: Option<&UserTokenClaims>) -> FeedbackContent {
    let reporter = match claims {
        Some(c) => {
            let ctx = c.ctx.as_ref().and_then(|v| v.expose().as_object());
            Some(Reporter {
                id: Some(c.sub.expose().clone()),
                email: ctx.and_then(|m| str_field(m, "email")),
                name: ctx.and_then(|m| str_field(m, "name")),
            })
        }
        None => sub.identity.as_ref().map(|m| Reporter {
            id: str_field(m, "id"),
            email: str_field(m, "email"),
            name: str_field(m, "name"),
        }),
    };
    FeedbackContent {
        text: Sensitive::new(sub.text),
        severity: severity(sub.severity),
        url: sub.url,
        user_agent: sub.user_agent,
        viewport: sub.viewport.map(|v| fbd::Viewport { w: v.w, h: v.h, dpr: v.dpr as f32 }),
        console_logs: Sensitive::new(
            sub.console_logs
                .into_iter()
                .map(|c| fbd::ConsoleEntry {
                    level: enum_str(&c.level),
                    message: c.message,
                    ts: c.ts.is_finite().then_some(c.ts as i64),
                })
                .collect(),
        ),
        attachments: sub
            .attachments
            .into_iter()
            .map(|a| fbd::AttachmentRef {
                key: a.key,
                kind: enum_str(&a.kind),
                content_type: a.content_type,
                byte_size: a.byte_size,
                width: a.width,
                height: a.height,
            })
            .collect(),
        component_target: sub.component_target,
        metadata: (!sub.metadata.is_empty()).then_some(Value::Object(sub.metadata)),
        reporter: Sensitive::new(reporter),
    }
}

pub(crate) fn app(a: &AppRow) -> Value {
    let (batch, window, incremental) = match a.settings.dedup {
        Dedup::Off => (false, None, false),
        Dedup::Batch { window_hours } => (true, Some(window_hours), false),
        Dedup::Incremental => (false, None, true),
    };
    json!({
        "id": a.app.to_string(),
        "name": a.name,
        "publicKey": a.public_key,
        "publicSubmissionEnabled": a.settings.public_submission_enabled,
        "allowedOrigins": a.settings.allowed_origins,
        "processingMode": mode(a.settings.processing_mode),
        "batchEnabled": batch,
        "batchWindowHours": window,
        "incrementalMergeEnabled": incremental,
        "repoId": a.repo.map(|r| r.to_string()),
        "archived": a.archived,
    })
}

fn mode(m: ProcessingMode) -> String {
    m.to_string()
}

pub(crate) fn summary(s: &FeedbackSummary) -> Value {
    json!({
        "id": s.id.to_string(),
        "appId": s.app.to_string(),
        "status": s.status.as_str(),
        "label": s.label.as_ref().map(enum_str),
        "duplicateOf": s.duplicate_of.map(|d| d.to_string()),
        "duplicates": s.duplicates.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "latestRunId": s.latest_run.map(|r| r.to_string()),
        "prUrl": s.pr_url,
        "guardrail": s.guardrail.as_ref().map(|g| json!({"file": g.file, "rule": g.rule})),
        "failure": s.failure,
        "branch": s.branch,
        "receivedAt": s.received_at.as_millis(),
        "title": s.title.expose(),
        "severity": s.severity.as_str(),
        "confidence": s.confidence,
        "signals": s.signals,
    })
}

pub(crate) fn detail(f: &Feedback) -> Value {
    let c = &f.content;
    let (duplicate_of, pr_url, guardrail, failure, batch_closes) = match &f.stage {
        Stage::Duplicate { lead } => (Some(lead.to_string()), None, None, None, None),
        Stage::PrOpened { url } => (None, Some(url.clone()), None, None, None),
        Stage::PrFailed { file, rule } => (None, None, Some(json!({"file": file, "rule": rule})), None, None),
        Stage::Failed { reason } => (None, None, None, Some(reason.clone()), None),
        Stage::BatchPending { closes_at } => (None, None, None, None, Some(closes_at.as_millis())),
        _ => (None, None, None, None, None),
    };
    let branch = match &f.stage {
        Stage::BranchPushed { branch } => Some(branch.clone()),
        _ => None,
    };
    let cls = f.classification.as_ref();
    json!({
        "id": f.feedback.to_string(),
        "appId": f.app.to_string(),
        "status": f.stage.status().as_str(),
        "receivedAt": f.received_at.as_millis(),
        "text": c.text.expose(),
        "severity": enum_str(&c.severity),
        "url": c.url,
        "userAgent": c.user_agent,
        "viewport": c.viewport.map(|v| json!({"w": v.w, "h": v.h, "dpr": v.dpr})),
        "consoleLogs": c.console_logs.expose().iter().map(|e| json!({"level": e.level, "message": e.message, "ts": e.ts})).collect::<Vec<_>>(),
        "attachments": c.attachments.iter().map(|a| json!({
            "key": a.key, "kind": a.kind, "contentType": a.content_type, "byteSize": a.byte_size,
            "width": a.width, "height": a.height,
        })).collect::<Vec<_>>(),
        "componentTarget": c.component_target,
        "metadata": c.metadata,
        "reporter": c.reporter.expose().as_ref().map(|r| json!({"id": r.id, "email": r.email, "name": r.name})),
        "label": cls.map(|k| enum_str(&k.label)),
        "confidence": cls.map(|k| k.confidence),
        "classifier": cls.map(|k| k.classifier.clone()),
        "signals": cls.map(|k| k.signals.iter().map(|s| json!({
            "kind": s.kind, "offset": s.offset, "len": s.len, "weight": s.weight,
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "duplicateOf": duplicate_of,
        "duplicates": f.duplicates.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        "consolidated": f.consolidated.as_ref().map(|k| json!({"theme": k.theme, "description": k.description.expose()})),
        "runIds": f.runs.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "prUrl": pr_url,
        "branch": branch,
        "guardrail": guardrail,
        "failure": failure,
        "batchClosesAt": batch_closes,
    })
}

pub(crate) fn run(d: &RunDetail) -> Value {
    let duration = match (d.started_at, d.finished_at) {
        (Some(s), Some(f)) => Some(f.as_millis() - s.as_millis()),
        _ => None,
    };
    json!({
        "id": d.run.to_string(),
        "feedbackId": d.feedback.to_string(),
        "kind": match d.kind { RunKind::Initial => "initial", RunKind::Revision { .. } => "revision" },
        "status": enum_str(&d.status),
        "branch": d.branch,
        "provider": d.usage.provider,
        "model": d.usage.model,
        "tokensIn": d.usage.tokens_in,
        "tokensOut": d.usage.tokens_out,
        "costMicros": d.usage.cost_micros,
        "prUrl": d.pr_url,
        "guardrail": d.guardrail.as_ref().map(|g| json!({"file": g.file, "rule": g.rule})),
        "failure": d.failure,
        "retries": d.retries,
        "egressDenied": d.egress_denied,
        "timings": {
            "queuedAt": d.queued_at.as_millis(),
            "startedAt": d.started_at.map(|t| t.as_millis()),
            "finishedAt": d.finished_at.map(|t| t.as_millis()),
            "deadlineAt": d.deadline_at.map(|t| t.as_millis()),
            "durationMs": duration,
        },
        "timeline": d.timeline.iter().map(|t| json!({"event": t.event, "at": t.at.as_millis()})).collect::<Vec<_>>(),
    })
}
