//! Repo: a source repository linked to an App.

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::validate_branch_prefix;
use crate::event_names;
use crate::ids::{AppId, OrgId, RepoId};

/// Where the repository lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provider {
    /// GitHub through a GitHub App installation.
    Github {
        /// Installation id.
        installation_id: u64,
        /// `owner/name`.
        full_name: String,
    },
    /// GitLab with a project access token; `base_url` for self-hosted instances.
    Gitlab {
        /// Instance URL (e.g. `https://gitlab.com` or `https://git.example/gitlab`).
        base_url: String,
        /// Project id or `group/project` path.
        project: String,
    },
    /// Any git remote, branch-only (no PR API).
    Git {
        /// Remote URL.
        remote: String,
    },
}

impl Provider {
    fn validate(&self) -> Result<(), Rejection> {
        match self {
            Provider::Github { full_name, .. } => {
                let mut parts = full_name.split('/');
                let ok = matches!((parts.next(), parts.next(), parts.next()), (Some(o), Some(n), None) if !o.is_empty() && !n.is_empty());
                if !ok {
                    return Err(Rejection::input("provider.full_name", "owner/name"));
                }
            }
            Provider::Gitlab { base_url, project } => {
                if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
                    return Err(Rejection::input("provider.base_url", "must be an http(s) URL"));
                }
                if project.is_empty() {
                    return Err(Rejection::input("provider.project", "required"));
                }
            }
            Provider::Git { remote } => {
                if remote.is_empty() {
                    return Err(Rejection::input("provider.remote", "required"));
                }
            }
        }
        Ok(())
    }
}

/// Default branch prefix.
pub const DEFAULT_BRANCH_PREFIX: &str = "userz/";

/// Commands on a Repo.
#[derive(Debug, Clone, PartialEq)]
pub enum RepoCommand {
    /// Creates the Repo.
    Create {
        /// Id.
        repo: RepoId,
        /// Org.
        org: OrgId,
        /// App it serves.
        app: AppId,
        /// Provider.
        provider: Provider,
        /// Base branch (`None`: the provider's default).
        base_branch: Option<String>,
        /// Branch prefix (`None`: `userz/`).
        branch_prefix: Option<String>,
        /// Extra forbidden-path rules.
        forbidden_paths: Vec<String>,
    },
    /// Replaces the repo's extra forbidden-path rules.
    SetForbiddenPaths {
        /// New rules.
        rules: Vec<String>,
    },
    /// Changes the branch prefix.
    SetBranchPrefix {
        /// New prefix.
        prefix: String,
    },
}

/// Events of a Repo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RepoEvent {
    /// Created.
    RepoCreated {
        /// Id.
        repo: RepoId,
        /// Org.
        org: OrgId,
        /// App.
        app: AppId,
        /// Provider.
        provider: Provider,
        /// Base branch.
        base_branch: Option<String>,
        /// Branch prefix.
        branch_prefix: String,
        /// Extra forbidden-path rules.
        forbidden_paths: Vec<String>,
    },
    /// Rules replaced.
    ForbiddenPathsSet {
        /// Rules.
        rules: Vec<String>,
    },
    /// Prefix changed.
    BranchPrefixSet {
        /// Prefix.
        prefix: String,
    },
}
event_names!(RepoEvent { RepoCreated, ForbiddenPathsSet, BranchPrefixSet });

/// An existing Repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
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

/// State of a Repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RepoState {
    /// Not created.
    #[default]
    None,
    /// Exists.
    Active(Repo),
}

/// The Repo decider.
#[derive(Debug, Clone, Copy)]
pub struct RepoDecider;

fn validate_rules(rules: &[String]) -> Result<(), Rejection> {
    if rules.len() > 200 {
        return Err(Rejection::input("forbidden_paths", "at most 200 rules"));
    }
    for r in rules {
        if r.trim().is_empty() || r.len() > 512 {
            return Err(Rejection::input("forbidden_paths", "each rule is 1-512 characters"));
        }
    }
    Ok(())
}

impl Decider for RepoDecider {
    type Command = RepoCommand;
    type Event = RepoEvent;
    type State = RepoState;

    fn initial_state() -> RepoState {
        RepoState::None
    }

    fn decide(command: &RepoCommand, state: &RepoState) -> Result<Vec<RepoEvent>, Rejection> {
        match (command, state) {
            (
                RepoCommand::Create { repo, org, app, provider, base_branch, branch_prefix, forbidden_paths },
                RepoState::None,
            ) => {
                provider.validate()?;
                let prefix = branch_prefix.clone().unwrap_or_else(|| DEFAULT_BRANCH_PREFIX.to_string());
                validate_branch_prefix(&prefix)?;
                validate_rules(forbidden_paths)?;
                Ok(vec![RepoEvent::RepoCreated {
                    repo: *repo,
                    org: *org,
                    app: *app,
                    provider: provider.clone(),
                    base_branch: base_branch.clone(),
                    branch_prefix: prefix,
                    forbidden_paths: forbidden_paths.clone(),
                }])
            }
            (RepoCommand::Create { .. }, RepoState::Active(_)) => Err(Rejection::AlreadyExists { entity: "repo" }),
            (_, RepoState::None) => Err(Rejection::NotFound { entity: "repo" }),
            (RepoCommand::SetForbiddenPaths { rules }, RepoState::Active(r)) => {
                validate_rules(rules)?;
                if &r.forbidden_paths == rules {
                    return Ok(vec![]);
                }
                Ok(vec![RepoEvent::ForbiddenPathsSet { rules: rules.clone() }])
            }
            (RepoCommand::SetBranchPrefix { prefix }, RepoState::Active(r)) => {
                validate_branch_prefix(prefix)?;
                if &r.branch_prefix == prefix {
                    return Ok(vec![]);
                }
                Ok(vec![RepoEvent::BranchPrefixSet { prefix: prefix.clone() }])
            }
        }
    }

    fn evolve(state: RepoState, event: &RepoEvent) -> RepoState {
        match (state, event) {
            (
                RepoState::None,
                RepoEvent::RepoCreated { repo, org, app, provider, base_branch, branch_prefix, forbidden_paths },
            ) => RepoState::Active(Repo {
                repo: *repo,
                org: *org,
                app: *app,
                provider: provider.clone(),
                base_branch: base_branch.clone(),
                branch_prefix: branch_prefix.clone(),
                forbidden_paths: forbidden_paths.clone(),
            }),
            (RepoState::Active(mut r), RepoEvent::ForbiddenPathsSet { rules }) => {
                r.forbidden_paths = rules.clone();
                RepoState::Active(r)
            }
            (RepoState::Active(mut r), RepoEvent::BranchPrefixSet { prefix }) => {
                r.branch_prefix = prefix.clone();
                RepoState::Active(r)
            }
            (s, _) => s,
        }
    }
}

impl Aggregate for RepoDecider {
    const CATEGORY: &'static str = "repo";
}
