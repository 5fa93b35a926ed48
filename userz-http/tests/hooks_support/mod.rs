//! Shared helpers of the `hooks_*`, `outbound_*` and `upload_*` tests: a
//! loopback server for a router, a raw HTTP/1.1 client, an engine on memory
//! stores with the testkit's scripted doubles.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use userz_core::domain::common::{Dedup, ProcessingMode};
use userz_core::domain::repo::Provider;
use userz_engine::Engine;
use userz_store_memory::{MemoryCache, MemoryStores};
use userz_testkit::scenarios::{seed_with_provider, Rig, Seeded, StoreSet};
use userz_testkit::ManualClock;

/// Serves `router` on an ephemeral loopback port until the test ends.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// An answer: status, headers and the body parsed as JSON (`Null` if empty,
/// a JSON string if not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// `error.code`.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.details.rule`.
    pub fn rule(&self) -> &str {
        self.body["error"]["details"]["rule"].as_str().unwrap_or("")
    }
}

async fn exchange<B>(addr: SocketAddr, req: Request<B>) -> Answer
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = sender.send_request(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer { status, headers, body }
}

/// Sends `method path` with `headers` and `body` (with `Content-Length`).
pub async fn send(addr: SocketAddr, method: Method, path: &str, headers: &HeaderMap, body: Vec<u8>) -> Answer {
    let mut req = Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    exchange(addr, req.body(Full::new(Bytes::from(body))).unwrap()).await
}

/// Sends `body` in `chunks` without `Content-Length` (chunked encoding).
pub async fn send_chunked(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    chunks: Vec<Vec<u8>>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let frames = futures::stream::iter(
        chunks.into_iter().map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c)))),
    );
    exchange(addr, req.body(StreamBody::new(frames)).unwrap()).await
}

/// An engine over memory stores, with scripted doubles.
pub struct EngineEnv {
    pub engine: Engine,
    pub stores: StoreSet,
    pub cache: Arc<MemoryCache>,
    pub clock: Arc<ManualClock>,
    pub seeded: Seeded,
    pub rig: Rig,
}

/// Starts an engine and seeds an org, App (`mode`) and repo on `provider`.
pub async fn engine_env(mode: ProcessingMode, provider: Provider) -> EngineEnv {
    let clock = Arc::new(ManualClock::at_2026());
    let m = MemoryStores::new(clock.clone());
    let stores = StoreSet { events: m.events, read_models: m.read_models, queue: m.queue, clock: clock.clone() };
    let rig = Rig::new(stores.clone());
    let engine = rig.start();
    let seeded = seed_with_provider(engine.bus(), mode, Dedup::Off, provider).await;
    EngineEnv { engine, stores, cache: m.cache, clock, seeded, rig }
}

/// A header map from pairs.
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, v.parse().unwrap());
    }
    h
}
