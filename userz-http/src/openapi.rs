//! The OpenAPI 3.1 document, generated from the route table
//! ([`crate::routes::route_table`]) plus the shared schemas below.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::ErrorCode;
use crate::routes::{Auth, ParamIn, RouteSpec};

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn schemas() -> Value {
    let s = |t: &str| json!({ "type": t });
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
                    "message": s("string"),
                    "details": {"type": "object"},
                },
            }},
        },
        "FeedbackSubmission": {
            "type": "object",
            "required": ["text", "severity"],
            "additionalProperties": false,
            "description": "Optional fields may also be null (as if absent).",
            "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": 8192, "pattern": "\\S", "description": "Not only whitespace"},
                "severity": {"type": "string", "enum": ["low", "medium", "high"]},
                "url": {"type": ["string", "null"], "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp]([Ss])?://", "description": "An http(s) URL"},
                "userAgent": {"type": ["string", "null"], "maxLength": 512},
                "viewport": {
                    "type": ["object", "null"], "required": ["w", "h", "dpr"], "additionalProperties": false,
                    "properties": {
                        "w": {"type": "integer", "minimum": 1, "maximum": 100_000},
                        "h": {"type": "integer", "minimum": 1, "maximum": 100_000},
                        "dpr": {"type": "number", "exclusiveMinimum": 0, "maximum": 16},
                    },
                },
                "consoleLogs": {"type": ["array", "null"], "maxItems": 500, "items": {
                    "type": "object", "required": ["level", "message", "ts"], "additionalProperties": false,
                    "properties": {
                        "level": {"type": "string", "enum": ["log", "info", "warn", "error", "debug", "trace"]},
                        "message": {"type": "string", "maxLength": 1000},
                        "ts": {"type": "number", "minimum": 0},
                    },
                }},
                "attachments": {"type": ["array", "null"], "maxItems": 10, "items": {
                    "type": "object", "required": ["key", "kind", "contentType", "byteSize"], "additionalProperties": false,
                    "properties": {
                        "key": {"type": "string", "minLength": 1, "maxLength": 512},
                        "kind": {"type": "string", "enum": ["screenshot", "annotated", "attachment"]},
                        "contentType": {"type": "string", "minLength": 1, "maxLength": 255},
                        "byteSize": {"type": "integer", "minimum": 0, "maximum": 15 * 1024 * 1024},
                        "width": {"type": ["integer", "null"], "minimum": 1, "maximum": 100_000},
                        "height": {"type": ["integer", "null"], "minimum": 1, "maximum": 100_000},
                    },
                }},
                "componentTarget": {"type": ["string", "null"], "maxLength": 1024},
                "metadata": {"type": ["object", "null"], "description": "At most 4 KB serialised"},
                "identity": {"type": ["object", "null"], "description": "Public mode only; private mode takes identity from the token. At most 2 KB serialised"},
            },
        },
        "SubmitResult": {"type": "object", "required": ["id", "status"], "properties": {"id": s("string"), "status": s("string")}},
        "App": {
            "type": "object",
            "required": ["id", "name", "publicKey", "publicSubmissionEnabled", "allowedOrigins", "processingMode"],
            "properties": {
                "id": s("string"), "name": s("string"), "publicKey": s("string"),
                "publicSubmissionEnabled": s("boolean"),
                "allowedOrigins": {"type": "array", "items": s("string")},
                "processingMode": {"type": "string", "enum": ["auto_pr", "manual", "no_pr"]},
                "batchEnabled": s("boolean"), "batchWindowHours": nullable("integer"),
                "incrementalMergeEnabled": s("boolean"), "repoId": nullable("string"), "archived": s("boolean"),
            },
        },
        "Guardrail": {"type": ["object", "null"], "properties": {"file": s("string"), "rule": s("string")}},
        "FeedbackSummary": {
            "type": "object",
            "required": ["id", "appId", "status", "receivedAt"],
            "properties": {
                "id": s("string"), "appId": s("string"), "status": s("string"), "label": nullable("string"),
                "duplicateOf": nullable("string"), "duplicates": {"type": "array", "items": s("string")},
                "latestRunId": nullable("string"), "prUrl": nullable("string"), "guardrail": schema_ref("Guardrail"),
                "failure": nullable("string"), "branch": nullable("string"),
                "receivedAt": {"type": "integer", "description": "ms since the epoch"},
                "title": {"type": "string", "description": "the report's first line, at most 120 characters (+ an ellipsis when cut)"},
                "severity": {"type": "string", "enum": ["low", "medium", "high"]},
                "confidence": nullable("number"),
                "signals": {"type": "array", "items": s("string"), "description": "codes of the pre-filter signals that fired"},
            },
        },
        "FeedbackPage": {
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": schema_ref("FeedbackSummary")}, "nextCursor": nullable("string")},
        },
        "FeedbackDetail": {
            "type": "object",
            "required": ["id", "appId", "status", "text", "consoleLogs", "attachments", "signals", "duplicates"],
            "properties": {
                "id": s("string"), "appId": s("string"), "status": s("string"), "receivedAt": s("integer"),
                "text": s("string"), "severity": s("string"), "url": nullable("string"), "userAgent": nullable("string"),
                "viewport": {"type": ["object", "null"]},
                "consoleLogs": {"type": "array", "items": {"type": "object", "properties": {"level": s("string"), "message": s("string"), "ts": nullable("integer")}}},
                "attachments": {"type": "array", "items": {"type": "object"}},
                "componentTarget": nullable("string"), "metadata": {"type": ["object", "null"]},
                "reporter": {"type": ["object", "null"]},
                "label": nullable("string"), "confidence": nullable("number"), "classifier": nullable("string"),
                "signals": {"type": "array", "items": {"type": "object", "properties": {"kind": s("string"), "offset": s("integer"), "len": s("integer"), "weight": s("number")}}},
                "duplicateOf": nullable("string"), "duplicates": {"type": "array", "items": s("string")},
                "consolidated": {"type": ["object", "null"]}, "runIds": {"type": "array", "items": s("string")},
                "prUrl": nullable("string"), "branch": nullable("string"), "guardrail": schema_ref("Guardrail"),
                "failure": nullable("string"), "batchClosesAt": nullable("integer"),
            },
        },
        "FeedbackPatch": {
            "type": "object", "required": ["status"], "additionalProperties": false,
            "properties": {"status": {"type": "string", "enum": ["queued", "archived"]}},
        },
        "AgentRun": {
            "type": "object",
            "required": ["id", "feedbackId", "status", "provider", "model", "tokensIn", "tokensOut", "costMicros", "timings"],
            "properties": {
                "id": s("string"), "feedbackId": s("string"), "kind": {"type": "string", "enum": ["initial", "revision"]},
                "status": s("string"), "branch": s("string"), "provider": s("string"), "model": s("string"),
                "tokensIn": s("integer"), "tokensOut": s("integer"), "costMicros": {"type": "integer", "description": "micro-USD"},
                "prUrl": nullable("string"), "guardrail": schema_ref("Guardrail"), "failure": nullable("string"),
                "retries": s("integer"), "egressDenied": s("integer"),
                "timings": {"type": "object", "properties": {
                    "queuedAt": s("integer"), "startedAt": nullable("integer"), "finishedAt": nullable("integer"),
                    "deadlineAt": nullable("integer"), "durationMs": nullable("integer"),
                }},
                "timeline": {"type": "array", "items": {"type": "object", "properties": {"event": s("string"), "at": s("integer")}}},
            },
        },
        "MintRequest": {
            "type": "object", "required": ["appId", "sub"], "additionalProperties": false,
            "properties": {
                "appId": s("string"), "sub": {"type": "string", "minLength": 1, "maxLength": 256},
                "ctx": {"type": ["object", "null"], "description": "At most 2 KB serialised"},
                "expiresIn": {"type": ["integer", "null"], "minimum": 60, "maximum": 86400, "description": "Seconds (default 3600)"},
            },
        },
        "MintedToken": {
            "type": "object", "required": ["token", "appId", "issuedAt", "expiresAt"],
            "properties": {"token": s("string"), "appId": s("string"), "issuedAt": s("integer"), "expiresAt": s("integer")},
        },
    })
}

fn location(l: ParamIn) -> &'static str {
    match l {
        ParamIn::Path => "path",
        ParamIn::Query => "query",
        ParamIn::Header => "header",
    }
}

fn operation(r: &RouteSpec) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(r.operation_id));
    op.insert("summary".into(), json!(r.summary));
    let params: Vec<Value> = r
        .params
        .iter()
        .map(|p| {
            json!({"name": p.name, "in": location(p.location), "required": p.required || p.location == ParamIn::Path,
                   "description": p.description, "schema": p.schema})
        })
        .collect();
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if let Some(body) = &r.request {
        op.insert("requestBody".into(), json!({"required": true, "content": {"application/json": {"schema": body}}}));
    }
    let security = match r.auth {
        Auth::None => json!([]),
        Auth::ApiKey => json!([{"apiKey": []}]),
        Auth::Widget => json!([{"publicKey": []}, {"publicKey": [], "userToken": []}]),
    };
    op.insert("security".into(), security);
    let mut responses = Map::new();
    responses
        .insert(r.status.to_string(), json!({"description": "Success", "content": {r.media: {"schema": r.response}}}));
    if r.params.iter().any(|p| p.name == "Idempotency-Key") {
        responses.insert(
            "200".into(),
            json!({"description": "The answer an earlier request with the same Idempotency-Key got",
                   "content": {r.media: {"schema": r.response}}}),
        );
    }
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for c in &r.errors {
        by_status.entry(c.status().as_u16()).or_default().push(c.as_str());
    }
    for (status, codes) in by_status {
        let mut resp = json!({
            "description": format!("Error: {}", codes.join(", ")),
            "content": {"application/json": {"schema": schema_ref("Error")}},
        });
        if status == 429 {
            resp["headers"] = json!({"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}});
        }
        responses.insert(status.to_string(), resp);
    }
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

/// The OpenAPI 3.1 document for `routes`.
pub fn document(routes: &[RouteSpec]) -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for r in routes {
        paths.entry(r.path).or_default().insert(r.method.as_str().to_ascii_lowercase(), operation(r));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Userz API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Feedback ingest (widget) and the org API. Errors are {\"error\":{\"code\",\"message\",\"details\"?}} with stable codes.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "Org API key: Authorization: Bearer sk_…"},
                "publicKey": {"type": "apiKey", "in": "header", "name": "X-Userz-Public-Key", "description": "The App's pub_ key (widget)"},
                "userToken": {"type": "apiKey", "in": "header", "name": "X-Userz-User-Token", "description": "Private mode: HS256 user token"},
            },
        },
    })
}
