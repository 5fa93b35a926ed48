//! Server configuration: a TOML file (optional) with `USERZ_*` environment
//! overrides on top. Every field has an embedded default, so the server starts
//! with no configuration at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration could not be loaded. The message names the file, the
/// variable or the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field.
        message: String,
    },
    /// An environment variable holds an unusable value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A value breaks a rule.
    #[error("config field {field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Which event store (with its read models, work queue and, where it has one,
/// cache) the engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// One SQLite file in the data directory: the embedded default, one process.
    #[default]
    Sqlite,
    /// PostgreSQL (`store.url`): several processes share it.
    Postgres,
    /// NATS JetStream (`store.url`, one or more servers): several processes share it.
    Nats,
}

impl StoreKind {
    /// The configuration name.
    pub const fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
            StoreKind::Nats => "nats",
        }
    }
}

impl std::str::FromStr for StoreKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqlite" => Ok(StoreKind::Sqlite),
            "postgres" => Ok(StoreKind::Postgres),
            "nats" => Ok(StoreKind::Nats),
            other => Err(format!("{other:?}: expected sqlite, postgres or nats")),
        }
    }
}

/// `[store]`: where events, read models and the work queue live.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default), `postgres` or `nats`.
    pub kind: StoreKind,
    /// SQLite: the database file (default `<data_dir>/userz.db`).
    pub path: Option<PathBuf>,
    /// PostgreSQL: `postgres://user@host:port/db`; NATS: `nats://host:port`
    /// (several servers separated by commas). Put no password here: use
    /// `url_env`.
    pub url: Option<String>,
    /// Name of the environment variable holding the URL instead (for URLs
    /// with credentials).
    pub url_env: Option<String>,
    /// PostgreSQL schema, NATS stream/bucket prefix (default `userz`).
    pub namespace: Option<String>,
    /// NATS: stream replicas (default 1; 3 on a three-node cluster).
    pub replicas: Option<usize>,
}

/// Which cache holds sessions, upload tickets and the webhook replay guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// The store's own cache (SQLite, NATS KV). PostgreSQL has none.
    #[default]
    Store,
    /// Redis (`cache.url`).
    Redis,
    /// Process memory: one process only (sessions are lost on restart).
    Memory,
}

impl std::str::FromStr for CacheKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "store" => Ok(CacheKind::Store),
            "redis" => Ok(CacheKind::Redis),
            "memory" => Ok(CacheKind::Memory),
            other => Err(format!("{other:?}: expected store, redis or memory")),
        }
    }
}

/// `[cache]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// `store` (default), `redis` or `memory`.
    pub kind: CacheKind,
    /// Redis: `redis://host:port`.
    pub url: Option<String>,
    /// Name of the environment variable holding the URL instead.
    pub url_env: Option<String>,
}

/// Where screenshots, attachments and run transcripts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A directory (default `<data_dir>/blobs`).
    #[default]
    Fs,
    /// An S3 bucket (or an S3-compatible server at `blobs.endpoint`); the
    /// credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    S3,
    /// Process memory (tests and demos: gone when the process ends).
    Memory,
}

impl std::str::FromStr for BlobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fs" => Ok(BlobKind::Fs),
            "s3" => Ok(BlobKind::S3),
            "memory" => Ok(BlobKind::Memory),
            other => Err(format!("{other:?}: expected fs, s3 or memory")),
        }
    }
}

/// `[blobs]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct BlobConfig {
    /// `fs` (default), `s3` or `memory`.
    pub kind: BlobKind,
    /// fs: the directory (default `<data_dir>/blobs`).
    pub path: Option<PathBuf>,
    /// s3: the bucket.
    pub bucket: Option<String>,
    /// s3: an S3-compatible endpoint (`http(s)://host:port`), path-style.
    pub endpoint: Option<String>,
    /// s3: the region (default `us-east-1`).
    pub region: Option<String>,
}

/// Where the API's token buckets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKind {
    /// This process's memory: limits hold per process.
    #[default]
    Local,
    /// Redis (the `[cache]` Redis, or `rate_limits.url`): limits hold across processes.
    Redis,
}

impl std::str::FromStr for RateLimitKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(RateLimitKind::Local),
            "redis" => Ok(RateLimitKind::Redis),
            other => Err(format!("{other:?}: expected local or redis")),
        }
    }
}

/// `[rate_limits]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// `local` (default) or `redis`.
    pub kind: RateLimitKind,
    /// Redis URL when the cache is not Redis.
    pub url: Option<String>,
    /// Name of the environment variable holding that URL instead.
    pub url_env: Option<String>,
}

/// Which classifier labels reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierKind {
    /// Pre-filter + heuristics only (no model call).
    #[default]
    Heuristic,
    /// Heuristics in front of the configured model, failing closed.
    Layered,
    /// The classifier model: the report's embedding (all-MiniLM-L6-v2,
    /// `embed_model_dir`) and the pre-filter's signals through the trained
    /// head userz-embed ships.
    Embedding,
}

impl std::str::FromStr for ClassifierKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "heuristic" => Ok(ClassifierKind::Heuristic),
            "layered" => Ok(ClassifierKind::Layered),
            "embedding" => Ok(ClassifierKind::Embedding),
            other => Err(format!("{other:?}: expected heuristic, layered or embedding")),
        }
    }
}

/// Which wire format the model provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelApiKind {
    /// OpenAI Chat Completions (any compatible server: llama.cpp, vLLM, …).
    Openai,
    /// Anthropic Messages.
    Anthropic,
}

/// The model provider the agent (and the layered classifier) use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Wire format.
    pub api: ModelApiKind,
    /// Base URL (`https://host/v1` for OpenAI-compatible servers).
    pub base_url: String,
    /// Model id.
    pub model: String,
    /// Name of the environment variable holding the deployment's API key
    /// (never the key itself in the file). Orgs may set their own key as a
    /// secret (`ai_provider_key` slot `model`), which wins.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The request field capping output tokens for the layered classifier:
    /// `max_completion_tokens` (OpenAI's current field, the default) or
    /// `max_tokens` (llama.cpp's server ignores the former).
    #[serde(default)]
    pub max_tokens_field: Option<MaxTokensFieldKind>,
    /// Guided agent turns for small local models: the agent shows the
    /// model the repository's files and names the tool of each turn (write
    /// a file, stage, commit) with paths limited to the repository's; the
    /// server then decodes each call against its schema (llama.cpp needs
    /// `--chat_format chatml-function-calling`). Off for hosted models.
    #[serde(default)]
    pub guided: bool,
}

/// Which output-token cap field an OpenAI-compatible server honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensFieldKind {
    /// `max_completion_tokens`.
    MaxCompletionTokens,
    /// `max_tokens`.
    MaxTokens,
}

/// Which sandbox backend runs the agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxBackendKind {
    /// The microVM when QEMU and a guest kernel are present, else the process sandbox.
    #[default]
    Auto,
    /// One QEMU guest with its own kernel per run (no root needed).
    Microvm,
    /// bubblewrap namespaces on the host kernel (needs root).
    Process,
}

/// QEMU's accelerator for the microVM backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelKind {
    /// KVM when it opens and boots the guest (probed once), TCG otherwise.
    #[default]
    Auto,
    /// KVM.
    Kvm,
    /// Software emulation.
    Tcg,
}

/// Sandbox settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Run agents at all.
    pub enabled: bool,
    /// The backend (`auto`, `microvm`, `process`).
    pub backend: SandboxBackendKind,
    /// microVM: the guest kernel (default `USERZ_VM_KERNEL`, else the one
    /// `scripts/services.sh` unpacks under `~/.cache/userz-tools/kernel`).
    pub kernel: Option<PathBuf>,
    /// microVM: the guest kernel's `/lib/modules/<release>` (default
    /// `USERZ_VM_MODULES`, else next to the default kernel).
    pub modules_dir: Option<PathBuf>,
    /// microVM: `auto`, `kvm` or `tcg`.
    pub accel: AccelKind,
    /// microVM: pre-booted guests kept ready (0 disables; each serves one run).
    pub pool_size: usize,
    /// microVM: a cgroup v2 directory delegated to the server (memory, pids
    /// and cpu enabled for its children); each VM's QEMU runs in a capped
    /// group under it. Unset: QEMU stays in the server's group.
    pub host_cgroup: Option<PathBuf>,
    /// bubblewrap binary.
    pub bwrap: PathBuf,
    /// Directory holding `userz-agent` and `userz-sandbox-exec` (default: next
    /// to the server binary).
    pub bin_dir: Option<PathBuf>,
    /// Memory cap per run, MiB.
    pub memory_mib: u64,
    /// Disk cap per run, MiB.
    pub disk_mib: u64,
    /// CPU cap per run in milli-CPUs.
    pub cpu_millis: u32,
    /// Wall clock per run, seconds.
    pub wall_clock_secs: u64,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            backend: SandboxBackendKind::Auto,
            kernel: None,
            modules_dir: None,
            accel: AccelKind::Auto,
            pool_size: 0,
            host_cgroup: None,
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            bin_dir: None,
            memory_mib: 4096,
            disk_mib: 8192,
            cpu_millis: 2000,
            wall_clock_secs: 20 * 60,
        }
    }
}

/// Outgoing mail for e-mail sign-in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `host:port` of the SMTP server.
    pub addr: String,
    /// Sender address.
    #[serde(default = "default_from")]
    pub from: String,
}

fn default_from() -> String {
    "Userz <userz@localhost>".into()
}

/// Google sign-in (OAuth 2.0 / OpenID Connect).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// OAuth client id.
    pub client_id: String,
    /// Name of the environment variable holding the client secret.
    pub client_secret_env: String,
    /// Authorization endpoint (default Google's).
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// Token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Userinfo endpoint.
    #[serde(default)]
    pub userinfo_url: Option<String>,
}

/// The deployment's GitHub App, needed for repos on GitHub. Its private key
/// comes from an environment variable or from an org's sealed secrets (set
/// with `userz-server admin secret set --kind github_app_private_key`); give
/// exactly one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubAppConfig {
    /// The App id (or client id): the JWT's `iss`.
    pub app_id: String,
    /// Name of the environment variable holding the PEM private key.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// The org whose sealed secrets hold the key (`org_…`).
    #[serde(default)]
    pub private_key_org: Option<String>,
    /// The slot of that secret.
    #[serde(default)]
    pub private_key_slot: Option<String>,
    /// REST API base (default GitHub's; GitHub Enterprise: `https://host/api/v3`).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Git base URL (default GitHub's).
    #[serde(default)]
    pub git_base: Option<String>,
}

/// Where the GitHub App's private key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubKeySource {
    /// The PEM is in this environment variable.
    Env(String),
    /// Sealed in `org`'s secrets under `slot`.
    Sealed {
        /// The org.
        org: userz_core::ids::OrgId,
        /// The slot.
        slot: String,
    },
}

impl GithubAppConfig {
    /// The key source: `private_key_env`, or `private_key_org` with
    /// `private_key_slot` (exactly one), checked.
    pub fn key_source(&self) -> Result<GithubKeySource, ConfigError> {
        match (&self.private_key_env, &self.private_key_org, &self.private_key_slot) {
            (Some(var), None, None) => Ok(GithubKeySource::Env(var.clone())),
            (None, Some(org), Some(slot)) => {
                let org = org.parse().map_err(|_| ConfigError::Invalid {
                    field: "github_app.private_key_org",
                    message: format!("{org:?}: not an organization id (org_…)"),
                })?;
                if slot.is_empty() {
                    return Err(ConfigError::Invalid {
                        field: "github_app.private_key_slot",
                        message: "must not be empty".into(),
                    });
                }
                Ok(GithubKeySource::Sealed { org, slot: slot.clone() })
            }
            _ => Err(ConfigError::Invalid {
                field: "github_app.private_key_env",
                message: "give either private_key_env, or private_key_org with private_key_slot".into(),
            }),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL users reach the server at (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Where the database, blobs, master key and demo repository live.
    pub data_dir: PathBuf,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// E-mail of the demo org's owner created on first start.
    pub admin_email: String,
    /// Create a demo org/app/repo on first start with no data.
    pub bootstrap_demo: bool,
    /// Classifier.
    pub classifier: ClassifierKind,
    /// The sentence-embedding model's files (`model.safetensors`,
    /// `tokenizer.json`, `config.json`), for `classifier = "embedding"`.
    pub embed_model_dir: Option<PathBuf>,
    /// Model provider; without one, runs fail with a clear reason.
    pub model: Option<ModelConfig>,
    /// Sandbox.
    pub sandbox: SandboxSettings,
    /// SMTP; without it, sign-in links are printed to the server log.
    pub smtp: Option<SmtpConfig>,
    /// Google sign-in.
    pub google: Option<GoogleConfig>,
    /// The GitHub App serving GitHub repos.
    pub github_app: Option<GithubAppConfig>,
    /// Engine worker tasks per queue.
    pub workers: usize,
    /// Request limits of the `/v1` API.
    pub limits: LimitSettings,
    /// `[store]`: the event store and what comes with it.
    pub store: StoreConfig,
    /// `[cache]`: sessions, tickets, replay guard.
    pub cache: CacheConfig,
    /// `[blobs]`: screenshots, attachments, transcripts.
    pub blobs: BlobConfig,
    /// `[rate_limits]`: where the API's token buckets live.
    pub rate_limits: RateLimitConfig,
}

/// Rate limits of the `/v1` API (token buckets: burst, then per minute).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Public (widget, `pub_` key only) submissions per client IP: burst.
    pub public_per_ip_burst: u32,
    /// … and sustained per minute.
    pub public_per_ip_per_minute: u32,
    /// Requests per `sk_` API key: burst.
    pub per_key_burst: u32,
    /// … and sustained per minute.
    pub per_key_per_minute: u32,
    /// Private (user token) submissions per user: burst.
    pub private_per_user_burst: u32,
    /// … and sustained per minute.
    pub private_per_user_per_minute: u32,
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let ip = userz_http::ratelimit::BucketConfig::PUBLIC_PER_IP;
        let user = userz_http::ratelimit::BucketConfig::PRIVATE_PER_USER;
        let key = userz_http::ratelimit::BucketConfig::API_KEY;
        Self {
            per_key_burst: key.capacity,
            per_key_per_minute: key.refill_per_minute,
            public_per_ip_burst: ip.capacity,
            public_per_ip_per_minute: ip.refill_per_minute,
            private_per_user_burst: user.capacity,
            private_per_user_per_minute: user.refill_per_minute,
            trust_forwarded_for: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from(".userz-data"),
            secure_cookies: false,
            admin_email: "admin@localhost".into(),
            bootstrap_demo: true,
            classifier: ClassifierKind::Heuristic,
            embed_model_dir: None,
            model: None,
            sandbox: SandboxSettings::default(),
            smtp: None,
            google: None,
            github_app: None,
            workers: 2,
            limits: LimitSettings::default(),
            store: StoreConfig::default(),
            cache: CacheConfig::default(),
            blobs: BlobConfig::default(),
            rate_limits: RateLimitConfig::default(),
        }
    }
}

/// A URL given directly or through a named environment variable (one of the two).
fn url_setting(
    url: Option<&str>,
    url_env: Option<&str>,
    field: &'static str,
    env_field: &'static str,
) -> Result<Option<String>, ConfigError> {
    match (url, url_env) {
        (Some(_), Some(_)) => {
            Err(ConfigError::Invalid { field, message: format!("give {field} or {env_field}, not both") })
        }
        (Some(u), None) => Ok(Some(u.to_owned())),
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(ConfigError::Invalid { field: env_field, message: format!("names {var}, which is not set") }),
        },
        (None, None) => Ok(None),
    }
}

fn env_var(var: &'static str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

fn parse_env<T: std::str::FromStr>(var: &'static str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    env_var(var).map(|v| v.parse::<T>().map_err(|e| ConfigError::Env { var, message: e.to_string() })).transpose()
}

impl Config {
    /// Reads `file` (when given) and applies the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        config.apply_env()?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text).map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })
    }

    /// Parses a configuration; an error names the field (`store.kind: …`).
    pub fn from_toml_str(text: &str) -> Result<Self, String> {
        let de = toml::de::Deserializer::parse(text).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            if field.is_empty() || field == "." {
                inner.to_string()
            } else {
                format!("{field}: {inner}")
            }
        })
    }

    /// Applies `USERZ_LISTEN`, `USERZ_PUBLIC_URL`, `USERZ_DATA_DIR`,
    /// `USERZ_SECURE_COOKIES`, `USERZ_ADMIN_EMAIL`, `USERZ_BOOTSTRAP_DEMO`,
    /// `USERZ_MODEL_API` + `USERZ_MODEL_BASE_URL` + `USERZ_MODEL`
    /// (+ `USERZ_MODEL_API_KEY_ENV`, `USERZ_MODEL_MAX_TOKENS_FIELD`,
    /// `USERZ_MODEL_GUIDED=1`), `USERZ_SMTP_ADDR`, `USERZ_SANDBOX`
    /// (`0` disables), `USERZ_WORKERS`, `USERZ_CLASSIFIER` (`heuristic`,
    /// `layered`, `embedding`) and `USERZ_EMBED_MODEL_DIR`.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Some(v) = parse_env("USERZ_LISTEN")? {
            self.listen = v;
        }
        if let Some(v) = env_var("USERZ_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = env_var("USERZ_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = parse_env("USERZ_SECURE_COOKIES")? {
            self.secure_cookies = v;
        }
        if let Some(v) = env_var("USERZ_ADMIN_EMAIL") {
            self.admin_email = v;
        }
        if let Some(v) = parse_env("USERZ_BOOTSTRAP_DEMO")? {
            self.bootstrap_demo = v;
        }
        if let Some(v) = parse_env("USERZ_CLASSIFIER")? {
            self.classifier = v;
        }
        if let Some(v) = env_var("USERZ_EMBED_MODEL_DIR") {
            self.embed_model_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = parse_env::<u8>("USERZ_SANDBOX")? {
            self.sandbox.enabled = v != 0;
        }
        if let Some(v) = parse_env("USERZ_PUBLIC_PER_IP_PER_MINUTE")? {
            self.limits.public_per_ip_per_minute = v;
        }
        if let Some(v) = parse_env("USERZ_PUBLIC_PER_IP_BURST")? {
            self.limits.public_per_ip_burst = v;
        }
        if let Some(v) = parse_env("USERZ_WORKERS")? {
            self.workers = v;
        }
        if let Some(v) = parse_env("USERZ_STORE")? {
            self.store.kind = v;
        }
        if let Some(v) = env_var("USERZ_STORE_URL") {
            self.store.url = Some(v);
        }
        if let Some(v) = parse_env("USERZ_CACHE")? {
            self.cache.kind = v;
        }
        if let Some(v) = env_var("USERZ_CACHE_URL") {
            self.cache.url = Some(v);
        }
        if let Some(v) = parse_env("USERZ_BLOBS")? {
            self.blobs.kind = v;
        }
        if let Some(v) = env_var("USERZ_BLOBS_BUCKET") {
            self.blobs.bucket = Some(v);
        }
        if let Some(v) = env_var("USERZ_BLOBS_ENDPOINT") {
            self.blobs.endpoint = Some(v);
        }
        if let Some(v) = parse_env("USERZ_RATE_LIMITS")? {
            self.rate_limits.kind = v;
        }
        if let Some(api) = env_var("USERZ_MODEL_API") {
            let api = match api.as_str() {
                "openai" => ModelApiKind::Openai,
                "anthropic" => ModelApiKind::Anthropic,
                other => {
                    return Err(ConfigError::Env {
                        var: "USERZ_MODEL_API",
                        message: format!("{other:?}: expected openai or anthropic"),
                    })
                }
            };
            let base_url = env_var("USERZ_MODEL_BASE_URL").ok_or(ConfigError::Env {
                var: "USERZ_MODEL_BASE_URL",
                message: "required when USERZ_MODEL_API is set".into(),
            })?;
            let model = env_var("USERZ_MODEL").ok_or(ConfigError::Env {
                var: "USERZ_MODEL",
                message: "required when USERZ_MODEL_API is set".into(),
            })?;
            let max_tokens_field = match env_var("USERZ_MODEL_MAX_TOKENS_FIELD").as_deref() {
                None => None,
                Some("max_tokens") => Some(MaxTokensFieldKind::MaxTokens),
                Some("max_completion_tokens") => Some(MaxTokensFieldKind::MaxCompletionTokens),
                Some(other) => {
                    return Err(ConfigError::Env {
                        var: "USERZ_MODEL_MAX_TOKENS_FIELD",
                        message: format!("{other:?}: expected max_tokens or max_completion_tokens"),
                    })
                }
            };
            self.model = Some(ModelConfig {
                api,
                base_url,
                model,
                api_key_env: env_var("USERZ_MODEL_API_KEY_ENV"),
                max_tokens_field,
                guided: parse_env::<u8>("USERZ_MODEL_GUIDED")?.is_some_and(|v| v != 0),
            });
        }
        if let Some(addr) = env_var("USERZ_SMTP_ADDR") {
            let from = self.smtp.as_ref().map(|s| s.from.clone()).unwrap_or_else(default_from);
            self.smtp = Some(SmtpConfig { addr, from });
        }
        Ok(())
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.ends_with('/') {
                return Err(ConfigError::Invalid {
                    field: "public_url",
                    message: format!("{url:?}: must be an http(s) URL without a trailing slash"),
                });
            }
        }
        if let Some(m) = &self.model {
            if !(m.base_url.starts_with("http://") || m.base_url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    field: "model.base_url",
                    message: format!("{:?}: must be an http(s) URL", m.base_url),
                });
            }
            if m.model.is_empty() {
                return Err(ConfigError::Invalid { field: "model.model", message: "must not be empty".into() });
            }
        }
        if let Some(g) = &self.github_app {
            if g.app_id.is_empty() {
                return Err(ConfigError::Invalid { field: "github_app.app_id", message: "must not be empty".into() });
            }
            g.key_source()?;
        }
        if !self.admin_email.contains('@') {
            return Err(ConfigError::Invalid { field: "admin_email", message: "must be an e-mail address".into() });
        }
        self.store_url()?;
        self.cache_url()?;
        self.rate_limit_url()?;
        match self.blobs.kind {
            BlobKind::S3 if self.blobs.bucket.as_deref().is_none_or(str::is_empty) => {
                return Err(ConfigError::Invalid {
                    field: "blobs.bucket",
                    message: "blobs.kind = \"s3\" needs a bucket".into(),
                })
            }
            BlobKind::S3 => {}
            _ if self.blobs.bucket.is_some() || self.blobs.endpoint.is_some() || self.blobs.region.is_some() => {
                return Err(ConfigError::Invalid {
                    field: "blobs.kind",
                    message: "bucket, endpoint and region are for blobs.kind = \"s3\"".into(),
                })
            }
            _ => {}
        }
        if let Some(e) = &self.blobs.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    field: "blobs.endpoint",
                    message: format!("{e:?}: must be an http(s) URL"),
                });
            }
        }
        if let Some(ns) = &self.store.namespace {
            let valid = (1..=32).contains(&ns.len())
                && ns.starts_with(|c: char| c.is_ascii_alphabetic())
                && ns.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError::Invalid {
                    field: "store.namespace",
                    message: format!("{ns:?}: 1-32 characters of [A-Za-z0-9_], starting with a letter"),
                });
            }
        }
        if self.store.replicas.is_some_and(|n| !(1..=5).contains(&n)) {
            return Err(ConfigError::Invalid { field: "store.replicas", message: "must be 1-5".into() });
        }
        if self.workers == 0 || self.workers > 64 {
            return Err(ConfigError::Invalid { field: "workers", message: "must be 1-64".into() });
        }
        for (field, value) in [
            ("limits.public_per_ip_burst", self.limits.public_per_ip_burst),
            ("limits.public_per_ip_per_minute", self.limits.public_per_ip_per_minute),
            ("limits.private_per_user_burst", self.limits.private_per_user_burst),
            ("limits.private_per_user_per_minute", self.limits.private_per_user_per_minute),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    message: "must be at least 1 (0 would refuse every request)".into(),
                });
            }
        }
        // Settings another kind would silently ignore.
        if self.store.path.is_some() && self.store.kind != StoreKind::Sqlite {
            return Err(ConfigError::Invalid {
                field: "store.path",
                message: "only the sqlite store takes a path".into(),
            });
        }
        if self.store.replicas.is_some() && self.store.kind != StoreKind::Nats {
            return Err(ConfigError::Invalid {
                field: "store.replicas",
                message: "only the nats store takes replicas".into(),
            });
        }
        if self.blobs.path.is_some() && self.blobs.kind != BlobKind::Fs {
            return Err(ConfigError::Invalid {
                field: "blobs.path",
                message: "only blobs.kind = \"fs\" takes a path".into(),
            });
        }
        Ok(())
    }

    /// The store's URL: `store.url`, or the variable `store.url_env` names.
    /// `None` for SQLite; an error naming the field when a networked store has
    /// none, or both are given.
    pub fn store_url(&self) -> Result<Option<String>, ConfigError> {
        let s = &self.store;
        let url = url_setting(s.url.as_deref(), s.url_env.as_deref(), "store.url", "store.url_env")?;
        match (s.kind, url) {
            (StoreKind::Sqlite, Some(_)) => Err(ConfigError::Invalid {
                field: "store.url",
                message: "the sqlite store takes store.path, not a URL".into(),
            }),
            (StoreKind::Sqlite, None) => Ok(None),
            (kind, None) => Err(ConfigError::Invalid {
                field: "store.url",
                message: format!("store.kind = {:?} needs store.url (or store.url_env)", kind.as_str()),
            }),
            (StoreKind::Postgres, Some(u)) if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) => {
                Err(ConfigError::Invalid {
                    field: "store.url",
                    message: "a postgres store URL starts with postgres:// or postgresql://".into(),
                })
            }
            (StoreKind::Nats, Some(u))
                if !u.split(',').all(|one| {
                    let one = one.trim();
                    one.starts_with("nats://") || one.starts_with("tls://")
                }) =>
            {
                Err(ConfigError::Invalid {
                    field: "store.url",
                    message: "each NATS server URL starts with nats:// or tls://".into(),
                })
            }
            (_, Some(u)) => Ok(Some(u)),
        }
    }

    /// The cache's URL (Redis), checked like [`store_url`](Self::store_url).
    pub fn cache_url(&self) -> Result<Option<String>, ConfigError> {
        let c = &self.cache;
        let url = url_setting(c.url.as_deref(), c.url_env.as_deref(), "cache.url", "cache.url_env")?;
        match (c.kind, url) {
            (CacheKind::Redis, None) => Err(ConfigError::Invalid {
                field: "cache.url",
                message: "cache.kind = \"redis\" needs cache.url (or cache.url_env)".into(),
            }),
            (CacheKind::Redis, Some(u)) if !(u.starts_with("redis://") || u.starts_with("rediss://")) => {
                Err(ConfigError::Invalid { field: "cache.url", message: "a Redis URL starts with redis://".into() })
            }
            (CacheKind::Redis, Some(u)) => Ok(Some(u)),
            (_, Some(_)) => Err(ConfigError::Invalid {
                field: "cache.url",
                message: "only cache.kind = \"redis\" takes a URL".into(),
            }),
            (CacheKind::Store, None) if self.store.kind == StoreKind::Postgres => Err(ConfigError::Invalid {
                field: "cache.kind",
                message: "the postgres store has no cache: set cache.kind = \"redis\" (with cache.url), or \"memory\" for a single process".into(),
            }),
            (_, None) => Ok(None),
        }
    }

    /// The Redis URL of the rate limiter: `rate_limits.url`(`_env`), else the
    /// cache's when the cache is Redis. `None` for local limits.
    pub fn rate_limit_url(&self) -> Result<Option<String>, ConfigError> {
        let r = &self.rate_limits;
        let own = url_setting(r.url.as_deref(), r.url_env.as_deref(), "rate_limits.url", "rate_limits.url_env")?;
        match (r.kind, own) {
            (RateLimitKind::Local, Some(_)) => Err(ConfigError::Invalid {
                field: "rate_limits.url",
                message: "only rate_limits.kind = \"redis\" takes a URL".into(),
            }),
            (RateLimitKind::Local, None) => Ok(None),
            (RateLimitKind::Redis, Some(u)) if !(u.starts_with("redis://") || u.starts_with("rediss://")) => {
                Err(ConfigError::Invalid {
                    field: "rate_limits.url",
                    message: "a Redis URL starts with redis://".into(),
                })
            }
            (RateLimitKind::Redis, Some(u)) => Ok(Some(u)),
            (RateLimitKind::Redis, None) if self.cache.kind == CacheKind::Redis => self.cache_url(),
            (RateLimitKind::Redis, None) => Err(ConfigError::Invalid {
                field: "rate_limits.url",
                message: "rate_limits.kind = \"redis\" needs rate_limits.url, or cache.kind = \"redis\"".into(),
            }),
        }
    }

    /// The `/v1` API settings (the `sk_` key limit is fixed by the product:
    /// capacity 100, 10/s).
    pub fn api_config(&self) -> userz_http::ApiConfig {
        use userz_http::ratelimit::BucketConfig;
        userz_http::ApiConfig {
            public_per_ip: BucketConfig {
                capacity: self.limits.public_per_ip_burst,
                refill_per_minute: self.limits.public_per_ip_per_minute,
            },
            api_key_limit: BucketConfig {
                capacity: self.limits.per_key_burst,
                refill_per_minute: self.limits.per_key_per_minute,
            },
            private_per_user: BucketConfig {
                capacity: self.limits.private_per_user_burst,
                refill_per_minute: self.limits.private_per_user_per_minute,
            },
            trust_forwarded_for: self.limits.trust_forwarded_for,
            ..userz_http::ApiConfig::default()
        }
    }

    /// The public URL, defaulting to `http://<listen>`.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{bound}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_empty_file_is_the_embedded_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(c.bootstrap_demo);
        assert!(c.model.is_none());
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let e = toml::from_str::<Config>("listne = \"127.0.0.1:1\"").unwrap_err();
        assert!(e.to_string().contains("listne"), "{e}");
    }

    #[test]
    fn model_section_parses_and_bad_urls_name_the_field() {
        let c: Config = toml::from_str("[model]\napi = \"openai\"\nbase_url = \"ftp://x\"\nmodel = \"m\"\n").unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("model.base_url"), "{e}");
        let e = toml::from_str::<Config>("[model]\napi = \"gemini\"\nbase_url = \"http://x\"\nmodel = \"m\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("gemini"), "{e}");
    }

    #[test]
    fn github_app_needs_exactly_one_key_source() {
        let parse = |t: &str| Config::from_toml_str(t).unwrap().validate();
        let source = |t: &str| Config::from_toml_str(t).unwrap().github_app.unwrap().key_source().unwrap();
        let env = "[github_app]\napp_id = \"1\"\nprivate_key_env = \"K\"\n";
        parse(env).unwrap();
        assert_eq!(source(env), GithubKeySource::Env("K".into()));
        let org = userz_core::ids::OrgId::new();
        let sealed = format!("[github_app]\napp_id = \"1\"\nprivate_key_org = \"{org}\"\nprivate_key_slot = \"gh\"\n");
        parse(&sealed).unwrap();
        assert_eq!(source(&sealed), GithubKeySource::Sealed { org, slot: "gh".into() });
        let none = parse("[github_app]\napp_id = \"1\"\n").unwrap_err();
        assert!(none.to_string().contains("github_app.private_key_env"), "{none}");
        let both = parse(
            "[github_app]\napp_id = \"1\"\nprivate_key_env = \"K\"\nprivate_key_org = \"x\"\nprivate_key_slot = \"s\"\n",
        )
        .unwrap_err();
        assert!(both.to_string().contains("either private_key_env"), "{both}");
        let bad_org =
            parse("[github_app]\napp_id = \"1\"\nprivate_key_org = \"nope\"\nprivate_key_slot = \"s\"\n").unwrap_err();
        assert!(bad_org.to_string().contains("github_app.private_key_org"), "{bad_org}");
    }

    #[test]
    fn public_url_must_not_end_with_a_slash() {
        let c = Config { public_url: Some("http://x/".into()), ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("public_url"));
    }

    #[test]
    fn store_settings_are_checked_and_errors_name_the_setting() {
        let invalid = |t: &str| match Config::from_toml_str(t) {
            Err(parse) => parse,
            Ok(c) => c.validate().unwrap_err().to_string(),
        };
        let ok = |t: &str| Config::from_toml_str(t).unwrap().validate().unwrap();
        ok("");
        ok("[store]\nkind = \"sqlite\"\npath = \"/tmp/x.db\"\n");
        ok("[store]\nkind = \"postgres\"\nurl = \"postgres://u@127.0.0.1:5432/db\"\n[cache]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n");
        ok("[store]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222, nats://127.0.0.1:4223\"\nreplicas = 3\n");
        ok("[store]\nkind = \"postgres\"\nurl = \"postgres://u@h/db\"\n[cache]\nkind = \"memory\"\n");
        ok("[blobs]\nkind = \"s3\"\nbucket = \"userz\"\nendpoint = \"http://127.0.0.1:9000\"\n");
        ok("[cache]\nkind = \"redis\"\nurl = \"redis://h:1\"\n[rate_limits]\nkind = \"redis\"\n");
        for (toml, field, words) in [
            ("[store]\nkind = \"mysql\"\n", "store.kind", "unknown variant"),
            ("[store]\nkinds = \"sqlite\"\n", "store", "unknown field"),
            ("[store]\nkind = \"postgres\"\n", "store.url", "needs store.url"),
            ("[store]\nkind = \"nats\"\n", "store.url", "needs store.url"),
            ("[store]\nkind = \"postgres\"\nurl = \"mysql://h/db\"\n", "store.url", "postgres://"),
            ("[store]\nkind = \"nats\"\nurl = \"nats://a:1,http://b:2\"\n", "store.url", "nats://"),
            ("[store]\nurl = \"postgres://h/db\"\n", "store.url", "store.path"),
            ("[store]\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n", "cache.kind", "has no cache"),
            ("[store]\nkind = \"postgres\"\nurl = \"postgres://h/db\"\nurl_env = \"X\"\n", "store.url", "not both"),
            ("[store]\nkind = \"nats\"\nurl_env = \"USERZ_TEST_SURELY_UNSET_VAR\"\n", "store.url_env", "not set"),
            ("[cache]\nkind = \"redis\"\n", "cache.url", "needs cache.url"),
            ("[cache]\nkind = \"redis\"\nurl = \"http://h\"\n", "cache.url", "redis://"),
            ("[cache]\nurl = \"redis://h\"\n", "cache.url", "only cache.kind"),
            ("[store]\nnamespace = \"a-b\"\n", "store.namespace", "[A-Za-z0-9_]"),
            ("[blobs]\nkind = \"s3\"\n", "blobs.bucket", "needs a bucket"),
            ("[blobs]\nbucket = \"b\"\n", "blobs.kind", "for blobs.kind"),
            ("[blobs]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"127.0.0.1:9\"\n", "blobs.endpoint", "http(s)"),
            ("[blobs]\nkind = \"gcs\"\n", "blobs.kind", "unknown variant"),
            ("[rate_limits]\nkind = \"redis\"\n", "rate_limits.url", "needs rate_limits.url"),
            ("[rate_limits]\nurl = \"redis://h\"\n", "rate_limits.url", "only rate_limits.kind"),
            ("[limits]\npublic_per_ip_per_minute = 0\n", "limits.public_per_ip_per_minute", "at least 1"),
            ("[store]\nkind = \"nats\"\nurl = \"nats://h:1\"\npath = \"/x.db\"\n", "store.path", "only the sqlite"),
            ("[store]\nreplicas = 3\n", "store.replicas", "only the nats"),
            ("[blobs]\nkind = \"memory\"\npath = \"/b\"\n", "blobs.path", "only blobs.kind"),
            ("[store]\nkind = \"nats\"\nurl = \"nats://h:1\"\nreplicas = 7\n", "store.replicas", "1-5"),
        ] {
            let e = invalid(toml);
            assert!(e.contains(field) && e.contains(words), "{toml:?}: {e}");
        }
    }
}
