//! Bounded body reading (G1): a `Content-Length` over the cap is refused before
//! a byte is read, and a body that streams past the cap is cut off at the frame
//! that crosses it, through [`LimitedBody`]. The whole oversize body is never
//! buffered; at most `cap` bytes are held.

use std::future::poll_fn;
use std::pin::pin;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use serde_json::json;
use userz_security::body_limit::{BodyLimitError, LimitedBody};

use crate::error::{ApiError, ErrorCode};
use crate::state::IngestStats;

fn too_large(limit: usize) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, format!("request body exceeds {limit} bytes"))
        .with_details(json!({ "limit": limit }))
}

/// Refuses a declared `Content-Length` over `limit` (before reading).
pub fn check_content_length(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// Reads `body` up to `limit` bytes; `payload_too_large` as soon as it passes.
/// Records the bytes read in `stats`.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    stats: Option<&IngestStats>,
) -> Result<Bytes, ApiError> {
    if let Err(e) = check_content_length(headers, limit) {
        if let Some(s) = stats {
            s.record(0, true);
        }
        return Err(e);
    }
    let mut body = pin!(LimitedBody::new(body, limit));
    let mut buf = BytesMut::new();
    let result = loop {
        match poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => break Ok(()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(BodyLimitError::LengthLimitExceeded { limit })) => break Err(too_large(limit)),
            Some(Err(e)) => {
                break Err(ApiError::new(ErrorCode::InvalidBody, "the request body could not be read")
                    .with_details(json!({ "rule": "body_read", "reason": e.to_string() })))
            }
        }
    };
    let seen = body.bytes_seen();
    if let Some(s) = stats {
        s.record(seen, result.as_ref().is_err_and(|e| e.code == ErrorCode::PayloadTooLarge));
    }
    result.map(|()| buf.freeze())
}

/// Reads a small JSON body and decodes it into `T`, naming the field on failure.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read_limited(headers, body, limit, None).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let msg = e.to_string();
        // serde's messages name the field (`missing field `x``, `unknown field `x``).
        let field = msg.split('`').nth(1).filter(|_| msg.contains("field")).unwrap_or("");
        let rule = if msg.starts_with("missing field") {
            "required"
        } else if msg.starts_with("unknown field") {
            "unknown_field"
        } else if e.is_syntax() || e.is_eof() {
            "invalid_json"
        } else {
            "invalid_type"
        };
        ApiError::new(ErrorCode::InvalidBody, format!("invalid body: {msg}"))
            .with_details(json!({ "field": field, "rule": rule }))
    })
}
