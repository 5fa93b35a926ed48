//! The one outbound HTTP client of the Userz engine: forges (GitHub,
//! GitLab), language models (OpenAI-compatible, Anthropic), OAuth (Google
//! sign-in) all call out through [`RestClient`].
//!
//! It is [`reqwest`] (HTTP/1.1 only, rustls with the `ring` provider and the
//! web PKI roots, no system proxy, no redirects, one connection per request)
//! wrapped so that every caller gets the same guarantees:
//!
//! - **a cap on the response body** ([`RestClient::with_max_body`]): a
//!   declared `Content-Length` over the cap is refused before reading, and a
//!   streamed body is refused as soon as it passes the cap;
//! - **a timeout on the whole exchange** (connect, TLS, request, whole body);
//! - **credentials that never show**: a [`Credential`] borrows the secret for
//!   one call, the formatted header value lives in a buffer wiped on drop and
//!   is marked sensitive (so `Debug` prints `Sensitive`), and default or extra
//!   headers marked sensitive are refused: credentials go through
//!   [`Credential`] and nowhere else;
//! - **a Unix-socket transport** ([`Transport::Unix`]): plain HTTP over a Unix
//!   domain socket, the URL's host being only the `Host` header (the
//!   sandboxed agent reaches the host's egress proxy so).
//!
//! ```no_run
//! # async fn demo() -> Result<(), userz_rest::RestError> {
//! use userz_rest::{ApiBase, Call, Credential, RestClient, Transport};
//! let base = ApiBase::parse("http://model.egress.internal/v1", "")?;
//! let client = RestClient::new(base, "userz/0.1", vec![])?
//!     .with_transport(Transport::Unix("/run/userz/egress.sock".into()))?;
//! let call = Call::post("complete", "/chat/completions")
//!     .credential(Credential::bearer("sk-…"))
//!     .json(br#"{"model":"m"}"#.to_vec());
//! let answer = client.execute(call).await?;
//! println!("{} ({} bytes)", answer.status, answer.body.len());
//! # Ok(()) }
//! ```
//!
//! # Secrets
//!
//! The callers keep different secret types at their public API
//! (`secrecy::SecretString` and `userz_security::secret::SecretString`),
//! so this crate takes the secret as a borrowed `&str` inside a
//! [`Credential`]: the caller exposes it only for the duration of one call,
//! and the formatted header value (`Bearer <secret>` or the bare secret)
//! lives in a [`Zeroizing`] buffer. `HeaderValue` keeps its own copy only for
//! the lifetime of the request.
//!
//! # Errors
//!
//! [`RestError::Config`] (a bad base URL, user agent, header, transport or
//! TLS setup) names the field; [`RestError::Transport`] (connect, TLS, HTTP,
//! body), [`RestError::TooLarge`] and [`RestError::Timeout`] name the
//! operation. [`RestClient::send`], the JSON call the forges use, folds the
//! last two into [`RestError::Transport`].

use std::error::Error as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use rustls_pki_types::CertificateDer;
use serde_json::Value;
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

/// The `field` of a [`RestError::Config`] about a header of one [`Call`].
pub const FIELD_HEADERS: &str = "headers";

/// The `field` of a [`RestError::Config`] about the [`Transport`].
pub const FIELD_TRANSPORT: &str = "transport";

/// The `field` of a [`RestError::Config`] about TLS roots.
pub const FIELD_TLS: &str = "tls";

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// The client's configuration is unusable; `field` is one of
    /// [`FIELD_BASE`], [`FIELD_USER_AGENT`], [`FIELD_DEFAULT_HEADERS`],
    /// [`FIELD_HEADERS`], [`FIELD_TRANSPORT`], [`FIELD_TLS`].
    #[error("{field}: {message}")]
    Config {
        /// Which setting is wrong.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// The call did not produce an HTTP answer (connect, TLS, protocol, body
    /// unreadable; from [`RestClient::send`] also body too large and timeout).
    #[error("{operation}: {message}")]
    Transport {
        /// The caller's name for the call.
        operation: &'static str,
        /// Why.
        message: String,
    },
    /// The response body is larger than the cap ([`RestClient::execute`]).
    #[error("{operation}: response body exceeds the {cap}-byte cap")]
    TooLarge {
        /// The caller's name for the call.
        operation: &'static str,
        /// The cap, in bytes.
        cap: usize,
    },
    /// No complete answer within the timeout ([`RestClient::execute`]).
    #[error("{operation}: no answer within {after:?}")]
    Timeout {
        /// The caller's name for the call.
        operation: &'static str,
        /// The timeout.
        after: Duration,
    },
}

impl RestError {
    /// The same failure with [`RestError::TooLarge`] and
    /// [`RestError::Timeout`] folded into [`RestError::Transport`] (what
    /// [`RestClient::send`] returns: the forges treat every failure to get
    /// an answer alike).
    #[must_use]
    pub fn into_transport(self) -> Self {
        match self {
            RestError::TooLarge { operation, cap } => RestError::Transport {
                operation,
                message: format!("read body: response body exceeds the {cap}-byte cap"),
            },
            RestError::Timeout { operation, after } => {
                RestError::Transport { operation, message: format!("no answer within {after:?}") }
            }
            other => other,
        }
    }
}

/// How the connection is made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// TCP to the URL's host and port (TLS for `https`).
    #[default]
    Tcp,
    /// Plain HTTP over this Unix domain socket; the URL's host is only the
    /// `Host` header (the sandboxed agent reaches the host egress proxy so).
    Unix(PathBuf),
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
        let (base, uri) = Self::origin(url)?;
        if uri.query().is_some() {
            return Err(bad_base(url, "must not carry a query or user info"));
        }
        let prefix = format!("{}{extra_prefix}", uri.path().trim_end_matches('/'));
        Ok(Self { prefix, ..base })
    }

    /// Splits an endpoint URL (an OAuth token or userinfo URL: a query is
    /// allowed, user info is not) into its origin, with an empty prefix, and
    /// its path and query, for one [`Call`].
    ///
    /// # Errors
    ///
    /// [`RestError::Config`] with field [`FIELD_BASE`], quoting the URL.
    pub fn split_endpoint(url: &str) -> Result<(Self, String), RestError> {
        let (base, uri) = Self::origin(url)?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        Ok((base, path))
    }

    fn origin(url: &str) -> Result<(Self, Uri), RestError> {
        let uri: Uri = url.parse().map_err(|_| bad_base(url, "not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad_base(url, "scheme must be http or https")),
        };
        let host = uri.host().ok_or_else(|| bad_base(url, "no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad_base(url, "must not carry a query or user info"));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok((Self { tls, host, port, prefix: String::new() }, uri))
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

    /// `scheme://host[:port]{prefix}{path_and_query}` (the port left out when
    /// it is the scheme's default, so the `Host` header is the usual one).
    fn url(&self, path_and_query: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default_port = if self.tls { 443 } else { 80 };
        let port = if self.port == default_port { String::new() } else { format!(":{}", self.port) };
        format!("{scheme}://{host}{port}{}{path_and_query}", self.prefix)
    }
}

fn bad_base(url: &str, message: &str) -> RestError {
    RestError::Config { field: FIELD_BASE, message: format!("{url:?}: {message}") }
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

    /// `<name>: <secret>` (for example GitLab's `PRIVATE-TOKEN` or
    /// Anthropic's `x-api-key`).
    pub fn header(name: HeaderName, secret: &'a str) -> Self {
        Self { name, scheme: None, secret }
    }

    /// Whether the secret makes a valid header value (callers check keys at
    /// construction so a bad one fails early, not on the first call).
    pub fn is_valid(&self) -> bool {
        self.to_header("check").is_ok()
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

/// A request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// JSON bytes, sent with `Content-Type: application/json`.
    Json(Bytes),
    /// A URL-encoded form, sent with
    /// `Content-Type: application/x-www-form-urlencoded`.
    Form(Bytes),
}

/// One request for [`RestClient::execute`]: built with [`Call::get`] /
/// [`Call::post`] / [`Call::new`] and the `with`-style methods.
#[derive(Debug)]
pub struct Call<'a> {
    operation: &'static str,
    method: Method,
    path_and_query: &'a str,
    credential: Option<Credential<'a>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
}

impl<'a> Call<'a> {
    /// `method {prefix}{path_and_query}`; `operation` names the call in
    /// errors and logs.
    pub fn new(operation: &'static str, method: Method, path_and_query: &'a str) -> Self {
        Self { operation, method, path_and_query, credential: None, headers: Vec::new(), body: Body::Empty }
    }

    /// A `GET`.
    pub fn get(operation: &'static str, path_and_query: &'a str) -> Self {
        Self::new(operation, Method::GET, path_and_query)
    }

    /// A `POST`.
    pub fn post(operation: &'static str, path_and_query: &'a str) -> Self {
        Self::new(operation, Method::POST, path_and_query)
    }

    /// Sends `credential` (its header marked sensitive).
    #[must_use]
    pub fn credential(mut self, credential: Credential<'a>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Sends `credential` when there is one.
    #[must_use]
    pub fn credential_opt(mut self, credential: Option<Credential<'a>>) -> Self {
        self.credential = credential;
        self
    }

    /// Adds a header (not a credential: a sensitive value is refused).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A JSON body.
    #[must_use]
    pub fn json(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Json(body.into());
        self
    }

    /// A URL-encoded form body.
    #[must_use]
    pub fn form(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Body::Form(body.into());
        self
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

/// A response as it came: the status and the whole body (at most the cap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

/// The client: cheap to clone, one TCP (and TLS) or Unix-socket connection
/// per request.
#[derive(Clone)]
pub struct RestClient {
    base: ApiBase,
    user_agent: HeaderValue,
    default_headers: Vec<(HeaderName, HeaderValue)>,
    transport: Transport,
    /// The rustls configuration (`ring`, web PKI roots unless replaced).
    tls: rustls::ClientConfig,
    http: reqwest::Client,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("base", &self.base)
            .field("transport", &self.transport)
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// A rustls configuration on the `ring` provider (named explicitly so the
/// process-wide default provider does not matter), HTTP/1.1 only.
fn tls_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, RestError> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| RestError::Config { field: FIELD_BASE, message: format!("TLS setup: {e}") })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn web_pki_roots() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// The reqwest client: our own rustls configuration always (so reqwest never
/// picks a crypto provider itself, not even for plain `http`), no proxy from
/// the environment (the egress proxy is reached explicitly, by socket), no
/// redirects (a redirect is an answer for the caller), no idle connections
/// kept.
fn build_http(tls: &rustls::ClientConfig, transport: &Transport) -> Result<reqwest::Client, RestError> {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls.clone())
        .http1_only()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0);
    if let Transport::Unix(path) = transport {
        builder = builder.unix_socket(path.clone());
    }
    builder.build().map_err(|e| RestError::Config { field: FIELD_BASE, message: format!("client setup: {e}") })
}

impl RestClient {
    /// A client for `base` sending `User-Agent: user_agent` and
    /// `default_headers` (for example `Accept`) with every request, over TCP.
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
        let tls = tls_config(web_pki_roots())?;
        let http = build_http(&tls, &Transport::Tcp)?;
        Ok(Self {
            base,
            tls,
            user_agent,
            default_headers,
            transport: Transport::Tcp,
            http,
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        })
    }

    /// Connects through `transport` instead of TCP.
    ///
    /// # Errors
    ///
    /// [`RestError::Config`] with field [`FIELD_TRANSPORT`]: a Unix socket
    /// carries plain `http` only.
    pub fn with_transport(mut self, transport: Transport) -> Result<Self, RestError> {
        if self.base.tls && matches!(transport, Transport::Unix(_)) {
            return Err(RestError::Config {
                field: FIELD_TRANSPORT,
                message: "a Unix socket carries plain http only".into(),
            });
        }
        self.http = build_http(&self.tls, &transport)?;
        self.transport = transport;
        Ok(self)
    }

    /// Trusts exactly `certs` (instead of the web PKI roots) for an `https`
    /// base.
    ///
    /// # Errors
    ///
    /// [`RestError::Config`] with field [`FIELD_TLS`]: the base is plain
    /// `http`, or a certificate is unusable.
    pub fn with_root_certificates(mut self, certs: Vec<CertificateDer<'static>>) -> Result<Self, RestError> {
        let tls_error = |message: String| RestError::Config { field: FIELD_TLS, message };
        if !self.base.tls {
            return Err(tls_error("root certificates need an https base".into()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| tls_error(e.to_string()))?;
        }
        self.tls = tls_config(roots)?;
        self.http = build_http(&self.tls, &self.transport)?;
        Ok(self)
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

    /// The transport this client connects through.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The per-exchange timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The response body cap.
    pub fn max_body(&self) -> usize {
        self.max_body
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
        let mut call = Call::new(operation, method, path_and_query).credential_opt(credential);
        if let Some(v) = body {
            let bytes = serde_json::to_vec(v)
                .map_err(|e| RestError::Transport { operation, message: format!("encode body: {e}") })?;
            call = call.json(bytes);
        }
        let raw = self.execute(call).await.map_err(RestError::into_transport)?;
        let body = if raw.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw.body).into()))
        };
        Ok(ApiResponse { status: raw.status.as_u16(), body })
    }

    /// Sends one [`Call`] and reads the whole answer (at most the cap).
    /// Any status is an answer: interpreting it is the caller's job.
    ///
    /// # Errors
    ///
    /// - [`RestError::Config`] with field [`FIELD_HEADERS`]: a header of the
    ///   call is marked sensitive (credentials go through [`Credential`]);
    /// - [`RestError::Transport`]: the credential is not a valid header
    ///   value, connect/TLS/HTTP failed, the body could not be read;
    /// - [`RestError::TooLarge`]: the body is larger than the cap;
    /// - [`RestError::Timeout`]: no complete answer within the timeout.
    pub async fn execute(&self, call: Call<'_>) -> Result<RawResponse, RestError> {
        let operation = call.operation;
        if let Some((name, _)) = call.headers.iter().find(|(_, v)| v.is_sensitive()) {
            return Err(RestError::Config {
                field: FIELD_HEADERS,
                message: format!("{name} is sensitive; pass credentials as a Credential"),
            });
        }
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(call)).await {
            Ok(result) => result,
            Err(_) => Err(RestError::Timeout { operation, after: timeout }),
        }
    }

    async fn exchange(&self, call: Call<'_>) -> Result<RawResponse, RestError> {
        let Call { operation, method, path_and_query, credential, headers, body } = call;
        let transport = |message: String| RestError::Transport { operation, message };
        let mut request = self.http.request(method, self.base.url(path_and_query));
        for (name, value) in &self.default_headers {
            request = request.header(name, value.clone());
        }
        request = request.header(http::header::USER_AGENT, self.user_agent.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(credential) = &credential {
            let (name, value) = credential.to_header(operation)?;
            request = request.header(name, value);
        }
        request = match body {
            Body::Empty => request,
            Body::Json(bytes) => request.header(http::header::CONTENT_TYPE, "application/json").body(bytes),
            Body::Form(bytes) => {
                request.header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(bytes)
            }
        };
        let mut response = request.send().await.map_err(|e| transport(self.describe(&e)))?;
        let status = response.status();
        let cap = self.max_body;
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(RestError::TooLarge { operation, cap });
        }
        let mut buffer = BytesMut::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| transport(format!("read body: {}", error_chain(&e))))?
        {
            if buffer.len() + chunk.len() > cap {
                return Err(RestError::TooLarge { operation, cap });
            }
            buffer.extend_from_slice(&chunk);
        }
        tracing::debug!(operation, status = status.as_u16(), host = %self.base.host, "outbound http call");
        Ok(RawResponse { status, body: buffer.freeze() })
    }

    /// A sending failure in words: where it tried to connect, and why
    /// (reqwest's own message only names the URL; the causes follow it).
    fn describe(&self, e: &reqwest::Error) -> String {
        let why = e.source().map_or_else(|| e.to_string(), error_chain);
        let peer = match &self.transport {
            Transport::Unix(path) => path.display().to_string(),
            Transport::Tcp => format!("{}:{}", self.base.host, self.base.port),
        };
        if is_tls_failure(e) {
            format!("TLS with {peer}: {why}")
        } else if e.is_connect() {
            format!("connect {peer}: {why}")
        } else {
            format!("request: {why}")
        }
    }
}

/// The error and its sources, innermost last.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Whether a rustls error is among the causes (an `io::Error` from the TLS
/// stream, possibly wrapped in another, hides it behind `get_ref`, not
/// `source`).
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut pending = vec![e];
    while let Some(err) = pending.pop() {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            pending.push(inner);
        }
        pending.extend(err.source());
    }
    false
}

#[cfg(test)]
mod tests;
