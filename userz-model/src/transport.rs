//! One JSON POST over HTTP/1.1: plain TCP, TLS (rustls on `ring`, Mozilla
//! roots) or a Unix domain socket, with a whole-request timeout and a cap on
//! the response body.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::uri::Scheme;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use userz_core::error::{Error, Result};

/// Default whole-request timeout (connect, send, wait, read).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on a response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// How the HTTP connection is made.
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

/// A failure before a usable HTTP response arrived.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Connecting, TLS, writing or reading failed (retryable).
    Connection(String),
    /// The whole exchange took longer than the timeout (retryable).
    Timeout(Duration),
    /// The response body is larger than the cap (not retryable).
    TooLarge(usize),
}

/// An HTTP response, body fully read.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// Where and how requests go. Built once per provider.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    transport: Transport,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// `host:port` to connect to over TCP.
    connect_to: String,
    /// `Host` header value.
    host_header: HeaderValue,
    /// Base path without a trailing slash.
    base_path: String,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("model `{field}`: {reason}"))
}

fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>> {
    // The `ring` provider is named explicitly so the process-wide default does not matter.
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl HttpClient {
    /// Parses `base_url` (`http(s)://host[:port][/path]`, no query, no userinfo).
    pub(crate) fn new(base_url: &str, transport: Transport) -> Result<Self> {
        let uri = Uri::from_str(base_url).map_err(|e| invalid("base_url", format!("{base_url:?}: {e}")))?;
        let scheme = uri.scheme().ok_or_else(|| invalid("base_url", "scheme (http or https) required"))?;
        let https = if *scheme == Scheme::HTTPS {
            true
        } else if *scheme == Scheme::HTTP {
            false
        } else {
            return Err(invalid("base_url", "scheme must be http or https"));
        };
        let authority = uri.authority().ok_or_else(|| invalid("base_url", "host required"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("base_url", "userinfo is not allowed (keys go in the key argument)"));
        }
        if uri.query().is_some() {
            return Err(invalid("base_url", "a query is not allowed"));
        }
        if https && matches!(transport, Transport::Unix(_)) {
            return Err(invalid("transport", "a Unix socket carries plain http only"));
        }
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
            let server_name = ServerName::try_from(name).map_err(|e| invalid("base_url", e))?;
            let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Some((tls_config(roots)?, server_name))
        } else {
            None
        };
        Ok(Self {
            transport,
            tls,
            connect_to: format!("{host}:{port}"),
            host_header: HeaderValue::from_str(authority.as_str()).map_err(|e| invalid("base_url", e))?,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// Trusts exactly `certs` for an `https` base URL.
    pub(crate) fn set_root_certificates(&mut self, certs: Vec<CertificateDer<'static>>) -> Result<()> {
        let Some((config, _)) = self.tls.as_mut() else {
            return Err(invalid("tls", "root certificates need an https base_url"));
        };
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| invalid("tls", e))?;
        }
        *config = tls_config(roots)?;
        Ok(())
    }

    /// POSTs `body` (JSON) to `{base path}{path}` with `headers`.
    pub(crate) async fn post_json(
        &self,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> std::result::Result<HttpResponse, SendError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(path, headers, body)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(timeout)),
        }
    }

    async fn exchange(
        &self,
        path: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> std::result::Result<HttpResponse, SendError> {
        let conn = |e: &dyn std::fmt::Display| SendError::Connection(e.to_string());
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{}", self.base_path, path))
            .header(HOST, self.host_header.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(Bytes::from(body))).map_err(|e| conn(&e))?;
        let response = match (&self.transport, &self.tls) {
            (Transport::Unix(path), _) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| SendError::Connection(format!("connect {}: {e}", path.display())))?;
                send(TokioIo::new(stream), request).await?
            }
            (Transport::Tcp, None) => {
                let stream = tokio::net::TcpStream::connect(&self.connect_to)
                    .await
                    .map_err(|e| SendError::Connection(format!("connect {}: {e}", self.connect_to)))?;
                send(TokioIo::new(stream), request).await?
            }
            (Transport::Tcp, Some((config, server_name))) => {
                let stream = tokio::net::TcpStream::connect(&self.connect_to)
                    .await
                    .map_err(|e| SendError::Connection(format!("connect {}: {e}", self.connect_to)))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(server_name.clone(), stream)
                    .await
                    .map_err(|e| SendError::Connection(format!("TLS with {}: {e}", self.connect_to)))?;
                send(TokioIo::new(tls), request).await?
            }
        };
        let (parts, body) = response.into_parts();
        let cap = self.max_response_bytes;
        let declared =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(SendError::TooLarge(cap));
        }
        let body = match Limited::new(body, cap).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(SendError::TooLarge(cap)),
            Err(e) => return Err(SendError::Connection(format!("reading the response: {e}"))),
        };
        Ok(HttpResponse { status: parts.status, body })
    }
}

async fn send<I>(
    io: I,
    request: Request<Full<Bytes>>,
) -> std::result::Result<http::Response<hyper::body::Incoming>, SendError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Connection(format!("HTTP handshake: {e}")))?;
    // The connection task ends when the response body is read or dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "model connection ended with an error");
        }
    });
    sender.send_request(request).await.map_err(|e| SendError::Connection(format!("sending the request: {e}")))
}
