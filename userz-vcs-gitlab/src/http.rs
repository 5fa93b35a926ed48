//! A small HTTP/1.1 client for the GitLab REST API (v4): one connection per
//! request (the provider makes a handful per run), TLS with the web PKI roots
//! for `https` bases, JSON in and out. The `PRIVATE-TOKEN` header is marked
//! sensitive and never logged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use userz_core::security::secret::SecretString;

use crate::GitLabError;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Where the API is: scheme, authority and the path prefix (a self-hosted
/// instance's relative URL root followed by `/api/v4`).
#[derive(Debug, Clone)]
pub(crate) struct ApiBase {
    tls: bool,
    host: String,
    port: u16,
    prefix: String,
}

impl ApiBase {
    /// Parses the instance's `baseUrl`; the API is under `{baseUrl}/api/v4`.
    pub(crate) fn parse(url: &str) -> Result<Self, GitLabError> {
        let bad = |message: &str| GitLabError::Config { field: "base_url", message: format!("{url:?}: {message}") };
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
        let prefix = format!("{}/api/v4", uri.path().trim_end_matches('/'));
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
    pub(crate) fn new(base: ApiBase, user_agent: &str) -> Result<Self, GitLabError> {
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| GitLabError::Config { field: "user_agent", message: "not a valid header value".into() })?;
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
            .map_err(|e| GitLabError::Config { field: "base_url", message: format!("TLS setup: {e}") })?;
        Ok(Self { base, user_agent, tls })
    }

    /// Sends `method path_and_query` (relative to `/api/v4`) with
    /// `PRIVATE-TOKEN: <token>` and an optional JSON body; returns the status
    /// and the JSON body.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        token: &SecretString,
        body: Option<&Value>,
    ) -> Result<ApiResponse, GitLabError> {
        let transport = |message: String| GitLabError::Transport { operation, message };
        let fut = async {
            let uri = format!("{}{path_and_query}", self.base.prefix);
            // `HeaderValue` keeps its own copy only for the lifetime of the
            // request.
            let mut auth = HeaderValue::from_str(token.expose_secret())
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
                .header(http::header::ACCEPT, "application/json")
                .header(http::header::USER_AGENT, self.user_agent.clone())
                .header("private-token", auth);
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
            tracing::debug!(operation, status, "gitlab api call");
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
