//! The `/v1` routes and the one route table that builds both the [`Router`]
//! and the OpenAPI document (so a route cannot be missing from the document).

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::trace::TraceLayer;
use userz_core::decider::Rejection;
use userz_core::domain::common::Actor;
use userz_core::domain::feedback::{FeedbackCommand, FeedbackDecider, FeedbackState, FeedbackStatus};
use userz_core::domain::org::OrgCommand;
use userz_core::ids::{AppId, FeedbackId, RunId};
use userz_engine::projections::{feedback_page, run_detail, FeedbackQuery};
use userz_engine::{CommandBus, CommandError, CommandMeta};
use userz_security::ingest::{FeedbackSubmission, InvalidBody};
use userz_security::widget_auth::{mint_user_token, MintRequest};

use crate::auth::{authenticate_widget, client_ip, signing_secret, OrgAuth, WidgetMode};
use crate::body::{check_content_length, read_json, read_limited};
use crate::directory;
use crate::error::{ApiError, ErrorCode};
use crate::openapi;
use crate::state::ApiState;
use crate::wire;

/// How a route authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No credential.
    None,
    /// `Authorization: Bearer sk_…`.
    ApiKey,
    /// `X-Userz-Public-Key` (+ optional `X-Userz-User-Token`).
    Widget,
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// Path segment.
    Path,
    /// Query string.
    Query,
    /// Request header.
    Header,
}

/// One documented parameter.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    /// Name.
    pub name: &'static str,
    /// Location.
    pub location: ParamIn,
    /// Required.
    pub required: bool,
    /// Description.
    pub description: &'static str,
    /// JSON Schema.
    pub schema: Value,
}

/// One route: its method, path, documentation and error codes.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path in OpenAPI/axum syntax (`/v1/feedback/{id}`).
    pub path: &'static str,
    /// Unique operation id.
    pub operation_id: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Credential.
    pub auth: Auth,
    /// Parameters.
    pub params: Vec<ParamSpec>,
    /// Request body schema (JSON), if any.
    pub request: Option<Value>,
    /// Success status.
    pub status: u16,
    /// Media type of the success body (`application/json` but for `/widget.js`).
    pub media: &'static str,
    /// Success body schema.
    pub response: Value,
    /// Error codes the route can answer.
    pub errors: Vec<ErrorCode>,
}

/// The media type of every answer but the widget script.
const JSON: &str = "application/json";

struct Route {
    spec: RouteSpec,
    handler: MethodRouter<ApiState>,
}

fn p(name: &'static str, location: ParamIn, required: bool, description: &'static str, schema: Value) -> ParamSpec {
    ParamSpec { name, location, required, description, schema }
}

const KEY_ERRORS: [ErrorCode; 3] = [ErrorCode::MissingAuthorization, ErrorCode::RateLimited, ErrorCode::InternalError];

fn key_errors(extra: &[ErrorCode]) -> Vec<ErrorCode> {
    KEY_ERRORS.iter().chain(extra).copied().collect()
}

fn routes() -> Vec<Route> {
    use openapi::schema_ref as r;
    let id_param = |d: &'static str| p("id", ParamIn::Path, true, d, json!({"type": "string"}));
    vec![
        Route {
            spec: RouteSpec {
                method: Method::POST,
                path: "/v1/feedback",
                operation_id: "submitFeedback",
                summary: "Submit a feedback report (widget: public or private mode)",
                auth: Auth::Widget,
                params: vec![
                    p(
                        "Origin",
                        ParamIn::Header,
                        false,
                        "Must be on the App's allowedOrigins (required in public mode)",
                        json!({"type": "string"}),
                    ),
                    p(
                        "Idempotency-Key",
                        ParamIn::Header,
                        false,
                        "Repeating a key returns the first report (1-255 chars)",
                        json!({"type": "string", "minLength": 1, "maxLength": 255}),
                    ),
                ],
                request: Some(r("FeedbackSubmission")),
                status: 201,
                media: JSON,
                response: r("SubmitResult"),
                errors: vec![
                    ErrorCode::InvalidBody,
                    ErrorCode::MissingAuthorization,
                    ErrorCode::UnknownApp,
                    ErrorCode::InvalidUserToken,
                    ErrorCode::OriginNotAllowed,
                    ErrorCode::PublicDisabled,
                    ErrorCode::Forbidden,
                    ErrorCode::PayloadTooLarge,
                    ErrorCode::RateLimited,
                    ErrorCode::NotConfigured,
                    ErrorCode::InternalError,
                ],
            },
            handler: on(MethodFilter::POST, submit_feedback),
        },
        Route {
            spec: RouteSpec {
                method: Method::GET,
                path: "/v1/apps",
                operation_id: "listApps",
                summary: "The Apps of the key's organization",
                auth: Auth::ApiKey,
                params: vec![],
                request: None,
                status: 200,
                media: JSON,
                response: json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": r("App")}}}),
                errors: key_errors(&[]),
            },
            handler: on(MethodFilter::GET, list_apps),
        },
        Route {
            spec: RouteSpec {
                method: Method::GET,
                path: "/v1/feedback",
                operation_id: "listFeedback",
                summary: "A page of feedback, newest first",
                auth: Auth::ApiKey,
                params: vec![
                    p(
                        "appId",
                        ParamIn::Query,
                        false,
                        "Only this App's reports",
                        json!({"type": "string", "pattern": "^app_[0-9a-f]{32}$"}),
                    ),
                    p(
                        "status",
                        ParamIn::Query,
                        false,
                        "Only reports in this status",
                        json!({"type": "string", "enum": FeedbackStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()}),
                    ),
                    p(
                        "limit",
                        ParamIn::Query,
                        false,
                        "Page size (default 50)",
                        json!({"type": "integer", "minimum": 1, "maximum": 100}),
                    ),
                    p(
                        "cursor",
                        ParamIn::Query,
                        false,
                        "nextCursor of the previous page",
                        json!({"type": "string", "pattern": "^[0-9]{20}$"}),
                    ),
                    p(
                        "includeDuplicates",
                        ParamIn::Query,
                        false,
                        "Also list duplicates (hidden by default)",
                        json!({"type": "boolean"}),
                    ),
                ],
                request: None,
                status: 200,
                media: JSON,
                response: r("FeedbackPage"),
                errors: key_errors(&[ErrorCode::InvalidBody, ErrorCode::NotFound]),
            },
            handler: on(MethodFilter::GET, list_feedback),
        },
        Route {
            spec: RouteSpec {
                method: Method::GET,
                path: "/v1/feedback/{id}",
                operation_id: "getFeedback",
                summary: "One report in full",
                auth: Auth::ApiKey,
                params: vec![id_param("Feedback id")],
                request: None,
                status: 200,
                media: JSON,
                response: r("FeedbackDetail"),
                errors: key_errors(&[ErrorCode::NotFound]),
            },
            handler: on(MethodFilter::GET, get_feedback),
        },
        Route {
            spec: RouteSpec {
                method: Method::PATCH,
                path: "/v1/feedback/{id}",
                operation_id: "updateFeedback",
                summary: "Queue a report for a run, or archive it",
                auth: Auth::ApiKey,
                params: vec![id_param("Feedback id")],
                request: Some(r("FeedbackPatch")),
                status: 200,
                media: JSON,
                response: r("SubmitResult"),
                errors: key_errors(&[
                    ErrorCode::InvalidBody,
                    ErrorCode::NotFound,
                    ErrorCode::InvalidTransition,
                    ErrorCode::PayloadTooLarge,
                ]),
            },
            handler: on(MethodFilter::PATCH, patch_feedback),
        },
        Route {
            spec: RouteSpec {
                method: Method::GET,
                path: "/v1/agent-runs/{id}",
                operation_id: "getAgentRun",
                summary: "One agent run: provider, model, tokens, cost, PR, guardrail, timings",
                auth: Auth::ApiKey,
                params: vec![id_param("Run id")],
                request: None,
                status: 200,
                media: JSON,
                response: r("AgentRun"),
                errors: key_errors(&[ErrorCode::NotFound]),
            },
            handler: on(MethodFilter::GET, get_run),
        },
        Route {
            spec: RouteSpec {
                method: Method::POST,
                path: "/v1/tokens/mint",
                operation_id: "mintUserToken",
                summary: "Mint a private-mode user token (HS256) for one of the org's Apps",
                auth: Auth::ApiKey,
                params: vec![],
                request: Some(r("MintRequest")),
                status: 200,
                media: JSON,
                response: r("MintedToken"),
                errors: key_errors(&[
                    ErrorCode::InvalidBody,
                    ErrorCode::NotFound,
                    ErrorCode::NotConfigured,
                    ErrorCode::PayloadTooLarge,
                ]),
            },
            handler: on(MethodFilter::POST, mint_token),
        },
        Route {
            spec: RouteSpec {
                method: Method::POST,
                path: "/v1/feedback/upload-url",
                operation_id: "createUploadUrl",
                summary: "Pre-sign a single PUT of a screenshot or attachment (<= 15 MiB, expires in 300 s)",
                auth: Auth::Widget,
                params: vec![],
                request: Some(upload_request_schema()),
                status: 201,
                media: JSON,
                response: json!({
                    "type": "object",
                    "required": ["uploadUrl", "key", "expiresAt", "headers"],
                    "properties": {
                        "uploadUrl": {"type": "string"},
                        "key": {"type": "string"},
                        "expiresAt": {"type": "string"},
                        "headers": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                }),
                errors: vec![
                    ErrorCode::InvalidBody,
                    ErrorCode::MissingAuthorization,
                    ErrorCode::UnknownApp,
                    ErrorCode::InvalidUserToken,
                    ErrorCode::OriginNotAllowed,
                    ErrorCode::PublicDisabled,
                    ErrorCode::PayloadTooLarge,
                    ErrorCode::RateLimited,
                    ErrorCode::NotConfigured,
                ],
            },
            handler: on(MethodFilter::POST, upload_url),
        },
        Route {
            spec: RouteSpec {
                method: Method::PUT,
                path: "/v1/uploads/{ticket}",
                operation_id: "putUpload",
                summary: "Upload the bytes of a pre-signed ticket (exact Content-Type and size, once)",
                auth: Auth::None,
                params: vec![p("ticket", ParamIn::Path, true, "The ticket from upload-url", json!({"type": "string"}))],
                request: Some(json!({"type": "string", "contentEncoding": "binary"})),
                status: 201,
                media: JSON,
                response: json!({"type": "object"}),
                errors: vec![
                    ErrorCode::InvalidBody,
                    ErrorCode::InvalidSignature,
                    ErrorCode::PayloadTooLarge,
                    ErrorCode::NotConfigured,
                ],
            },
            handler: on(MethodFilter::PUT, put_upload).options(put_upload),
        },
        Route {
            spec: RouteSpec {
                method: Method::POST,
                path: "/v1/webhooks/{provider}",
                operation_id: "receiveWebhook",
                summary: "Inbound webhook (stripe, github, gitlab, slack, discord): verified with the provider's \
                          scheme, replay-guarded, turned into events",
                auth: Auth::None,
                params: vec![p(
                    "provider",
                    ParamIn::Path,
                    true,
                    "Which provider's scheme verifies the delivery",
                    json!({"type": "string", "enum": WEBHOOK_PROVIDERS}),
                )],
                request: Some(json!({"type": "object"})),
                status: 200,
                media: JSON,
                response: json!({"type": "object"}),
                errors: vec![
                    ErrorCode::InvalidBody,
                    ErrorCode::InvalidSignature,
                    ErrorCode::InvalidTransition,
                    ErrorCode::PayloadTooLarge,
                    ErrorCode::NotFound,
                    ErrorCode::NotConfigured,
                ],
            },
            handler: on(MethodFilter::POST, webhook),
        },
        Route {
            spec: RouteSpec {
                method: Method::GET,
                path: "/widget.js",
                operation_id: "widgetScript",
                summary: "The feedback widget script (see crate::WIDGET_JS)",
                auth: Auth::None,
                params: vec![],
                request: None,
                status: 200,
                media: "text/javascript",
                response: json!({"type": "string"}),
                errors: vec![],
            },
            handler: on(MethodFilter::GET, serve_widget),
        },
        Route {
            spec: RouteSpec {
                method: Method::GET,
                path: "/openapi.json",
                operation_id: "openapi",
                summary: "This document (OpenAPI 3.1)",
                auth: Auth::None,
                params: vec![],
                request: None,
                status: 200,
                media: JSON,
                response: json!({"type": "object"}),
                errors: vec![],
            },
            handler: on(MethodFilter::GET, serve_openapi),
        },
    ]
}

/// `GET /widget.js`: the widget, cacheable for an hour.
async fn serve_widget() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        crate::WIDGET_JS,
    )
        .into_response()
}

/// `createUploadUrl`'s body: each kind with the content types it accepts.
fn upload_request_schema() -> Value {
    use crate::upload::UploadKind;
    let branch = |kinds: &[UploadKind]| {
        json!({
            "properties": {
                "kind": {"enum": kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
                "contentType": {"enum": kinds[0].allowed_types()},
            }
        })
    };
    json!({
        "type": "object",
        "required": ["kind", "contentType", "byteSize"],
        "properties": {
            "kind": {"type": "string", "enum": ["screenshot", "annotated", "attachment"]},
            "contentType": {"type": "string", "description": "Exact and lower-case; which ones depends on kind"},
            "byteSize": {"type": "integer", "minimum": 1, "maximum": 15 * 1024 * 1024}
        },
        "oneOf": [
            branch(&[UploadKind::Screenshot, UploadKind::Annotated]),
            branch(&[UploadKind::Attachment]),
        ],
    })
}

fn not_configured(what: &str) -> ApiError {
    ApiError::new(ErrorCode::NotConfigured, format!("this server has no {what} configured"))
        .with_details(json!({ "rule": "not_configured", "feature": what }))
}

/// `POST /v1/feedback/upload-url`: widget authentication, then the upload
/// module issues the ticket.
async fn upload_url(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    use tower::ServiceExt as _;
    let uploads = state.uploads().cloned().ok_or_else(|| not_configured("uploads"))?;
    let (mut parts, body) = req.into_parts();
    let ip = client_ip(&state, &parts.headers, &parts.extensions);
    let auth = authenticate_widget(&state, &parts.headers, ip).await?;
    parts.extensions.insert(crate::upload::UploadCaller { org: auth.app.org, app: auth.app.app });
    let res = crate::upload::upload_url_router(uploads).oneshot(Request::from_parts(parts, body)).await;
    Ok(res.unwrap_or_else(|e| match e {}))
}

/// `PUT /v1/uploads/{ticket}` (and its preflight): the ticket is the credential.
async fn put_upload(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    use tower::ServiceExt as _;
    let uploads = state.uploads().cloned().ok_or_else(|| not_configured("uploads"))?;
    // The inner router matches `{ticket}` again; the outer match's path
    // parameters must not ride along in the extensions, or its `Path`
    // extractor would see two parameters.
    let (mut parts, body) = req.into_parts();
    parts.extensions = axum::http::Extensions::new();
    let res = crate::upload::upload_put_router(uploads).oneshot(Request::from_parts(parts, body)).await;
    Ok(res.unwrap_or_else(|e| match e {}))
}

/// `POST /v1/webhooks/{provider}`: the signature is the credential.
async fn webhook(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    use tower::ServiceExt as _;
    let webhooks = state.webhooks().cloned().ok_or_else(|| not_configured("webhooks"))?;
    let res = crate::webhooks::router(webhooks).fallback(unknown_webhook_provider).oneshot(req).await;
    Ok(res.unwrap_or_else(|e| match e {}))
}

/// The webhook providers `/v1/webhooks/{provider}` serves.
const WEBHOOK_PROVIDERS: [&str; 5] = ["stripe", "github", "gitlab", "slack", "discord"];

/// `/v1/webhooks/{provider}` naming no provider: the error envelope, like
/// every other `/v1` answer.
async fn unknown_webhook_provider(req: Request) -> ApiError {
    let provider = req.uri().path().trim_start_matches("/v1/webhooks/").to_string();
    ApiError::new(
        ErrorCode::NotFound,
        format!("no webhook provider {provider:?}: one of {}", WEBHOOK_PROVIDERS.join(", ")),
    )
    .with_details(json!({ "field": "provider", "rule": "one_of", "allowed": WEBHOOK_PROVIDERS }))
}

/// The route table (documentation view). Every entry is routed by [`api_router`].
pub fn route_table() -> Vec<RouteSpec> {
    routes().into_iter().map(|r| r.spec).collect()
}

/// The API: every route of [`route_table`], with request spans (fields `org`,
/// `app`, `feedback`, `run` recorded once known). Nest or merge it into an
/// existing service.
pub fn api_router(state: ApiState) -> Router {
    let mut router = Router::new();
    for r in routes() {
        router = router.route(r.spec.path, r.handler);
    }
    router
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| req.uri().path().to_string());
            tracing::info_span!(
                "userz_http",
                method = %req.method(),
                path = %path,
                org = tracing::field::Empty,
                app = tracing::field::Empty,
                feedback = tracing::field::Empty,
                run = tracing::field::Empty,
            )
        }))
        .layer(axum::middleware::from_fn(crate::cors::widget_cors))
        .with_state(state)
}

/// A fallback answering unknown paths with the API's `not_found` body. Not
/// installed by [`api_router`] (axum refuses to merge two routers that both
/// have a fallback); set it on the outermost router if the API owns it.
pub async fn not_found_fallback() -> ApiError {
    ApiError::not_found("route")
}

fn record(field: &str, value: impl std::fmt::Display) {
    tracing::Span::current().record(field, tracing::field::display(value));
}

fn invalid_submission(e: InvalidBody) -> ApiError {
    let first = e.violations.first();
    let violations: Vec<Value> =
        e.violations.iter().map(|v| json!({"field": v.path, "rule": v.code.as_str(), "message": v.message})).collect();
    ApiError::new(ErrorCode::InvalidBody, e.to_string()).with_details(json!({
        "field": first.map(|v| v.path.clone()),
        "rule": first.map(|v| v.code.as_str()),
        "violations": violations,
    }))
}

fn command_error(e: CommandError) -> ApiError {
    match e {
        CommandError::Rejected(r) => match r {
            Rejection::NotFound { entity } => ApiError::not_found(entity),
            Rejection::InvalidInput { field, reason } => ApiError::invalid_field(field, "invalid_input", reason),
            Rejection::InvalidTransition { command, status } => {
                ApiError::new(ErrorCode::InvalidTransition, format!("cannot {command} while {status}"))
                    .with_details(json!({"rule": "invalid_transition", "command": command, "from": status}))
            }
            other => ApiError::new(ErrorCode::InvalidTransition, other.to_string())
                .with_details(json!({"rule": other.rule()})),
        },
        CommandError::Failed(e) => e.into(),
    }
}

async fn submit_feedback(State(state): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let limit = state.config().body_limit;
    let stats = state.ingest_stats();
    if let Err(e) = check_content_length(&parts.headers, limit) {
        stats.record(0, true);
        return Err(e);
    }
    let ip = client_ip(&state, &parts.headers, &parts.extensions);
    let auth = authenticate_widget(&state, &parts.headers, ip).await?;
    let bytes = read_limited(&parts.headers, body, limit, Some(&stats)).await?;
    let submission = FeedbackSubmission::from_json(&bytes).map_err(invalid_submission)?;
    drop(bytes);
    let claims = match &auth.mode {
        WidgetMode::Private(c) => Some(c),
        WidgetMode::Public => None,
    };
    let content = wire::content(submission, claims);
    let app = &auth.app;
    // A header that is not visible ASCII is as unusable as an empty one.
    let idempotency_key = parts.headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default());
    let submitted = userz_engine::intake::submit(
        state.bus(),
        userz_engine::intake::Submission {
            org: app.org,
            app: app.app,
            content,
            idempotency_key,
            received_at: state.clock().now(),
        },
    )
    .await
    .map_err(|e| match e {
        // A key outside the caller's organization is someone else's: refused
        // as forbidden, not as a malformed body.
        userz_engine::intake::SubmitError::Invalid { field, rule: rule @ "foreign_key", message } => {
            ApiError::new(ErrorCode::Forbidden, message).with_details(json!({ "field": field, "rule": rule }))
        }
        userz_engine::intake::SubmitError::Invalid { field, rule, message } => {
            ApiError::invalid_field(&field, rule, message)
        }
        userz_engine::intake::SubmitError::Command(e) => command_error(e),
        other => ApiError::from(userz_core::Error::Invalid(other.to_string())),
    })?;
    let (feedback, status) = (submitted.feedback, submitted.status);
    record("feedback", feedback);
    let code = if submitted.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    Ok((code, Json(json!({"id": feedback.to_string(), "status": status}))).into_response())
}

async fn list_apps(State(state): State<ApiState>, auth: OrgAuth) -> Result<Json<Value>, ApiError> {
    let apps = directory::apps_of_org(state.read_models(), auth.org).await?;
    Ok(Json(json!({"items": apps.iter().map(wire::app).collect::<Vec<_>>()})))
}

async fn list_feedback(
    State(state): State<ApiState>,
    auth: OrgAuth,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_field("query", "invalid_format", e.body_text()))?;
    let mut q =
        FeedbackQuery { org: auth.org, app: None, status: None, include_duplicates: false, cursor: None, limit: 50 };
    for (k, v) in pairs {
        match k.as_str() {
            "appId" => {
                // The form the API shows (`app_` and 32 lower-case hex digits), as documented.
                let shown = v.len() == 36
                    && v.starts_with("app_")
                    && v[4..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                let app: AppId = v.parse().ok().filter(|_| shown).ok_or_else(|| {
                    ApiError::invalid_field("appId", "invalid_format", "appId: not an App id (app_ and 32 hex digits)")
                })?;
                if directory::app_of_org(state.read_models(), auth.org, app).await?.is_none() {
                    return Err(ApiError::not_found("app"));
                }
                record("app", app);
                q.app = Some(app);
            }
            "status" => {
                q.status = Some(FeedbackStatus::parse(&v).ok_or_else(|| {
                    ApiError::invalid_field("status", "invalid_enum", "status: not a feedback status")
                })?)
            }
            "limit" => {
                q.limit = v.parse::<usize>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                    ApiError::invalid_field("limit", "out_of_range", "limit: an integer from 1 to 100")
                })?
            }
            "cursor" => {
                if v.len() != 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "invalid_format",
                        "cursor: not a cursor from this API",
                    ));
                }
                q.cursor = Some(v);
            }
            "includeDuplicates" => {
                q.include_duplicates = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::invalid_field(
                            "includeDuplicates",
                            "invalid_type",
                            "includeDuplicates: true or false",
                        ))
                    }
                }
            }
            other => {
                return Err(ApiError::new(ErrorCode::InvalidBody, format!("unknown query parameter {other}"))
                    .with_details(json!({"field": other, "rule": "unknown_field"})))
            }
        }
    }
    let page = feedback_page(state.read_models(), &q).await?;
    Ok(Json(json!({
        "items": page.items.iter().map(wire::summary).collect::<Vec<_>>(),
        "nextCursor": page.next_cursor,
    })))
}

async fn load_feedback(
    state: &ApiState,
    auth: &OrgAuth,
    id: &str,
) -> Result<userz_core::domain::feedback::Feedback, ApiError> {
    let id: FeedbackId = id.parse().map_err(|_| ApiError::not_found("feedback"))?;
    record("feedback", id);
    let (fb, _) = state.bus().load::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(id)).await?;
    match fb {
        FeedbackState::Exists(f) if f.org == auth.org => {
            record("app", f.app);
            Ok(*f)
        }
        _ => Err(ApiError::not_found("feedback")),
    }
}

async fn get_feedback(
    State(state): State<ApiState>,
    auth: OrgAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let f = load_feedback(&state, &auth, &id).await?;
    Ok(Json(wire::detail(&f)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    status: String,
}

async fn patch_feedback(
    State(state): State<ApiState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let f = load_feedback(&state, &auth, &id).await?;
    let patch: PatchBody = read_json(&headers, body, state.config().json_limit).await?;
    let by = Actor::ApiKey { prefix: auth.prefix.clone() };
    let cmd = match patch.status.as_str() {
        "queued" => FeedbackCommand::Queue { by },
        "archived" => FeedbackCommand::Archive { by },
        _ => return Err(ApiError::invalid_field("status", "invalid_enum", "status: \"queued\" or \"archived\"")),
    };
    let outcome = state
        .bus()
        .execute::<FeedbackDecider>(&CommandBus::stream::<FeedbackDecider>(f.feedback), CommandMeta::new(), &cmd)
        .await
        .map_err(command_error)?;
    let status = outcome.state.get().map(|f| f.stage.status().as_str()).unwrap_or("received");
    Ok(Json(json!({"id": f.feedback.to_string(), "status": status})))
}

async fn get_run(
    State(state): State<ApiState>,
    auth: OrgAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run: RunId = id.parse().map_err(|_| ApiError::not_found("agent run"))?;
    record("run", run);
    let d = run_detail(state.read_models(), auth.org, run).await?.ok_or_else(|| ApiError::not_found("agent run"))?;
    record("feedback", d.feedback);
    Ok(Json(wire::run(&d)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MintBody {
    app_id: String,
    sub: String,
    #[serde(default)]
    ctx: Option<Value>,
    /// Seconds; `3600` and `3600.0` alike (JSON Schema's integer).
    #[serde(default)]
    expires_in: Option<Value>,
}

async fn mint_token(
    State(state): State<ApiState>,
    auth: OrgAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: MintBody = read_json(&headers, body, state.config().json_limit).await?;
    let app: AppId = req.app_id.parse().map_err(|_| ApiError::not_found("app"))?;
    let app =
        directory::app_of_org(state.read_models(), auth.org, app).await?.ok_or_else(|| ApiError::not_found("app"))?;
    record("app", app.app);
    if req.sub.is_empty() || req.sub.chars().count() > 256 {
        return Err(ApiError::invalid_field("sub", "too_long", "sub: 1-256 characters"));
    }
    let ctx = match req.ctx {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => return Err(ApiError::invalid_field("ctx", "invalid_type", "ctx: must be an object")),
    };
    let lifetime = match req.expires_in {
        None | Some(Value::Null) => None,
        Some(v) => Some(std::time::Duration::from_secs(userz_security::ingest::integral_u64(&v).ok_or_else(|| {
            ApiError::invalid_field("expiresIn", "invalid_type", "expiresIn: an integer number of seconds")
        })?)),
    };
    let (_, secret) = signing_secret(&state, &app).await?;
    let request = MintRequest { sub: req.sub, ctx, lifetime };
    let minted = mint_user_token(app.app, &secret, &request, state.clock().now()).map_err(|e| {
        let field = match e.code() {
            "lifetime_out_of_range" => "expiresIn",
            "ctx_too_large" => "ctx",
            "missing_claim" => "sub",
            _ => "",
        };
        if field.is_empty() {
            ApiError::internal(format!("mint failed: {e}"))
        } else {
            ApiError::invalid_field(field, e.code(), e.to_string())
        }
    })?;
    state.record_org_event(
        auth.org,
        OrgCommand::RecordTokenMinted {
            app: app.app,
            by: Actor::ApiKey { prefix: auth.prefix.clone() },
            expires_at: minted.expires_at,
        },
    );
    Ok(Json(json!({
        "token": minted.token.expose_secret(),
        "appId": app.app.to_string(),
        "issuedAt": minted.issued_at.as_millis(),
        "expiresAt": minted.expires_at.as_millis(),
    })))
}

async fn serve_openapi() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(|| openapi::document(&route_table())).clone())
}
