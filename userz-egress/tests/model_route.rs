//! The model-provider route: the proxy adds the key, strips the sandbox's
//! credentials, and never shows the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use userz_egress::{EgressProxy, EgressProxyBuilder, MemoryAudit, ModelRoute, Rule, StaticResolver, RULE_HEADER};

const KEY: &str = "sk-test-secret-KEY-4f9a";
const ROUTE: &str = "model.egress.internal";

fn openai_route(upstream: SocketAddr) -> ModelRoute {
    ModelRoute::openai_compatible(ROUTE, &format!("http://{upstream}/base/"), KEY.into()).unwrap()
}

async fn start(route: ModelRoute, except: Option<SocketAddr>) -> (EgressProxy, Arc<MemoryAudit>) {
    let audit = Arc::new(MemoryAudit::new());
    let mut builder =
        EgressProxyBuilder::new().with_tcp((LOOPBACK, 0).into()).with_model_route(route).with_audit(audit.clone());
    if let Some(addr) = except {
        builder = builder.with_allow_socket_addr(addr);
    }
    (builder.start().await.unwrap(), audit)
}

async fn client(proxy: &EgressProxy) -> TcpStream {
    TcpStream::connect(proxy.local_addr().unwrap()).await.unwrap()
}

#[tokio::test]
async fn openai_route_adds_the_key_and_strips_every_sandbox_credential() {
    let (upstream, mut received) = upstream_server().await;
    let (proxy, audit) = start(openai_route(upstream), Some(upstream)).await;
    let mut stream = client(&proxy).await;

    let body = r#"{"model":"test"}"#;
    let request = format!(
        "POST http://{ROUTE}/v1/chat/completions?stream=false HTTP/1.1\r\n\
         Host: {ROUTE}\r\n\
         Authorization: Bearer sandbox-token\r\n\
         X-Api-Key: sandbox-key\r\n\
         Proxy-Authorization: Basic c2FuZGJveA==\r\n\
         Cookie: session=sandbox\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let reply = exchange(&mut stream, &request).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "upstream-ok");

    let got = received.recv().await.unwrap();
    assert_eq!(got.request_line, "POST /base/v1/chat/completions?stream=false HTTP/1.1");
    assert_eq!(got.all("authorization"), [format!("Bearer {KEY}")]);
    for stripped in ["x-api-key", "proxy-authorization", "cookie"] {
        assert!(got.all(stripped).is_empty(), "{stripped} reached upstream: {got:?}");
    }
    assert_eq!(got.header("host"), Some(upstream.to_string().as_str()));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.body, body.as_bytes());

    let decisions = audit.decisions();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].target, "model.egress.internal:80");
    assert!(decisions[0].allowed);
    assert_eq!(decisions[0].rule, Rule::ModelRoute);
    assert_eq!(decisions[0].resolved, Some(upstream));
}

#[tokio::test]
async fn anthropic_route_reached_in_origin_form_through_the_host_header() {
    let (upstream, mut received) = upstream_server().await;
    let route = ModelRoute::anthropic(ROUTE, &format!("http://{upstream}"), KEY.into()).unwrap();
    let (proxy, audit) = start(route, Some(upstream)).await;
    let mut stream = client(&proxy).await;

    let request = "POST /v1/messages HTTP/1.1\r\nHost: MODEL.egress.internal\r\nx-api-key: sandbox-key\r\n\
                   Authorization: Bearer sandbox-token\r\nContent-Length: 2\r\n\r\n{}";
    let reply = exchange(&mut stream, request).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let got = received.recv().await.unwrap();
    assert_eq!(got.request_line, "POST /v1/messages HTTP/1.1");
    assert_eq!(got.all("x-api-key"), [KEY]);
    assert_eq!(got.all("anthropic-version"), ["2023-06-01"]);
    assert!(got.all("authorization").is_empty(), "{got:?}");
    assert_eq!(got.body, b"{}");

    // A version the agent asks for is kept; only credentials are replaced.
    let request = "POST /v1/messages HTTP/1.1\r\nHost: model.egress.internal\r\n\
                   anthropic-version: 2099-01-01\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(exchange(&mut stream, request).await.status, 200);
    let got = received.recv().await.unwrap();
    assert_eq!(got.all("anthropic-version"), ["2099-01-01"]);
    assert_eq!(got.all("x-api-key"), [KEY]);

    assert!(audit.decisions().iter().all(|d| d.allowed && d.rule == Rule::ModelRoute));
    assert_eq!(audit.decisions().len(), 2);
}

#[tokio::test]
async fn other_methods_on_the_route_are_refused_without_connecting() {
    let (upstream, mut received) = upstream_server().await;
    let (proxy, audit) = start(openai_route(upstream), Some(upstream)).await;
    let mut stream = client(&proxy).await;

    let reply =
        exchange(&mut stream, &format!("DELETE http://{ROUTE}/v1/files/1 HTTP/1.1\r\nHost: {ROUTE}\r\n\r\n")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header(RULE_HEADER), Some("method_not_allowed"));
    assert!(reply.body.contains("method_not_allowed"));

    let decisions = audit.decisions();
    assert_eq!(decisions.len(), 1);
    assert_eq!((decisions[0].allowed, decisions[0].rule), (false, Rule::MethodNotAllowed));
    assert_eq!(proxy.stats().upstream_connects, 0);
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn the_upstream_itself_must_pass_the_address_policy() {
    let (upstream, mut received) = upstream_server().await;
    // No allow_socket_addr: a loopback upstream is refused like any other.
    let (proxy, audit) = start(openai_route(upstream), None).await;
    let mut stream = client(&proxy).await;

    let reply = exchange(
        &mut stream,
        &format!("POST http://{ROUTE}/v1/x HTTP/1.1\r\nHost: {ROUTE}\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header(RULE_HEADER), Some("address_denied"));
    let decisions = audit.decisions();
    assert_eq!(decisions.len(), 1);
    assert_eq!((decisions[0].rule, decisions[0].resolved), (Rule::AddressDenied, Some(upstream)));
    assert_eq!(proxy.stats().upstream_connects, 0);
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn an_unreachable_upstream_answers_502() {
    let closed = {
        let listener = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        listener.local_addr().unwrap()
    };
    let (proxy, audit) = start(openai_route(closed), Some(closed)).await;
    let mut stream = client(&proxy).await;

    let reply = exchange(
        &mut stream,
        &format!("POST http://{ROUTE}/v1/x HTTP/1.1\r\nHost: {ROUTE}\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.header(RULE_HEADER), Some("upstream_unreachable"));
    assert_eq!(audit.decisions()[0].rule, Rule::UpstreamUnreachable);
    assert!(!audit.decisions()[0].allowed);
}

#[tokio::test]
async fn https_upstream_is_reached_over_verified_tls_with_the_key_added() {
    let (upstream, mut received) = tls_upstream_server().await;
    let route =
        ModelRoute::openai_compatible(ROUTE, &format!("https://localhost:{}/v1-base", upstream.port()), KEY.into())
            .unwrap()
            .with_root_certificates([test_certificate()])
            .unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let proxy = EgressProxyBuilder::new()
        .with_tcp((LOOPBACK, 0).into())
        .with_resolver(Arc::new(StaticResolver::new().with_host("localhost", [LOOPBACK])))
        .with_model_route(route)
        .with_allow_socket_addr(upstream)
        .with_audit(audit.clone())
        .start()
        .await
        .unwrap();
    let mut stream = client(&proxy).await;

    let request = format!(
        "POST http://{ROUTE}/chat HTTP/1.1\r\nHost: {ROUTE}\r\nAuthorization: Bearer sandbox\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let reply = exchange(&mut stream, &request).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "upstream-ok");
    let got = received.recv().await.unwrap();
    assert_eq!(got.request_line, "POST /v1-base/chat HTTP/1.1");
    assert_eq!(got.all("authorization"), [format!("Bearer {KEY}")]);
    assert_eq!(got.header("host"), Some(format!("localhost:{}", upstream.port()).as_str()));
    let decisions = audit.decisions();
    assert_eq!(decisions.len(), 1);
    assert_eq!((decisions[0].rule, decisions[0].resolved), (Rule::ModelRoute, Some(upstream)));
}

#[tokio::test]
async fn an_https_upstream_with_an_untrusted_certificate_gets_nothing() {
    let (upstream, mut received) = tls_upstream_server().await;
    // Default roots (Mozilla's): the self-signed test certificate is not trusted.
    let route =
        ModelRoute::openai_compatible(ROUTE, &format!("https://localhost:{}", upstream.port()), KEY.into()).unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let proxy = EgressProxyBuilder::new()
        .with_tcp((LOOPBACK, 0).into())
        .with_resolver(Arc::new(StaticResolver::new().with_host("localhost", [LOOPBACK])))
        .with_model_route(route)
        .with_allow_socket_addr(upstream)
        .with_audit(audit.clone())
        .start()
        .await
        .unwrap();
    let mut stream = client(&proxy).await;

    let request = format!("POST http://{ROUTE}/chat HTTP/1.1\r\nHost: {ROUTE}\r\nContent-Length: 0\r\n\r\n");
    let reply = exchange(&mut stream, &request).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert_eq!(reply.header(RULE_HEADER), Some("upstream_unreachable"));
    assert!(received.try_recv().is_err(), "the request (and key) reached an unverified server");
    // The TCP connect was allowed and audited; the TLS failure only logs.
    assert_eq!(audit.decisions().len(), 1);
}

#[test]
fn bad_upstreams_and_bad_keys_are_refused_at_configuration() {
    let err = ModelRoute::openai_compatible(ROUTE, "ftp://127.0.0.1:1", KEY.into()).unwrap_err();
    assert!(err.to_string().contains("scheme must be http or https"), "{err}");
    let err = ModelRoute::openai_compatible(ROUTE, "http://user:pw@127.0.0.1:1", KEY.into()).unwrap_err();
    assert!(err.to_string().contains("userinfo"), "{err}");
    let err = ModelRoute::openai_compatible(ROUTE, "http://127.0.0.1:1", KEY.into())
        .unwrap()
        .with_root_certificates([test_certificate()])
        .unwrap_err();
    assert!(err.to_string().contains("https upstream"), "{err}");
    let err = ModelRoute::openai_compatible(ROUTE, "http://127.0.0.1:1", "line\nbreak".into()).unwrap_err();
    assert!(err.to_string().contains("model_route.key"), "{err}");
    assert!(!err.to_string().contains("line"), "{err}");
    let https = ModelRoute::anthropic(ROUTE, "https://api.anthropic.com", KEY.into()).unwrap();
    assert_eq!(https.upstream_target().to_string(), "api.anthropic.com:443");
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// current_thread runtime: every task of the proxy runs on this thread and so
// logs to the subscriber set below.
#[tokio::test(flavor = "current_thread")]
async fn the_key_appears_in_no_debug_output_and_no_log_line() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (upstream, mut received) = upstream_server().await;
    let route = openai_route(upstream);
    let builder = EgressProxyBuilder::new()
        .with_tcp((LOOPBACK, 0).into())
        .with_model_route(route.clone())
        .with_allow_socket_addr(upstream); // default audit: tracing
    let debug_builder = format!("{builder:?} {route:?}");
    let proxy = builder.start().await.unwrap();
    let mut stream = client(&proxy).await;

    let ok = exchange(
        &mut stream,
        &format!("POST http://{ROUTE}/v1/x HTTP/1.1\r\nHost: {ROUTE}\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(received.recv().await.unwrap().all("authorization"), [format!("Bearer {KEY}")]);
    let denied = exchange(&mut stream, &connect_request("elsewhere.test:443")).await;
    assert_eq!(denied.status, 403);
    assert!(!format!("{ok:?}{denied:?}").contains(KEY));

    let debug_proxy = format!("{proxy:?}");
    proxy.shutdown().await;
    let logged = String::from_utf8(logs.0.lock().clone()).unwrap();
    // The capture works: both decisions were logged by the default audit sink.
    assert!(logged.contains("egress allowed") && logged.contains("model_route"), "{logged}");
    assert!(logged.contains("egress denied") && logged.contains("not_allowlisted"), "{logged}");
    for (what, text) in [("builder/route Debug", &debug_builder), ("proxy Debug", &debug_proxy), ("logs", &logged)] {
        assert!(!text.contains(KEY), "{what} leaks the key: {text}");
        assert!(!text.contains("secret-KEY"), "{what} leaks part of the key");
    }
    assert!(debug_proxy.contains("redacted"), "{debug_proxy}");
}
