//! A small HTTP/1.1 client for the GitHub REST API: one connection per
//! request (the provider makes a handful per run), TLS with the web PKI roots
//! for `https` bases, JSON in and out. Headers that carry credentials are
//! marked sensitive and never logged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::{GitHubError, API_VERSION};

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Where the API is: scheme, authority and an optional path prefix (GitHub
/// Enterprise Server serves the API under `/api/v3`).
#[derive(Debug, Clone)]
pub(crate) struct ApiBase {
    tls: bool,
    host: String,
    port: u16,
    prefix: String,
}

impl ApiBase {
    pub(crate) fn parse(url: &str) -> Result<Self, GitHubError> {
        let bad = |message: &str| GitHubError::Config { field: "api_base", message: format!("{url:?}: {message}") };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?.trim_start_matches('[').trim_end_matches(']').to_string();
        if uri.query().is_some() || uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad("must not carry a query or user info"));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self { tls, host, port, prefix })
    }
}

/// A JSON response.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

#[derive(Clone)]
pub(crate) struct ApiClient {
    base: ApiBase,
    user_agent: HeaderValue,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl ApiClient {
    pub(crate) fn new(base: ApiBase, user_agent: &str) -> Result<Self, GitHubError> {
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| GitHubError::Config { field: "user_agent", message: "not a valid header value".into() })?;
        let tls = base.tls.then(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            config.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c)))
        });
        let tls = tls
            .transpose()
            .map_err(|e| GitHubError::Config { field: "api_base", message: format!("TLS setup: {e}") })?;
        Ok(Self { base, user_agent, tls })
    }

    /// Sends `method path_and_query` with `Authorization: Bearer <bearer>`
    /// and an optional JSON body; returns the status and the JSON body.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        bearer: &SecretString,
        body: Option<&Value>,
    ) -> Result<ApiResponse, GitHubError> {
        let transport = |message: String| GitHubError::Transport { operation, message };
        let fut = async {
            let uri = format!("{}{path_and_query}", self.base.prefix);
            // The formatted header is wiped when dropped; `HeaderValue` keeps its
            // own copy only for the lifetime of the request.
            let header = Zeroizing::new(format!("Bearer {}", bearer.expose_secret()));
            let mut auth = HeaderValue::from_str(&header)
                .map_err(|_| transport("credential is not a valid header value".into()))?;
            auth.set_sensitive(true);
            let host = if (self.base.tls && self.base.port == 443) || (!self.base.tls && self.base.port == 80) {
                self.base.host.clone()
            } else {
                format!("{}:{}", self.base.host, self.base.port)
            };
            let payload = match body {
                Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| transport(format!("encode body: {e}")))?),
                None => Bytes::new(),
            };
            let mut builder = Request::builder()
                .method(method)
                .uri(uri)
                .header(http::header::HOST, host)
                .header(http::header::ACCEPT, "application/vnd.github+json")
                .header("x-github-api-version", API_VERSION)
                .header(http::header::USER_AGENT, self.user_agent.clone())
                .header(http::header::AUTHORIZATION, auth);
            if body.is_some() {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            }
            let req = builder.body(Full::new(payload)).map_err(|e| transport(format!("build request: {e}")))?;
            let tcp = TcpStream::connect((self.base.host.as_str(), self.base.port))
                .await
                .map_err(|e| transport(format!("connect {}:{}: {e}", self.base.host, self.base.port)))?;
            let _ = tcp.set_nodelay(true);
            let resp = match &self.tls {
                Some(tls) => {
                    let name = ServerName::try_from(self.base.host.clone())
                        .map_err(|_| transport(format!("{:?} is not a valid TLS server name", self.base.host)))?;
                    let stream = tls.connect(name, tcp).await.map_err(|e| transport(format!("TLS: {e}")))?;
                    exchange(TokioIo::new(stream), req).await
                }
                None => exchange(TokioIo::new(tcp), req).await,
            }
            .map_err(transport)?;
            let status = resp.status().as_u16();
            let bytes = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| transport(format!("read body: {e}")))?
                .to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
            };
            tracing::debug!(operation, status, "github api call");
            Ok(ApiResponse { status, body })
        };
        tokio::time::timeout(TIMEOUT, fut).await.map_err(|_| transport(format!("no answer within {TIMEOUT:?}")))?
    }
}

async fn exchange<T>(io: T, req: Request<Full<Bytes>>) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| format!("request: {e}"))
}
