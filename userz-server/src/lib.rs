//! # userz-server
//!
//! The Userz composition root as a library. A [`Config`] (a TOML file with
//! `USERZ_*` environment overrides, every field defaulted) selects the store
//! (`sqlite` | `postgres` | `nats`) and cache, blob storage, the sandbox
//! backend, the VCS router, the classifier and the model; [`build`] assembles
//! the engine and its workers with the `/v1` API, webhooks, the dashboard and
//! the widget as one axum [`Router`]; [`start`] also binds and serves it.
//!
//! The reference server (`examples/reference-server`) is [`cli::main`]; a
//! service that already has an axum application merges [`Userz::router`] into
//! its own (`examples/embedded-axum`):
//!
//! ```no_run
//! # async fn run() -> Result<(), userz_server::ServerError> {
//! let config = userz_server::Config::load(None)?;
//! let userz = userz_server::build(config, "https://feedback.example.com".into()).await?;
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my service" }))
//!     .merge(userz.router());
//! # let _ = app; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use userz_core::agent::ModelApi;
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{Limits, Sandbox, SandboxOutcome, SandboxSpec};
use userz_core::ports::{Classifier, VcsRouter};
use userz_core::{Clock, SystemClock};
use userz_egress::ModelRoute;
use userz_engine::blobs::Blobs;
use userz_engine::{CommandBus, Engine, EngineConfig, EngineDeps};
use userz_sandbox_microvm::{MicroVmConfig, MicroVmSandbox};
use userz_sandbox_process::{AgentModel, ProcessSandbox, ProcessSandboxConfig};
use userz_security::envelope::{Envelope, StaticKeyProvider};
use userz_security::secret::SecretString;

pub mod admin_cli;
pub mod cli;
pub mod config;
pub mod demo;
pub mod eval;
pub mod readiness;
pub mod stores;
pub mod vcs;

pub use config::Config;
pub use demo::DemoInfo;
pub use readiness::Readiness;
pub use stores::{Stores, DB_FILE};

/// The org secret slot (`ai_provider_key`) an org sets to use its own model key.
pub const MODEL_SECRET_SLOT: &str = "model";

/// The host name the agent uses for the model inside the sandbox (the egress
/// proxy's route; never resolved).
const MODEL_ROUTE_HOST: &str = "model.userz.internal";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A set-up step failed; the message names it.
    #[error("setup: {0}")]
    Setup(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] userz_core::Error),
    /// Binding or serving failed.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// I/O error.
        source: std::io::Error,
    },
}

/// The assembled engine: workers, projections and log consumers running under
/// its supervisor, and the router that serves its API, webhooks, dashboard and
/// widget. Dropping it stops the engine.
#[derive(Debug)]
pub struct Userz {
    /// The URL users reach the router at.
    pub public_url: String,
    /// What the first start created, when the demo is enabled.
    pub demo: Option<DemoInfo>,
    /// Why agent runs cannot execute here, if they cannot (printed at start).
    pub sandbox_unavailable: Option<String>,
    /// The sandbox backend agent runs use and its boundary (printed at start).
    pub sandbox_description: Option<String>,
    /// Each part's state and what fixes it (the start-up banner).
    pub readiness: Readiness,
    /// The storage ports (tests read read models from them).
    pub stores: Stores,
    router: Router,
    engine: Option<Engine>,
}

impl Userz {
    /// The engine.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// The `/v1` API, webhooks, dashboard, widget, `/healthz` and (with the
    /// demo) `/demo`, to serve alone or merge into an existing application.
    /// Handlers read the client address, so serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// A `curl` line that submits feedback to the demo App.
    pub fn curl_line(&self) -> Option<String> {
        let d = self.demo.as_ref()?;
        Some(format!(
            "curl -sS -X POST {url}/v1/feedback -H 'Content-Type: application/json' -H 'Origin: {url}' \
             -H 'X-Userz-Public-Key: {key}' -d '{{\"text\":\"The Save button does nothing\",\"severity\":\"high\"}}'",
            url = self.public_url,
            key = d.public_key
        ))
    }

    /// Stops the engine.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.shutdown();
        }
    }
}

impl Drop for Userz {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A running server: [`Userz`] served on a bound address. Dropping it stops
/// serving and the engine.
#[derive(Debug)]
pub struct Server {
    /// The address bound.
    pub addr: SocketAddr,
    /// The URL users reach it at.
    pub public_url: String,
    /// What the first start created, when the demo is enabled.
    pub demo: Option<DemoInfo>,
    /// Why agent runs cannot execute here, if they cannot (printed at start).
    pub sandbox_unavailable: Option<String>,
    /// The sandbox backend agent runs use and its boundary (printed at start).
    pub sandbox_description: Option<String>,
    /// Each part's state and what fixes it (the start-up banner).
    pub readiness: Readiness,
    /// The storage ports (tests read read models from them).
    pub stores: Stores,
    userz: Option<Userz>,
    stop: Option<oneshot::Sender<()>>,
    serve: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// The engine.
    pub fn engine(&self) -> Option<&Engine> {
        self.userz.as_ref().and_then(Userz::engine)
    }

    /// A `curl` line that submits feedback to the demo App.
    pub fn curl_line(&self) -> Option<String> {
        self.userz.as_ref().and_then(Userz::curl_line)
    }

    /// Serves until ctrl-c or until the serving task ends.
    pub async fn run_until_signal(mut self) -> Result<(), ServerError> {
        let addr = self.addr;
        let serve = self.serve.take();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("shutting down");
                Ok(())
            }
            res = async move { match serve { Some(h) => h.await, None => Ok(Ok(())) } } => match res {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(ServerError::Listen { addr, source }),
                Err(e) => Err(ServerError::Setup(format!("server task: {e}"))),
            },
        }
    }

    /// Stops serving and the engine.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serve) = self.serve.take() {
            serve.abort();
        }
        if let Some(userz) = self.userz.take() {
            userz.shutdown();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The master key: `USERZ_MASTER_KEYS` when set, else `<data_dir>/master.key`,
/// created with mode 0600 when the store holds no data yet (`existing_data`
/// false). An existing store without its key file is an error: a fresh key
/// would seal new secrets the old ones' readers cannot open, and the old ones
/// would be unreadable.
pub(crate) fn master_keys(data_dir: &Path, existing_data: bool) -> Result<StaticKeyProvider, ServerError> {
    master_keys_for(data_dir, existing_data, None)
}

/// As [`master_keys`]; `shared` names a store kind that several processes
/// share, for which no key file is ever made: each process would make its own,
/// and none could open the others' secrets.
fn master_keys_for(
    data_dir: &Path,
    existing_data: bool,
    shared: Option<&str>,
) -> Result<StaticKeyProvider, ServerError> {
    let env = userz_security::envelope::MASTER_KEYS_ENV;
    if std::env::var_os(env).is_some() {
        return StaticKeyProvider::from_env().map_err(|e| ServerError::Setup(format!("master key: {e}")));
    }
    let path = data_dir.join("master.key");
    if let (Some(kind), false) = (shared, path.exists()) {
        return Err(ServerError::Setup(format!(
            "store.kind = {kind:?} is shared by every process of a deployment, so no master key is made here: \
             set {env} (the same value in every process; `id:base64` of 64 random bytes, e.g. \
             master-1:$(head -c 64 /dev/urandom | base64 -w0)) or put that line in {}",
            path.display()
        )));
    }
    if !path.exists() && existing_data {
        return Err(ServerError::Setup(format!(
            "{} has no master.key but the store already holds data, and {env} is not set: run with the master key it was created with",
            data_dir.display()
        )));
    }
    if !path.exists() {
        use base64::Engine as _;
        use rand::RngCore;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut key = zeroize::Zeroizing::new(vec![0u8; userz_security::envelope::SIV_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key);
        let line = SecretString::new(format!("master-1:{}", base64::engine::general_purpose::STANDARD.encode(&*key)));
        let fresh = StaticKeyProvider::from_env_value(line.expose_secret())
            .map_err(|e| ServerError::Setup(format!("master key: {e}")))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))?;
        f.write_all(line.expose_secret().as_bytes())
            .map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))?;
        return Ok(fresh);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))?;
    let text = SecretString::new(text);
    StaticKeyProvider::from_env_value(text.expose_secret().trim())
        .map_err(|e| ServerError::Setup(format!("{}: {e}", path.display())))
}

/// A sandbox that cannot run anything here; every run fails with `reason`.
#[derive(Debug)]
struct UnavailableSandbox {
    reason: String,
}

#[async_trait]
impl Sandbox for UnavailableSandbox {
    async fn allocate_workspace(&self, _run: RunId, _limits: &Limits) -> userz_core::Result<PathBuf> {
        Err(self.error())
    }
    async fn run(&self, _spec: &SandboxSpec) -> userz_core::Result<SandboxOutcome> {
        Err(self.error())
    }
    async fn release_workspace(&self, _run: RunId) -> userz_core::Result<()> {
        Ok(())
    }
}

impl UnavailableSandbox {
    fn error(&self) -> userz_core::Error {
        userz_core::Error::Effect {
            port: "sandbox",
            message: format!("agent runs are unavailable on this server: {}", self.reason),
            retryable: false,
        }
    }
}

fn bin_dir(config: &Config) -> Option<PathBuf> {
    config
        .sandbox
        .bin_dir
        .clone()
        .or_else(|| std::env::var_os("USERZ_BIN_DIR").map(PathBuf::from))
        .or_else(|| std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)))
}

/// The process sandbox when this host can run it, or the reason it cannot.
fn process_sandbox(config: &Config) -> Result<ProcessSandbox, String> {
    if !config.sandbox.enabled {
        return Err("the sandbox is disabled in the configuration (sandbox.enabled = false)".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the process sandbox needs root (cgroups, loop mounts, per-run uids)".into());
    }
    if !config.sandbox.bwrap.is_file() {
        return Err(format!("bubblewrap not found at {}", config.sandbox.bwrap.display()));
    }
    let dir = bin_dir(config).ok_or("cannot locate the agent binaries (set sandbox.bin_dir)")?;
    let (exec, agent) = (dir.join("userz-sandbox-exec"), dir.join("userz-agent"));
    for b in [&exec, &agent] {
        if !b.is_file() {
            return Err(format!(
                "{} is missing; build it with `cargo build --bins -p userz-agent -p userz-sandbox-process`",
                b.display()
            ));
        }
    }
    let agent_model = agent_model(config)?;
    let mut sb = ProcessSandboxConfig::new(exec, agent)
        .with_bwrap(config.sandbox.bwrap.clone())
        .with_state_root(config.data_dir.join("sandboxes"))
        .with_cgroup_parent("userz-server")
        .with_model(agent_model.0);
    if let Some(addr) = agent_model.1 {
        sb = sb.with_egress_allow_socket_addr(addr);
    }
    ProcessSandbox::new(sb).map_err(|e| e.to_string())
}

/// The agent's model route from `[model]`, and the model server's address
/// when it is a loopback or private literal (a local llama.cpp, a test
/// server), which the egress proxy must then be told to allow.
fn agent_model(config: &Config) -> Result<(AgentModel, Option<SocketAddr>), String> {
    let Some(model) = &config.model else {
        return Err("no model provider is configured ([model] or USERZ_MODEL_API)".into());
    };
    let key = match &model.api_key_env {
        Some(var) => std::env::var(var).map_err(|_| format!("model.api_key_env names {var}, which is not set"))?,
        None => String::from("none"),
    };
    let key = SecretString::new(key);
    let (api, route) = match model.api {
        config::ModelApiKind::Openai => (
            ModelApi::OpenaiCompatible,
            ModelRoute::openai_compatible(MODEL_ROUTE_HOST, openai_upstream(&model.base_url), key),
        ),
        config::ModelApiKind::Anthropic => {
            (ModelApi::Anthropic, ModelRoute::anthropic(MODEL_ROUTE_HOST, &model.base_url, key))
        }
    };
    let route = route.map_err(|e| format!("model.base_url: {e}"))?;
    Ok((
        AgentModel { api, model: model.model.clone(), route, guided: model.guided },
        literal_socket_addr(&model.base_url),
    ))
}

/// The egress route's upstream for an OpenAI-compatible `base_url`: the
/// agent asks for `/v1/chat/completions` through the route, and `base_url`
/// is documented (and used by the classifier) with its `/v1`, so that `/v1`
/// is not repeated upstream.
fn openai_upstream(base_url: &str) -> &str {
    let trimmed = base_url.trim_end_matches('/');
    trimmed.strip_suffix("/v1").unwrap_or(trimmed)
}

/// The guest kernel and its modules: the settings, `USERZ_VM_KERNEL` /
/// `USERZ_VM_MODULES`, or what `scripts/services.sh` unpacks.
fn guest_kernel(config: &Config) -> Option<(PathBuf, PathBuf)> {
    let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
    if let (Some(k), Some(m)) = (
        config.sandbox.kernel.clone().or_else(|| env("USERZ_VM_KERNEL")),
        config.sandbox.modules_dir.clone().or_else(|| env("USERZ_VM_MODULES")),
    ) {
        return Some((k, m));
    }
    let cache = env("USERZ_TOOLS_DIR").or_else(|| {
        env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache"))).map(|c| c.join("userz-tools"))
    })?;
    let root = cache.join("kernel/root");
    let kernel = std::fs::read_dir(root.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))?;
    let release = kernel.file_name()?.to_str()?.strip_prefix("vmlinuz-")?.to_string();
    Some((kernel, root.join("lib/modules").join(release)))
}

/// The microVM sandbox when this host can run it, or the reason it cannot.
async fn microvm_sandbox(config: &Config) -> Result<MicroVmSandbox, String> {
    let (kernel, modules) = guest_kernel(config).ok_or(
        "no guest kernel (set sandbox.kernel and sandbox.modules_dir, or run scripts/services.sh's svc_install_microvm)",
    )?;
    let dir = bin_dir(config).ok_or("cannot locate the agent binaries (set sandbox.bin_dir)")?;
    let (init, agent) = (dir.join("userz-vm-init"), dir.join("userz-agent"));
    for b in [&init, &agent] {
        if !b.is_file() {
            return Err(format!(
                "{} is missing; build it with `cargo build --bins -p userz-agent -p userz-sandbox-microvm`",
                b.display()
            ));
        }
    }
    let (model, allow) = agent_model(config)?;
    let accel = match config.sandbox.accel {
        config::AccelKind::Auto => userz_sandbox_microvm::Accel::Auto,
        config::AccelKind::Kvm => userz_sandbox_microvm::Accel::Kvm,
        config::AccelKind::Tcg => userz_sandbox_microvm::Accel::Tcg,
    };
    let mut c = MicroVmConfig::new(kernel, modules, init, agent)
        .with_state_root(config.data_dir.join("microvm"))
        .with_accel(accel)
        .with_model(model)
        .with_pool(config.sandbox.pool_size, sandbox_limits(config));
    if let Some(addr) = allow {
        c = c.with_egress_allow_socket_addr(addr);
    }
    // The built image and the KVM-or-TCG answer are per host, not per data
    // directory: keep them in the user's cache so the probe runs once.
    let home_cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = home_cache.filter(|c| std::fs::create_dir_all(c.join("userz/microvm")).is_ok()) {
        c.cache_dir = Some(cache.join("userz/microvm"));
    }
    if let Some(dir) = &config.sandbox.host_cgroup {
        c = c.with_host_cgroup(userz_sandbox_microvm::hostcg::HostCgroup::V2(dir.clone()));
    }
    if !c.qemu.is_file() {
        return Err("qemu-system-x86_64 is not installed".into());
    }
    let sandbox = MicroVmSandbox::new(c).await.map_err(|e| e.to_string())?;
    if let Err(e) = sandbox.fill_pool().await {
        tracing::warn!(error = %e, "microvm: the warm pool did not fill");
    }
    Ok(sandbox)
}

/// The report classifier `config` selects (`classifier`, with `[model]` for
/// the layered one).
///
/// # Errors
///
/// `ServerError::Setup` when the layered classifier has no `[model]` or the
/// model client cannot be built.
pub fn classifier(config: &Config) -> Result<Arc<dyn Classifier>, ServerError> {
    Ok(match (config.classifier, &config.model) {
        (config::ClassifierKind::Heuristic, _) => Arc::new(userz_security::classifier::HeuristicClassifier::new()),
        (config::ClassifierKind::Embedding, _) => {
            let dir = config.embed_model_dir.as_deref().ok_or_else(|| {
                ServerError::Setup(
                    "classifier = \"embedding\" needs embed_model_dir (USERZ_EMBED_MODEL_DIR; scripts/services.sh's \
                     svc_embed_model fetches the model)"
                        .into(),
                )
            })?;
            let embedder =
                userz_embed::MiniLm::load(dir).map_err(|e| ServerError::Setup(format!("embed_model_dir: {e}")))?;
            Arc::new(
                userz_embed::head::HeadClassifier::new(embedder)
                    .map_err(|e| ServerError::Setup(format!("classifier: {e}")))?,
            )
        }
        (config::ClassifierKind::Layered, None) => {
            return Err(ServerError::Setup("classifier = \"layered\" needs a [model] section".into()))
        }
        (config::ClassifierKind::Layered, Some(m)) => {
            let key = m.api_key_env.as_ref().and_then(|v| std::env::var(v).ok()).map(SecretString::new);
            let provider: Arc<dyn userz_core::ports::model::ModelProvider> = match m.api {
                config::ModelApiKind::Openai => {
                    let mut p = userz_model::OpenAiCompatible::new(&m.base_url, key, userz_model::Transport::Tcp)
                        .map_err(|e| ServerError::Setup(format!("model: {e}")))?;
                    if m.max_tokens_field == Some(config::MaxTokensFieldKind::MaxTokens) {
                        p = p.with_max_tokens_field(userz_model::MaxTokensField::MaxTokens);
                    }
                    Arc::new(p)
                }
                config::ModelApiKind::Anthropic => Arc::new(
                    userz_model::Anthropic::new(&m.base_url, key, userz_model::Transport::Tcp)
                        .map_err(|e| ServerError::Setup(format!("model: {e}")))?,
                ),
            };
            let model = userz_model::ModelClassifier::new(provider, m.model.clone());
            Arc::new(userz_security::classifier::LayeredClassifier::new(Arc::new(model)))
        }
    })
}

/// The per-run caps from `[sandbox]`.
fn sandbox_limits(config: &Config) -> Limits {
    Limits {
        cpu_millis: config.sandbox.cpu_millis,
        memory_bytes: config.sandbox.memory_mib << 20,
        disk_bytes: config.sandbox.disk_mib << 20,
        wall_clock: Duration::from_secs(config.sandbox.wall_clock_secs),
        ..Limits::default()
    }
}

/// The configured sandbox backend, or why agent runs cannot execute here.
async fn sandbox(config: &Config) -> Result<Arc<dyn Sandbox>, String> {
    if !config.sandbox.enabled {
        return Err("the sandbox is disabled in the configuration (sandbox.enabled = false)".into());
    }
    match config.sandbox.backend {
        config::SandboxBackendKind::Microvm => Ok(Arc::new(microvm_sandbox(config).await?)),
        config::SandboxBackendKind::Process => Ok(Arc::new(process_sandbox(config)?)),
        config::SandboxBackendKind::Auto => match microvm_sandbox(config).await {
            Ok(m) => Ok(Arc::new(m)),
            Err(vm) => match process_sandbox(config) {
                Ok(p) => {
                    tracing::warn!(microvm = %vm, "microVM sandbox unavailable; using the process sandbox");
                    Ok(Arc::new(p))
                }
                Err(p) => Err(format!("microVM: {vm}; process: {p}")),
            },
        },
    }
}

/// The resolver's GitHub App settings from `[github_app]`.
fn github_app_settings(g: &config::GithubAppConfig) -> Result<vcs::GithubAppSettings, ServerError> {
    use vcs::GithubAppKey;
    let key = match g.key_source()? {
        config::GithubKeySource::Env(var) => {
            GithubAppKey::Pem(SecretString::new(std::env::var(&var).map_err(|_| {
                ServerError::Setup(format!("github_app.private_key_env names {var}, which is not set"))
            })?))
        }
        config::GithubKeySource::Sealed { org, slot } => GithubAppKey::Sealed { org, slot },
    };
    Ok(vcs::GithubAppSettings {
        app_id: g.app_id.clone(),
        key,
        api_base: g.api_base.clone(),
        git_base: g.git_base.clone(),
    })
}

/// `http://127.0.0.1:8000/v1` → `127.0.0.1:8000`; `None` for host names.
pub(crate) fn literal_socket_addr(url: &str) -> Option<SocketAddr> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    if let Ok(a) = authority.parse::<SocketAddr>() {
        return Some(a);
    }
    let port = if scheme == "https" { 443 } else { 80 };
    let ip = authority.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().ok()?;
    Some(SocketAddr::new(ip, port))
}

const DEMO_PAGE: &str = include_str!("../assets/demo.html");

/// Opens the stores and the master key: the key file may only be created for
/// an embedded store that holds no data yet; a shared store needs the key given.
pub(crate) async fn open_stores(config: &Config, clock: Arc<dyn Clock>) -> Result<(Stores, Envelope), ServerError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ServerError::Setup(format!("{}: {e}", config.data_dir.display())))?;
    if config.store.kind == config::StoreKind::Sqlite {
        // Before the store creates the database file.
        let existing = stores::sqlite_path(config).exists();
        let envelope = Envelope::new(Arc::new(master_keys(&config.data_dir, existing)?));
        return Ok((Stores::open(config, clock).await?, envelope));
    }
    let stores = Stores::open(config, clock).await?;
    let existing = !stores.is_empty().await?;
    let envelope =
        Envelope::new(Arc::new(master_keys_for(&config.data_dir, existing, Some(config.store.kind.as_str()))?));
    Ok((stores, envelope))
}

/// Assembles the engine from `config` and starts its workers and
/// projections; `public_url` is where users reach [`Userz::router`] (links in
/// mails, the demo App's allowed origin). The router is not served: merge it
/// into an application or use [`start`].
pub async fn build(config: Config, public_url: String) -> Result<Userz, ServerError> {
    config.validate()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (stores, envelope) = open_stores(&config, clock.clone()).await?;
    let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
    let objects = stores.blobs.clone();
    let blobs = Blobs::new(objects.clone(), bus.clone(), clock.clone());

    let (sandbox, sandbox_unavailable): (Arc<dyn Sandbox>, Option<String>) = match sandbox(&config).await {
        Ok(s) => (s, None),
        Err(reason) => (Arc::new(UnavailableSandbox { reason: reason.clone() }), Some(reason)),
    };
    let sandbox_description = sandbox_unavailable.is_none().then(|| sandbox.describe());
    let classifier = classifier(&config)?;
    let mut resolver = vcs::SealedVcsResolver::new(bus.clone(), envelope.clone())
        .with_user_agent(concat!("userz-server/", env!("CARGO_PKG_VERSION")));
    if let Some(g) = &config.github_app {
        resolver = resolver.with_github_app(github_app_settings(g)?);
    }
    let vcs = Arc::new(VcsRouter::new(Arc::new(resolver)));
    let deps = EngineDeps {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        queue: stores.queue.clone(),
        clock: clock.clone(),
        classifier,
        sandbox,
        vcs,
        changes: Arc::new(userz_git::GitChangeReader),
        envelope: Some(envelope.clone()),
        blobs: Some(blobs.clone()),
    };
    let limits = sandbox_limits(&config);
    let engine_config = EngineConfig {
        limits,
        run_wall_clock: limits.wall_clock,
        model_secret: Some(MODEL_SECRET_SLOT.into()),
        workers: config.workers,
        poll_interval: Duration::from_millis(100),
        ..EngineConfig::default()
    };
    // Requests authenticate against the directory (keys, Apps): bring it up to
    // date before serving, so a key issued while the server was down is
    // honoured by the first request, not once the projection catches up.
    userz_engine::projections::catch_up_projection(
        &userz_engine::directory::DirectoryProjection,
        stores.events.as_ref(),
        stores.read_models.as_ref(),
        500,
    )
    .await?;
    let mut engine = Engine::start(deps, engine_config);
    let admin = userz_engine::admin::Admin::new(
        engine.bus().clone(),
        engine.read_models().clone(),
        clock.clone(),
        Some(envelope.clone()),
    );

    let demo = match demo::load(&config.data_dir)? {
        Some(d) => Some(d),
        None if config.bootstrap_demo => {
            Some(demo::create(&admin, &config.data_dir, &config.admin_email, &public_url).await?)
        }
        None => None,
    };

    let mut dash_config = match &config.smtp {
        Some(smtp) => userz_dashboard::DashboardConfig::new(
            public_url.clone(),
            userz_dashboard::SmtpSettings::from_addr(&smtp.addr, &smtp.from)
                .map_err(|e| ServerError::Setup(format!("smtp: {e}")))?,
        ),
        None => userz_dashboard::DashboardConfig::printing_sign_in_links(public_url.clone()),
    }
    .map_err(|e| ServerError::Setup(format!("dashboard: {e}")))?
    .with_secure_cookies(config.secure_cookies);
    if let Some(g) = &config.google {
        let secret = std::env::var(&g.client_secret_env).map_err(|_| {
            ServerError::Setup(format!("google.client_secret_env names {}, which is not set", g.client_secret_env))
        })?;
        let mut settings = userz_dashboard::GoogleSettings::google(g.client_id.clone(), secret);
        if let Some(u) = &g.authorize_url {
            settings.authorize_url = u.clone();
        }
        if let Some(u) = &g.token_url {
            settings.token_url = u.clone();
        }
        if let Some(u) = &g.userinfo_url {
            settings.userinfo_url = u.clone();
        }
        dash_config = dash_config.with_google(settings);
    }
    let cache = stores.cache.clone();
    let dashboard = userz_dashboard::DashboardState::new(
        engine.bus().clone(),
        engine.read_models().clone(),
        clock.clone(),
        cache.clone(),
        dash_config,
    )
    .with_envelope(envelope.clone())
    .with_blobs(objects.clone());
    let api = userz_http::ApiState::new(
        userz_http::ApiDeps {
            bus: engine.bus().clone(),
            read_models: engine.read_models().clone(),
            clock: clock.clone(),
            envelope: Some(envelope.clone()),
        },
        config.api_config(),
    )
    .with_rate_limiter(stores.rate_limiter.clone());
    // Uploads: tickets are signed with USERZ_UPLOAD_SECRET when set (several
    // replicas must share it), else with a random per-process secret (tickets
    // live 300 s, so a restart only voids those in flight).
    let upload_secret = match std::env::var("USERZ_UPLOAD_SECRET") {
        Ok(v) => userz_security::secret::SecretBytes::new(v.into_bytes()),
        Err(_) => {
            use rand::RngCore;
            let mut bytes = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            userz_security::secret::SecretBytes::new(bytes)
        }
    };
    let uploads = userz_http::upload::UploadState::new(
        userz_http::upload::UploadConfig::new(upload_secret, public_url.clone()),
        blobs.clone(),
        cache.clone(),
        clock.clone(),
    )
    .map_err(|e| ServerError::Setup(format!("uploads: {e}")))?;
    let webhook_secrets =
        userz_http::webhooks::WebhookSecrets::from_env().map_err(|e| ServerError::Setup(format!("webhooks: {e}")))?;
    let readiness = readiness::assess(
        &config,
        &readiness::Facts {
            sandbox: match (&sandbox_description, &sandbox_unavailable) {
                (Some(d), _) => Ok(d.clone()),
                (None, why) => Err(why.clone().unwrap_or_default()),
            },
            model_reachable: readiness::probe_model(&config).await,
            demo_remote: demo.as_ref().map(|d| d.repository.display().to_string()),
            chat: [
                ("Slack", webhook_secrets.slack.is_some()),
                ("Discord", webhook_secrets.discord_public_key.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect(),
            chatops_org: webhook_secrets.chatops_org.map(|o| o.to_string()),
        },
    );
    let webhooks = userz_http::webhooks::WebhookState::new(
        webhook_secrets,
        engine.bus().clone(),
        engine.read_models().clone(),
        cache.clone(),
        Arc::new(userz_http::directory::DirectoryRepos::new(engine.read_models().clone())),
        clock.clone(),
    )
    .map_err(|e| ServerError::Setup(format!("webhooks: {e}")))?
    .with_review_payloads(Arc::new(userz_vcs_github::GitHubReviewPayloads))
    .with_review_payloads(Arc::new(userz_vcs_gitlab::GitLabReviewPayloads));
    let api = api.with_uploads(uploads).with_webhooks(webhooks);
    // Signed outbound status webhooks, when USERZ_OUTBOUND_WEBHOOK_URL is set,
    // as a log consumer under the engine's supervisor.
    if std::env::var_os("USERZ_OUTBOUND_WEBHOOK_URL").is_some() {
        let outbound = userz_http::outbound::OutboundConfig::from_env()
            .and_then(|c| {
                userz_http::outbound::OutboundWebhooks::new(
                    c,
                    engine.deps().events.clone(),
                    engine.read_models().clone(),
                    clock.clone(),
                )
            })
            .map_err(|e| ServerError::Setup(format!("outbound webhooks: {e}")))?;
        engine.supervise("outbound_webhooks", move || {
            let outbound = outbound.clone();
            async move { outbound.run().await }
        });
    }

    let router = router(&demo, &public_url)
        .merge(userz_http::api_router(api))
        .merge(userz_dashboard::router(dashboard))
        .fallback(userz_http::not_found_fallback);
    Ok(Userz {
        public_url,
        demo,
        sandbox_unavailable,
        sandbox_description,
        readiness,
        stores,
        router,
        engine: Some(engine),
    })
}

/// Binds `config.listen`, assembles the engine with [`build`] and serves it.
pub async fn start(config: Config) -> Result<Server, ServerError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr: config.listen, source })?;
    let public_url = config.public_url(addr);
    let userz = build(config, public_url.clone()).await?;
    let app = userz.router();
    let (stop, stopped) = oneshot::channel::<()>();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Server {
        addr,
        public_url,
        demo: userz.demo.clone(),
        sandbox_unavailable: userz.sandbox_unavailable.clone(),
        sandbox_description: userz.sandbox_description.clone(),
        readiness: userz.readiness.clone(),
        stores: userz.stores.clone(),
        userz: Some(userz),
        stop: Some(stop),
        serve: Some(serve),
    })
}

fn router(demo: &Option<DemoInfo>, public_url: &str) -> Router {
    let page = demo.as_ref().map(|d| {
        DEMO_PAGE.replace("{{PUBLIC_URL}}", &html_attr(public_url)).replace("{{PUBLIC_KEY}}", &html_attr(&d.public_key))
    });
    let mut r = Router::new().route("/healthz", get(|| async { "ok" }));
    if let Some(page) = page {
        r = r.route("/demo", get(move || async move { Html(page.clone()).into_response() }));
    }
    r
}

/// Escapes a value for a double-quoted HTML attribute.
fn html_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_agent_route_does_not_repeat_the_documented_v1() {
        assert_eq!(openai_upstream("https://api.openai.com/v1"), "https://api.openai.com");
        assert_eq!(openai_upstream("http://127.0.0.1:8091/v1/"), "http://127.0.0.1:8091");
        assert_eq!(openai_upstream("http://127.0.0.1:9"), "http://127.0.0.1:9");
        assert_eq!(openai_upstream("https://gw.example/openai/v1"), "https://gw.example/openai");
    }

    #[test]
    fn literal_model_addresses_are_allowed_and_names_are_not() {
        assert_eq!(literal_socket_addr("http://127.0.0.1:8000/v1"), Some("127.0.0.1:8000".parse().unwrap()));
        assert_eq!(literal_socket_addr("http://[::1]:9/v1"), Some("[::1]:9".parse().unwrap()));
        assert_eq!(literal_socket_addr("https://10.0.0.5/v1"), Some("10.0.0.5:443".parse().unwrap()));
        assert_eq!(literal_socket_addr("https://api.example.invalid/v1"), None);
    }

    #[test]
    fn a_master_key_is_made_only_for_a_new_data_directory() {
        use std::os::unix::fs::PermissionsExt;
        assert!(std::env::var_os(userz_security::envelope::MASTER_KEYS_ENV).is_none(), "test needs it unset");
        let tmp = tempfile::tempdir().unwrap();
        master_keys(tmp.path(), false).unwrap();
        let key = tmp.path().join("master.key");
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let first = std::fs::read(&key).unwrap();
        master_keys(tmp.path(), true).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), first, "an existing key is kept");
        // A store with data but without its key: refused, nothing written.
        std::fs::remove_file(&key).unwrap();
        let e = master_keys(tmp.path(), true).unwrap_err();
        assert!(e.to_string().contains("no master.key"), "{e}");
        assert!(!key.exists());
        // A shared store never gets a key file made, even when empty.
        let e = master_keys_for(tmp.path(), false, Some("postgres")).unwrap_err();
        assert!(e.to_string().contains("USERZ_MASTER_KEYS") && e.to_string().contains("postgres"), "{e}");
        assert!(!key.exists());
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(html_attr("a\"><script>"), "a&quot;&gt;&lt;script&gt;");
    }
}
