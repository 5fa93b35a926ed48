//! The dashboard's own read model: who may sign in (e-mail → member), and each
//! org's apps, repos and secret slots for the settings page.
//!
//! [`DirectoryProjection`] is a [`Projection`] like the engine's; the server
//! runs it beside them (see [`crate::spawn_directory_projection`]). Every
//! query takes the org, so nothing crosses orgs.

use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use userz_core::domain::app::{AppEvent, AppSettings};
use userz_core::domain::org::OrgEvent;
use userz_core::domain::repo::{Provider, RepoEvent};
use userz_core::domain::secrets::SecretsEvent;
use userz_core::domain::{Actor, Role};
use userz_core::ids::{AppId, OrgId, RepoId, UserId};
use userz_core::ports::ReadModelStore;
use userz_core::{Error, RecordedEvent, Result, Timestamp};
use userz_engine::codec::AnyEvent;
use userz_engine::{Projection, ProjectionTx};

/// Members by normalised e-mail: key `email/org`.
pub const MEMBERS_BY_EMAIL: &str = "dash_members_by_email";
/// Members by user: key `user/org`.
pub const MEMBERS_BY_USER: &str = "dash_members_by_user";
/// Members by org: key `org/user`.
pub const MEMBERS_BY_ORG: &str = "dash_members_by_org";
/// Org names: key `org`.
pub const ORGS: &str = "dash_orgs";
/// Apps: key `org/app`.
pub const APPS: &str = "dash_apps";
/// Repos: key `org/repo`.
pub const REPOS: &str = "dash_repos";
/// Secret slots (metadata only, never values): key `org/kind/id`.
pub const SECRETS: &str = "dash_secrets";
const APP_ORG: &str = "dash_app_org";
const REPO_ORG: &str = "dash_repo_org";

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

/// An App as the settings page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRow {
    /// Id.
    pub app: AppId,
    /// Org.
    pub org: OrgId,
    /// Name.
    pub name: String,
    /// `pub_…` key (not secret).
    pub public_key: String,
    /// Settings.
    pub settings: AppSettings,
    /// Linked repo.
    pub repo: Option<RepoId>,
    /// Archived.
    pub archived: bool,
}

/// A Repo as the settings page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRow {
    /// Id.
    pub repo: RepoId,
    /// Org.
    pub org: OrgId,
    /// App.
    pub app: AppId,
    /// Provider.
    pub provider: Provider,
    /// Base branch.
    pub base_branch: Option<String>,
    /// Branch prefix.
    pub branch_prefix: String,
    /// Extra forbidden-path rules.
    pub forbidden_paths: Vec<String>,
}

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

/// Projects org, app, repo and secrets events into the dashboard tables.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectoryProjection;

fn id_from<T: FromStr>(event: &RecordedEvent, prefix: &str) -> Result<T> {
    let raw = event.stream.as_str().strip_prefix(prefix).unwrap_or(event.stream.as_str());
    raw.parse().map_err(|_| Error::Corrupt(format!("dashboard directory: bad stream id {}", event.stream)))
}

fn put_member(tx: &mut ProjectionTx<'_>, m: &Membership) -> Result<()> {
    tx.put_json(MEMBERS_BY_EMAIL, format!("{}/{}", m.email, m.org), m)?;
    tx.put_json(MEMBERS_BY_USER, format!("{}/{}", m.user, m.org), m)?;
    tx.put_json(MEMBERS_BY_ORG, format!("{}/{}", m.org, m.user), m)
}

#[async_trait]
impl Projection for DirectoryProjection {
    fn name(&self) -> &'static str {
        "dashboard_directory"
    }

    async fn apply(&self, event: &RecordedEvent, tx: &mut ProjectionTx<'_>) -> Result<()> {
        let Some(any) = AnyEvent::decode(event)? else {
            return Ok(());
        };
        match any {
            AnyEvent::Org(ev) => {
                let org: OrgId = id_from(event, "org-")?;
                match ev {
                    OrgEvent::OrgCreated { name, owner, owner_email, .. } => {
                        tx.put_json(ORGS, org.to_string(), &name)?;
                        let m = Membership {
                            user: owner,
                            org,
                            role: Role::Owner,
                            email: normalize_email(owner_email.expose()),
                        };
                        put_member(tx, &m)?;
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
                    // Keys and security audit events do not change membership.
                    OrgEvent::ApiKeyIssued { .. }
                    | OrgEvent::ApiKeyRevoked { .. }
                    | OrgEvent::UserTokenMinted { .. }
                    | OrgEvent::AuthFailed { .. }
                    | OrgEvent::SecretOpened { .. } => {}
                }
            }
            AnyEvent::App(ev) => {
                let app: AppId = id_from(event, "app-")?;
                if let AppEvent::AppCreated { org, name, public_key, settings, .. } = &ev {
                    tx.put_json(APP_ORG, app.to_string(), org)?;
                    let row = AppRow {
                        app,
                        org: *org,
                        name: name.clone(),
                        public_key: public_key.clone(),
                        settings: settings.clone(),
                        repo: None,
                        archived: false,
                    };
                    return tx.put_json(APPS, format!("{org}/{app}"), &row);
                }
                let Some(org) = tx.get_json::<OrgId>(APP_ORG, &app.to_string()).await? else {
                    return Ok(());
                };
                let key = format!("{org}/{app}");
                let Some(mut row) = tx.get_json::<AppRow>(APPS, &key).await? else {
                    return Ok(());
                };
                match ev {
                    AppEvent::AppCreated { .. } => {}
                    AppEvent::AppConfigured { settings } => row.settings = settings,
                    AppEvent::RepoLinked { repo } => row.repo = Some(repo),
                    AppEvent::AppArchived {} => row.archived = true,
                }
                tx.put_json(APPS, key, &row)?;
            }
            AnyEvent::Repo(ev) => {
                let repo: RepoId = id_from(event, "repo-")?;
                if let RepoEvent::RepoCreated {
                    org, app, provider, base_branch, branch_prefix, forbidden_paths, ..
                } = &ev
                {
                    tx.put_json(REPO_ORG, repo.to_string(), org)?;
                    let row = RepoRow {
                        repo,
                        org: *org,
                        app: *app,
                        provider: provider.clone(),
                        base_branch: base_branch.clone(),
                        branch_prefix: branch_prefix.clone(),
                        forbidden_paths: forbidden_paths.clone(),
                    };
                    return tx.put_json(REPOS, format!("{org}/{repo}"), &row);
                }
                let Some(org) = tx.get_json::<OrgId>(REPO_ORG, &repo.to_string()).await? else {
                    return Ok(());
                };
                let key = format!("{org}/{repo}");
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
            AnyEvent::Secrets(ev) => {
                let org: OrgId = id_from(event, "secrets-")?;
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
                    }
                    SecretsEvent::SecretRemoved { kind, secret_id, .. } => {
                        tx.delete(SECRETS, format!("{org}/{}/{secret_id}", kind.as_str()));
                    }
                    SecretsEvent::OrgKeyCreated { .. } | SecretsEvent::OrgKeyRewrapped { .. } => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
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
    match store.get(ORGS, &org.to_string()).await? {
        Some(raw) => Ok(Some(serde_json::from_slice(&raw)?)),
        None => Ok(None),
    }
}

/// An org's apps.
pub async fn org_apps(store: &dyn ReadModelStore, org: OrgId) -> Result<Vec<AppRow>> {
    scan_json(store, APPS, &format!("{org}/")).await
}

/// One app of `org` (`None` for another org's app).
pub async fn org_app(store: &dyn ReadModelStore, org: OrgId, app: AppId) -> Result<Option<AppRow>> {
    match store.get(APPS, &format!("{org}/{app}")).await? {
        Some(raw) => Ok(Some(serde_json::from_slice(&raw)?)),
        None => Ok(None),
    }
}

/// An org's repos.
pub async fn org_repos(store: &dyn ReadModelStore, org: OrgId) -> Result<Vec<RepoRow>> {
    scan_json(store, REPOS, &format!("{org}/")).await
}

/// An org's secret slots (metadata only).
pub async fn org_secrets(store: &dyn ReadModelStore, org: OrgId) -> Result<Vec<SecretRow>> {
    scan_json(store, SECRETS, &format!("{org}/")).await
}
