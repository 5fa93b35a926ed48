//! CONNECT tunnelling: allowlist, address policy, DNS rebinding, limits, audit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use userz_egress::{
    EgressDecision, EgressLimits, EgressProxy, EgressProxyBuilder, MemoryAudit, Rule, StaticResolver, RULE_HEADER,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn start(builder: EgressProxyBuilder) -> (EgressProxy, Arc<MemoryAudit>) {
    let audit = Arc::new(MemoryAudit::new());
    let proxy = builder.with_tcp((LOOPBACK, 0).into()).with_audit(audit.clone()).start().await.unwrap();
    (proxy, audit)
}

async fn client(proxy: &EgressProxy) -> TcpStream {
    TcpStream::connect(proxy.local_addr().unwrap()).await.unwrap()
}

#[track_caller]
fn assert_only_decision(audit: &MemoryAudit, target: &str, allowed: bool, rule: Rule, resolved: Option<SocketAddr>) {
    let decisions = audit.decisions();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let EgressDecision { target: t, allowed: a, rule: r, resolved: res, .. } = &decisions[0];
    assert_eq!((t.as_str(), *a, *r, *res), (target, allowed, rule, resolved));
}

#[track_caller]
fn assert_refused(reply: &Reply, status: u16, rule: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.header(RULE_HEADER), Some(rule));
    assert!(reply.body.contains(rule), "{reply:?}");
}

#[tokio::test]
async fn allowlisted_name_tunnels_end_to_end_to_an_excepted_loopback_echo_server() {
    let echo = echo_server().await;
    let target = format!("echo.test:{}", echo.port());
    let (proxy, audit) = start(
        EgressProxyBuilder::new()
            .with_resolver(Arc::new(StaticResolver::new().with_host("echo.test", [LOOPBACK])))
            .with_allowed_target(target.to_uppercase())
            .with_allow_socket_addr(echo),
    )
    .await;
    let mut stream = client(&proxy).await;

    let reply = exchange(&mut stream, &connect_request(&target)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    stream.write_all(b"ping through the tunnel").await.unwrap();
    let mut echoed = [0u8; 23];
    stream.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping through the tunnel");

    assert_only_decision(&audit, &target, true, Rule::Allowlisted, Some(echo));
    assert_eq!(proxy.stats().upstream_connects, 1);
    assert_eq!(proxy.stats().open_tunnels, 1);
}

#[tokio::test]
async fn non_allowlisted_host_is_refused_without_resolving_or_connecting() {
    let resolver = CountingResolver::new(StaticResolver::new().with_host("evil.test", [LOOPBACK]));
    let (proxy, audit) =
        start(EgressProxyBuilder::new().with_resolver(resolver.clone()).with_allowed_target("api.openai.com:443"))
            .await;
    let mut stream = client(&proxy).await;

    let reply = exchange(&mut stream, &connect_request("evil.test:443")).await;
    assert_refused(&reply, 403, "not_allowlisted");
    // Same host, other port: still not listed.
    let reply = exchange(&mut stream, &connect_request("api.openai.com:80")).await;
    assert_refused(&reply, 403, "not_allowlisted");

    let decisions = audit.decisions();
    assert_eq!(decisions.len(), 2);
    assert!(decisions.iter().all(|d| !d.allowed && d.rule == Rule::NotAllowlisted && d.resolved.is_none()));
    assert_eq!(decisions[0].target, "evil.test:443");
    assert_eq!(resolver.calls(), 0);
    assert_eq!(proxy.stats().upstream_connects, 0);
}

#[tokio::test]
async fn loopback_literal_without_exception_is_address_denied() {
    let echo = echo_server().await;
    let target = format!("127.0.0.1:{}", echo.port());
    // Listed, but no allow_socket_addr exception: the address policy wins.
    let (proxy, audit) = start(EgressProxyBuilder::new().with_allowed_target(&target)).await;
    let mut stream = client(&proxy).await;

    let reply = exchange(&mut stream, &connect_request(&target)).await;
    assert_refused(&reply, 403, "address_denied");
    assert_only_decision(&audit, &target, false, Rule::AddressDenied, Some(echo));
    assert_eq!(proxy.stats().upstream_connects, 0);
}

#[tokio::test]
async fn private_literal_is_refused_before_any_connect_attempt() {
    // 10.0.0.1 is never contacted: the refusal comes from the policy alone.
    let (proxy, audit) = start(EgressProxyBuilder::new().with_allowed_target("10.0.0.1:443")).await;
    let mut stream = client(&proxy).await;

    let reply = exchange(&mut stream, &connect_request("10.0.0.1:443")).await;
    assert_refused(&reply, 403, "address_denied");
    assert_only_decision(&audit, "10.0.0.1:443", false, Rule::AddressDenied, Some("10.0.0.1:443".parse().unwrap()));
    assert_eq!(proxy.stats().upstream_connects, 0);

    // Unlisted private and mapped literals are refused by the address rule too.
    for target in ["192.168.1.1:443", "[::ffff:10.0.0.1]:443", "[fd00::1]:443", "169.254.169.254:80", "[::1]:443"] {
        let reply = exchange(&mut stream, &connect_request(target)).await;
        assert_refused(&reply, 403, "address_denied");
    }
    assert_eq!(proxy.stats().upstream_connects, 0);
}

#[tokio::test]
async fn dns_rebinding_allowlisted_name_resolving_to_loopback_is_address_denied() {
    let echo = echo_server().await;
    let target = format!("rebind.test:{}", echo.port());
    let (proxy, audit) = start(
        EgressProxyBuilder::new()
            .with_resolver(Arc::new(StaticResolver::new().with_host("rebind.test", [LOOPBACK])))
            .with_allowed_target(&target),
    )
    .await;
    let mut stream = client(&proxy).await;

    let reply = exchange(&mut stream, &connect_request(&target)).await;
    assert_refused(&reply, 403, "address_denied");
    assert_only_decision(&audit, &target, false, Rule::AddressDenied, Some(echo));
    assert_eq!(proxy.stats().upstream_connects, 0);
}

#[tokio::test]
async fn a_name_with_one_private_answer_among_allowed_ones_is_denied_whole() {
    let echo = echo_server().await;
    let target = format!("mixed.test:{}", echo.port());
    let (proxy, audit) = start(
        EgressProxyBuilder::new()
            .with_resolver(Arc::new(StaticResolver::new().with_host("mixed.test", [LOOPBACK, ip("10.0.0.7")])))
            .with_allowed_target(&target)
            .with_allow_socket_addr(echo),
    )
    .await;
    let mut stream = client(&proxy).await;

    let reply = exchange(&mut stream, &connect_request(&target)).await;
    assert_refused(&reply, 403, "address_denied");
    let denied: SocketAddr = SocketAddr::new(ip("10.0.0.7"), echo.port());
    assert_only_decision(&audit, &target, false, Rule::AddressDenied, Some(denied));
    assert_eq!(proxy.stats().upstream_connects, 0);
}

#[tokio::test]
async fn allowlisted_name_that_does_not_resolve_is_dns_failed() {
    let (proxy, audit) = start(
        EgressProxyBuilder::new().with_resolver(Arc::new(StaticResolver::new())).with_allowed_target("gone.test:443"),
    )
    .await;
    let mut stream = client(&proxy).await;

    let reply = exchange(&mut stream, &connect_request("gone.test:443")).await;
    assert_refused(&reply, 403, "dns_failed");
    assert_only_decision(&audit, "gone.test:443", false, Rule::DnsFailed, None);
    assert_eq!(proxy.stats().upstream_connects, 0);
}

#[tokio::test]
async fn tunnels_beyond_the_limit_are_refused() {
    let echo = echo_server().await;
    let target = format!("127.0.0.1:{}", echo.port());
    let limits = EgressLimits { max_tunnels: 1, ..EgressLimits::default() };
    let (proxy, audit) =
        start(EgressProxyBuilder::new().with_allowed_target(&target).with_allow_socket_addr(echo).with_limits(limits))
            .await;

    let mut first = client(&proxy).await;
    assert_eq!(exchange(&mut first, &connect_request(&target)).await.status, 200);
    let mut second = client(&proxy).await;
    let reply = exchange(&mut second, &connect_request(&target)).await;
    assert_refused(&reply, 503, "too_many_tunnels");

    let rules: Vec<Rule> = audit.decisions().iter().map(|d| d.rule).collect();
    assert_eq!(rules, [Rule::Allowlisted, Rule::TooManyTunnels]);
    assert_eq!(proxy.stats().upstream_connects, 1);
}

#[tokio::test]
async fn plain_http_to_any_host_other_than_the_model_route_is_refused() {
    let resolver = CountingResolver::new(StaticResolver::new());
    let (proxy, audit) =
        start(EgressProxyBuilder::new().with_resolver(resolver.clone()).with_allowed_target("example.com:80")).await;
    let mut stream = client(&proxy).await;

    // Allowlisted for CONNECT does not mean served as plain HTTP.
    let reply = exchange(&mut stream, "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n").await;
    assert_refused(&reply, 403, "not_allowlisted");
    let reply = exchange(&mut stream, "GET /metadata HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n").await;
    assert_refused(&reply, 403, "not_allowlisted");

    let targets: Vec<String> = audit.decisions().into_iter().map(|d| d.target).collect();
    assert_eq!(targets, ["example.com", "169.254.169.254"]);
    assert_eq!(resolver.calls(), 0);
    assert_eq!(proxy.stats().upstream_connects, 0);
}

#[tokio::test]
async fn oversized_request_head_is_rejected_by_the_http_layer() {
    let limits = EgressLimits { max_header_bytes: 2048, ..EgressLimits::default() };
    let (proxy, audit) = start(EgressProxyBuilder::new().with_limits(limits)).await;
    let mut stream = client(&proxy).await;

    let big = "a".repeat(8 * 1024);
    let reply = exchange(&mut stream, &format!("CONNECT x.test:443 HTTP/1.1\r\nX-Fill: {big}\r\n\r\n")).await;
    assert_eq!(reply.status, 431, "{reply:?}");
    assert!(audit.decisions().is_empty());
}

#[tokio::test]
async fn shutdown_closes_open_tunnels() {
    let echo = echo_server().await;
    let target = format!("127.0.0.1:{}", echo.port());
    let (proxy, _audit) =
        start(EgressProxyBuilder::new().with_allowed_target(&target).with_allow_socket_addr(echo)).await;
    let mut stream = client(&proxy).await;
    assert_eq!(exchange(&mut stream, &connect_request(&target)).await.status, 200);

    proxy.shutdown().await;
    let mut rest = Vec::new();
    // A closed tunnel reads EOF (or a reset); it must not hang.
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "tunnel still open after shutdown");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn builder_refuses_a_non_loopback_listener_and_bad_targets() {
    let err = EgressProxyBuilder::new().with_tcp("0.0.0.0:0".parse().unwrap()).start().await.unwrap_err();
    assert!(err.to_string().contains("not a loopback"), "{err}");
    let err = EgressProxyBuilder::new()
        .with_tcp((LOOPBACK, 0).into())
        .with_allowed_target("*.github.com:443")
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("allowlist"), "{err}");
    let err = EgressProxyBuilder::new().start().await.unwrap_err();
    assert!(err.to_string().contains("listener"), "{err}");
}

#[tokio::test]
async fn an_idle_tunnel_is_closed() {
    let echo = echo_server().await;
    let target = format!("127.0.0.1:{}", echo.port());
    let limits = EgressLimits { idle_timeout: std::time::Duration::from_millis(200), ..EgressLimits::default() };
    let (proxy, _audit) =
        start(EgressProxyBuilder::new().with_allowed_target(&target).with_allow_socket_addr(echo).with_limits(limits))
            .await;
    let mut stream = client(&proxy).await;
    assert_eq!(exchange(&mut stream, &connect_request(&target)).await.status, 200);
    stream.write_all(b"hi").await.unwrap();
    let mut echoed = [0u8; 2];
    stream.read_exact(&mut echoed).await.unwrap();

    // Then silence: the proxy closes the tunnel (the bound only keeps a broken
    // build from hanging the suite).
    let mut rest = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "idle tunnel was not closed");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn decisions_are_stamped_by_the_injected_clock() {
    let clock = Arc::new(userz_testkit::clock::ManualClock::at_2026());
    let (proxy, audit) = start(EgressProxyBuilder::new().with_clock(clock.clone())).await;
    let mut stream = client(&proxy).await;

    assert_eq!(exchange(&mut stream, &connect_request("a.test:443")).await.status, 403);
    clock.advance(std::time::Duration::from_secs(5));
    assert_eq!(exchange(&mut stream, &connect_request("b.test:443")).await.status, 403);

    let stamps: Vec<i64> = audit.decisions().iter().map(|d| d.at.as_millis()).collect();
    assert_eq!(stamps, [1_767_225_600_000, 1_767_225_605_000]);
}
