//! The Unix-socket listener the sandbox reaches through a bind mount.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use userz_egress::{EgressProxyBuilder, MemoryAudit, ModelRoute, Rule};

#[tokio::test]
async fn unix_socket_serves_tunnels_and_the_model_route_and_is_removed_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("egress.sock");
    let echo = echo_server().await;
    let (upstream, mut received) = upstream_server().await;
    let audit = Arc::new(MemoryAudit::new());
    let route = ModelRoute::openai_compatible("model.egress.internal", &format!("http://{upstream}"), "sk-unix".into())
        .unwrap();
    let proxy = EgressProxyBuilder::new()
        .with_unix_socket(&path)
        .with_allowed_target(format!("127.0.0.1:{}", echo.port()))
        .with_allow_socket_addr(echo)
        .with_allow_socket_addr(upstream)
        .with_model_route(route)
        .with_audit(audit.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(proxy.unix_path(), Some(path.as_path()));
    assert_eq!(proxy.local_addr(), None);

    // The model route, as `curl --unix-socket` sends it.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    let reply = exchange(
        &mut stream,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: model.egress.internal\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(received.recv().await.unwrap().all("authorization"), ["Bearer sk-unix"]);

    // A tunnel.
    let mut stream = UnixStream::connect(&path).await.unwrap();
    let reply = exchange(&mut stream, &connect_request(&format!("127.0.0.1:{}", echo.port()))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    stream.write_all(b"over unix").await.unwrap();
    let mut echoed = [0u8; 9];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"over unix");

    let rules: Vec<Rule> = audit.decisions().iter().map(|d| d.rule).collect();
    assert_eq!(rules, [Rule::ModelRoute, Rule::Allowlisted]);

    proxy.shutdown().await;
    assert!(!path.exists(), "socket file left behind");
}

#[tokio::test]
async fn an_existing_socket_path_is_not_clobbered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taken.sock");
    std::fs::write(&path, b"someone else's").unwrap();
    let err = EgressProxyBuilder::new().with_unix_socket(&path).start().await.unwrap_err();
    assert!(matches!(err, userz_egress::Error::Io(_)), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
}
