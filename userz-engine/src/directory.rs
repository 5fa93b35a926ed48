//! The directory of tenants, one projection for every adapter: which org owns
//! an `sk_` key, which App a `pub_` key names, the Apps and repositories of an
//! org, who may sign in to which org (members by e-mail and by user), which
//! secret slots are set (metadata only) and the version of each App's signing
//! secret.
//!
//! [`DirectoryProjection`] builds it from the org, App, repo and secrets
//! streams; [`Engine::start`](crate::Engine::start) runs it under the engine's
//! supervisor, so the HTTP layer, the dashboard and the admin functions read
//! the same rows. Every query that serves a tenant takes the org, so nothing
//! crosses orgs.
//!
//! Rows hold no secret: keys are stored as prefix + salt + Argon2id hash (G14),
//! secret slots as kind, slot, who and when, and the signing secret is only
//! referenced by the log position that last set it (its sealed value stays in
//! the org's secrets stream, G13).

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use userz_core::credentials::{SecretKind, StoredApiKey};
use userz_core::domain::app::AppEvent;
use userz_core::domain::org::OrgEvent;
use userz_core::domain::repo::{Provider, RepoEvent};
use userz_core::domain::secrets::SecretsEvent;
use userz_core::domain::{Actor, Role};
use userz_core::ids::{AppId, OrgId, RepoId, UserId};
use userz_core::ports::ReadModelStore;
use userz_core::{Error, RecordedEvent, Result, Timestamp};

use crate::codec::AnyEvent;
use crate::projections::{Projection, ProjectionTx};

/// Apps by id.
pub const APPS: &str = "dir_apps";
/// App ids by `pub_` key.
pub const APPS_BY_PUBLIC_KEY: &str = "dir_apps_by_pub";
/// App ids keyed `org/app`.
pub const ORG_APPS: &str = "dir_org_apps";
/// API keys by prefix.
pub const KEYS: &str = "dir_keys";
/// Key prefixes keyed `org/prefix`.
pub const ORG_KEYS: &str = "dir_org_keys";
/// Signing-secret versions by App id.
pub const APP_SECRETS: &str = "dir_app_secrets";
/// Organizations by id.
pub const ORGS: &str = "dir_orgs";
/// Repos by provider name or id: `github/<owner/name lowercased>`,
/// `gitlab/<path lowercased>` or `gitlab#<project id>` → repo id.
pub const REPOS_BY_PROVIDER: &str = "dir_repos_by_provider";
/// Repos keyed `org/repo`.
pub const REPOS: &str = "dir_repos";
/// The org of each repo, by repo id.
const REPO_ORG: &str = "dir_repo_org";
/// Members by normalised e-mail: key `email/org`.
pub const MEMBERS_BY_EMAIL: &str = "dir_members_by_email";
/// Members by user: key `user/org`.
pub const MEMBERS_BY_USER: &str = "dir_members_by_user";
/// Members by org: key `org/user`.
pub const MEMBERS_BY_ORG: &str = "dir_members_by_org";
/// Secret slots (metadata only, never values): key `org/kind/id`.
pub const SECRETS: &str = "dir_secrets";

/// Lower-cases and trims an e-mail address for lookups.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// One membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The member.
    pub user: UserId,
    /// The org.
    pub org: OrgId,
    /// The role.
    pub role: Role,
    /// Normalised e-mail.
    pub email: String,
}

/// A Repo as the settings page and the admin functions show it: the
/// aggregate's state, as of the last event the directory applied.
pub type RepoRow = userz_core::domain::repo::Repo;

/// A secret slot: which one is set, by whom, when — never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRow {
    /// Kind (`ai_provider_key`, …).
    pub kind: String,
    /// Slot id.
    pub secret_id: String,
    /// Who set it.
    pub by: Actor,
    /// When.
    pub at: Timestamp,
}

/// An organization in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRow {
    /// Id.
    pub org: OrgId,
    /// Name.
    pub name: String,
}

/// An App as the HTTP layer, the settings page and the admin functions need
/// it: the aggregate's state, as of the last event the directory applied.
pub type AppRow = userz_core::domain::app::App;

/// An API key (no plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    /// Owning org.
    pub org: OrgId,
    /// Label.
    pub name: String,
    /// Prefix, salt, hash.
    pub stored: StoredApiKey,
    /// Issued.
    pub issued_at: Timestamp,
    /// Revoked, once revoked.
    pub revoked_at: Option<Timestamp>,
}

/// Builds the directory tables.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectoryProjection;

fn entity_id<T: std::str::FromStr>(event: &RecordedEvent) -> Result<T> {
    let id = event.stream.as_str().split_once('-').map(|(_, id)| id).unwrap_or_default();
    id.parse().map_err(|_| Error::Corrupt(format!("directory: bad stream id {}", event.stream)))
}

fn put_member(tx: &mut ProjectionTx<'_>, m: &Membership) -> Result<()> {
    tx.put_json(MEMBERS_BY_EMAIL, format!("{}/{}", m.email, m.org), m)?;
    tx.put_json(MEMBERS_BY_USER, format!("{}/{}", m.user, m.org), m)?;
    tx.put_json(MEMBERS_BY_ORG, format!("{}/{}", m.org, m.user), m)
}

#[async_trait]
impl Projection for DirectoryProjection {
    fn name(&self) -> &'static str {
        "directory"
    }

    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()> {
        match AnyEvent::decode(event)? {
            Some(AnyEvent::Org(ev)) => {
                let org: OrgId = entity_id(event)?;
                match ev {
                    OrgEvent::OrgCreated { name, owner, owner_email, .. } => {
                        tx.put_json(ORGS, org.to_string(), &OrgRow { org, name })?;
                        let email = normalize_email(owner_email.expose());
                        put_member(tx, &Membership { user: owner, org, role: Role::Owner, email })?;
                    }
                    OrgEvent::MemberAdded { user, email, role } => {
                        put_member(tx, &Membership { user, org, role, email: normalize_email(email.expose()) })?;
                    }
                    OrgEvent::MemberRoleChanged { user, role } => {
                        if let Some(mut m) = tx.get_json::<Membership>(MEMBERS_BY_ORG, &format!("{org}/{user}")).await?
                        {
                            m.role = role;
                            put_member(tx, &m)?;
                        }
                    }
                    OrgEvent::MemberRemoved { user } => {
                        if let Some(m) = tx.get_json::<Membership>(MEMBERS_BY_ORG, &format!("{org}/{user}")).await? {
                            tx.delete(MEMBERS_BY_EMAIL, format!("{}/{}", m.email, org));
                            tx.delete(MEMBERS_BY_USER, format!("{user}/{org}"));
                            tx.delete(MEMBERS_BY_ORG, format!("{org}/{user}"));
                        }
                    }
                    OrgEvent::ApiKeyIssued { name, stored, at, .. } => {
                        tx.put(ORG_KEYS, format!("{org}/{}", stored.prefix), Bytes::from(stored.prefix.clone()));
                        let prefix = stored.prefix.clone();
                        let row = KeyRow { org, name, stored, issued_at: at, revoked_at: None };
                        tx.put_json(KEYS, prefix, &row)?;
                    }
                    OrgEvent::ApiKeyRevoked { prefix, at, .. } => {
                        if let Some(mut row) = tx.get_json::<KeyRow>(KEYS, &prefix).await? {
                            row.revoked_at = Some(at);
                            tx.put_json(KEYS, prefix, &row)?;
                        }
                    }
                    // Security audit events change no row.
                    OrgEvent::UserTokenMinted { .. } | OrgEvent::AuthFailed { .. } | OrgEvent::SecretOpened { .. } => {}
                }
            }
            Some(AnyEvent::App(ev)) => {
                let id: AppId = entity_id(event)?;
                let key = id.to_string();
                let mut row = match ev {
                    AppEvent::AppCreated { app, org, name, public_key, settings } => {
                        tx.put(APPS_BY_PUBLIC_KEY, public_key.clone(), Bytes::from(key.clone()));
                        tx.put(ORG_APPS, format!("{org}/{app}"), Bytes::from(key.clone()));
                        AppRow { app, org, name, public_key, settings, repo: None, archived: false }
                    }
                    other => {
                        let Some(mut row) = tx.get_json::<AppRow>(APPS, &key).await? else {
                            return Err(Error::Corrupt(format!("directory: no row for {}", event.stream)));
                        };
                        match other {
                            AppEvent::AppConfigured { settings } => row.settings = settings,
                            AppEvent::RepoLinked { repo } => row.repo = Some(repo),
                            AppEvent::AppArchived {} => row.archived = true,
                            AppEvent::AppCreated { .. } => {}
                        }
                        row
                    }
                };
                row.app = id;
                tx.put_json(APPS, key, &row)?;
            }
            Some(AnyEvent::Repo(ev)) => {
                let id: RepoId = entity_id(event)?;
                if let RepoEvent::RepoCreated {
                    repo,
                    org,
                    app,
                    provider,
                    base_branch,
                    branch_prefix,
                    forbidden_paths,
                    ..
                } = ev
                {
                    let key = match &provider {
                        Provider::Github { full_name, .. } => Some(format!("github/{}", full_name.to_lowercase())),
                        Provider::Gitlab { project, .. } => Some(match project.parse::<u64>() {
                            Ok(id) => format!("gitlab#{id}"),
                            Err(_) => format!("gitlab/{}", project.to_lowercase()),
                        }),
                        Provider::Git { .. } => None,
                    };
                    if let Some(key) = key {
                        tx.put(REPOS_BY_PROVIDER, key, Bytes::from(repo.to_string()));
                    }
                    tx.put_json(REPO_ORG, id.to_string(), &org)?;
                    let row = RepoRow { repo: id, org, app, provider, base_branch, branch_prefix, forbidden_paths };
                    return tx.put_json(REPOS, format!("{org}/{id}"), &row);
                }
                let Some(org) = tx.get_json::<OrgId>(REPO_ORG, &id.to_string()).await? else {
                    return Ok(());
                };
                let key = format!("{org}/{id}");
                let Some(mut row) = tx.get_json::<RepoRow>(REPOS, &key).await? else {
                    return Ok(());
                };
                match ev {
                    RepoEvent::RepoCreated { .. } => {}
                    RepoEvent::ForbiddenPathsSet { rules } => row.forbidden_paths = rules,
                    RepoEvent::BranchPrefixSet { prefix } => row.branch_prefix = prefix,
                }
                tx.put_json(REPOS, key, &row)?;
            }
            Some(AnyEvent::Secrets(ev)) => {
                let org: OrgId = entity_id(event)?;
                match ev {
                    SecretsEvent::SecretStored { sealed, by } => {
                        let kind = sealed.kind.as_str().to_string();
                        let row = SecretRow {
                            kind: kind.clone(),
                            secret_id: sealed.secret_id.clone(),
                            by,
                            at: event.recorded_at,
                        };
                        tx.put_json(SECRETS, format!("{org}/{kind}/{}", sealed.secret_id), &row)?;
                        if sealed.kind == SecretKind::AppSigningSecret {
                            tx.put_json(APP_SECRETS, sealed.secret_id, &event.position)?;
                        }
                    }
                    SecretsEvent::SecretRemoved { kind, secret_id, .. } => {
                        tx.delete(SECRETS, format!("{org}/{}/{secret_id}", kind.as_str()));
                        if kind == SecretKind::AppSigningSecret {
                            tx.delete(APP_SECRETS, secret_id);
                        }
                    }
                    SecretsEvent::OrgKeyCreated { .. } | SecretsEvent::OrgKeyRewrapped { .. } => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn ReadModelStore,
    table: &str,
    key: &str,
) -> Result<Option<T>> {
    match store.get(table, key).await? {
        Some(raw) => Ok(Some(serde_json::from_slice(&raw)?)),
        None => Ok(None),
    }
}

/// Every organization (oldest first), e.g. to tell a fresh install from a used one.
pub async fn orgs(store: &dyn ReadModelStore) -> Result<Vec<OrgRow>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store.scan(ORGS, "", after.as_deref(), 200).await?;
        for (_, v) in &rows {
            out.push(serde_json::from_slice(v)?);
        }
        if rows.len() < 200 {
            return Ok(out);
        }
        after = rows.last().map(|(k, _)| k.clone());
    }
}

/// The App `id`, if the directory has seen it.
pub async fn app(store: &dyn ReadModelStore, id: AppId) -> Result<Option<AppRow>> {
    get_json(store, APPS, &id.to_string()).await
}

/// The App `id` only if it belongs to `org` (else `None`, like a missing App).
pub async fn app_of_org(store: &dyn ReadModelStore, org: OrgId, id: AppId) -> Result<Option<AppRow>> {
    Ok(app(store, id).await?.filter(|a| a.org == org))
}

/// The App whose public key is `public_key`.
pub async fn app_by_public_key(store: &dyn ReadModelStore, public_key: &str) -> Result<Option<AppRow>> {
    let Some(raw) = store.get(APPS_BY_PUBLIC_KEY, public_key).await? else {
        return Ok(None);
    };
    let id = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.parse::<AppId>().ok())
        .ok_or_else(|| Error::Corrupt("directory: bad app id".into()))?;
    app(store, id).await
}

/// Every App of `org`, oldest first (ids are time-ordered).
pub async fn apps_of_org(store: &dyn ReadModelStore, org: OrgId) -> Result<Vec<AppRow>> {
    let prefix = format!("{org}/");
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store.scan(ORG_APPS, &prefix, after.as_deref(), 200).await?;
        for (_, id) in &rows {
            let id = std::str::from_utf8(id).map_err(|e| Error::Corrupt(e.to_string()))?;
            if let Some(row) = get_json::<AppRow>(store, APPS, id).await? {
                out.push(row);
            }
        }
        if rows.len() < 200 {
            return Ok(out);
        }
        after = rows.last().map(|(k, _)| k.clone());
    }
}

/// The API key with `prefix`.
pub async fn key(store: &dyn ReadModelStore, prefix: &str) -> Result<Option<KeyRow>> {
    get_json(store, KEYS, prefix).await
}

/// Every API key of `org` (revoked ones included, marked).
pub async fn keys_of_org(store: &dyn ReadModelStore, org: OrgId) -> Result<Vec<KeyRow>> {
    let prefix = format!("{org}/");
    let mut out = Vec::new();
    for (_, p) in store.scan(ORG_KEYS, &prefix, None, 10_000).await? {
        let p = std::str::from_utf8(&p).map_err(|e| Error::Corrupt(e.to_string()))?;
        if let Some(row) = key(store, p).await? {
            out.push(row);
        }
    }
    Ok(out)
}

/// The log position that last set `app`'s signing secret (`None`: none set).
/// A different value than a cached one means the secret was rotated.
pub async fn signing_secret_version(store: &dyn ReadModelStore, app: AppId) -> Result<Option<u64>> {
    get_json(store, APP_SECRETS, &app.to_string()).await
}

/// The repo linked to a GitHub (`provider = "github"`) or GitLab repository,
/// by `owner/name` (case-insensitive) or, for GitLab projects registered by
/// numeric id, by that id.
pub async fn repo_by_provider(
    store: &dyn ReadModelStore,
    provider: &str,
    full_name: &str,
    id: Option<u64>,
) -> Result<Option<RepoId>> {
    let mut keys = vec![format!("{provider}/{}", full_name.to_lowercase())];
    if let Some(id) = id {
        keys.push(format!("{provider}#{id}"));
    }
    for key in keys {
        if let Some(raw) = store.get(REPOS_BY_PROVIDER, &key).await? {
            let text = std::str::from_utf8(&raw).map_err(|e| Error::Corrupt(format!("directory: {e}")))?;
            return text.parse().map(Some).map_err(|_| Error::Corrupt(format!("directory: bad repo id {text}")));
        }
    }
    Ok(None)
}

async fn scan_json<T: serde::de::DeserializeOwned>(
    store: &dyn ReadModelStore,
    table: &str,
    prefix: &str,
) -> Result<Vec<T>> {
    const PAGE: usize = 500;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store.scan(table, prefix, after.as_deref(), PAGE).await?;
        let n = rows.len();
        for (k, v) in rows {
            out.push(serde_json::from_slice(&v)?);
            after = Some(k);
        }
        if n < PAGE {
            return Ok(out);
        }
    }
}

/// The memberships of an e-mail address (any org), ordered by org id.
pub async fn memberships_by_email(store: &dyn ReadModelStore, email: &str) -> Result<Vec<Membership>> {
    let email = normalize_email(email);
    if email.is_empty() || email.contains('/') {
        return Ok(Vec::new());
    }
    scan_json(store, MEMBERS_BY_EMAIL, &format!("{email}/")).await
}

/// The memberships of a user, ordered by org id.
pub async fn memberships_of(store: &dyn ReadModelStore, user: UserId) -> Result<Vec<Membership>> {
    scan_json(store, MEMBERS_BY_USER, &format!("{user}/")).await
}

/// An org's display name.
pub async fn org_name(store: &dyn ReadModelStore, org: OrgId) -> Result<Option<String>> {
    Ok(get_json::<OrgRow>(store, ORGS, &org.to_string()).await?.map(|o| o.name))
}

/// An org's repos.
pub async fn repos_of_org(store: &dyn ReadModelStore, org: OrgId) -> Result<Vec<RepoRow>> {
    scan_json(store, REPOS, &format!("{org}/")).await
}

/// An org's secret slots (metadata only).
pub async fn secrets_of_org(store: &dyn ReadModelStore, org: OrgId) -> Result<Vec<SecretRow>> {
    scan_json(store, SECRETS, &format!("{org}/")).await
}
