//! The operator commands of `userz-server`: create orgs, Apps and repos, issue
//! and revoke `sk_` keys, set secrets (write-only) and signing secrets.
//!
//! They open the server's configured store and master key directly (by
//! default the data directory's SQLite file), so they work with the server
//! stopped or running: the store serialises the writers, and a running server
//! sees the new events within its store's poll interval or notification. Every write goes through [`userz_engine::admin::Admin`],
//! so it is validated by the aggregate's decider and recorded as events, exactly
//! as if the server had made it.
//!
//! Output is for people: one line saying what happened, then `name: value`
//! lines. Secrets are shown once (`sk_` keys, generated signing secrets) or
//! never (`secret set` reads the value from standard input, not the command
//! line, so it stays out of shell history and `ps`).

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use userz_core::domain::common::{Actor, ProcessingMode};
use userz_core::domain::repo::Provider;
use userz_core::ids::{AppId, OrgId, UserId};
use userz_core::{Clock, SystemClock};
use userz_engine::admin::{Admin, AdminError, NewApp, NewRepo};
use userz_engine::projections::catch_up_projection;
use userz_engine::CommandBus;
use userz_security::envelope::SecretKind;
use userz_security::secret::SecretString;

use crate::{Config, Stores};

/// An admin command.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Organizations (tenants).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Apps: where feedback comes from.
    #[command(subcommand)]
    App(AppCommand),
    /// Repositories runs push to.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Org API keys (`sk_…`).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Org secrets (write-only: sealed with the org's key, never shown).
    #[command(subcommand)]
    Secret(SecretCommand),
}

/// `org …`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Creates an organization with its first owner.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// The owner's e-mail (signs in to the dashboard).
        #[arg(long)]
        owner_email: String,
    },
    /// Lists every organization.
    List,
}

/// `app …`
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Creates an App and prints its `pub_` key.
    Create(AppCreate),
    /// Lists the org's Apps.
    List {
        /// Organization id.
        #[arg(long)]
        org: OrgId,
    },
    /// Generates the App's private-mode signing secret and prints it once
    /// (replacing it invalidates every user token signed with the old one).
    SigningSecret {
        /// Organization id.
        #[arg(long)]
        org: OrgId,
        /// App id.
        #[arg(long)]
        app: AppId,
    },
}

/// `app create` arguments.
#[derive(Debug, Args)]
pub struct AppCreate {
    /// Organization id.
    #[arg(long)]
    pub org: OrgId,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// An exact origin allowed to submit (`scheme://host[:port]`); repeatable.
    #[arg(long = "origin")]
    pub origins: Vec<String>,
    /// What happens to benign reports.
    #[arg(long, value_enum, default_value_t = Mode::AutoPr)]
    pub mode: Mode,
    /// Refuse `pub_`-key-only submissions (private mode with user tokens only).
    #[arg(long)]
    pub private_only: bool,
}

/// Processing mode, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Mode {
    /// Every benign report starts a run.
    AutoPr,
    /// Benign reports wait for a person.
    Manual,
    /// Collect only.
    NoPr,
}

impl From<Mode> for ProcessingMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::AutoPr => ProcessingMode::AutoPr,
            Mode::Manual => ProcessingMode::Manual,
            Mode::NoPr => ProcessingMode::NoPr,
        }
    }
}

/// `repo …`
#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Links a repository to an App (exactly one of --git, --github, --gitlab).
    Create(RepoCreate),
}

/// `repo create` arguments.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("provider").required(true).args(["git", "github", "gitlab"])))]
pub struct RepoCreate {
    /// Organization id.
    #[arg(long)]
    pub org: OrgId,
    /// App id.
    #[arg(long)]
    pub app: AppId,
    /// Any git remote (branch-only: runs end `branch_pushed`).
    #[arg(long)]
    pub git: Option<String>,
    /// A GitHub repository `owner/name` (needs --installation and the
    /// server's `[github_app]`).
    #[arg(long, requires = "installation")]
    pub github: Option<String>,
    /// The GitHub App installation id.
    #[arg(long)]
    pub installation: Option<u64>,
    /// A GitLab project path or id (set its token afterwards with
    /// `secret set --kind repo_token --slot <repo id>`).
    #[arg(long)]
    pub gitlab: Option<String>,
    /// The GitLab instance URL (self-hosted, with any path prefix).
    #[arg(long, default_value = "https://gitlab.com")]
    pub gitlab_url: String,
    /// Base branch (default: the provider's default branch).
    #[arg(long)]
    pub base_branch: Option<String>,
    /// Branch prefix (default `userz/`).
    #[arg(long)]
    pub branch_prefix: Option<String>,
    /// An extra forbidden-path rule (glob); repeatable.
    #[arg(long = "forbid")]
    pub forbidden_paths: Vec<String>,
}

/// `key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issues an `sk_` key and prints it once.
    Issue {
        /// Organization id.
        #[arg(long)]
        org: OrgId,
        /// A label (who or what uses it).
        #[arg(long)]
        name: String,
    },
    /// Revokes a key by its prefix.
    Revoke {
        /// Organization id.
        #[arg(long)]
        org: OrgId,
        /// The key's prefix (from `key list`).
        #[arg(long)]
        prefix: String,
    },
    /// Lists the org's keys (prefixes and labels; no secret material).
    List {
        /// Organization id.
        #[arg(long)]
        org: OrgId,
    },
}

/// `secret …`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Seals the value read from standard input into (kind, slot).
    Set {
        /// Organization id.
        #[arg(long)]
        org: OrgId,
        /// What the secret is.
        #[arg(long, value_enum)]
        kind: Kind,
        /// The slot: `model` for the org's AI key, the repo id for a repo
        /// token, a name of your choice otherwise.
        #[arg(long)]
        slot: String,
    },
}

/// Secret kinds, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Kind {
    /// An AI provider API key (slot `model` is the one runs use).
    AiProviderKey,
    /// A repository token (slot = repo id).
    RepoToken,
    /// A chat bot token.
    ChatBotToken,
    /// A GitHub App private key (PEM).
    GithubAppPrivateKey,
    /// A webhook signing secret.
    WebhookSecret,
    /// Anything else.
    Other,
}

impl From<Kind> for SecretKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::AiProviderKey => SecretKind::AiProviderKey,
            Kind::RepoToken => SecretKind::RepoToken,
            Kind::ChatBotToken => SecretKind::ChatBotToken,
            Kind::GithubAppPrivateKey => SecretKind::GithubAppPrivateKey,
            Kind::WebhookSecret => SecretKind::WebhookSecret,
            Kind::Other => SecretKind::Other,
        }
    }
}

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Input the operator can correct (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The operation was refused or failed (exit code 1).
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Opening the data directory or the store failed (exit code 1).
    #[error("{0}")]
    Setup(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Admin(AdminError::Invalid { .. }) => 2,
            _ => 1,
        }
    }
}

/// The data directory opened for admin commands.
#[derive(Debug)]
pub struct AdminContext {
    stores: Stores,
    admin: Admin,
}

impl AdminContext {
    /// Opens `config.data_dir` (creating it and a master key when new).
    pub async fn open(config: &Config) -> Result<Self, CliError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (stores, envelope) =
            crate::open_stores(config, clock.clone()).await.map_err(|e| CliError::Setup(e.to_string()))?;
        let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
        let admin = Admin::new(bus, stores.read_models.clone(), clock, Some(envelope));
        Ok(Self { stores, admin })
    }

    /// Brings the directory read model up to date (the listings read it).
    async fn catch_up(&self) -> Result<(), CliError> {
        catch_up_projection(
            &userz_engine::directory::DirectoryProjection,
            self.stores.events.as_ref(),
            self.stores.read_models.as_ref(),
            500,
        )
        .await
        .map_err(|e| CliError::Setup(format!("directory: {e}")))?;
        Ok(())
    }

    /// Runs `cmd`, writing what it did to `out`. `stdin` supplies secret values.
    pub async fn run(&self, cmd: AdminCommand, stdin: &mut dyn Read, out: &mut dyn Write) -> Result<(), CliError> {
        let w = |out: &mut dyn Write, text: String| -> Result<(), CliError> {
            out.write_all(text.as_bytes()).map_err(|e| CliError::Setup(format!("writing output: {e}")))
        };
        match cmd {
            AdminCommand::Org(OrgCommand::Create { name, owner_email }) => {
                let owner = UserId::new();
                let org = self.admin.create_org(&name, owner, &owner_email).await?;
                w(out, format!("organization created\n  id:    {org}\n  name:  {name}\n  owner: {owner_email} (user {owner})\n"))
            }
            AdminCommand::Org(OrgCommand::List) => {
                self.catch_up().await?;
                let orgs = self.admin.list_orgs().await?;
                let mut text = format!("{} organization(s)\n", orgs.len());
                for o in orgs {
                    text.push_str(&format!("  {}  {}\n", o.org, o.name));
                }
                w(out, text)
            }
            AdminCommand::App(AppCommand::Create(a)) => {
                let mut new = NewApp::named(a.name.clone());
                new.allowed_origins = a.origins.clone();
                new.processing_mode = a.mode.into();
                new.public_submission_enabled = !a.private_only;
                let created = self.admin.create_app(a.org, new).await?;
                w(
                    out,
                    format!(
                        "app created\n  id:         {}\n  public key: {}\n  mode:       {}\n  origins:    {}\n  public submissions: {}\n",
                        created.app,
                        created.public_key,
                        ProcessingMode::from(a.mode),
                        if a.origins.is_empty() { "(none: add one before the widget can submit)".into() } else { a.origins.join(" ") },
                        if a.private_only { "off" } else { "on" },
                    ),
                )
            }
            AdminCommand::App(AppCommand::List { org }) => {
                self.catch_up().await?;
                // Distinguish "no such org" from "no apps".
                self.admin.require_org(org).await?;
                let apps = self.admin.list_apps(org).await?;
                let mut text = format!("{} app(s) in organization {org}\n", apps.len());
                for a in apps {
                    text.push_str(&format!(
                        "  {}  {}  {}  mode={}  repo={}{}\n",
                        a.app,
                        a.public_key,
                        a.name,
                        a.settings.processing_mode,
                        a.repo.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                        if a.archived { "  (archived)" } else { "" }
                    ));
                }
                w(out, text)
            }
            AdminCommand::App(AppCommand::SigningSecret { org, app }) => {
                let secret =
                    self.admin.set_app_signing_secret(org, app, None, Actor::System).await?.ok_or_else(|| {
                        CliError::Setup("the admin API did not return the generated signing secret".into())
                    })?;
                w(
                    out,
                    format!(
                        "signing secret set for app {app}\n  secret: {}\nStore it now in your backend (it signs user tokens, HS256): it is shown once.\n",
                        secret.expose_secret()
                    ),
                )
            }
            AdminCommand::Repo(RepoCommand::Create(r)) => {
                let provider = match (r.git, r.github, r.gitlab) {
                    (Some(remote), None, None) => Provider::Git { remote },
                    (None, Some(full_name), None) => Provider::Github {
                        installation_id: r
                            .installation
                            .ok_or_else(|| CliError::Usage("--github needs --installation".into()))?,
                        full_name,
                    },
                    (None, None, Some(project)) => Provider::Gitlab { base_url: r.gitlab_url, project },
                    _ => return Err(CliError::Usage("give exactly one of --git, --github, --gitlab".into())),
                };
                let shown = match &provider {
                    Provider::Git { remote } => format!("git {remote} (branch only)"),
                    Provider::Github { installation_id, full_name } => {
                        format!("github {full_name} (installation {installation_id})")
                    }
                    Provider::Gitlab { base_url, project } => format!("gitlab {project} at {base_url}"),
                };
                let needs_token = matches!(provider, Provider::Gitlab { .. });
                let repo = self
                    .admin
                    .create_repo(
                        r.org,
                        r.app,
                        NewRepo {
                            provider,
                            base_branch: r.base_branch,
                            branch_prefix: r.branch_prefix,
                            forbidden_paths: r.forbidden_paths,
                        },
                    )
                    .await?;
                let mut text = format!("repository linked to app {}\n  id:       {repo}\n  provider: {shown}\n", r.app);
                if needs_token {
                    text.push_str(&format!(
                        "Next: set its project token with\n  userz-server admin secret set --org {} --kind repo_token --slot {repo} < token-file\n",
                        r.org
                    ));
                }
                w(out, text)
            }
            AdminCommand::Key(KeyCommand::Issue { org, name }) => {
                let issued = self.admin.issue_api_key(org, &name, None).await?;
                w(
                    out,
                    format!(
                        "API key issued for organization {org}\n  prefix: {}\n  key:    {}\nStore it now: it is shown once and cannot be read back.\n",
                        issued.prefix,
                        issued.plaintext.expose_secret()
                    ),
                )
            }
            AdminCommand::Key(KeyCommand::Revoke { org, prefix }) => {
                self.admin.revoke_api_key(org, &prefix, None).await?;
                w(out, format!("API key revoked\n  prefix: {prefix}\n"))
            }
            AdminCommand::Key(KeyCommand::List { org }) => {
                let keys = self.admin.list_api_keys(org).await?;
                let mut text = format!("{} key(s) in organization {org}\n", keys.len());
                for k in keys {
                    let state = match k.revoked_at {
                        Some(at) => format!("revoked {at}"),
                        None => "active".into(),
                    };
                    text.push_str(&format!("  {}  {}  issued {}  {state}\n", k.prefix, k.name, k.issued_at));
                }
                w(out, text)
            }
            AdminCommand::Secret(SecretCommand::Set { org, kind, slot }) => {
                let value = read_secret(stdin)?;
                let kind: SecretKind = kind.into();
                self.admin.set_secret(org, kind, &slot, &value, Actor::System).await?;
                w(
                    out,
                    format!(
                        "secret set (write-only: it cannot be read back)\n  organization: {org}\n  kind:         {kind}\n  slot:         {slot}\n  bytes:        {}\n",
                        value.expose_secret().len()
                    ),
                )
            }
        }
    }
}

/// Reads a secret value from `stdin`: everything up to EOF, without the final
/// line break. Empty is refused.
fn read_secret(stdin: &mut dyn Read) -> Result<SecretString, CliError> {
    let mut raw = zeroize::Zeroizing::new(Vec::new());
    stdin.read_to_end(&mut raw).map_err(|e| CliError::Setup(format!("reading the secret from standard input: {e}")))?;
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    if end == 0 {
        return Err(CliError::Usage(
            "the secret is read from standard input, which was empty (e.g. `... secret set ... < file`)".into(),
        ));
    }
    let text = std::str::from_utf8(&raw[..end])
        .map_err(|_| CliError::Usage("the secret read from standard input is not UTF-8 text".into()))?;
    Ok(SecretString::new(text.to_string()))
}

/// Runs one admin command for the binary: opens the data directory, prompts on
/// a terminal for `secret set`, prints the outcome. Returns the exit code.
pub async fn main(config: &Config, cmd: AdminCommand) -> u8 {
    let ctx = match AdminContext::open(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    let stdin = std::io::stdin();
    if matches!(cmd, AdminCommand::Secret(_)) && stdin.is_terminal() {
        eprintln!("enter the secret, then press ctrl-d (it is not echoed back afterwards):");
    }
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    match ctx.run(cmd, &mut input, &mut out).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_secret_is_stdin_without_its_final_line_break_and_empty_is_refused() {
        let s = read_secret(&mut &b"sk-live-123\r\n"[..]).unwrap();
        assert_eq!(s.expose_secret(), "sk-live-123");
        let pem = read_secret(&mut &b"-----BEGIN-----\nabc\n-----END-----\n"[..]).unwrap();
        assert_eq!(pem.expose_secret(), "-----BEGIN-----\nabc\n-----END-----");
        let e = read_secret(&mut &b"\n"[..]).unwrap_err();
        assert!(e.to_string().contains("standard input, which was empty"), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert!(read_secret(&mut &[0xff, 0xfe][..]).unwrap_err().to_string().contains("not UTF-8"));
    }
}
