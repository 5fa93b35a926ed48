#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

/// What the test server saw.
#[derive(Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// Serves one connection on 127.0.0.1:0, answering every request with
/// `status` and `answer`, and reports each request.
async fn serve_once(status: u16, answer: Vec<u8>) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let tx = tx.clone();
            let answer = answer.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                let _ =
                    tx.send(Seen { method: parts.method, path: parts.uri.to_string(), headers: parts.headers, body });
                let resp = Response::builder().status(status).body(Full::new(Bytes::from(answer))).unwrap();
                Ok::<_, Infallible>(resp)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
    });
    (addr, rx)
}

fn config_field(e: RestError) -> &'static str {
    match e {
        RestError::Config { field, .. } => field,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn parse_plain_base_without_prefix() {
    let b = ApiBase::parse("https://api.example.test", "").unwrap();
    assert!(b.is_tls());
    assert_eq!((b.host(), b.port(), b.prefix()), ("api.example.test", 443, ""));
    let b = ApiBase::parse("http://127.0.0.1:8080/", "").unwrap();
    assert!(!b.is_tls());
    assert_eq!((b.host(), b.port(), b.prefix()), ("127.0.0.1", 8080, ""));
}

#[test]
fn parse_keeps_path_prefix_and_appends_extra_prefix() {
    let b = ApiBase::parse("https://ghe.example.test/api/v3/", "").unwrap();
    assert_eq!(b.prefix(), "/api/v3");
    let b = ApiBase::parse("https://gitlab.example.test", "/api/v4").unwrap();
    assert_eq!(b.prefix(), "/api/v4");
    let b = ApiBase::parse("http://[::1]:9000/gitlab/", "/api/v4").unwrap();
    assert_eq!((b.host(), b.port(), b.prefix()), ("::1", 9000, "/gitlab/api/v4"));
    assert_eq!(ApiBase::parse("http://h", "").unwrap().port(), 80);
}

#[test]
fn parse_rejects_bad_urls_naming_the_field_and_url() {
    for (url, why) in [
        ("not a url", "not a URL"),
        ("ftp://h.test", "scheme must be http or https"),
        ("/relative/path", "scheme must be http or https"),
        ("https://h.test/?q=1", "must not carry a query or user info"),
        ("https://user:pw@h.test", "must not carry a query or user info"),
    ] {
        let e = ApiBase::parse(url, "/api/v4").unwrap_err();
        let text = e.to_string();
        assert_eq!(config_field(e), FIELD_BASE, "{url}");
        assert!(text.contains(why) && text.contains(&format!("{url:?}")), "{url}: {text}");
    }
}

#[test]
fn credential_header_is_sensitive_and_formatted() {
    let (name, value) = Credential::bearer("s3cret").to_header("op").unwrap();
    assert_eq!(name, http::header::AUTHORIZATION);
    assert_eq!(value, "Bearer s3cret");
    assert!(value.is_sensitive());
    assert!(!format!("{value:?}").contains("s3cret"));

    let (name, value) = Credential::header(HeaderName::from_static("private-token"), "glpat").to_header("op").unwrap();
    assert_eq!(name.as_str(), "private-token");
    assert_eq!(value, "glpat");
    assert!(value.is_sensitive());

    let cred = Credential::bearer("no\nnewlines");
    assert!(!format!("{cred:?}").contains("newlines"));
    let e = cred.to_header("op").unwrap_err();
    assert_eq!(e, RestError::Transport { operation: "op", message: "credential is not a valid header value".into() });
}

#[test]
fn new_rejects_bad_user_agent_and_sensitive_default_headers() {
    let base = ApiBase::parse("http://127.0.0.1:1", "").unwrap();
    assert_eq!(config_field(RestClient::new(base.clone(), "bad\nagent", vec![]).unwrap_err()), FIELD_USER_AGENT);
    let mut v = HeaderValue::from_static("x");
    v.set_sensitive(true);
    let e = RestClient::new(base, "ua", vec![(http::header::AUTHORIZATION, v)]).unwrap_err();
    assert_eq!(config_field(e), FIELD_DEFAULT_HEADERS);
    // An https base sets up TLS with the bundled roots.
    assert!(RestClient::new(ApiBase::parse("https://h.test", "").unwrap(), "ua", vec![]).is_ok());
}

#[tokio::test]
async fn send_carries_method_path_headers_and_body() {
    let (addr, mut seen) = serve_once(201, br#"{"ok":true}"#.to_vec()).await;
    let base = ApiBase::parse(&format!("http://{addr}/root"), "/api/v4").unwrap();
    let accept = (http::header::ACCEPT, HeaderValue::from_static("application/json"));
    let client = RestClient::new(base, "userz-test/1", vec![accept]).unwrap();
    let cred = Credential::header(HeaderName::from_static("private-token"), "tok-1");
    let resp =
        client.send("create", Method::POST, "/projects/1/items?x=y", Some(cred), Some(&json!({"a": 1}))).await.unwrap();
    assert_eq!(resp, ApiResponse { status: 201, body: json!({"ok": true}) });

    let s = seen.recv().await.unwrap();
    assert_eq!(s.method, Method::POST);
    assert_eq!(s.path, "/root/api/v4/projects/1/items?x=y");
    assert_eq!(s.headers["host"], addr.to_string());
    assert_eq!(s.headers["accept"], "application/json");
    assert_eq!(s.headers["user-agent"], "userz-test/1");
    assert_eq!(s.headers["private-token"], "tok-1");
    assert_eq!(s.headers["content-type"], "application/json");
    assert!(s.headers.get("authorization").is_none());
    assert_eq!(serde_json::from_slice::<Value>(&s.body).unwrap(), json!({"a": 1}));
}

#[tokio::test]
async fn send_without_body_or_credential_and_non_json_answer() {
    let (addr, mut seen) = serve_once(404, b"Not Found".to_vec()).await;
    let client = RestClient::new(ApiBase::parse(&format!("http://{addr}"), "").unwrap(), "ua", vec![]).unwrap();
    let resp = client.send("get", Method::GET, "/x", None, None).await.unwrap();
    assert_eq!(resp, ApiResponse { status: 404, body: Value::String("Not Found".into()) });
    let s = seen.recv().await.unwrap();
    assert_eq!((s.method, s.path.as_str()), (Method::GET, "/x"));
    assert!(s.headers.get("content-type").is_none() && s.headers.get("authorization").is_none());
    assert!(s.body.is_empty());

    let (addr, _seen) = serve_once(204, Vec::new()).await;
    let client = RestClient::new(ApiBase::parse(&format!("http://{addr}"), "").unwrap(), "ua", vec![]).unwrap();
    let cred = Credential::bearer("t");
    assert_eq!(client.send("del", Method::DELETE, "/y", Some(cred), None).await.unwrap().body, Value::Null);
}

#[tokio::test]
async fn response_over_the_cap_is_a_transport_error() {
    let (addr, _seen) = serve_once(200, vec![b'a'; 2048]).await;
    let base = ApiBase::parse(&format!("http://{addr}"), "").unwrap();
    let client = RestClient::new(base.clone(), "ua", vec![]).unwrap().with_max_body(1024);
    match client.send("big", Method::GET, "/", None, None).await.unwrap_err() {
        RestError::Transport { operation, message } => {
            assert_eq!(operation, "big");
            assert!(message.starts_with("read body"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The same answer fits under a larger cap.
    let (addr, _seen) = serve_once(200, vec![b'a'; 2048]).await;
    let client = RestClient::new(ApiBase::parse(&format!("http://{addr}"), "").unwrap(), "ua", vec![])
        .unwrap()
        .with_max_body(4096);
    assert_eq!(client.send("big", Method::GET, "/", None, None).await.unwrap().status, 200);
}

#[tokio::test]
async fn silent_server_times_out_and_closed_port_fails_to_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = RestClient::new(ApiBase::parse(&format!("http://{addr}"), "").unwrap(), "ua", vec![])
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let e = client.send("slow", Method::GET, "/", None, None).await.unwrap_err();
    assert!(
        matches!(&e, RestError::Transport { operation: "slow", message } if message.starts_with("no answer within"))
    );
    drop(listener);

    let e = client.send("gone", Method::GET, "/", None, None).await.unwrap_err();
    assert!(matches!(&e, RestError::Transport { operation: "gone", message } if message.starts_with("connect ")));
}

/// Serves every connection on a new Unix socket in `dir` like [`serve_once`].
async fn serve_unix(dir: &std::path::Path, answer: Vec<u8>) -> (PathBuf, mpsc::UnboundedReceiver<Seen>) {
    let path = dir.join("egress.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let answer = answer.clone();
            let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let tx = tx.clone();
                let answer = answer.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                    let path = parts.uri.to_string();
                    let _ = tx.send(Seen { method: parts.method, path, headers: parts.headers, body });
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer))))
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (path, rx)
}

/// A server that answers every request head with `head` and then writes
/// body chunks until the client goes away.
async fn endless_body(head: &'static str) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = stream.read(&mut buf).await;
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 1024, "a".repeat(1024));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn unix_socket_transport_uses_the_url_host_only_as_host_header() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, mut seen) = serve_unix(dir.path(), br#"{"via":"unix"}"#.to_vec()).await;
    let base = ApiBase::parse("http://model.egress.internal/v1", "").unwrap();
    let client = RestClient::new(base, "ua", vec![]).unwrap().with_transport(Transport::Unix(socket)).unwrap();
    let call = Call::post("complete", "/chat/completions").json(br#"{"m":1}"#.to_vec());
    let answer = client.execute(call).await.unwrap();
    assert_eq!(answer, RawResponse { status: StatusCode::OK, body: Bytes::from_static(br#"{"via":"unix"}"#) });
    let s = seen.recv().await.unwrap();
    assert_eq!((s.method, s.path.as_str()), (Method::POST, "/v1/chat/completions"));
    assert_eq!(s.headers["host"], "model.egress.internal");
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.body, br#"{"m":1}"#);
}

#[tokio::test]
async fn unix_socket_that_is_missing_is_a_connect_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    let base = ApiBase::parse("http://model.egress.internal", "").unwrap();
    let client = RestClient::new(base, "ua", vec![]).unwrap().with_transport(Transport::Unix(socket.clone())).unwrap();
    match client.execute(Call::get("op", "/")).await.unwrap_err() {
        RestError::Transport { operation: "op", message } => {
            assert!(message.starts_with(&format!("connect {}", socket.display())), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn https_over_a_unix_socket_and_roots_for_plain_http_are_refused() {
    let https = RestClient::new(ApiBase::parse("https://h.test", "").unwrap(), "ua", vec![]).unwrap();
    let e = https.with_transport(Transport::Unix("/tmp/x.sock".into())).unwrap_err();
    assert_eq!(config_field(e), FIELD_TRANSPORT);
    let http = RestClient::new(ApiBase::parse("http://h.test", "").unwrap(), "ua", vec![]).unwrap();
    assert_eq!(config_field(http.with_root_certificates(vec![]).unwrap_err()), FIELD_TLS);
}

#[tokio::test]
async fn execute_sends_a_form_with_its_content_type() {
    let (addr, mut seen) = serve_once(200, b"{}".to_vec()).await;
    let (base, path) = ApiBase::split_endpoint(&format!("http://{addr}/token?x=1")).unwrap();
    assert_eq!(path, "/token?x=1");
    let client = RestClient::new(base, "ua", vec![]).unwrap();
    let answer = client.execute(Call::post("token", &path).form(&b"code=abc&grant_type=authorization_code"[..])).await;
    assert_eq!(answer.unwrap().status, StatusCode::OK);
    let s = seen.recv().await.unwrap();
    assert_eq!(s.path, "/token?x=1");
    assert_eq!(s.headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(s.body, b"code=abc&grant_type=authorization_code");
}

#[tokio::test]
async fn execute_refuses_sensitive_extra_headers_and_keeps_credentials_out_of_debug() {
    let client = RestClient::new(ApiBase::parse("http://127.0.0.1:1", "").unwrap(), "ua", vec![]).unwrap();
    let mut secret = HeaderValue::from_static("sk-live-123");
    secret.set_sensitive(true);
    let call = Call::get("op", "/").header(HeaderName::from_static("x-api-key"), secret);
    assert!(!format!("{call:?}").contains("sk-live-123"));
    assert_eq!(config_field(client.execute(call).await.unwrap_err()), FIELD_HEADERS);

    let call = Call::get("op", "/").credential(Credential::header(HeaderName::from_static("x-api-key"), "sk-live-123"));
    assert!(!format!("{call:?}").contains("sk-live-123"));
    assert!(!format!("{client:?}").contains("sk-live-123"));
    assert!(Credential::bearer("ok").is_valid() && !Credential::bearer("no\r\n").is_valid());
}

#[tokio::test]
async fn execute_refuses_a_declared_length_over_the_cap_and_a_streamed_body_past_it() {
    let declared = endless_body("HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n").await;
    let client = RestClient::new(ApiBase::parse(&format!("http://{declared}"), "").unwrap(), "ua", vec![])
        .unwrap()
        .with_max_body(4096);
    let e = client.execute(Call::get("big", "/")).await.unwrap_err();
    assert_eq!(e, RestError::TooLarge { operation: "big", cap: 4096 });

    let chunked = endless_body("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await;
    let client = RestClient::new(ApiBase::parse(&format!("http://{chunked}"), "").unwrap(), "ua", vec![])
        .unwrap()
        .with_max_body(65536);
    let e = client.execute(Call::get("endless", "/")).await.unwrap_err();
    assert_eq!(e, RestError::TooLarge { operation: "endless", cap: 65536 });
    assert_eq!(e.to_string(), "endless: response body exceeds the 65536-byte cap");
}

#[tokio::test]
async fn execute_reports_a_timeout_as_its_own_variant() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = RestClient::new(ApiBase::parse(&format!("http://{addr}"), "").unwrap(), "ua", vec![])
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let e = client.execute(Call::get("slow", "/")).await.unwrap_err();
    assert_eq!(e, RestError::Timeout { operation: "slow", after: Duration::from_millis(200) });
    drop(listener);
}

#[test]
fn split_endpoint_keeps_the_query_and_refuses_user_info() {
    let (base, path) = ApiBase::split_endpoint("https://oauth2.example.test/token").unwrap();
    assert_eq!((base.host(), base.port(), base.prefix(), path.as_str()), ("oauth2.example.test", 443, "", "/token"));
    let (_, path) = ApiBase::split_endpoint("http://h.test:8080").unwrap();
    assert_eq!(path, "/");
    assert_eq!(config_field(ApiBase::split_endpoint("https://u:p@h.test/t").unwrap_err()), FIELD_BASE);
}

fn test_data(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// Terminates TLS with the `localhost` test certificate and answers every
/// request with 200 `{"tls":true}`.
async fn serve_tls() -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(test_data("localhost.cert.pem")).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(test_data("localhost.key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let service = hyper::service::service_fn(|_req: http::Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(br#"{"tls":true}"#))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_is_verified_against_the_configured_roots_and_refused_otherwise() {
    use rustls_pki_types::pem::PemObject;
    let addr = serve_tls().await;
    let base = ApiBase::parse(&format!("https://localhost:{}", addr.port()), "").unwrap();
    let cert = CertificateDer::from_pem_file(test_data("localhost.cert.pem")).unwrap();
    let trusted = RestClient::new(base.clone(), "ua", vec![]).unwrap().with_root_certificates(vec![cert]).unwrap();
    let answer = trusted.send("tls", Method::GET, "/", Some(Credential::bearer("t")), None).await.unwrap();
    assert_eq!(answer, ApiResponse { status: 200, body: json!({"tls": true}) });

    // The web PKI roots do not know the test certificate.
    let untrusted = RestClient::new(base, "ua", vec![]).unwrap();
    match untrusted.execute(Call::get("tls", "/")).await.unwrap_err() {
        RestError::Transport { operation: "tls", message } => {
            assert!(message.starts_with(&format!("TLS with localhost:{}", addr.port())), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
