//! The proxy server: builder, listeners and the request handler.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST};
use http::uri::Scheme;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use userz_core::{Clock, SystemClock};

use crate::audit::{EgressAudit, EgressDecision, Rule, TracingAudit};
use crate::error::{Error, Result};
use crate::model_route::ModelRoute;
use crate::policy::{AddressPolicy, Allowlist, Target};
use crate::resolver::{Resolver, SystemResolver};
use crate::tunnel::pump;

type Body = BoxBody<Bytes, hyper::Error>;

/// The header naming the rule on every refusal.
pub const RULE_HEADER: &str = "x-userz-egress-rule";

/// Limits of one proxy (one agent run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressLimits {
    /// Open CONNECT tunnels at once; the next one is refused with 503 `too_many_tunnels`.
    pub max_tunnels: usize,
    /// Client connections served at once, over all listeners; further ones
    /// wait to be accepted.
    pub max_connections: usize,
    /// A tunnel with no byte either way for this long is closed; a client
    /// connection that does not complete its request headers within it too.
    pub idle_timeout: Duration,
    /// Bound on resolving an allowlisted name and on each connect attempt.
    pub connect_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes;
    /// larger heads are answered 431 by the HTTP layer. At least 1024.
    pub max_header_bytes: usize,
}

impl Default for EgressLimits {
    fn default() -> Self {
        Self {
            max_tunnels: 32,
            max_connections: 64,
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Counters of a running proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EgressStats {
    /// Outbound TCP connect attempts made so far (tunnels and model route).
    /// Stays 0 as long as every request was refused.
    pub upstream_connects: u64,
    /// CONNECT tunnels open right now.
    pub open_tunnels: usize,
}

/// Configures and starts an [`EgressProxy`].
///
/// ```no_run
/// # async fn demo() -> userz_egress::Result<()> {
/// use userz_egress::{EgressProxyBuilder, ModelRoute};
/// let proxy = EgressProxyBuilder::new()
///     .with_unix_socket("/run/userz/run-42/egress.sock")
///     .with_allowed_target("github.com:443")
///     .with_model_route(ModelRoute::openai_compatible(
///         "model.egress.internal",
///         "http://127.0.0.1:8000",
///         "sk-...".into(),
///     )?)
///     .with_allow_socket_addr("127.0.0.1:8000".parse().expect("literal"))
///     .start()
///     .await?;
/// // … run the agent; its HTTP(S)_PROXY points at the socket …
/// proxy.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EgressProxyBuilder {
    tcp: Option<SocketAddr>,
    unix: Option<PathBuf>,
    allowlist: Vec<String>,
    exceptions: Vec<SocketAddr>,
    resolver: Arc<dyn Resolver>,
    route: Option<ModelRoute>,
    audit: Arc<dyn EgressAudit>,
    clock: Arc<dyn Clock>,
    limits: EgressLimits,
}

impl Default for EgressProxyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EgressProxyBuilder {
    /// No listener, empty allowlist, system resolver, `tracing` audit, default limits.
    pub fn new() -> Self {
        Self {
            tcp: None,
            unix: None,
            allowlist: Vec::new(),
            exceptions: Vec::new(),
            resolver: Arc::new(SystemResolver),
            route: None,
            audit: Arc::new(TracingAudit),
            clock: Arc::new(SystemClock),
            limits: EgressLimits::default(),
        }
    }

    /// Listens on a TCP loopback address (port 0 picks a free port). A
    /// non-loopback address is refused at start: the proxy must not be reachable
    /// from the network.
    pub fn with_tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp = Some(addr);
        self
    }

    /// Listens on a Unix domain socket at `path`, to be bind-mounted into the
    /// sandbox (which has no network device). The path must not exist yet; it is
    /// removed when the proxy shuts down. Its permissions are the caller's to set.
    pub fn with_unix_socket(mut self, path: impl AsRef<Path>) -> Self {
        self.unix = Some(path.as_ref().to_path_buf());
        self
    }

    /// Allows CONNECT to exactly `target` (`host:port`, case-insensitive host,
    /// no wildcards). Parsed at start.
    pub fn with_allowed_target(mut self, target: impl Into<String>) -> Self {
        self.allowlist.push(target.into());
        self
    }

    /// Allows CONNECT to each of `targets`.
    pub fn with_allowed_targets<I, S>(mut self, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowlist.extend(targets.into_iter().map(Into::into));
        self
    }

    /// Exempts exactly `addr` (IP and port) from the address policy.
    ///
    /// Only for tests on loopback and for model servers running on the host
    /// itself (e.g. `127.0.0.1:11434`): every other loopback, private,
    /// link-local … address stays denied. A target must still be allowlisted.
    pub fn with_allow_socket_addr(mut self, addr: SocketAddr) -> Self {
        self.exceptions.push(addr);
        self
    }

    /// Replaces the system resolver.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Serves the model-provider route (plain HTTP, key added by the proxy).
    pub fn with_model_route(mut self, route: ModelRoute) -> Self {
        self.route = Some(route);
        self
    }

    /// Where decisions go (default: [`TracingAudit`]).
    pub fn with_audit(mut self, audit: Arc<dyn EgressAudit>) -> Self {
        self.audit = audit;
        self
    }

    /// The clock stamping decisions.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: EgressLimits) -> Self {
        self.limits = limits;
        self
    }

    fn validate(&self) -> Result<Allowlist> {
        if self.tcp.is_none() && self.unix.is_none() {
            return Err(Error::config("listener", "set with_tcp and/or with_unix_socket"));
        }
        if let Some(addr) = self.tcp {
            if !addr.ip().is_loopback() {
                return Err(Error::config("tcp", format!("{addr} is not a loopback address")));
            }
        }
        let l = &self.limits;
        if l.max_tunnels == 0 || l.max_connections == 0 {
            return Err(Error::config("limits", "max_tunnels and max_connections must be at least 1"));
        }
        if l.idle_timeout.is_zero() || l.connect_timeout.is_zero() {
            return Err(Error::config("limits", "timeouts must be non-zero"));
        }
        if l.max_header_bytes < 1024 {
            return Err(Error::config("limits", "max_header_bytes must be at least 1024"));
        }
        let mut allowlist = Allowlist::default();
        for entry in &self.allowlist {
            allowlist.insert(Target::parse(entry)?);
        }
        Ok(allowlist)
    }

    /// Binds the listeners and starts serving. Must run inside a Tokio runtime.
    pub async fn start(self) -> Result<EgressProxy> {
        let allowlist = self.validate()?;
        let mut policy = AddressPolicy::default();
        for addr in &self.exceptions {
            policy.allow_socket_addr(*addr);
        }
        let tcp = match self.tcp {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let tcp_addr = tcp.as_ref().map(TcpListener::local_addr).transpose()?;
        let unix = self.unix.as_deref().map(UnixListener::bind).transpose()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let shared = Arc::new(Shared {
            allowlist,
            policy,
            resolver: self.resolver,
            route: self.route,
            audit: self.audit,
            clock: self.clock,
            limits: self.limits,
            tunnels: Arc::new(Semaphore::new(self.limits.max_tunnels)),
            connections: Arc::new(Semaphore::new(self.limits.max_connections)),
            connects: AtomicU64::new(0),
            shutdown: shutdown_rx,
        });
        let mut tasks = Vec::new();
        if let Some(listener) = tcp {
            tasks.push(tokio::spawn(accept_loop(Listener::Tcp(listener), Arc::clone(&shared))));
        }
        if let Some(listener) = unix {
            tasks.push(tokio::spawn(accept_loop(Listener::Unix(listener), Arc::clone(&shared))));
        }
        tracing::debug!(tcp = ?tcp_addr, unix = ?self.unix, "egress proxy started");
        Ok(EgressProxy { tcp_addr, unix_path: self.unix, shutdown: Some(shutdown_tx), tasks, shared })
    }
}

/// A running egress proxy for one agent run.
///
/// Dropping it (or [`shutdown`](Self::shutdown)) stops the listeners, closes
/// every client connection and tunnel, and removes the Unix socket file.
#[derive(Debug)]
pub struct EgressProxy {
    tcp_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    shutdown: Option<watch::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl EgressProxy {
    /// The bound TCP loopback address, if listening on TCP.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The Unix socket path, if listening on one.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// Current counters.
    pub fn stats(&self) -> EgressStats {
        EgressStats {
            upstream_connects: self.shared.connects.load(Ordering::Relaxed),
            open_tunnels: self.shared.limits.max_tunnels - self.shared.tunnels.available_permits(),
        }
    }

    /// Stops serving and waits for the listeners and their connections to close.
    pub async fn shutdown(mut self) {
        self.shutdown.take();
        for task in self.tasks.drain(..) {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "egress listener task failed");
            }
        }
        self.remove_socket_file();
    }

    fn remove_socket_file(&mut self) {
        if let Some(path) = self.unix_path.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::debug!(path = %path.display(), error = %e, "egress socket not removed");
            }
        }
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        // Dropping the sender is the shutdown signal every task watches.
        self.shutdown.take();
        self.remove_socket_file();
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&shared.connections).acquire_owned() => permit,
            _ = shutdown.changed() => break,
        };
        // The semaphore is never closed, so acquiring only fails if it were.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = accept_one(&listener, &shared, permit, &mut connections) => accepted,
            _ = shutdown.changed() => break,
        };
        if let Err(e) = accepted {
            // e.g. out of file descriptors: back off instead of spinning.
            tracing::warn!(error = %e, "egress accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    connections.shutdown().await;
}

async fn accept_one(
    listener: &Listener,
    shared: &Arc<Shared>,
    permit: tokio::sync::OwnedSemaphorePermit,
    connections: &mut JoinSet<()>,
) -> std::io::Result<()> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, _) = l.accept().await?;
            connections.spawn(serve(stream, Arc::clone(shared), permit));
        }
        Listener::Unix(l) => {
            let (stream, _) = l.accept().await?;
            connections.spawn(serve(stream, Arc::clone(shared), permit));
        }
    }
    Ok(())
}

async fn serve<S>(io: S, shared: Arc<Shared>, _permit: tokio::sync::OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = shared.shutdown.clone();
    let limits = shared.limits;
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(shared.handle(req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout).max_header_size(limits.max_header_bytes);
    let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::select! {
        served = connection => if let Err(e) = served {
            tracing::debug!(error = %e, "egress client connection ended with an error");
        },
        _ = shutdown.changed() => {}
    }
}

#[derive(Debug)]
struct Shared {
    allowlist: Allowlist,
    policy: AddressPolicy,
    resolver: Arc<dyn Resolver>,
    route: Option<ModelRoute>,
    audit: Arc<dyn EgressAudit>,
    clock: Arc<dyn Clock>,
    limits: EgressLimits,
    tunnels: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    connects: AtomicU64,
    shutdown: watch::Receiver<()>,
}

/// Why a request is refused, and the address that tripped it, if any.
type Denial = (Rule, Option<SocketAddr>);

/// Audit targets come from the client; keep them short and printable.
fn sanitize_target(raw: &str) -> String {
    raw.chars().filter(|c| c.is_ascii_graphic()).take(255).collect()
}

impl Shared {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.method() == Method::CONNECT {
            return self.connect(req).await;
        }
        let absolute = req.uri().authority().is_some();
        let authority = if absolute {
            req.uri().authority().map(|a| a.as_str().to_owned())
        } else {
            req.headers().get(HOST).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let plain_http = req.uri().scheme().is_none_or(|s| *s == Scheme::HTTP);
        match (&self.route, authority) {
            (Some(route), Some(authority)) if plain_http && route.matches(&authority) => self.forward(route, req).await,
            (_, authority) => {
                let target = sanitize_target(authority.as_deref().unwrap_or("-"));
                self.deny(&target, (Rule::NotAllowlisted, None))
            }
        }
    }

    fn record(&self, target: &str, allowed: bool, rule: Rule, resolved: Option<SocketAddr>) {
        self.audit.record(EgressDecision { target: target.to_owned(), allowed, rule, resolved, at: self.clock.now() });
    }

    fn deny(&self, target: &str, (rule, addr): Denial) -> Response<Body> {
        self.record(target, false, rule, addr);
        let status = match rule {
            Rule::TooManyTunnels => StatusCode::SERVICE_UNAVAILABLE,
            Rule::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            _ => StatusCode::FORBIDDEN,
        };
        refusal(status, rule)
    }

    /// Every address `target` stands for, each one passed by the address policy.
    async fn checked_addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, Denial> {
        let addrs = match target.ip() {
            Some(ip) => vec![SocketAddr::new(ip, target.port())],
            None => {
                let lookup = self.resolver.resolve(target.host(), target.port());
                match tokio::time::timeout(self.limits.connect_timeout, lookup).await {
                    // The resolver's port is not trusted: the allowlisted one is used.
                    Ok(Ok(addrs)) if !addrs.is_empty() => {
                        addrs.into_iter().map(|a| SocketAddr::new(a.ip(), target.port())).collect()
                    }
                    Ok(Ok(_)) => return Err((Rule::DnsFailed, None)),
                    Ok(Err(e)) => {
                        tracing::debug!(target_host = %target, error = %e, "egress resolve failed");
                        return Err((Rule::DnsFailed, None));
                    }
                    Err(_) => return Err((Rule::DnsFailed, None)),
                }
            }
        };
        // One denied address refuses the whole name: a name that mixes a public
        // and a private answer is a rebinding attempt, not a fallback.
        for addr in &addrs {
            if let Err(range) = self.policy.check(*addr) {
                tracing::debug!(target_host = %target, %addr, range, "egress address denied");
                return Err((Rule::AddressDenied, Some(*addr)));
            }
        }
        Ok(addrs)
    }

    /// Connects to the first of `addrs` that answers, never resolving again.
    async fn connect_checked(&self, addrs: &[SocketAddr]) -> Option<(TcpStream, SocketAddr)> {
        for addr in addrs {
            self.connects.fetch_add(1, Ordering::Relaxed);
            match tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Latency matters more than packet count for interactive APIs.
                    let _ = stream.set_nodelay(true);
                    return Some((stream, *addr));
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "egress connect failed"),
                Err(_) => tracing::debug!(%addr, "egress connect timed out"),
            }
        }
        None
    }

    async fn connect(&self, mut req: Request<Incoming>) -> Response<Body> {
        let Some(target) = req.uri().authority().and_then(Target::from_authority) else {
            return self.deny(&sanitize_target(&req.uri().to_string()), (Rule::NotAllowlisted, None));
        };
        let shown = target.to_string();
        let listed = self.allowlist.contains(&target);
        // Names off the allowlist are never resolved (no DNS side channel);
        // IP literals are judged by the address policy first so the rule is exact.
        if target.ip().is_none() && !listed {
            return self.deny(&shown, (Rule::NotAllowlisted, None));
        }
        let addrs = match self.checked_addresses(&target).await {
            Ok(addrs) => addrs,
            Err(denial) => return self.deny(&shown, denial),
        };
        if !listed {
            return self.deny(&shown, (Rule::NotAllowlisted, None));
        }
        let Ok(permit) = Arc::clone(&self.tunnels).try_acquire_owned() else {
            return self.deny(&shown, (Rule::TooManyTunnels, None));
        };
        let Some((upstream, addr)) = self.connect_checked(&addrs).await else {
            return self.deny(&shown, (Rule::UpstreamUnreachable, None));
        };
        self.record(&shown, true, Rule::Allowlisted, Some(addr));
        let on_upgrade = hyper::upgrade::on(&mut req);
        let idle = self.limits.idle_timeout;
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tunnel = async move {
                let client = on_upgrade.await.map_err(std::io::Error::other)?;
                pump(TokioIo::new(client), upstream, idle).await
            };
            tokio::select! {
                ended = tunnel => if let Err(e) = ended {
                    tracing::debug!(target_host = %shown, error = %e, "egress tunnel ended with an error");
                },
                _ = shutdown.changed() => {}
            }
        });
        Response::new(empty())
    }

    async fn forward(&self, route: &ModelRoute, req: Request<Incoming>) -> Response<Body> {
        let shown = route.route_target().to_string();
        if !matches!(*req.method(), Method::GET | Method::POST) {
            return self.deny(&shown, (Rule::MethodNotAllowed, None));
        }
        let addrs = match self.checked_addresses(route.upstream_target()).await {
            Ok(addrs) => addrs,
            Err(denial) => return self.deny(&shown, denial),
        };
        let Some((upstream, addr)) = self.connect_checked(&addrs).await else {
            return self.deny(&shown, (Rule::UpstreamUnreachable, None));
        };
        self.record(&shown, true, Rule::ModelRoute, Some(addr));
        match self.send_upstream(route, req, upstream).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(target_host = %shown, error = %e, "egress model upstream failed");
                refusal(StatusCode::BAD_GATEWAY, Rule::UpstreamUnreachable)
            }
        }
    }

    async fn send_upstream(
        &self,
        route: &ModelRoute,
        req: Request<Incoming>,
        upstream: TcpStream,
    ) -> std::result::Result<Response<Body>, Box<dyn std::error::Error + Send + Sync>> {
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        route.apply_auth(&mut headers)?;
        headers.insert(HOST, route.upstream_host_header()?);
        let mut outbound = Request::new(body);
        *outbound.method_mut() = parts.method;
        *outbound.uri_mut() = route.upstream_uri(parts.uri.path_and_query())?;
        *outbound.headers_mut() = headers;

        let response = match route.tls() {
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                let handshake = connector.connect(tls.server_name.clone(), upstream);
                let stream = tokio::time::timeout(self.limits.connect_timeout, handshake)
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
                self.exchange(TokioIo::new(stream), outbound).await?
            }
            None => self.exchange(TokioIo::new(upstream), outbound).await?,
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// One HTTP/1 request on a fresh upstream connection.
    async fn exchange<I>(&self, io: I, outbound: Request<Incoming>) -> hyper::Result<Response<Incoming>>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                done = connection => if let Err(e) = done {
                    tracing::debug!(error = %e, "egress model upstream connection ended with an error");
                },
                _ = shutdown.changed() => {}
            }
        });
        sender.send_request(outbound).await
    }
}

/// Removes the headers that describe one hop, including any the
/// `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in ["connection", "proxy-connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"] {
        headers.remove(name);
    }
}

fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

fn refusal(status: StatusCode, rule: Rule) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("egress denied: {rule}\n"))).map_err(|never| match never {}).boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(HeaderName::from_static(RULE_HEADER), HeaderValue::from_static(rule.as_str()));
    response
}
