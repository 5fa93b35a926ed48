//! CORS for the widget routes.
//!
//! The widget runs on the integrator's pages and posts with custom headers, so
//! browsers send a preflight first. Preflights carry no credential, so they
//! are answered for any origin; the real request is then checked against the
//! App's exact allowlist by the widget auth (`origin_not_allowed`), which is
//! the actual protection. Responses echo the request's `Origin` (never `*`,
//! never credentials) so the widget can read error bodies too.

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Paths (suffixes, so the router can be nested) that get widget CORS.
pub const WIDGET_PATHS: [&str; 2] = ["/v1/feedback", "/v1/feedback/upload-url"];

/// Headers the widget may send.
pub const ALLOWED_HEADERS: &str = "content-type, x-userz-public-key, x-userz-user-token, idempotency-key";

fn is_widget(req: &Request) -> bool {
    let path = req.uri().path();
    WIDGET_PATHS.iter().any(|p| path.ends_with(p))
}

/// Middleware: answers widget preflights and adds CORS headers to widget responses.
pub async fn widget_cors(req: Request, next: Next) -> Response {
    if !is_widget(&req) {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    if req.method() == Method::OPTIONS {
        let mut res = StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        if let Some(o) = origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        return res;
    }
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let mut res = next.run(req).await;
    if let Some(o) = origin {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    res
}
