//! A small HTTP/1.1 JSON client shared by the Userz VCS providers.
//!
//! One connection per request (a provider makes a handful per run), TLS with
//! the web PKI roots (rustls with the `ring` provider) for `https` bases, JSON
//! in and out, a cap on the response body and a timeout on the whole
//! exchange. The credential header is built in a buffer that is wiped when
//! dropped and is marked sensitive, so it is never logged.
//!
//! # Secrets
//!
//! The providers keep different secret types at their public API
//! (`secrecy::SecretString` and `userz_security::secret::SecretString`),
//! so this crate takes the secret as a borrowed `&str` inside a
//! [`Credential`]: the caller exposes it only for the duration of
//! [`RestClient::send`], and the formatted header value (`Bearer <secret>` or
//! the bare secret) lives in a [`Zeroizing`] buffer. `HeaderValue` keeps its
//! own copy only for the lifetime of the request.
//!
//! # Errors
//!
//! [`RestError`] has two variants: [`RestError::Config`] (a bad base URL, user
//! agent or default header, or TLS setup) naming the field, and
//! [`RestError::Transport`] (connect, TLS, HTTP, body, timeout) naming the
//! operation. Each provider maps them into its own error type.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// How long one exchange (connect, TLS, request, whole body) may take, unless
/// changed with [`RestClient::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response body accepted, unless changed with
/// [`RestClient::with_max_body`].
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// The `field` of a [`RestError::Config`] about the API base URL (also used
/// for TLS setup failures, which only happen for `https` bases).
pub const FIELD_BASE: &str = "base";

/// The `field` of a [`RestError::Config`] about the user agent.
pub const FIELD_USER_AGENT: &str = "user_agent";

/// The `field` of a [`RestError::Config`] about a default header.
pub const FIELD_DEFAULT_HEADERS: &str = "default_headers";

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// The client's configuration is unusable; `field` is one of
    /// [`FIELD_BASE`], [`FIELD_USER_AGENT`], [`FIELD_DEFAULT_HEADERS`].
    #[error("{field}: {message}")]
    Config {
        /// Which setting is wrong.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The call did not produce an HTTP answer (connect, TLS, protocol, body
    /// too large or unreadable, timeout).
    #[error("{operation}: {message}")]
    Transport {
        /// The caller's name for the call.
        operation: &'static str,
        /// Why.
        message: String,
    },
}

/// Where the API is: scheme, host, port and a path prefix prepended to every
/// request path (the base URL's own path followed by an extra prefix, such as
/// `/api/v4` for GitLab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBase {
    tls: bool,
    host: String,
    port: u16,
    prefix: String,
}

impl ApiBase {
    /// Parses an `http` or `https` base URL (no query, no user info) and
    /// appends `extra_prefix` (empty, or starting with `/`) to its path; a
    /// trailing `/` on the URL is ignored.
    ///
    /// # Errors
    ///
    /// [`RestError::Config`] with field [`FIELD_BASE`], quoting the URL.
    pub fn parse(url: &str, extra_prefix: &str) -> Result<Self, RestError> {
        let bad = |message: &str| RestError::Config { field: FIELD_BASE, message: format!("{url:?}: {message}") };
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
        let prefix = format!("{}{extra_prefix}", uri.path().trim_end_matches('/'));
        Ok(Self { tls, host, port, prefix })
    }

    /// Whether requests go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path prefix prepended to every request path (no trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The `Host` header value: the port is left out when it is the scheme's
    /// default.
    fn host_header(&self) -> String {
        if (self.tls && self.port == 443) || (!self.tls && self.port == 80) {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The credential sent with one request: a header name and the secret,
/// optionally preceded by a scheme (`Authorization: Bearer <secret>`).
pub struct Credential<'a> {
    name: HeaderName,
    scheme: Option<&'static str>,
    secret: &'a str,
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("name", &self.name).field("scheme", &self.scheme).finish_non_exhaustive()
    }
}

impl<'a> Credential<'a> {
    /// `Authorization: Bearer <secret>`.
    pub fn bearer(secret: &'a str) -> Self {
        Self { name: http::header::AUTHORIZATION, scheme: Some("Bearer"), secret }
    }

    /// `<name>: <secret>` (for example GitLab's `PRIVATE-TOKEN`).
    pub fn header(name: HeaderName, secret: &'a str) -> Self {
        Self { name, scheme: None, secret }
    }

    /// The header, its value marked sensitive. The formatted value is wiped
    /// when this returns; the returned `HeaderValue` holds its own copy.
    fn to_header(&self, operation: &'static str) -> Result<(HeaderName, HeaderValue), RestError> {
        let text = Zeroizing::new(match self.scheme {
            Some(scheme) => format!("{scheme} {}", self.secret),
            None => self.secret.to_string(),
        });
        let mut value = HeaderValue::from_str(&text).map_err(|_| RestError::Transport {
            operation,
            message: "credential is not a valid header value".into(),
        })?;
        value.set_sensitive(true);
        Ok((self.name.clone(), value))
    }
}

/// A JSON response: the status and the body parsed as JSON (`Null` when
/// empty, a JSON string holding the text when it is not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// The client: cheap to clone, one TCP (and TLS) connection per request.
#[derive(Clone)]
pub struct RestClient {
    base: ApiBase,
    user_agent: HeaderValue,
    default_headers: Vec<(HeaderName, HeaderValue)>,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl RestClient {
    /// A client for `base` sending `User-Agent: user_agent` and
    /// `default_headers` (for example `Accept`) with every request.
    ///
    /// # Errors
    ///
    /// [`RestError::Config`]: the user agent is not a valid header value
    /// ([`FIELD_USER_AGENT`]), a default header is marked sensitive
    /// ([`FIELD_DEFAULT_HEADERS`]; credentials go through [`Credential`]), or
    /// TLS cannot be set up ([`FIELD_BASE`]).
    pub fn new(
        base: ApiBase,
        user_agent: &str,
        default_headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, RestError> {
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| RestError::Config { field: FIELD_USER_AGENT, message: "not a valid header value".into() })?;
        if let Some((name, _)) = default_headers.iter().find(|(_, v)| v.is_sensitive()) {
            return Err(RestError::Config {
                field: FIELD_DEFAULT_HEADERS,
                message: format!("{name} is sensitive; pass credentials per request"),
            });
        }
        let tls = base.tls.then(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            config.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c)))
        });
        let tls =
            tls.transpose().map_err(|e| RestError::Config { field: FIELD_BASE, message: format!("TLS setup: {e}") })?;
        Ok(Self { base, user_agent, default_headers, tls, timeout: DEFAULT_TIMEOUT, max_body: DEFAULT_MAX_BODY })
    }

    /// Replaces the per-exchange timeout (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replaces the response body cap (default [`DEFAULT_MAX_BODY`]).
    #[must_use]
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// The base this client talks to.
    pub fn base(&self) -> &ApiBase {
        &self.base
    }

    /// Sends `method {prefix}{path_and_query}` with the default headers, the
    /// optional credential and an optional JSON body
    /// (`Content-Type: application/json`); returns the status and the body.
    /// Any status is an answer: interpreting it is the caller's job.
    ///
    /// # Errors
    ///
    /// [`RestError::Transport`] naming `operation`: the credential is not a
    /// valid header value, connect/TLS/HTTP failed, the body is larger than
    /// the cap, or no answer came within the timeout.
    pub async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path_and_query: &str,
        credential: Option<Credential<'_>>,
        body: Option<&Value>,
    ) -> Result<ApiResponse, RestError> {
        let transport = |message: String| RestError::Transport { operation, message };
        let fut = async {
            let uri = format!("{}{path_and_query}", self.base.prefix);
            let payload = match body {
                Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| transport(format!("encode body: {e}")))?),
                None => Bytes::new(),
            };
            let mut builder =
                Request::builder().method(method).uri(uri).header(http::header::HOST, self.base.host_header());
            for (name, value) in &self.default_headers {
                builder = builder.header(name, value.clone());
            }
            builder = builder.header(http::header::USER_AGENT, self.user_agent.clone());
            if let Some(credential) = &credential {
                let (name, value) = credential.to_header(operation)?;
                builder = builder.header(name, value);
            }
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
            let bytes = Limited::new(resp.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| transport(format!("read body: {e}")))?
                .to_bytes();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
            };
            tracing::debug!(operation, status, host = %self.base.host, "rest api call");
            Ok(ApiResponse { status, body })
        };
        let timeout = self.timeout;
        tokio::time::timeout(timeout, fut).await.map_err(|_| transport(format!("no answer within {timeout:?}")))?
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

#[cfg(test)]
mod tests;
