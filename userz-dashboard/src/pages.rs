//! Signed-in pages: feedback queue and detail, run detail (+ SSE), PR review,
//! settings. Every lookup is scoped to the session's org; another org's id
//! answers 404 exactly like an unknown one.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;

use userz_core::domain::app::{AppCommand, AppDecider, AppSettingsPatch};
use userz_core::domain::feedback::{FeedbackCommand, FeedbackDecider, FeedbackStatus};
use userz_core::domain::pr::{CommentSeverity, DiffComment, PrCommand, PrDecider};
use userz_core::domain::{Actor, ProcessingMode};
use userz_core::ids::{AppId, CommentId, FeedbackId, PrId, RunId};
use userz_core::Sensitive;
use userz_engine::projections::{
    feedback_page, feedback_summary, pr_runs, pr_summary, run_detail, FeedbackQuery, FeedbackSummary, RunDetail,
    TimelineEntry,
};
use userz_engine::{CommandBus, CommandMeta};
use userz_security::envelope::SecretKind;

use crate::auth::{require_session, Ctx};
use crate::error::DashError;
use crate::html::{csrf_input, document, esc, when, RUN_SCRIPT};
use crate::DashboardState;
use userz_engine::directory::{
    app_of_org as org_app, apps_of_org as org_apps, repos_of_org as org_repos, secrets_of_org as org_secrets,
};

pub(crate) fn routes(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(queue))
        .route("/feedback/{id}", get(feedback_detail))
        .route("/feedback/{id}/queue", post(feedback_queue_action))
        .route("/feedback/{id}/archive", post(feedback_archive_action))
        .route("/feedback/{id}/attachments/{n}", get(feedback_attachment))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/events", get(run_events))
        .route("/prs/{id}", get(pr_page))
        .route("/prs/{id}/comments", post(pr_add_comment))
        .route("/prs/{id}/comments/{comment}/resolve", post(pr_resolve_comment))
        .route("/prs/{id}/revision", post(pr_request_revision))
        .route("/settings", get(settings_page))
        .route("/settings/apps/{id}", post(settings_app))
        .route("/settings/secrets", post(settings_secret))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_session))
        .with_state(state)
}

fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, DashError> {
    // A malformed id is as unknown as another org's.
    raw.parse().map_err(|_| DashError::NotFound)
}

fn page(ctx: &Ctx, title: &str, body: &str) -> Response {
    document(StatusCode::OK, title, Some(&ctx.nav()), body).into_response()
}

fn status_badge(id: &str, status: &str) -> String {
    format!("<span class=\"status\" id=\"{}\" data-status=\"{}\">{}</span>", esc(id), esc(status), esc(status))
}

fn cost(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

// ------------------------------------------------------------------ queue

#[derive(Deserialize)]
struct QueueQuery {
    status: Option<String>,
    cursor: Option<String>,
}

async fn queue(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<QueueQuery>,
) -> Result<Response, DashError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            FeedbackStatus::parse(s)
                .ok_or_else(|| DashError::Invalid { field: "status", message: format!("unknown status {s:?}") })?,
        ),
    };
    let query = FeedbackQuery {
        org: ctx.org,
        app: None,
        status,
        include_duplicates: false,
        cursor: q.cursor.clone(),
        limit: 50,
    };
    let rm = state.read_models.as_ref();
    let page_rows = feedback_page(rm, &query).await?;
    let mut body = String::from("<h1>Feedback</h1><form method=\"get\" action=\"/\" id=\"status-filter\">");
    body.push_str("<label>Status <select name=\"status\" id=\"filter-status\"><option value=\"\">all</option>");
    for s in FeedbackStatus::ALL {
        let sel = if Some(s) == status { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{0}\"{sel}>{0}</option>", s.as_str());
    }
    body.push_str("</select></label> <button id=\"filter-apply\">Filter</button></form>");
    body.push_str(
        "<div class=\"wide\"><table id=\"feedback-list\" class=\"cards\"><thead><tr><th>Report</th><th>Label</th>\
         <th>Outcome</th><th>Received</th></tr></thead><tbody>",
    );
    for row in &page_rows.items {
        let dups = if row.duplicates.is_empty() {
            String::new()
        } else {
            format!(" <span class=\"muted\">+{} duplicates</span>", row.duplicates.len())
        };
        let _ = write!(
            body,
            "<tr class=\"feedback-row lead\" data-feedback-id=\"{id}\" data-status=\"{st}\">{report}{label}{outcome}\
             <td class=\"received\">{at}</td></tr>",
            id = row.id,
            st = row.status.as_str(),
            report = report_cell(row, "", &dups),
            label = label_cell(row),
            outcome = outcome_cell(row),
            at = esc(&when(row.received_at)),
        );
        for dup in &row.duplicates {
            if let Some(d) = feedback_summary(rm, ctx.org, *dup).await? {
                let _ = write!(
                    body,
                    "<tr class=\"feedback-row dup\" data-feedback-id=\"{id}\" data-duplicate-of=\"{lead}\" \
                     data-status=\"{st}\">{report}<td class=\"label\"></td>\
                     <td class=\"outcome\"><span class=\"status\">{st}</span></td><td class=\"received\">{at}</td></tr>",
                    id = d.id,
                    lead = row.id,
                    st = d.status.as_str(),
                    report = report_cell(&d, "↳ ", ""),
                    at = esc(&when(d.received_at)),
                );
            }
        }
    }
    body.push_str("</tbody></table></div>");
    if page_rows.items.is_empty() {
        body.push_str("<p id=\"feedback-empty\" class=\"muted\">No feedback yet.</p>");
    }
    if let Some(next) = &page_rows.next_cursor {
        let st = status.map(|s| s.as_str()).unwrap_or("");
        let _ = write!(body, "<p><a id=\"next-page\" href=\"/?status={st}&amp;cursor={}\">Older</a></p>", esc(next));
    }
    Ok(page(&ctx, "Feedback", &body))
}

/// The list's report cell: the first line (a link to the report) and its
/// severity.
fn report_cell(row: &FeedbackSummary, prefix: &str, extra: &str) -> String {
    let title = row.title.expose();
    let title = if title.is_empty() { "(no text)".to_string() } else { title.clone() };
    format!(
        "<td class=\"report\">{prefix}<a href=\"/feedback/{id}\" class=\"feedback-link\" title=\"{id}\">{title}</a> \
         <span class=\"sev sev-{sev}\" data-severity=\"{sev}\">{sev}</span>{extra}</td>",
        id = row.id,
        title = esc(&title),
        sev = row.severity.as_str(),
    )
}

/// The list's label cell; a rejected report says why (confidence and the
/// signals that fired) and that it never reached the agent.
fn label_cell(row: &FeedbackSummary) -> String {
    let Some(label) = row.label else {
        return "<td class=\"label\"><span class=\"muted\">not classified yet</span></td>".into();
    };
    let mut why = String::new();
    if let Some(c) = row.confidence {
        let _ = write!(why, "confidence {c:.2}");
    }
    if !row.signals.is_empty() {
        if !why.is_empty() {
            why.push_str(" · ");
        }
        let _ = write!(why, "signals: {}", esc(&row.signals.join(", ")));
    }
    let rejected = row.status == FeedbackStatus::Rejected;
    format!(
        "<td class=\"label\"><span class=\"label-name{cls}\">{verdict}{label}</span>{why}</td>",
        cls = if rejected { " rejected" } else { "" },
        verdict = if rejected { "rejected: " } else { "" },
        label = label.as_str(),
        why = if why.is_empty() { String::new() } else { format!("<span class=\"reason\">{why}</span>") },
    )
}

/// The list's outcome cell: the status, the run and why it ended the way it
/// did, with what to do next when it failed.
fn outcome_cell(row: &FeedbackSummary) -> String {
    let mut out = format!("<td class=\"outcome\"><span class=\"status\">{}</span>", row.status.as_str());
    if let Some(r) = row.latest_run {
        let _ = write!(out, " <a href=\"/runs/{r}\" class=\"run-link\">run</a>");
    }
    let reason = match (&row.pr_url, &row.branch, &row.guardrail, &row.failure) {
        (Some(url), ..) => format!("<a class=\"pr-link\" href=\"{}\">draft PR</a>", esc(safe_href(url))),
        (_, Some(branch), ..) => format!("branch <code>{}</code>", esc(branch)),
        (_, _, Some(g), _) => format!(
            "guardrail refused <code>{}</code> ({}) <span class=\"next\">{}</span>",
            esc(&g.file),
            esc(&g.rule),
            GUARDRAIL_NEXT
        ),
        (_, _, _, Some(f)) => format!("{} <span class=\"next\">{}</span>", esc(f), next_step(f)),
        _ if row.status == FeedbackStatus::Rejected => "never reaches the agent".into(),
        _ => String::new(),
    };
    if !reason.is_empty() {
        let _ = write!(out, "<span class=\"reason\">{reason}</span>");
    }
    out.push_str("</td>");
    out
}

/// What to do after a guardrail refusal.
const GUARDRAIL_NEXT: &str =
    "Nothing was pushed: the agent changed a path the repository's guardrails forbid. Read the diff on the run page.";

/// What to do after a run failed for `reason` (the run's failure text).
pub(crate) fn next_step(reason: &str) -> &'static str {
    let step = reason.split(':').next().unwrap_or("");
    match step {
        _ if reason == userz_engine::NO_CHANGES => {
            "The model answered without editing a file. A hosted model (a provider key, see the README) \
             does this far less often; queue the report again to retry."
        }
        "timed_out" => "The run hit its wall-clock cap (sandbox.wall_clock_secs): raise it or queue the report again.",
        "cancelled" => "The run was cancelled; queue the report again to retry.",
        "sandbox" | "allocate_workspace" => {
            "The sandbox could not run the agent: see the sandbox line the server printed at start."
        }
        "prepare_workspace" => "The repository could not be cloned: check that its remote is reachable.",
        "decrypt_secret" => {
            "The org's model key could not be opened: set it again with \
             `userz-server admin secret set --org <org id> --kind ai_provider_key --slot model` (the key on stdin)."
        }
        "push" | "capabilities" | "open_pr" => {
            "The repository host refused: check the repository's token or GitHub App installation."
        }
        _ => "Open the run for its transcript, then queue the report again.",
    }
}

// ------------------------------------------------------------------ feedback detail

async fn feedback_detail(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id: FeedbackId = parse_id(&id)?;
    let (fb_state, _) = state.bus.load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(id)).await?;
    let fb = fb_state.get().filter(|f| f.org == ctx.org).ok_or(DashError::NotFound)?;
    let c = &fb.content;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Feedback <code id=\"feedback-id\">{}</code></h1><p>Status {} · severity \
         <span id=\"feedback-severity\">{}</span> · received {}</p>",
        fb.feedback,
        status_badge("feedback-status", fb.stage.status().as_str()),
        c.severity.as_str(),
        esc(&when(fb.received_at))
    );
    let _ = write!(b, "<h2>Report</h2><pre id=\"feedback-text\">{}</pre>", esc(c.text.expose()));
    if let Some(url) = &c.url {
        let _ = write!(b, "<p>Page: <code id=\"feedback-url\">{}</code></p>", esc(url));
    }
    if let Some(ua) = &c.user_agent {
        let _ = write!(b, "<p class=\"muted\">User agent: {}</p>", esc(ua));
    }
    // Manual actions (every role).
    let _ = write!(
        b,
        "<p><form method=\"post\" action=\"/feedback/{id}/queue\" class=\"inline\">{csrf}\
         <button id=\"action-queue\">Queue a run</button></form> \
         <form method=\"post\" action=\"/feedback/{id}/archive\" class=\"inline\">{csrf}\
         <button id=\"action-archive\">Archive</button></form></p>",
        csrf = csrf_input(&ctx.csrf)
    );
    b.push_str("<h2>Classification</h2>");
    match &fb.classification {
        Some(cl) => {
            let _ = write!(
                b,
                "<p>Label <span id=\"feedback-label\" data-label=\"{0}\">{0}</span> (confidence {1:.2}, {2})</p>",
                esc(cl.label.as_str()),
                cl.confidence,
                esc(&cl.classifier)
            );
            b.push_str(
                "<table id=\"feedback-signals\"><thead><tr><th>Signal</th><th>Offset</th><th>Length</th>\
                 <th>Weight</th></tr></thead><tbody>",
            );
            for s in &cl.signals {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                    esc(&s.kind),
                    s.offset,
                    s.len,
                    s.weight
                );
            }
            b.push_str("</tbody></table>");
        }
        None => b.push_str("<p class=\"muted\" id=\"feedback-label\" data-label=\"\">Not classified yet.</p>"),
    }
    b.push_str("<h2>Console</h2><table id=\"feedback-console\"><tbody>");
    for e in c.console_logs.expose() {
        let _ = write!(
            b,
            "<tr class=\"console-{0}\"><td>{0}</td><td><pre>{1}</pre></td></tr>",
            esc(&e.level),
            esc(&e.message)
        );
    }
    b.push_str("</tbody></table><h2>Attachments</h2><ul id=\"feedback-attachments\">");
    for (n, a) in c.attachments.iter().enumerate() {
        let dims = match (a.width, a.height) {
            (Some(w), Some(h)) => format!(" {w}×{h}"),
            _ => String::new(),
        };
        let _ = write!(
            b,
            "<li>{} · {} · {} bytes{} · <code>{}</code>",
            esc(&a.kind),
            esc(&a.content_type),
            a.byte_size,
            dims,
            esc(&a.key)
        );
        if state.blobs.is_some() {
            let href = format!("/feedback/{id}/attachments/{n}");
            if INLINE_IMAGE_TYPES.contains(&a.content_type.as_str()) {
                let _ = write!(
                    b,
                    "<br><a href=\"{href}\"><img class=\"attachment-image\" src=\"{href}\" alt=\"{} {n}\" \
                     style=\"max-width:40rem;border:1px solid #ccc\"></a>",
                    esc(&a.kind)
                );
            } else {
                let _ = write!(b, " · <a class=\"attachment-download\" href=\"{href}\">download</a>");
            }
        }
        b.push_str("</li>");
    }
    b.push_str("</ul><h2>Duplicates</h2><ul id=\"feedback-duplicates\">");
    if let userz_core::domain::feedback::Stage::Duplicate { lead } = &fb.stage {
        let _ = write!(b, "<li>Duplicate of <a href=\"/feedback/{lead}\" id=\"feedback-lead\">{lead}</a></li>");
    }
    for d in &fb.duplicates {
        let _ = write!(b, "<li><a href=\"/feedback/{d}\">{d}</a></li>");
    }
    b.push_str("</ul>");
    if let Some(cons) = &fb.consolidated {
        let _ = write!(
            b,
            "<h3>Consolidated: {}</h3><pre id=\"feedback-consolidated\">{}</pre>",
            esc(&cons.theme),
            esc(cons.description.expose())
        );
    }
    b.push_str("<h2>Runs</h2><ul id=\"feedback-runs\">");
    for r in &fb.runs {
        let _ = write!(b, "<li><a href=\"/runs/{r}\" class=\"run-link\">{r}</a></li>");
    }
    b.push_str("</ul>");
    Ok(page(&ctx, "Feedback", &b))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn feedback_command(
    state: &DashboardState,
    ctx: &Ctx,
    id: &str,
    csrf: &str,
    make: impl FnOnce(Actor) -> FeedbackCommand,
) -> Result<Response, DashError> {
    ctx.check_csrf(csrf)?;
    let id: FeedbackId = parse_id(id)?;
    let stream = CommandBus::stream::<FeedbackDecider>(id);
    let (fb_state, _) = state.bus.load::<FeedbackDecider>(&stream).await?;
    if fb_state.get().filter(|f| f.org == ctx.org).is_none() {
        return Err(DashError::NotFound);
    }
    let cmd = make(Actor::User { user: ctx.user });
    state.bus.execute::<FeedbackDecider>(&stream, CommandMeta::new(), &cmd).await?;
    Ok(Redirect::to(&format!("/feedback/{id}")).into_response())
}

async fn feedback_queue_action(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, DashError> {
    feedback_command(&state, &ctx, &id, &f.csrf, |by| FeedbackCommand::Queue { by }).await
}

async fn feedback_archive_action(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, DashError> {
    feedback_command(&state, &ctx, &id, &f.csrf, |by| FeedbackCommand::Archive { by }).await
}

// ------------------------------------------------------------------ runs

fn safe_href(url: &str) -> &str {
    if url.starts_with("https://") || url.starts_with("http://") {
        url
    } else {
        "#"
    }
}

fn status_json(d: &RunDetail) -> serde_json::Value {
    serde_json::json!({
        "status": d.status.as_str(),
        "terminal": d.status.is_terminal(),
        "tokens_in": d.usage.tokens_in,
        "tokens_out": d.usage.tokens_out,
        "cost": cost(d.usage.cost_micros),
        "provider": d.usage.provider,
        "model": d.usage.model,
        "guardrail_file": d.guardrail.as_ref().map(|g| g.file.clone()),
        "guardrail_rule": d.guardrail.as_ref().map(|g| g.rule.clone()),
        "pr_url": d.pr_url.as_deref().map(safe_href),
        "failure": d.failure,
    })
}

/// The largest diff shown (the git adapter cuts at 256 KiB).
const DIFF_BYTES: usize = 300 << 10;

/// The run's diff, one line a row, additions and removals marked.
fn diff_section(text: &str) -> String {
    let mut b = String::from("<section id=\"run-diff-section\"><h2>Diff</h2><pre id=\"run-diff\">");
    for line in text.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") || line.starts_with("diff ") {
            "file"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else if line.starts_with("@@") {
            "hunk"
        } else {
            "ctx"
        };
        // Block spans: one line each, no newline between (it would double).
        let _ = write!(b, "<span class=\"{class}\">{}</span>", esc(line));
    }
    b.push_str("</pre></section>");
    b
}

/// A timeline entry with the time since the one before (`prev`): how long
/// that stage took.
fn timeline_item(t: &TimelineEntry, prev: Option<&TimelineEntry>) -> String {
    let took = prev.map(|p| took(t.at.as_millis() - p.at.as_millis())).unwrap_or_default();
    format!(
        "<li data-position=\"{}\" data-event=\"{}\" data-at=\"{}\">{} {} <span class=\"took\">{}</span></li>",
        t.position,
        esc(&t.event),
        t.at.as_millis(),
        esc(&when(t.at)),
        esc(&t.event),
        took
    )
}

/// `+1.2 s`, `+350 ms`, `+2 min 5 s`.
fn took(ms: i64) -> String {
    match ms.max(0) {
        ms if ms < 1000 => format!("+{ms} ms"),
        ms if ms < 60_000 => format!("+{:.1} s", ms as f64 / 1000.0),
        ms => format!("+{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

async fn run_page(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let id: RunId = parse_id(&id)?;
    let d = run_detail(state.read_models.as_ref(), ctx.org, id).await?.ok_or(DashError::NotFound)?;
    let mut b = String::new();
    let _ = write!(
        b,
        "<div id=\"run\" data-run-id=\"{run}\" data-live=\"static\"><h1>Run <code>{run}</code></h1>\
         <p>Status <span class=\"status\" id=\"run-status\" data-status=\"{st}\" data-terminal=\"{term}\">{st}</span>\
          · for <a href=\"/feedback/{fb}\" id=\"run-feedback\">{fb}</a> · branch <code>{branch}</code> · kind {kind}</p>",
        run = d.run,
        st = d.status.as_str(),
        term = d.status.is_terminal(),
        fb = d.feedback,
        branch = esc(&d.branch),
        kind = match d.kind {
            userz_core::domain::run::RunKind::Initial => "initial",
            userz_core::domain::run::RunKind::Revision { .. } => "revision",
        }
    );
    let next = match (&d.guardrail, &d.failure) {
        (Some(_), _) => Some(GUARDRAIL_NEXT),
        (None, Some(f)) => Some(next_step(f)),
        _ => None,
    };
    if let Some(next) = next {
        let _ = write!(b, "<p id=\"run-next\" class=\"next\">{}</p>", esc(next));
    }
    let _ = write!(
        b,
        "<div class=\"wide\"><table id=\"run-usage\"><tr><th>Provider</th><td id=\"run-provider\">{}</td></tr>\
         <tr><th>Model</th><td id=\"run-model\">{}</td></tr>\
         <tr><th>Tokens in</th><td id=\"run-tokens-in\">{}</td></tr>\
         <tr><th>Tokens out</th><td id=\"run-tokens-out\">{}</td></tr>\
         <tr><th>Cost</th><td id=\"run-cost\">{}</td></tr>\
         <tr><th>Guardrail file</th><td id=\"run-guardrail-file\">{}</td></tr>\
         <tr><th>Guardrail rule</th><td id=\"run-guardrail-rule\">{}</td></tr>\
         <tr><th>Failure</th><td id=\"run-failure\">{}</td></tr>\
         <tr><th>Pull request</th><td><a id=\"run-pr-url\" href=\"{}\">{}</a></td></tr>\
         <tr><th>Transcript</th><td><code id=\"run-transcript\">{}</code></td></tr>\
         <tr><th>Retries</th><td>{}</td></tr><tr><th>Egress denied</th><td>{}</td></tr>\
         <tr><th>Sandbox</th><td id=\"run-sandbox\">{}</td></tr></table></div>",
        esc(&d.usage.provider),
        esc(&d.usage.model),
        d.usage.tokens_in,
        d.usage.tokens_out,
        cost(d.usage.cost_micros),
        esc(d.guardrail.as_ref().map_or("", |g| g.file.as_str())),
        esc(d.guardrail.as_ref().map_or("", |g| g.rule.as_str())),
        esc(d.failure.as_deref().unwrap_or("")),
        esc(d.pr_url.as_deref().map_or("#", safe_href)),
        esc(d.pr_url.as_deref().unwrap_or("")),
        esc(d.transcript.as_deref().unwrap_or("")),
        d.retries,
        d.egress_denied,
        esc(d.sandbox.as_deref().unwrap_or("")),
    );
    b.push_str("<h2>Timeline</h2><ol id=\"run-timeline\">");
    for (i, t) in d.timeline.iter().enumerate() {
        b.push_str(&timeline_item(t, i.checked_sub(1).and_then(|p| d.timeline.get(p))));
    }
    b.push_str("</ol></div>");
    if let (Some(store), Some(key)) = (&state.blobs, d.transcript.as_deref()) {
        b.push_str("<h2>Transcript</h2>");
        match crate::read_org_blob(store.as_ref(), ctx.org, key, TRANSCRIPT_BYTES).await {
            Ok(Some(bytes)) => b.push_str(&transcript_list(&bytes)),
            Ok(None) => b.push_str(
                "<p id=\"run-transcript-missing\">The transcript is not stored (expired or never uploaded).</p>",
            ),
            Err(e) => {
                tracing::warn!(run = %d.run, error = %e, "reading a transcript failed");
                b.push_str("<p id=\"run-transcript-missing\">The transcript could not be read.</p>");
            }
        }
    }
    if let Some(store) = &state.blobs {
        let key = userz_core::ports::BlobKey::run_diff(ctx.org, d.run);
        match store.get(&key, Some(DIFF_BYTES as u64)).await {
            Ok(Some(bytes)) => b.push_str(&diff_section(&String::from_utf8_lossy(&bytes))),
            Ok(None) => {}
            Err(e) => tracing::warn!(run = %d.run, error = %e, "reading a diff failed"),
        }
    }
    let _ = write!(b, "<script>{RUN_SCRIPT}</script>");
    Ok(page(&ctx, "Run", &b))
}

/// Attachment types the dashboard shows inline; anything else is served as
/// a download (`application/octet-stream`).
const INLINE_IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp"];
/// The largest attachment served (the upload limit).
const ATTACHMENT_BYTES: usize = 15 * 1024 * 1024;

/// `GET /feedback/{id}/attachments/{n}`: the bytes of attachment `n` of a
/// report of the viewer's org. The reference is the report's own (what the
/// widget uploaded), the blob must lie under the org's prefix, and the answer
/// can never render as a page: images keep their type, everything else is a
/// download, with `nosniff` and a sandboxing CSP.
async fn feedback_attachment(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let id: FeedbackId = parse_id(&id)?;
    let n: usize = parse_id(&n)?;
    let store = state.blobs.clone().ok_or(DashError::NotFound)?;
    let (fb_state, _) = state.bus.load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(id)).await?;
    let fb = fb_state.get().filter(|f| f.org == ctx.org).ok_or(DashError::NotFound)?;
    let a = fb.content.attachments.get(n).ok_or(DashError::NotFound)?;
    let bytes =
        crate::read_org_blob(store.as_ref(), ctx.org, &a.key, ATTACHMENT_BYTES).await?.ok_or(DashError::NotFound)?;
    let inline = INLINE_IMAGE_TYPES.contains(&a.content_type.as_str());
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    let content_type = if inline { a.content_type.as_str() } else { "application/octet-stream" };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).map_err(|_| DashError::NotFound)?);
    if !inline {
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok(resp)
}

/// How much of a transcript the run page reads and shows.
const TRANSCRIPT_BYTES: usize = 512 * 1024;
const TRANSCRIPT_ENTRIES: usize = 1000;
const TRANSCRIPT_TEXT: usize = 2000;

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The transcript (agent-written, so untrusted: every value is escaped) as a
/// list, one item per JSON line.
fn transcript_list(bytes: &[u8]) -> String {
    use userz_core::agent::TranscriptEntry;
    let mut b = String::from("<ol id=\"run-transcript-entries\">");
    let mut shown = 0usize;
    let lines: Vec<&[u8]> = bytes.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    for line in &lines {
        if shown == TRANSCRIPT_ENTRIES {
            break;
        }
        shown += 1;
        match serde_json::from_slice::<TranscriptEntry>(line) {
            Ok(TranscriptEntry::ModelTurn { step, text, tool_calls, tokens_in, tokens_out, ms }) => {
                let _ = write!(
                    b,
                    "<li class=\"transcript-model\" data-step=\"{step}\">step {step} · model · {tokens_in} in / {tokens_out} out · {ms} ms{}{}</li>",
                    if tool_calls.is_empty() { String::new() } else { format!(" · calls {}", esc(&tool_calls.join(", "))) },
                    if text.is_empty() { String::new() } else { format!("<pre>{}</pre>", esc(&clip(&text, TRANSCRIPT_TEXT))) },
                );
            }
            Ok(TranscriptEntry::ToolCall { step, tool, arguments, ok, error, result_bytes }) => {
                let outcome = match (ok, error) {
                    (true, _) => format!("ok, {result_bytes} bytes"),
                    (false, Some(code)) => format!("refused: {}", esc(&code)),
                    (false, None) => "failed".to_string(),
                };
                let _ = write!(
                    b,
                    "<li class=\"transcript-tool\" data-step=\"{step}\" data-tool=\"{t}\">step {step} · <code>{t}</code> · {outcome}<pre>{}</pre></li>",
                    esc(&clip(&arguments.to_string(), TRANSCRIPT_TEXT)),
                    t = esc(&tool),
                );
            }
            Ok(TranscriptEntry::Stopped { stop, steps }) => {
                let v = serde_json::to_value(&stop).unwrap_or_default();
                let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("unknown");
                let stop = match v.get("message").and_then(|m| m.as_str()) {
                    Some(m) => format!("{kind}: {}", clip(m, TRANSCRIPT_TEXT)),
                    None => kind.to_string(),
                };
                let _ = write!(b, "<li class=\"transcript-stop\">stopped: {} after {steps} steps</li>", esc(&stop));
            }
            Err(_) => b.push_str("<li class=\"transcript-unreadable\">(a line that is not a transcript entry)</li>"),
        }
    }
    b.push_str("</ol>");
    if lines.len() > shown {
        let _ = write!(b, "<p id=\"run-transcript-more\">{} more entries not shown.</p>", lines.len() - shown);
    }
    if bytes.len() >= TRANSCRIPT_BYTES {
        b.push_str("<p id=\"run-transcript-cut\">Only the first 512 KiB of the transcript are shown.</p>");
    }
    b
}

struct Follow {
    state: DashboardState,
    org: userz_core::ids::OrgId,
    run: RunId,
    last_position: u64,
    last_status: Option<String>,
    first: bool,
    done: bool,
}

fn run_events_stream(f: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(f, |mut f| async move {
        if f.done {
            return None;
        }
        if !f.first {
            tokio::time::sleep(f.state.config.sse_poll_interval).await;
        }
        f.first = false;
        let mut out = Vec::new();
        match run_detail(f.state.read_models.as_ref(), f.org, f.run).await {
            Ok(Some(d)) => {
                let seen = f.last_position;
                for t in d.timeline.iter().filter(|t| t.position > seen) {
                    let data = serde_json::json!({
                        "event": t.event, "at": when(t.at), "at_ms": t.at.as_millis(), "position": t.position,
                    });
                    out.push(Event::default().event("timeline").id(t.position.to_string()).data(data.to_string()));
                    f.last_position = t.position;
                }
                let status = d.status.as_str().to_string();
                if f.last_status.as_deref() != Some(status.as_str()) {
                    out.push(Event::default().event("status").data(status_json(&d).to_string()));
                    f.last_status = Some(status);
                }
                if d.status.is_terminal() {
                    out.push(Event::default().event("end").data("{}"));
                    f.done = true;
                }
            }
            Ok(None) => {
                out.push(Event::default().event("end").data("{}"));
                f.done = true;
            }
            Err(e) => tracing::warn!(error = %e, run = %f.run, "run events: read failed; retrying"),
        }
        Some((stream::iter(out.into_iter().map(Ok)), f))
    })
    .flatten()
}

async fn run_events(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    let id: RunId = parse_id(&id)?;
    run_detail(state.read_models.as_ref(), ctx.org, id).await?.ok_or(DashError::NotFound)?;
    // A reconnecting EventSource resumes after the last timeline entry it saw.
    let last_position =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let follow = Follow { state, org: ctx.org, run: id, last_position, last_status: None, first: true, done: false };
    Ok(Sse::new(run_events_stream(follow))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

// ------------------------------------------------------------------ PRs

fn severity_str(s: CommentSeverity) -> &'static str {
    match s {
        CommentSeverity::Nit => "nit",
        CommentSeverity::Suggestion => "suggestion",
        CommentSeverity::MustChange => "must_change",
    }
}

async fn load_pr(
    state: &DashboardState,
    ctx: &Ctx,
    id: &str,
) -> Result<(PrId, userz_core::domain::pr::PullRequest), DashError> {
    let id: PrId = parse_id(id)?;
    let (pr_state, _) = state.bus.load::<PrDecider>(&CommandBus::stream::<PrDecider>(id)).await?;
    let pr = pr_state.get().filter(|p| p.org == ctx.org).cloned().ok_or(DashError::NotFound)?;
    Ok((id, pr))
}

async fn pr_page(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let (id, pr) = load_pr(&state, &ctx, &id).await?;
    let rm = state.read_models.as_ref();
    let summary = pr_summary(rm, ctx.org, id).await?;
    let runs = pr_runs(rm, ctx.org, id).await?.unwrap_or_default();
    let status = match pr.closed {
        None => "open",
        Some(true) => "merged",
        Some(false) => "closed",
    };
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Pull request #{num}</h1><p>{st} · <a id=\"pr-url\" href=\"{href}\">{url}</a> · branch <code>{branch}</code>\
         · for <a href=\"/feedback/{fb}\">{fb}</a> · unresolved <span id=\"pr-unresolved\">{unres}</span>{inflight}</p>",
        num = pr.number,
        st = status_badge("pr-status", status),
        href = esc(safe_href(&pr.url)),
        url = esc(&pr.url),
        branch = esc(&pr.branch),
        fb = pr.feedback,
        unres = pr.unresolved().count(),
        inflight = match (&pr.revision_in_flight, &summary) {
            (Some(r), _) => format!(" · revision running: <a href=\"/runs/{r}\" id=\"pr-revision-run\">{r}</a>"),
            _ => String::new(),
        }
    );
    b.push_str("<h2>Review comments</h2>");
    let mut comments: Vec<&DiffComment> = pr.comments.iter().collect();
    comments.sort_by(|a, c| a.path.cmp(&c.path).then(a.line.cmp(&c.line)));
    b.push_str(
        "<table id=\"pr-comments\"><thead><tr><th>File</th><th>Line</th><th>Severity</th><th>Comment</th><th></th>\
         </tr></thead><tbody>",
    );
    for c in comments {
        let action = if c.resolved {
            "<span class=\"muted\">resolved</span>".to_string()
        } else {
            format!(
                "<form method=\"post\" action=\"/prs/{id}/comments/{cid}/resolve\" class=\"inline\">{csrf}\
                 <button class=\"resolve\">Resolve</button></form>",
                cid = c.comment.as_uuid(),
                csrf = csrf_input(&ctx.csrf)
            )
        };
        let _ = write!(
            b,
            "<tr class=\"pr-comment\" data-comment-id=\"{}\" data-resolved=\"{}\"><td><code>{}</code></td><td>{}</td>\
             <td>{}</td><td><pre>{}</pre></td><td>{}</td></tr>",
            c.comment.as_uuid(),
            c.resolved,
            esc(&c.path),
            c.line,
            severity_str(c.severity),
            esc(c.body.expose()),
            action
        );
    }
    b.push_str("</tbody></table>");
    if pr.closed.is_none() {
        let _ = write!(
            b,
            "<h3>Add a comment</h3><form method=\"post\" action=\"/prs/{id}/comments\" id=\"pr-comment-form\">{csrf}\
             <input name=\"path\" placeholder=\"path/to/file\" required> <input name=\"line\" type=\"number\" min=\"1\" \
             value=\"1\" required> <select name=\"severity\"><option>nit</option><option selected>suggestion</option>\
             <option>must_change</option></select><br><textarea name=\"body\" rows=\"3\" cols=\"60\" required></textarea>\
             <br><button id=\"pr-comment-submit\">Comment</button></form>\
             <form method=\"post\" action=\"/prs/{id}/revision\">{csrf}<button id=\"pr-request-revision\">Request a \
             revision for the unresolved comments</button></form>",
            csrf = csrf_input(&ctx.csrf)
        );
    }
    b.push_str(
        "<h2>Runs</h2><table id=\"pr-runs\"><thead><tr><th>Run</th><th>Kind</th><th>Status</th><th>Tokens</th>\
         <th>Cost</th></tr></thead><tbody>",
    );
    for r in &runs {
        let kind = match r.kind {
            userz_core::domain::run::RunKind::Initial => "initial",
            userz_core::domain::run::RunKind::Revision { .. } => "revision",
        };
        let _ = write!(
            b,
            "<tr><td><a href=\"/runs/{0}\">{0}</a></td><td>{1}</td><td><span class=\"status\" data-status=\"{2}\">{2}\
             </span></td><td>{3} / {4}</td><td>{5}</td></tr>",
            r.run,
            kind,
            r.status.as_str(),
            r.usage.tokens_in,
            r.usage.tokens_out,
            cost(r.usage.cost_micros)
        );
    }
    b.push_str("</tbody></table>");
    Ok(page(&ctx, "Pull request", &b))
}

async fn pr_command(state: &DashboardState, pr: PrId, cmd: PrCommand) -> Result<Response, DashError> {
    state.bus.execute::<PrDecider>(&CommandBus::stream::<PrDecider>(pr), CommandMeta::new(), &cmd).await?;
    Ok(Redirect::to(&format!("/prs/{pr}")).into_response())
}

#[derive(Deserialize)]
struct CommentForm {
    #[serde(default)]
    csrf: String,
    path: String,
    line: String,
    severity: String,
    body: String,
}

async fn pr_add_comment(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<CommentForm>,
) -> Result<Response, DashError> {
    ctx.check_csrf(&f.csrf)?;
    let (id, _) = load_pr(&state, &ctx, &id).await?;
    let line: u32 = f
        .line
        .trim()
        .parse()
        .map_err(|_| DashError::Invalid { field: "line", message: "a line number ≥ 1".into() })?;
    let severity = match f.severity.as_str() {
        "nit" => CommentSeverity::Nit,
        "suggestion" => CommentSeverity::Suggestion,
        "must_change" => CommentSeverity::MustChange,
        _ => return Err(DashError::Invalid { field: "severity", message: "nit | suggestion | must_change".into() }),
    };
    if f.body.len() > 16 * 1024 || f.path.len() > 1024 {
        return Err(DashError::Invalid { field: "body", message: "at most 16 KiB (path 1 KiB)".into() });
    }
    let comment = DiffComment {
        comment: CommentId::new(),
        path: f.path.trim().to_string(),
        line,
        body: Sensitive::new(f.body),
        severity,
        resolved: false,
    };
    pr_command(&state, id, PrCommand::AddComment { comment }).await
}

async fn pr_resolve_comment(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path((id, comment)): Path<(String, String)>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, DashError> {
    ctx.check_csrf(&f.csrf)?;
    let (id, _) = load_pr(&state, &ctx, &id).await?;
    let comment: CommentId = parse_id(&comment)?;
    pr_command(&state, id, PrCommand::ResolveComment { comment }).await
}

async fn pr_request_revision(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, DashError> {
    ctx.check_csrf(&f.csrf)?;
    let (id, _) = load_pr(&state, &ctx, &id).await?;
    pr_command(&state, id, PrCommand::RequestRevision { run: RunId::new() }).await
}

// ------------------------------------------------------------------ settings

async fn settings_page(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, DashError> {
    let rm = state.read_models.as_ref();
    let admin = ctx.role.can_administer();
    let mut b = String::from("<h1>Settings</h1>");
    if !admin {
        b.push_str("<p class=\"muted\" id=\"settings-readonly\">Your role is read-only here.</p>");
    }
    b.push_str("<h2>Apps</h2>");
    for app in org_apps(rm, ctx.org).await? {
        let s = &app.settings;
        let _ = write!(
            b,
            "<section class=\"app\" id=\"app-{id}\" data-app-id=\"{id}\"><h3>{name}</h3>\
             <p>Public key <code class=\"app-public-key\">{pk}</code> · processing <span class=\"app-mode\">{mode}</span>\
             · public submissions <span class=\"app-public\">{public}</span>{archived}</p>\
             <p>Allowed origins: <span class=\"app-origins\">{origins}</span></p>",
            id = app.app,
            name = esc(&app.name),
            pk = esc(&app.public_key),
            mode = s.processing_mode,
            public = if s.public_submission_enabled { "on" } else { "off" },
            archived = if app.archived { " · archived" } else { "" },
            origins = esc(&s.allowed_origins.join(" ")),
        );
        if admin {
            let mut modes = String::new();
            for m in [ProcessingMode::AutoPr, ProcessingMode::Manual, ProcessingMode::NoPr] {
                let sel = if m == s.processing_mode { " selected" } else { "" };
                let _ = write!(modes, "<option value=\"{m}\"{sel}>{m}</option>");
            }
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/settings/apps/{id}\" class=\"app-form\">{csrf}\
                 <label>Origins (one per line)<br><textarea name=\"origins\" rows=\"3\" cols=\"50\">{origins}</textarea>\
                 </label><br><label><input type=\"checkbox\" name=\"public\" value=\"on\"{checked}> accept public \
                 submissions</label> <label>Processing <select name=\"mode\">{modes}</select></label> \
                 <button>Save</button></form>",
                id = app.app,
                csrf = csrf_input(&ctx.csrf),
                origins = esc(&s.allowed_origins.join("\n")),
                checked = if s.public_submission_enabled { " checked" } else { "" },
            );
        }
        b.push_str("</section>");
    }
    b.push_str("<h2>API keys</h2>");
    b.push_str(
        "<table id=\"settings-keys\"><thead><tr><th>Prefix</th><th>Name</th><th>Created</th>\
                <th>State</th></tr></thead><tbody>",
    );
    for k in userz_engine::directory::keys_of_org(rm, ctx.org).await? {
        let _ = write!(
            b,
            "<tr><td><code>{}…</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&k.stored.prefix),
            esc(&k.name),
            esc(&when(k.issued_at)),
            if k.revoked_at.is_some() { "revoked" } else { "active" }
        );
    }
    b.push_str("</tbody></table>");
    b.push_str(
        "<h2>Repositories</h2><table id=\"settings-repos\"><thead><tr><th>Repo</th><th>Provider</th><th>App</th>\
         <th>Branch prefix</th><th>Extra forbidden paths</th></tr></thead><tbody>",
    );
    for r in org_repos(rm, ctx.org).await? {
        let provider = match &r.provider {
            userz_core::domain::repo::Provider::Github { full_name, .. } => format!("github {full_name}"),
            userz_core::domain::repo::Provider::Gitlab { base_url, project } => format!("gitlab {base_url} {project}"),
            userz_core::domain::repo::Provider::Git { remote } => format!("git {remote}"),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            r.repo,
            esc(&provider),
            r.app,
            esc(&r.branch_prefix),
            esc(&r.forbidden_paths.join(", "))
        );
    }
    b.push_str(
        "</tbody></table><h2>Secrets</h2><p class=\"muted\">Values are write-only: they are sealed with the \
         organization's key and never shown again.</p><table id=\"settings-secrets\"><thead><tr><th>Kind</th>\
         <th>Slot</th><th>Set</th></tr></thead><tbody>",
    );
    for s in org_secrets(rm, ctx.org).await? {
        let _ = write!(
            b,
            "<tr class=\"secret-row\" data-kind=\"{0}\" data-slot=\"{1}\"><td>{0}</td><td>{1}</td><td>{2}</td></tr>",
            esc(&s.kind),
            esc(&s.secret_id),
            esc(&when(s.at))
        );
    }
    b.push_str("</tbody></table>");
    if admin {
        let mut kinds = String::new();
        for k in SECRET_KINDS {
            let _ = write!(kinds, "<option value=\"{0}\">{0}</option>", k.as_str());
        }
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/settings/secrets\" id=\"secret-form\" autocomplete=\"off\">{}\
             <select name=\"kind\">{kinds}</select> <input name=\"secret_id\" placeholder=\"slot, e.g. openai\" \
             required> <input type=\"password\" name=\"value\" required autocomplete=\"new-password\"> \
             <button id=\"secret-submit\">Set secret</button></form>",
            csrf_input(&ctx.csrf)
        );
    }
    Ok(page(&ctx, "Settings", &b))
}

const SECRET_KINDS: [SecretKind; 7] = [
    SecretKind::AiProviderKey,
    SecretKind::RepoToken,
    SecretKind::ChatBotToken,
    SecretKind::AppSigningSecret,
    SecretKind::GithubAppPrivateKey,
    SecretKind::WebhookSecret,
    SecretKind::Other,
];

#[derive(Deserialize)]
struct AppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    origins: String,
    public: Option<String>,
    mode: String,
}

async fn settings_app(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<AppForm>,
) -> Result<Response, DashError> {
    ctx.check_csrf(&f.csrf)?;
    ctx.require_admin("change app settings")?;
    let id: AppId = parse_id(&id)?;
    org_app(state.read_models.as_ref(), ctx.org, id).await?.ok_or(DashError::NotFound)?;
    let mode = match f.mode.as_str() {
        "auto_pr" => ProcessingMode::AutoPr,
        "manual" => ProcessingMode::Manual,
        "no_pr" => ProcessingMode::NoPr,
        _ => return Err(DashError::Invalid { field: "mode", message: "auto_pr | manual | no_pr".into() }),
    };
    let origins: Vec<String> =
        f.origins.split(['\n', ' ', ',']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    let patch = AppSettingsPatch {
        processing_mode: Some(mode),
        public_submission_enabled: Some(f.public.as_deref() == Some("on")),
        allowed_origins: Some(origins),
        ..AppSettingsPatch::default()
    };
    state
        .bus
        .execute::<AppDecider>(
            &CommandBus::stream::<AppDecider>(id),
            CommandMeta::new(),
            &AppCommand::Configure { patch },
        )
        .await?;
    Ok(Redirect::to("/settings").into_response())
}

#[derive(Deserialize)]
struct SecretForm {
    #[serde(default)]
    csrf: String,
    kind: String,
    secret_id: String,
    value: String,
}

async fn settings_secret(
    State(state): State<DashboardState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<SecretForm>,
) -> Result<Response, DashError> {
    ctx.check_csrf(&f.csrf)?;
    ctx.require_admin("set secrets")?;
    if state.envelope.is_none() {
        return Err(DashError::NotConfigured("secret encryption (key provider)"));
    }
    let kind = SECRET_KINDS
        .into_iter()
        .find(|k| k.as_str() == f.kind)
        .ok_or_else(|| DashError::Invalid { field: "kind", message: format!("unknown kind {:?}", f.kind) })?;
    // The application layer's rules, the same as the admin CLI's.
    let value = userz_security::secret::SecretString::new(f.value);
    let admin = userz_engine::admin::Admin::new(
        state.bus.clone(),
        state.read_models.clone(),
        state.clock.clone(),
        state.envelope.clone(),
    );
    admin.set_secret(ctx.org, kind, &f.secret_id, &value, Actor::User { user: ctx.user }).await.map_err(
        |e| match e {
            userz_engine::admin::AdminError::Invalid { field, reason } => {
                DashError::Invalid { field: if field == "slot" { "secret_id" } else { "value" }, message: reason }
            }
            userz_engine::admin::AdminError::NotFound(_) => DashError::NotFound,
            other => DashError::Rejected { rule: "secret", message: other.to_string() },
        },
    )?;
    Ok(Redirect::to("/settings").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_is_escaped_and_its_lines_marked() {
        let html = diff_section(
            "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+<script>alert(1)</script>\n same\n",
        );
        assert!(html.contains("<span class=\"add\">+&lt;script&gt;alert(1)&lt;/script&gt;</span>"), "{html}");
        assert!(html.contains("<span class=\"del\">-old</span>") && html.contains("<span class=\"hunk\">@@"));
        assert!(
            html.contains("<span class=\"file\">+++ b/x</span>") && html.contains("<span class=\"ctx\"> same</span>")
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn stage_durations_read_as_ms_seconds_and_minutes() {
        assert_eq!(took(350), "+350 ms");
        assert_eq!(took(1234), "+1.2 s");
        assert_eq!(took(125_000), "+2 min 5 s");
        assert_eq!(took(-5), "+0 ms", "clock steps back: never negative");
    }

    #[test]
    fn a_timeline_entry_shows_how_long_its_stage_took() {
        let entry = |event: &str, at: i64, position: u64| TimelineEntry {
            event: event.into(),
            at: userz_core::Timestamp(at),
            position,
        };
        let (a, b) = (entry("AgentStarted", 1_000, 1), entry("AgentFinished", 4_500, 2));
        assert!(timeline_item(&a, None).ends_with("AgentStarted <span class=\"took\"></span></li>"));
        let li = timeline_item(&b, Some(&a));
        assert!(li.contains("data-at=\"4500\"") && li.contains(">+3.5 s</span>"), "{li}");
    }
}
