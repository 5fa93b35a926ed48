//! Test harness: memory stores, the projections the API reads, the router
//! served on a loopback port, and a minimal HTTP/1.1 client.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use userz_core::ids::{AppId, OrgId, UserId};
use userz_core::ports::{EventStore, ReadModelStore};
use userz_core::Clock;
use userz_engine::admin::{Admin, NewApp};
use userz_engine::blobs::Blobs;
use userz_engine::directory::DirectoryProjection;
use userz_engine::projections::{
    run_projection, AuditLogProjection, FeedbackListProjection, Projection, RunDetailProjection,
};
use userz_engine::CommandBus;
use userz_http::directory;
use userz_http::directory::DirectoryRepos;
use userz_http::upload::{UploadConfig, UploadState};
use userz_http::webhooks::{WebhookSecrets, WebhookState};
use userz_http::{api_router, ApiConfig, ApiDeps, ApiState};
use userz_security::api_key::HashParams;
use userz_security::envelope::{Envelope, StaticKeyProvider};
use userz_security::secret::SecretBytes;
use userz_store_memory::MemoryBlobStore;
use userz_store_memory::MemoryStores;
use userz_testkit::{eventually, ManualClock};

pub const ORIGIN: &str = "https://shop.example";
/// The harness's Slack signing secret.
pub const SLACK_SECRET: &str = "harness-slack-signing-secret";

pub struct Harness {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub events: Arc<dyn EventStore>,
    pub read_models: Arc<dyn ReadModelStore>,
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
    pub bus: CommandBus,
    pub admin: Admin,
    pub state: ApiState,
    /// Where uploads land.
    pub blobs: Blobs,
    /// The master-key envelope the admin seals with.
    pub envelope: Envelope,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug)]
pub struct Tenant {
    pub org: OrgId,
    pub app: AppId,
    pub public_key: String,
    pub key: String,
    pub prefix: String,
    pub signing_secret: String,
}

pub async fn start() -> Harness {
    start_with(ApiConfig::default()).await
}

pub async fn start_with(config: ApiConfig) -> Harness {
    let clock = Arc::new(ManualClock::at_2026());
    let stores = MemoryStores::new(clock.clone());
    start_on(config, clock, stores.events.clone(), stores.read_models.clone(), None).await
}

/// The harness over any event and read-model store (`keep` is dropped with it).
pub async fn start_on(
    config: ApiConfig,
    clock: Arc<ManualClock>,
    events: Arc<dyn EventStore>,
    read_models: Arc<dyn ReadModelStore>,
    keep: Option<Box<dyn std::any::Any + Send + Sync>>,
) -> Harness {
    let bus = CommandBus::new(events.clone(), read_models.clone());
    let envelope = Envelope::new(Arc::new(StaticKeyProvider::generate("test-master").unwrap()));
    let mut tasks = Vec::new();
    let projections: Vec<Arc<dyn Projection>> = vec![
        Arc::new(DirectoryProjection),
        Arc::new(FeedbackListProjection),
        Arc::new(RunDetailProjection),
        Arc::new(AuditLogProjection),
    ];
    for p in projections {
        let (ev, rm) = (events.clone(), read_models.clone());
        tasks.push(tokio::spawn(async move {
            run_projection(p, ev, rm, 64).await.unwrap();
        }));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Uploads into an in-memory object store, tickets pointing back here.
    let blobs = Blobs::new(Arc::new(MemoryBlobStore::new(clock.clone())), bus.clone(), clock.clone());
    let cache = MemoryStores::new(clock.clone()).cache;
    // Slack chat-ops for every org, so a request can reach the webhook code.
    let webhooks = WebhookState::new(
        WebhookSecrets { slack: Some(SecretBytes::copy_from(SLACK_SECRET.as_bytes())), ..WebhookSecrets::default() },
        bus.clone(),
        read_models.clone(),
        cache.clone(),
        Arc::new(DirectoryRepos::new(read_models.clone())),
        clock.clone(),
    )
    .unwrap();
    let uploads = UploadState::new(
        UploadConfig::new(SecretBytes::copy_from(b"harness-upload-secret-0123456789abcdef"), format!("http://{addr}")),
        blobs.clone(),
        cache,
        clock.clone(),
    )
    .unwrap();
    let state = ApiState::new(
        ApiDeps {
            bus: bus.clone(),
            read_models: read_models.clone(),
            clock: clock.clone(),
            envelope: Some(envelope.clone()),
        },
        config,
    )
    .with_uploads(uploads)
    .with_webhooks(webhooks);
    let admin = Admin::new(bus.clone(), read_models.clone(), clock.clone(), Some(envelope.clone()))
        .with_hash_params(HashParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 });
    let app = api_router(state.clone());
    tasks.push(tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    }));
    Harness { addr, clock, events, read_models, _keep: keep, bus, admin, state, blobs, envelope, tasks }
}

impl Harness {
    /// An org with one App (origin allowlisted, public on), an `sk_` key and a
    /// signing secret, visible in the directory.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let org = self.admin.create_org(name, UserId::new(), "owner@example.test").await.unwrap();
        let mut new = NewApp::named(format!("{name} web"));
        new.allowed_origins = vec![ORIGIN.to_string()];
        let created = self.admin.create_app(org, new).await.unwrap();
        let issued = self.admin.issue_api_key(org, "ci", None).await.unwrap();
        let secret = self
            .admin
            .set_app_signing_secret(org, created.app, None, userz_core::domain::common::Actor::System)
            .await
            .unwrap()
            .unwrap();
        let t = Tenant {
            org,
            app: created.app,
            public_key: created.public_key,
            key: issued.plaintext.expose_secret().to_string(),
            prefix: issued.prefix,
            signing_secret: secret.expose_secret().to_string(),
        };
        self.wait_directory(&t).await;
        t
    }

    pub async fn wait_directory(&self, t: &Tenant) {
        let rm = self.read_models.clone();
        let (pk, prefix, app) = (t.public_key.clone(), t.prefix.clone(), t.app);
        eventually("directory rows", Duration::from_secs(5), || {
            let (rm, pk, prefix) = (rm.clone(), pk.clone(), prefix.clone());
            async move {
                let a = directory::app_by_public_key(rm.as_ref(), &pk).await.unwrap()?;
                directory::key(rm.as_ref(), &prefix).await.unwrap()?;
                directory::signing_secret_version(rm.as_ref(), app).await.unwrap()?;
                Some(a)
            }
        })
        .await;
    }

    pub fn now(&self) -> userz_core::Timestamp {
        self.clock.now()
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.request("GET", path, &[("authorization", &format!("Bearer {key}"))], None).await
    }

    pub async fn send_json(&self, method: &str, path: &str, key: &str, body: &Value) -> Resp {
        let auth = format!("Bearer {key}");
        self.request(
            method,
            path,
            &[("authorization", &auth), ("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
        .await
    }

    pub async fn submit(&self, t: &Tenant, extra: &[(&str, &str)], body: &Value) -> Resp {
        let mut headers = vec![("x-userz-public-key", t.public_key.as_str()), ("content-type", "application/json")];
        headers.extend_from_slice(extra);
        self.request("POST", "/v1/feedback", &headers, Some(body.to_string().as_bytes())).await
    }

    pub async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("content-length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        if let Some(b) = body {
            s.write_all(b).await.unwrap();
        }
        read_response(&mut s).await
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "body: {}", self.body);
    }
}

pub async fn read_response(s: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Resp {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body);
    }
    let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
    Resp { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else { return out };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
}
