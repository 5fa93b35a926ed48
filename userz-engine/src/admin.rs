//! The application layer for tenants and secrets: what the admin CLI, the
//! first-start bootstrap, the HTTP layer and the dashboard call to create and
//! change orgs, Apps, repositories, API keys and org secrets. One set of
//! validation rules for every caller.
//!
//! Every write goes through the [`CommandBus`], so it is validated by the
//! aggregate's decider and recorded as events (key issue and revocation are
//! audit events, G19). Reads of single aggregates load them from the bus, so
//! they see a write at once; [`Admin::list_apps`] reads the directory
//! projection and trails writes by the projection's lag.
//!
//! Secrets are returned exactly once: [`Admin::issue_api_key`] gives the
//! `sk_` plaintext (only its Argon2id hash is stored, G14) and
//! [`Admin::set_app_signing_secret`] gives a generated signing secret (stored
//! sealed in the org's secrets, G13). Nothing here can read either back.

use std::sync::Arc;

use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use userz_core::decider::Rejection;
use userz_core::domain::app::{AppCommand, AppDecider, AppSettings, AppSettingsPatch, AppState};
use userz_core::domain::common::{Actor, Dedup, ProcessingMode};
use userz_core::domain::org::{OrgCommand, OrgDecider, OrgState};
use userz_core::domain::repo::{Provider, RepoCommand, RepoDecider};
use userz_core::ids::{AppId, OrgId, RepoId, UserId};
use userz_core::ports::ReadModelStore;
use userz_core::{Clock, Sensitive, Timestamp};
use userz_security::api_key::{ApiKey, HashParams, PublicKey};
use userz_security::envelope::{Envelope, SecretKind};
use userz_security::secret::SecretString;
use userz_security::widget_auth::MIN_SECRET_BYTES;

use crate::directory::{self, AppRow};
use crate::secrets::put_secret;
use crate::{CommandBus, CommandError, CommandMeta};

/// The largest secret value [`Admin::set_secret`] seals (64 KiB).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Why an admin operation failed. Messages name the field or rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The org, App or key does not exist (or belongs to another org).
    #[error("{0} not found")]
    NotFound(String),
    /// It exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A field broke a rule.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// The rule.
        reason: String,
    },
    /// The change is not allowed now (rule named).
    #[error("refused ({rule}): {message}")]
    Refused {
        /// Rule code.
        rule: String,
        /// Explanation.
        message: String,
    },
    /// Secrets need an envelope (a master key provider) and none was configured.
    #[error("no master key configured: set one (USERZ_MASTER_KEYS) to store secrets")]
    NoEnvelope,
    /// A store or crypto failure.
    #[error("admin operation failed: {0}")]
    Failed(String),
}

impl From<CommandError> for AdminError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rejected(r) => r.into(),
            CommandError::Failed(e) => AdminError::Failed(e.to_string()),
        }
    }
}

impl From<Rejection> for AdminError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::NotFound { entity } => AdminError::NotFound(entity.to_string()),
            Rejection::AlreadyExists { entity } => AdminError::AlreadyExists(entity.to_string()),
            Rejection::InvalidInput { field, reason } => AdminError::Invalid { field: field.to_string(), reason },
            other => AdminError::Refused { rule: other.rule().to_string(), message: other.to_string() },
        }
    }
}

impl From<userz_core::Error> for AdminError {
    fn from(e: userz_core::Error) -> Self {
        match e {
            userz_core::Error::NotFound(what) => AdminError::NotFound(what),
            other => AdminError::Failed(other.to_string()),
        }
    }
}

/// A new App's settings.
#[derive(Debug, Clone)]
pub struct NewApp {
    /// Display name (1–100 chars).
    pub name: String,
    /// Exact origins allowed to submit (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Whether `pub_`-key-only submissions are accepted.
    pub public_submission_enabled: bool,
    /// What happens to benign reports.
    pub processing_mode: ProcessingMode,
    /// Duplicate handling.
    pub dedup: Dedup,
}

impl NewApp {
    /// Defaults: public submissions on, `auto_pr`, no origins, no dedup.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            allowed_origins: Vec::new(),
            public_submission_enabled: true,
            processing_mode: ProcessingMode::AutoPr,
            dedup: Dedup::Off,
        }
    }
}

/// A created App.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedApp {
    /// Id.
    pub app: AppId,
    /// Its `pub_` key (not secret: the widget sends it).
    pub public_key: String,
}

/// A new repository link.
#[derive(Debug, Clone)]
pub struct NewRepo {
    /// Where it lives.
    pub provider: Provider,
    /// Base branch (`None`: the provider's default).
    pub base_branch: Option<String>,
    /// Branch prefix (`None`: `userz/`).
    pub branch_prefix: Option<String>,
    /// Extra forbidden-path rules.
    pub forbidden_paths: Vec<String>,
}

/// A freshly issued `sk_` key. `plaintext` is shown once and never stored.
#[derive(Debug)]
pub struct IssuedKey {
    /// Lookup prefix (shown in listings, used to revoke).
    pub prefix: String,
    /// The full key (redacted in `Debug`).
    pub plaintext: SecretString,
}

/// A key in a listing (no secret material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Prefix.
    pub prefix: String,
    /// Label.
    pub name: String,
    /// Issued.
    pub issued_at: Timestamp,
    /// Revoked, if revoked.
    pub revoked_at: Option<Timestamp>,
}

/// The operator's handle on the engine's tenants.
#[derive(Debug, Clone)]
pub struct Admin {
    bus: CommandBus,
    read_models: Arc<dyn ReadModelStore>,
    clock: Arc<dyn Clock>,
    envelope: Option<Envelope>,
    hash_params: HashParams,
}

impl Admin {
    /// An admin over `bus` and `read_models`. `envelope` is needed for signing
    /// secrets; without it [`Self::set_app_signing_secret`] answers [`AdminError::NoEnvelope`].
    pub fn new(
        bus: CommandBus,
        read_models: Arc<dyn ReadModelStore>,
        clock: Arc<dyn Clock>,
        envelope: Option<Envelope>,
    ) -> Self {
        Self { bus, read_models, clock, envelope, hash_params: HashParams::default() }
    }

    /// Argon2id parameters for new keys (default OWASP; tests lower them).
    pub fn with_hash_params(mut self, params: HashParams) -> Self {
        self.hash_params = params;
        self
    }

    async fn org_state(&self, org: OrgId) -> Result<OrgState, AdminError> {
        let (state, _) = self.bus.load::<OrgDecider>(&CommandBus::stream::<OrgDecider>(org)).await?;
        match state {
            OrgState::None => Err(AdminError::NotFound(format!("organization {org}"))),
            s => Ok(s),
        }
    }

    async fn app_of_org(&self, org: OrgId, app: AppId) -> Result<userz_core::domain::app::App, AdminError> {
        let (state, _) = self.bus.load::<AppDecider>(&CommandBus::stream::<AppDecider>(app)).await?;
        match state {
            AppState::Active(a) if a.org == org => Ok(a),
            _ => Err(AdminError::NotFound(format!("app {app} in organization {org}"))),
        }
    }

    /// `NotFound` unless `org` exists.
    pub async fn require_org(&self, org: OrgId) -> Result<(), AdminError> {
        self.org_state(org).await.map(|_| ())
    }

    /// Seals `value` into `org`'s secrets as (`kind`, `slot`): write-only,
    /// nothing here reads it back. The rules every caller (admin CLI,
    /// dashboard, API) shares: the slot is 1-200 characters after trimming,
    /// the value 1 byte to [`MAX_SECRET_BYTES`]. `NotFound` for an unknown
    /// org, before anything is written.
    pub async fn set_secret(
        &self,
        org: OrgId,
        kind: SecretKind,
        slot: &str,
        value: &SecretString,
        by: Actor,
    ) -> Result<(), AdminError> {
        let envelope = self.envelope.as_ref().ok_or(AdminError::NoEnvelope)?;
        let slot = slot.trim();
        if slot.is_empty() || slot.len() > 200 {
            return Err(AdminError::Invalid { field: "slot".into(), reason: "1-200 characters".into() });
        }
        let len = value.expose_secret().len();
        if len == 0 || len > MAX_SECRET_BYTES {
            return Err(AdminError::Invalid { field: "value".into(), reason: "1 byte to 64 KiB".into() });
        }
        self.org_state(org).await?;
        put_secret(&self.bus, envelope, org, kind, slot, value.expose_secret().as_bytes(), by, self.clock.now())
            .await?;
        Ok(())
    }

    /// Creates an organization with its first owner.
    pub async fn create_org(&self, name: &str, owner: UserId, owner_email: &str) -> Result<OrgId, AdminError> {
        if !owner_email.contains('@') || owner_email.len() > 254 {
            return Err(AdminError::Invalid { field: "owner_email".into(), reason: "an e-mail address".into() });
        }
        let org = OrgId::new();
        let cmd = OrgCommand::Create {
            org,
            name: name.to_string(),
            owner,
            owner_email: Sensitive::new(owner_email.to_string()),
        };
        self.bus.execute::<OrgDecider>(&CommandBus::stream::<OrgDecider>(org), CommandMeta::new(), &cmd).await?;
        Ok(org)
    }

    /// Creates an App of `org` and generates its `pub_` key.
    pub async fn create_app(&self, org: OrgId, new: NewApp) -> Result<CreatedApp, AdminError> {
        self.org_state(org).await?;
        let app = AppId::new();
        let public_key = PublicKey::generate().as_str().to_string();
        let settings = AppSettings {
            processing_mode: new.processing_mode,
            public_submission_enabled: new.public_submission_enabled,
            allowed_origins: new.allowed_origins,
            dedup: new.dedup,
        };
        let cmd = AppCommand::Create { app, org, name: new.name, public_key: public_key.clone(), settings };
        self.bus.execute::<AppDecider>(&CommandBus::stream::<AppDecider>(app), CommandMeta::new(), &cmd).await?;
        Ok(CreatedApp { app, public_key })
    }

    /// Changes an App's settings.
    pub async fn configure_app(&self, org: OrgId, app: AppId, patch: AppSettingsPatch) -> Result<(), AdminError> {
        self.app_of_org(org, app).await?;
        let cmd = AppCommand::Configure { patch };
        self.bus.execute::<AppDecider>(&CommandBus::stream::<AppDecider>(app), CommandMeta::new(), &cmd).await?;
        Ok(())
    }

    /// Creates a repository for `app` and links it to the App.
    pub async fn create_repo(&self, org: OrgId, app: AppId, new: NewRepo) -> Result<RepoId, AdminError> {
        self.app_of_org(org, app).await?;
        let repo = RepoId::new();
        let cmd = RepoCommand::Create {
            repo,
            org,
            app,
            provider: new.provider,
            base_branch: new.base_branch,
            branch_prefix: new.branch_prefix,
            forbidden_paths: new.forbidden_paths,
        };
        self.bus.execute::<RepoDecider>(&CommandBus::stream::<RepoDecider>(repo), CommandMeta::new(), &cmd).await?;
        let link = AppCommand::LinkRepo { repo };
        self.bus.execute::<AppDecider>(&CommandBus::stream::<AppDecider>(app), CommandMeta::new(), &link).await?;
        Ok(repo)
    }

    /// Issues an `sk_` key for `org`. The plaintext is in the result only.
    /// `actor: None` is the operator; a member must be owner or admin.
    pub async fn issue_api_key(&self, org: OrgId, name: &str, actor: Option<UserId>) -> Result<IssuedKey, AdminError> {
        self.org_state(org).await?;
        let params = self.hash_params;
        let issued = tokio::task::spawn_blocking(move || ApiKey::generate(params))
            .await
            .map_err(|e| AdminError::Failed(format!("key generation task: {e}")))?
            .map_err(|e| AdminError::Failed(e.to_string()))?;
        let (plaintext, stored) = issued.into_parts();
        let prefix = stored.prefix.clone();
        let cmd = OrgCommand::IssueApiKey { actor, name: name.to_string(), stored, at: self.clock.now() };
        self.bus.execute::<OrgDecider>(&CommandBus::stream::<OrgDecider>(org), CommandMeta::new(), &cmd).await?;
        Ok(IssuedKey { prefix, plaintext })
    }

    /// Revokes the key with `prefix` (idempotent; unknown prefixes are `NotFound`).
    pub async fn revoke_api_key(&self, org: OrgId, prefix: &str, actor: Option<UserId>) -> Result<(), AdminError> {
        self.org_state(org).await?;
        let cmd = OrgCommand::RevokeApiKey { actor, prefix: prefix.to_string(), at: self.clock.now() };
        self.bus.execute::<OrgDecider>(&CommandBus::stream::<OrgDecider>(org), CommandMeta::new(), &cmd).await?;
        Ok(())
    }

    /// The org's keys (from the org aggregate; no secret material).
    pub async fn list_api_keys(&self, org: OrgId) -> Result<Vec<KeyInfo>, AdminError> {
        let state = self.org_state(org).await?;
        Ok(state
            .api_keys()
            .into_iter()
            .flat_map(|m| m.iter())
            .map(|(prefix, k)| KeyInfo {
                prefix: prefix.clone(),
                name: k.name.clone(),
                issued_at: k.issued_at,
                revoked_at: k.revoked_at,
            })
            .collect())
    }

    /// Every organization, from the directory projection (trails writes
    /// slightly). An empty list on a started server means a fresh install.
    pub async fn list_orgs(&self) -> Result<Vec<directory::OrgRow>, AdminError> {
        Ok(directory::orgs(self.read_models.as_ref()).await?)
    }

    /// The org's Apps, from the directory projection (trails writes slightly).
    pub async fn list_apps(&self, org: OrgId) -> Result<Vec<AppRow>, AdminError> {
        Ok(directory::apps_of_org(self.read_models.as_ref(), org).await?)
    }

    /// Sets `app`'s private-mode signing secret. With `secret: None` a random
    /// one is generated and returned (once); a given secret must be at least 32
    /// bytes and is not echoed back. Replacing the secret invalidates every
    /// token signed with the old one.
    pub async fn set_app_signing_secret(
        &self,
        org: OrgId,
        app: AppId,
        secret: Option<SecretString>,
        by: Actor,
    ) -> Result<Option<SecretString>, AdminError> {
        let envelope = self.envelope.as_ref().ok_or(AdminError::NoEnvelope)?;
        self.app_of_org(org, app).await?;
        let (value, generated) = match secret {
            Some(s) => {
                if s.expose_secret().len() < MIN_SECRET_BYTES {
                    return Err(AdminError::Invalid {
                        field: "signing_secret".into(),
                        reason: format!("at least {MIN_SECRET_BYTES} bytes"),
                    });
                }
                (s, false)
            }
            None => (generate_signing_secret(), true),
        };
        put_secret(
            &self.bus,
            envelope,
            org,
            SecretKind::AppSigningSecret,
            &app.to_string(),
            value.expose_secret().as_bytes(),
            by,
            self.clock.now(),
        )
        .await?;
        Ok(generated.then_some(value))
    }
}

/// A random signing secret: 32 random bytes, base64url without padding
/// (43 characters; the HS256 key is the string's bytes).
pub fn generate_signing_secret() -> SecretString {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    SecretString::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref()))
}
