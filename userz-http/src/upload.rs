//! Pre-signed single-PUT uploads: `POST /v1/feedback/upload-url` and
//! `PUT /v1/uploads/{ticket}`.
//!
//! # Issuing
//!
//! `POST /v1/feedback/upload-url` with `{"kind","contentType","byteSize"}`
//! answers `201` with `{"uploadUrl","key","expiresAt","headers"}`:
//!
//! | kind | allowed `contentType` |
//! |---|---|
//! | `screenshot` | `image/png`, `image/jpeg`, `image/webp` |
//! | `annotated` | `image/png`, `image/jpeg`, `image/webp` |
//! | `attachment` | `image/png`, `image/jpeg`, `image/webp`, `text/plain`, `application/pdf` |
//!
//! `byteSize` is the exact size, 1 byte to [`MAX_UPLOAD_BYTES`] (15 MiB).
//! A bad request is `400 invalid_body` with `details.field` and
//! `details.rule`: `body`/`json`, `kind`/`one_of`, a field/`missing` or
//! `type`, `contentType`/`content_type_not_allowed` (with `allowed`),
//! `byteSize`/`min_bytes` or `max_bytes` (with `limit`).
//! `key` is the object key in blob storage (org-scoped: screenshots and
//! annotated screenshots under `orgs/<org>/screenshots/`, attachments under
//! `orgs/<org>/attachments/`); the client puts it in its feedback as the
//! screenshot reference. `expiresAt` is RFC 3339 UTC, [`TICKET_TTL`] (300 s)
//! after issue. `headers` are the headers the PUT must carry
//! (`Content-Type`, `Content-Length`).
//!
//! The caller's organization and App come from an [`UploadCaller`] request
//! extension that the server's authentication layer inserts (widget `pub_`
//! key or `sk_` key auth); without it the route answers
//! `401 missing_authorization`. [`UploadState::issue`] is the same logic as a
//! plain function.
//!
//! # Uploading
//!
//! `uploadUrl` is `<public base URL>/v1/uploads/<ticket>`. The ticket is
//! `base64url(claims JSON) "." base64url(HMAC-SHA256)`, signed with the
//! server's upload secret over the claims (org, App, key, kind, content type,
//! exact byte size, expiry). The PUT route needs no other credential. It
//! refuses, with stable codes and the rule in `details.rule`:
//!
//! | case | answer |
//! |---|---|
//! | ticket not in that form | `401 invalid_signature`, `malformed_ticket` |
//! | signature does not match | `401 invalid_signature`, `bad_signature` |
//! | expired | `401 invalid_signature`, `expired` |
//! | already used | `401 invalid_signature`, `already_used` |
//! | `Content-Type` differs | `400 invalid_body`, `content_type_mismatch` (field `Content-Type`) |
//! | more bytes than signed | `413 payload_too_large`, `size_mismatch` (reading stops at the signed size) |
//! | fewer bytes than signed | `400 invalid_body`, `size_mismatch` (field `body`) |
//!
//! A ticket is single use: its use is recorded in the [`Cache`] port with
//! `set_if_absent` once the body has been read and checked, and released
//! again if storing fails, so a failed store can be retried. The bytes go
//! through [`Blobs::put`] (which records the `BlobStored` event). Success is
//! `201` with `{"key","contentType","byteSize"}`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Extension, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use userz_core::ids::{AppId, OrgId};
use userz_core::ports::{BlobKey, Cache};
use userz_core::{Clock, Timestamp};
use userz_engine::blobs::Blobs;
use userz_security::body_limit::read_to_bytes;
use userz_security::mac::{hmac_sha256, verify_hmac_sha256};
use userz_security::secret::SecretBytes;

use crate::error::{ApiError, ErrorCode};

/// Largest upload: 15 MiB.
pub const MAX_UPLOAD_BYTES: u64 = 15 * 1024 * 1024;
/// How long a ticket is valid: 300 s.
pub const TICKET_TTL: Duration = Duration::from_secs(300);
/// Shortest accepted upload secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Env var: the HMAC secret for upload tickets (at least 32 bytes of text).
pub const ENV_UPLOAD_SECRET: &str = "USERZ_UPLOAD_SECRET";
/// Env var: the server's public base URL (`https://userz.example.com`), used in `uploadUrl`.
pub const ENV_PUBLIC_URL: &str = "USERZ_PUBLIC_URL";
/// Cap on the `upload-url` request body.
const REQUEST_BODY_LIMIT: usize = 4 * 1024;
/// Domain separation for the ticket MAC.
const MAC_CONTEXT: &[u8] = b"userz-upload-ticket-v1.";

/// What is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    /// A page screenshot.
    Screenshot,
    /// A screenshot the user drew on.
    Annotated,
    /// Any other file.
    Attachment,
}

const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp"];
const ATTACHMENT_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp", "text/plain", "application/pdf"];

impl UploadKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Screenshot => "screenshot",
            UploadKind::Annotated => "annotated",
            UploadKind::Attachment => "attachment",
        }
    }

    /// The content types this kind accepts (exact, lower-case, no parameters).
    pub fn allowed_types(self) -> &'static [&'static str] {
        match self {
            UploadKind::Screenshot | UploadKind::Annotated => IMAGE_TYPES,
            UploadKind::Attachment => ATTACHMENT_TYPES,
        }
    }
}

fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

/// The `upload-url` request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRequest {
    /// What is uploaded.
    pub kind: UploadKind,
    /// The exact `Content-Type` the PUT will carry.
    pub content_type: String,
    /// The exact size of the PUT body.
    pub byte_size: u64,
}

/// The `upload-url` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    /// Where to PUT the bytes.
    pub upload_url: String,
    /// The object key the bytes will be stored under.
    pub key: String,
    /// RFC 3339 expiry.
    pub expires_at: String,
    /// Headers the PUT must carry.
    pub headers: BTreeMap<String, String>,
}

/// The organization and App of an authenticated `upload-url` request. The
/// server's authentication layer inserts it as a request extension
/// (`req.extensions_mut().insert(UploadCaller { org, app })`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadCaller {
    /// The caller's organization.
    pub org: OrgId,
    /// The App the upload belongs to.
    pub app: AppId,
}

/// What a successful PUT stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredUpload {
    /// Object key.
    pub key: String,
    /// Content type.
    pub content_type: String,
    /// Size in bytes.
    pub byte_size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    org: OrgId,
    app: AppId,
    key: String,
    kind: UploadKind,
    #[serde(rename = "ct")]
    content_type: String,
    size: u64,
    /// Expiry, Unix ms.
    exp: i64,
}

/// Upload settings.
pub struct UploadConfig {
    /// HMAC key for tickets (at least [`MIN_SECRET_BYTES`]).
    pub secret: SecretBytes,
    /// Public base URL of this server, without a trailing `/` (e.g. `https://userz.example.com`).
    pub public_base_url: String,
    /// Ticket lifetime (default [`TICKET_TTL`]).
    pub ttl: Duration,
}

impl fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadConfig")
            .field("public_base_url", &self.public_base_url)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl UploadConfig {
    /// With `secret` and `public_base_url`, and the 300 s lifetime.
    pub fn new(secret: SecretBytes, public_base_url: impl Into<String>) -> Self {
        Self { secret, public_base_url: public_base_url.into(), ttl: TICKET_TTL }
    }

    /// From [`ENV_UPLOAD_SECRET`] and [`ENV_PUBLIC_URL`].
    ///
    /// # Errors
    ///
    /// `Error::Invalid` naming the variable that is missing or unusable.
    pub fn from_env() -> Result<Self, userz_core::Error> {
        let secret = std::env::var(ENV_UPLOAD_SECRET)
            .map_err(|_| userz_core::Error::Invalid(format!("{ENV_UPLOAD_SECRET}: not set")))?;
        let base = std::env::var(ENV_PUBLIC_URL)
            .map_err(|_| userz_core::Error::Invalid(format!("{ENV_PUBLIC_URL}: not set")))?;
        Ok(Self::new(SecretBytes::new(secret.into_bytes()), base))
    }
}

/// State of the upload routes. Cheap to clone.
#[derive(Clone)]
pub struct UploadState {
    inner: Arc<Inner>,
}

struct Inner {
    secret: SecretBytes,
    base: String,
    ttl: Duration,
    blobs: Blobs,
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for UploadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadState").field("base", &self.inner.base).finish_non_exhaustive()
    }
}

fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.as_millis()) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.as_millis().to_string())
}

fn ticket_error(rule: &str, message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidSignature, format!("upload ticket: {message}"))
        .with_details(json!({ "field": "ticket", "rule": rule }))
}

impl UploadState {
    /// Upload routes storing through `blobs`, recording ticket use in `cache`,
    /// with times from `clock`.
    ///
    /// # Errors
    ///
    /// `Error::Invalid` when the secret is shorter than [`MIN_SECRET_BYTES`]
    /// or the base URL is not `http(s)://…`.
    pub fn new(
        config: UploadConfig,
        blobs: Blobs,
        cache: Arc<dyn Cache>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, userz_core::Error> {
        if config.secret.len() < MIN_SECRET_BYTES {
            return Err(userz_core::Error::Invalid(format!("{ENV_UPLOAD_SECRET}: at least {MIN_SECRET_BYTES} bytes")));
        }
        let base = config.public_base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(userz_core::Error::Invalid(format!("{ENV_PUBLIC_URL}: must start with http:// or https://")));
        }
        Ok(Self { inner: Arc::new(Inner { secret: config.secret, base, ttl: config.ttl, blobs, cache, clock }) })
    }

    /// Validates `request` and issues a ticket for `org`'s App `app`.
    ///
    /// # Errors
    ///
    /// `invalid_body` naming `contentType` (`content_type_not_allowed`) or
    /// `byteSize` (`min_bytes`, `max_bytes`).
    pub fn issue(&self, org: OrgId, app: AppId, request: &UploadRequest) -> Result<UploadTicket, ApiError> {
        let content_type = request.content_type.trim().to_ascii_lowercase();
        let allowed = request.kind.allowed_types();
        if !allowed.contains(&content_type.as_str()) {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                format!("contentType: {} accepts {}", request.kind.as_str(), allowed.join(", ")),
            )
            .with_details(json!({ "field": "contentType", "rule": "content_type_not_allowed", "allowed": allowed })));
        }
        if request.byte_size == 0 {
            return Err(ApiError::invalid_field("byteSize", "min_bytes", "byteSize: at least 1"));
        }
        if request.byte_size > MAX_UPLOAD_BYTES {
            return Err(ApiError::new(ErrorCode::InvalidBody, format!("byteSize: at most {MAX_UPLOAD_BYTES}"))
                .with_details(json!({ "field": "byteSize", "rule": "max_bytes", "limit": MAX_UPLOAD_BYTES })));
        }
        let name = format!("{}-{}.{}", request.kind.as_str(), uuid::Uuid::now_v7().simple(), extension(&content_type));
        let key = match request.kind {
            UploadKind::Screenshot | UploadKind::Annotated => BlobKey::screenshot(org, &name),
            UploadKind::Attachment => BlobKey::attachment(org, &name),
        }
        .map_err(ApiError::internal)?
        .to_string();
        let expires = self.inner.clock.now() + self.inner.ttl;
        let claims = Claims {
            org,
            app,
            key: key.clone(),
            kind: request.kind,
            content_type: content_type.clone(),
            size: request.byte_size,
            exp: expires.as_millis(),
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(ApiError::internal)?);
        let tag = hmac_sha256(self.inner.secret.expose_secret(), &[MAC_CONTEXT, payload.as_bytes()]);
        let sig = URL_SAFE_NO_PAD.encode(tag);
        let headers = BTreeMap::from([
            ("Content-Type".to_owned(), content_type),
            ("Content-Length".to_owned(), request.byte_size.to_string()),
        ]);
        Ok(UploadTicket {
            upload_url: format!("{}/v1/uploads/{payload}.{sig}", self.inner.base),
            key,
            expires_at: rfc3339(expires),
            headers,
        })
    }

    fn verify_ticket(&self, ticket: &str) -> Result<Claims, ApiError> {
        let malformed = || ticket_error("malformed_ticket", "not a ticket issued by this server");
        if ticket.len() > 4096 {
            return Err(malformed());
        }
        let (payload, sig) = ticket.split_once('.').ok_or_else(malformed)?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| malformed())?;
        // Constant-time comparison.
        if !verify_hmac_sha256(self.inner.secret.expose_secret(), &[MAC_CONTEXT, payload.as_bytes()], &sig) {
            return Err(ticket_error("bad_signature", "signature does not match"));
        }
        let raw = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
        serde_json::from_slice(&raw).map_err(|_| malformed())
    }

    fn used_key(claims: &Claims) -> String {
        format!("userz:upload:used:{}", hex::encode(Sha256::digest(claims.key.as_bytes())))
    }

    /// Verifies `ticket` and the request, reads exactly the signed number of
    /// bytes from `body` and stores them (see the module docs for the refusals).
    ///
    /// # Errors
    ///
    /// The refusals of the module docs; `unavailable` when the cache or blob
    /// store fails.
    pub async fn accept(&self, ticket: &str, headers: &HeaderMap, body: Body) -> Result<StoredUpload, ApiError> {
        let claims = self.verify_ticket(ticket)?;
        let now = self.inner.clock.now();
        if now.as_millis() > claims.exp {
            return Err(ticket_error("expired", "expired"));
        }
        let used_key = Self::used_key(&claims);
        if self.inner.cache.get(&used_key).await?.is_some() {
            return Err(ticket_error("already_used", "already used"));
        }
        let presented = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !presented.trim().eq_ignore_ascii_case(&claims.content_type) {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                format!("Content-Type: must be {} as signed", claims.content_type),
            )
            .with_details(
                json!({ "field": "Content-Type", "rule": "content_type_mismatch", "expected": claims.content_type }),
            ));
        }
        let too_big = || {
            ApiError::new(ErrorCode::PayloadTooLarge, format!("body: larger than the signed {} bytes", claims.size))
                .with_details(json!({ "field": "body", "rule": "size_mismatch", "expected": claims.size }))
        };
        let too_small = |got: u64| {
            ApiError::new(ErrorCode::InvalidBody, format!("body: {got} bytes, signed for {}", claims.size))
                .with_details(json!({ "field": "body", "rule": "size_mismatch", "expected": claims.size }))
        };
        if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
            let len: u64 = len
                .trim()
                .parse()
                .map_err(|_| ApiError::invalid_field("Content-Length", "format", "Content-Length: not a number"))?;
            if len > claims.size {
                return Err(too_big());
            }
            if len < claims.size {
                return Err(too_small(len));
            }
        }
        let limit = usize::try_from(claims.size).map_err(|_| too_big())?;
        let bytes: Bytes = read_to_bytes(body, limit).await.map_err(|e| {
            if e.is_length_limit() {
                too_big()
            } else {
                ApiError::invalid_field("body", "unreadable", "body: could not be read")
            }
        })?;
        let got = bytes.len() as u64;
        if got != claims.size {
            return Err(too_small(got));
        }
        let remaining = Duration::from_millis(u64::try_from(claims.exp - now.as_millis()).unwrap_or(0));
        let marked = self
            .inner
            .cache
            .set_if_absent(&used_key, Bytes::from_static(b"1"), Some(remaining + Duration::from_secs(60)))
            .await?;
        if !marked {
            return Err(ticket_error("already_used", "already used"));
        }
        // The key was made by `issue` and is covered by the ticket's MAC.
        let Some(key) = BlobKey::parse(claims.org, &claims.key) else {
            let _ = self.inner.cache.delete(&used_key).await;
            return Err(ApiError::internal(format!("signed upload key {:?} is not the org's", claims.key)));
        };
        if let Err(e) = self.inner.blobs.put(&key, bytes).await {
            // Let the client retry with the same ticket while it is valid.
            let _ = self.inner.cache.delete(&used_key).await;
            tracing::warn!(error = %e, "upload store failed");
            return Err(ApiError::new(ErrorCode::Unavailable, "storage temporarily unavailable").with_retry_after(1));
        }
        tracing::info!(org = %claims.org, app = %claims.app, key = %claims.key, size = claims.size, "upload stored");
        Ok(StoredUpload { key: claims.key, content_type: claims.content_type, byte_size: claims.size })
    }
}

/// Parses the `upload-url` body, naming the field and rule of the first problem.
///
/// # Errors
///
/// `invalid_body` with `details.field` (`body`, `kind`, `contentType`,
/// `byteSize`) and `details.rule` (`json`, `missing`, `type`, `one_of`).
pub fn parse_request(raw: &[u8]) -> Result<UploadRequest, ApiError> {
    let v: serde_json::Value =
        serde_json::from_slice(raw).map_err(|_| ApiError::invalid_field("body", "json", "body: not JSON"))?;
    let obj = v.as_object().ok_or_else(|| ApiError::invalid_field("body", "json", "body: must be a JSON object"))?;
    let field = |name: &'static str| {
        obj.get(name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| ApiError::invalid_field(name, "missing", format!("{name}: missing")))
    };
    let kind = match field("kind")?.as_str() {
        Some("screenshot") => UploadKind::Screenshot,
        Some("annotated") => UploadKind::Annotated,
        Some("attachment") => UploadKind::Attachment,
        _ => return Err(ApiError::invalid_field("kind", "one_of", "kind: one of screenshot, annotated, attachment")),
    };
    let content_type = field("contentType")?
        .as_str()
        .ok_or_else(|| ApiError::invalid_field("contentType", "type", "contentType: must be a string"))?
        .to_owned();
    let byte_size = userz_security::ingest::integral_u64(field("byteSize")?)
        .ok_or_else(|| ApiError::invalid_field("byteSize", "type", "byteSize: must be a non-negative integer"))?;
    Ok(UploadRequest { kind, content_type, byte_size })
}

async fn issue_route(
    State(s): State<UploadState>,
    caller: Option<Extension<UploadCaller>>,
    body: Body,
) -> Result<(StatusCode, Json<UploadTicket>), ApiError> {
    let Some(Extension(caller)) = caller else {
        return Err(ApiError::new(ErrorCode::MissingAuthorization, "authentication required"));
    };
    let raw = read_to_bytes(body, REQUEST_BODY_LIMIT).await.map_err(|e| {
        if e.is_length_limit() {
            ApiError::new(ErrorCode::PayloadTooLarge, format!("body exceeds {REQUEST_BODY_LIMIT} bytes"))
                .with_details(json!({ "limit": REQUEST_BODY_LIMIT }))
        } else {
            ApiError::invalid_field("body", "unreadable", "body: could not be read")
        }
    })?;
    let request = parse_request(&raw)?;
    Ok((StatusCode::CREATED, Json(s.issue(caller.org, caller.app, &request)?)))
}

async fn put_route(
    State(s): State<UploadState>,
    Path(ticket): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut res = match s.accept(&ticket, &headers, body).await {
        Ok(stored) => (StatusCode::CREATED, Json(stored)).into_response(),
        Err(e) => e.into_response(),
    };
    // The ticket is the only credential (no cookies), so any page may PUT
    // with it, as with any pre-signed URL; the browser can read the answer.
    res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    res
}

/// CORS preflight for the PUT (the widget uploads from the customer's page).
async fn put_preflight() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("PUT"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("300"));
    res
}

/// `POST /v1/feedback/upload-url`; mount it behind the layer that inserts
/// [`UploadCaller`].
pub fn upload_url_router(state: UploadState) -> Router {
    Router::new().route("/v1/feedback/upload-url", post(issue_route)).with_state(state)
}

/// `PUT /v1/uploads/{ticket}` (and its CORS preflight, `OPTIONS`, allowing
/// any origin: the ticket is the credential and no cookies are involved);
/// needs no authentication layer and carries its own body cap (the signed size).
pub fn upload_put_router(state: UploadState) -> Router {
    Router::new().route("/v1/uploads/{ticket}", put(put_route).options(put_preflight)).with_state(state)
}
