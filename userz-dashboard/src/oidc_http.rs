//! One HTTP/1.1 exchange with an identity provider's token or userinfo
//! endpoint: TLS (web PKI roots) for `https`, plain TCP for `http` (local
//! fakes), a body cap and a timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

const MAX_BODY: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(15);

/// Status and body of an answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

/// Sends one request; `bearer` goes in `Authorization` (marked sensitive).
pub(crate) async fn exchange(
    method: Method,
    url: &str,
    content_type: Option<&str>,
    bearer: Option<&str>,
    body: Bytes,
) -> Result<Answer, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url:?}: scheme must be http or https")),
    };
    let host = uri.host().ok_or_else(|| format!("{url:?}: no host"))?.to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, authority)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "userz-dashboard");
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    if let Some(token) = bearer {
        let mut v = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| "bad token".to_string())?;
        v.set_sensitive(true);
        builder = builder.header(header::AUTHORIZATION, v);
    }
    let req = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let fut = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
        if tls {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS setup: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            let name = ServerName::try_from(host.clone()).map_err(|_| format!("{host:?}: bad TLS name"))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            send(TokioIo::new(stream), req).await
        } else {
            send(TokioIo::new(tcp), req).await
        }
    };
    tokio::time::timeout(TIMEOUT, fut).await.map_err(|_| format!("{url}: timed out"))?
}

async fn send<T>(io: T, req: Request<Full<Bytes>>) -> Result<Answer, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body =
        Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|e| format!("read body: {e}"))?.to_bytes();
    Ok(Answer { status, body })
}
