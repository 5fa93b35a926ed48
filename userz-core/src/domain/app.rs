//! App: one widget/API integration of an organization, with its processing mode
//! and duplicate-detection settings.

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::{validate_origin, Dedup, ProcessingMode};
use crate::event_names;
use crate::ids::{AppId, OrgId, RepoId};

/// An App's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSettings {
    /// What happens to benign reports.
    pub processing_mode: ProcessingMode,
    /// Whether `pub_` key submissions (public widget mode) are accepted.
    pub public_submission_enabled: bool,
    /// Exact origins allowed in public mode.
    pub allowed_origins: Vec<String>,
    /// Duplicate handling (batch and incremental are exclusive by construction).
    pub dedup: Dedup,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            processing_mode: ProcessingMode::AutoPr,
            public_submission_enabled: true,
            allowed_origins: Vec::new(),
            dedup: Dedup::Off,
        }
    }
}

/// A partial settings update; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSettingsPatch {
    /// New processing mode.
    pub processing_mode: Option<ProcessingMode>,
    /// New public-submission flag.
    pub public_submission_enabled: Option<bool>,
    /// New origin list.
    pub allowed_origins: Option<Vec<String>>,
    /// Batch roll-up on/off.
    pub batch_enabled: Option<bool>,
    /// Batch window in hours.
    pub batch_window_hours: Option<u32>,
    /// Incremental merge on/off.
    pub incremental_merge_enabled: Option<bool>,
}

/// Commands on an App.
#[derive(Debug, Clone, PartialEq)]
pub enum AppCommand {
    /// Creates the App.
    Create {
        /// Id.
        app: AppId,
        /// Owning org.
        org: OrgId,
        /// Name.
        name: String,
        /// Public key id (`pub_…`).
        public_key: String,
        /// Initial settings.
        settings: AppSettings,
    },
    /// Changes settings.
    Configure {
        /// The change.
        patch: AppSettingsPatch,
    },
    /// Links the App's repository.
    LinkRepo {
        /// Repo.
        repo: RepoId,
    },
    /// Archives the App (no new submissions).
    Archive,
}

/// Events of an App.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AppEvent {
    /// Created.
    AppCreated {
        /// Id.
        app: AppId,
        /// Org.
        org: OrgId,
        /// Name.
        name: String,
        /// Public key id.
        public_key: String,
        /// Settings.
        settings: AppSettings,
    },
    /// Settings replaced by `settings`.
    AppConfigured {
        /// Complete new settings.
        settings: AppSettings,
    },
    /// Repo linked.
    RepoLinked {
        /// Repo.
        repo: RepoId,
    },
    /// Archived.
    AppArchived {},
}
event_names!(AppEvent { AppCreated, AppConfigured, RepoLinked, AppArchived });

/// An existing App.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Id.
    pub app: AppId,
    /// Org.
    pub org: OrgId,
    /// Name.
    pub name: String,
    /// Public key id.
    pub public_key: String,
    /// Settings.
    pub settings: AppSettings,
    /// Linked repo.
    pub repo: Option<RepoId>,
    /// Archived.
    pub archived: bool,
}

/// State of an App.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AppState {
    /// Not created.
    #[default]
    None,
    /// Exists.
    Active(App),
}

/// The App decider.
#[derive(Debug, Clone, Copy)]
pub struct AppDecider;

fn validate_settings(s: &AppSettings) -> Result<(), Rejection> {
    for o in &s.allowed_origins {
        validate_origin(o)?;
    }
    if s.allowed_origins.len() > 50 {
        return Err(Rejection::input("allowed_origins", "at most 50 origins"));
    }
    if let Dedup::Batch { window_hours } = s.dedup {
        if !(1..=168).contains(&window_hours) {
            return Err(Rejection::input("batch_window_hours", "1-168 hours"));
        }
    }
    Ok(())
}

fn apply_patch(current: &AppSettings, p: &AppSettingsPatch) -> Result<AppSettings, Rejection> {
    if p.batch_enabled == Some(true) && p.incremental_merge_enabled == Some(true) {
        return Err(Rejection::Invariant {
            rule: "dedup_modes_exclusive",
            message: "batchEnabled and incrementalMergeEnabled are mutually exclusive".into(),
        });
    }
    let mut s = current.clone();
    if let Some(m) = p.processing_mode {
        s.processing_mode = m;
    }
    if let Some(v) = p.public_submission_enabled {
        s.public_submission_enabled = v;
    }
    if let Some(o) = &p.allowed_origins {
        s.allowed_origins = o.clone();
    }
    let window = p.batch_window_hours.or(match current.dedup {
        Dedup::Batch { window_hours } => Some(window_hours),
        _ => None,
    });
    match (p.batch_enabled, p.incremental_merge_enabled) {
        (Some(true), _) => s.dedup = Dedup::Batch { window_hours: window.unwrap_or(Dedup::DEFAULT_WINDOW_HOURS) },
        (_, Some(true)) => {
            if matches!(current.dedup, Dedup::Batch { .. }) && p.batch_enabled != Some(false) {
                return Err(Rejection::Invariant {
                    rule: "dedup_modes_exclusive",
                    message: "disable batchEnabled before enabling incrementalMergeEnabled".into(),
                });
            }
            s.dedup = Dedup::Incremental;
        }
        (Some(false), _) if matches!(s.dedup, Dedup::Batch { .. }) => s.dedup = Dedup::Off,
        (_, Some(false)) if s.dedup == Dedup::Incremental => s.dedup = Dedup::Off,
        _ => {
            if let (Dedup::Batch { .. }, Some(w)) = (s.dedup, p.batch_window_hours) {
                s.dedup = Dedup::Batch { window_hours: w };
            }
        }
    }
    validate_settings(&s)?;
    Ok(s)
}

impl Decider for AppDecider {
    type Command = AppCommand;
    type Event = AppEvent;
    type State = AppState;

    fn initial_state() -> AppState {
        AppState::None
    }

    fn decide(command: &AppCommand, state: &AppState) -> Result<Vec<AppEvent>, Rejection> {
        let app = match (command, state) {
            (AppCommand::Create { app, org, name, public_key, settings }, AppState::None) => {
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(Rejection::input("name", "1-100 characters"));
                }
                if !public_key.starts_with("pub_") {
                    return Err(Rejection::input("public_key", "must start with pub_"));
                }
                validate_settings(settings)?;
                return Ok(vec![AppEvent::AppCreated {
                    app: *app,
                    org: *org,
                    name: name.to_string(),
                    public_key: public_key.clone(),
                    settings: settings.clone(),
                }]);
            }
            (AppCommand::Create { .. }, AppState::Active(_)) => return Err(Rejection::AlreadyExists { entity: "app" }),
            (_, AppState::None) => return Err(Rejection::NotFound { entity: "app" }),
            (_, AppState::Active(app)) => app,
        };
        if app.archived {
            return Err(Rejection::transition(command_name(command), "archived"));
        }
        match command {
            AppCommand::Create { .. } => Err(Rejection::AlreadyExists { entity: "app" }),
            AppCommand::Configure { patch } => {
                let settings = apply_patch(&app.settings, patch)?;
                if settings == app.settings {
                    Ok(vec![])
                } else {
                    Ok(vec![AppEvent::AppConfigured { settings }])
                }
            }
            AppCommand::LinkRepo { repo } => {
                if app.repo == Some(*repo) {
                    Ok(vec![])
                } else {
                    Ok(vec![AppEvent::RepoLinked { repo: *repo }])
                }
            }
            AppCommand::Archive => Ok(vec![AppEvent::AppArchived {}]),
        }
    }

    fn evolve(state: AppState, event: &AppEvent) -> AppState {
        match (state, event) {
            (AppState::None, AppEvent::AppCreated { app, org, name, public_key, settings }) => AppState::Active(App {
                app: *app,
                org: *org,
                name: name.clone(),
                public_key: public_key.clone(),
                settings: settings.clone(),
                repo: None,
                archived: false,
            }),
            (AppState::Active(mut a), ev) => {
                match ev {
                    AppEvent::AppConfigured { settings } => a.settings = settings.clone(),
                    AppEvent::RepoLinked { repo } => a.repo = Some(*repo),
                    AppEvent::AppArchived {} => a.archived = true,
                    AppEvent::AppCreated { .. } => {}
                }
                AppState::Active(a)
            }
            (s, _) => s,
        }
    }
}

fn command_name(c: &AppCommand) -> &'static str {
    match c {
        AppCommand::Create { .. } => "create",
        AppCommand::Configure { .. } => "configure",
        AppCommand::LinkRepo { .. } => "link_repo",
        AppCommand::Archive => "archive",
    }
}

impl Aggregate for AppDecider {
    const CATEGORY: &'static str = "app";
}
