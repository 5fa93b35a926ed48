//! The start-up banner: for each part of the server, whether it is ready and,
//! when it is not, the one command or setting that fixes it. Nothing the
//! server falls back to goes unsaid.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{self, Config};

/// How a part stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Works as configured.
    Ready,
    /// Needed for the main job (a report becoming a branch) and not working.
    NotReady,
    /// Optional and not configured.
    Off,
}

impl State {
    /// `ready`, `NOT READY` or `off`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::NotReady => "NOT READY",
            State::Off => "off",
        }
    }
}

/// One line of the banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `store`, `sandbox`, `model`, `vcs`, `mail`, `chat-ops`, `classifier`.
    pub name: &'static str,
    /// How it stands.
    pub state: State,
    /// What it is (backend, address, isolation).
    pub detail: String,
    /// The command or setting that fixes or enables it.
    pub fix: Option<String>,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  {:<11} {:<10} {}", format!("{}:", self.name), self.state.as_str(), self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  {:<11} {:<10} → {fix}", "", "")?;
        }
        Ok(())
    }
}

/// The banner's parts, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readiness {
    /// One per part.
    pub parts: Vec<Part>,
}

impl Readiness {
    /// The part named `name`.
    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// Whether every part the main job needs is ready.
    pub fn main_job_ready(&self) -> bool {
        self.parts.iter().all(|p| p.state != State::NotReady)
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

/// What [`assess`] needs beyond the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    /// The sandbox's own description (backend and boundary), when it runs.
    pub sandbox: Result<String, String>,
    /// Whether the model server accepted a TCP connection (`None`: not probed).
    pub model_reachable: Option<bool>,
    /// The demo's branch-only git remote, when the demo exists.
    pub demo_remote: Option<String>,
    /// Chat platforms whose verification secret is set.
    pub chat: Vec<&'static str>,
    /// The org chat-ops is bound to.
    pub chatops_org: Option<String>,
}

const INSTALL_VM: &str = "./scripts/start.sh (installs QEMU and the guest kernel), or set USERZ_VM_KERNEL and \
                          USERZ_VM_MODULES to a kernel image and its modules";

/// Builds the banner from the configuration and what start-up found.
pub(crate) fn assess(config: &Config, facts: &Facts) -> Readiness {
    let mut parts = Vec::new();
    let store = match config.store.kind {
        config::StoreKind::Sqlite => {
            format!("sqlite, embedded ({})", crate::stores::sqlite_path(config).display())
        }
        config::StoreKind::Postgres => "postgres".to_string(),
        config::StoreKind::Nats => "nats (JetStream)".to_string(),
    };
    parts.push(Part { name: "store", state: State::Ready, detail: store, fix: None });

    parts.push(match &facts.sandbox {
        Ok(desc) if config.sandbox.backend != config::SandboxBackendKind::Microvm && desc.contains("host kernel") => {
            Part {
                name: "sandbox",
                state: State::Ready,
                detail: desc.clone(),
                fix: Some(format!("for a kernel boundary per run: {INSTALL_VM}")),
            }
        }
        Ok(desc) => Part { name: "sandbox", state: State::Ready, detail: desc.clone(), fix: None },
        Err(why) => Part {
            name: "sandbox",
            state: State::NotReady,
            detail: format!("agent runs cannot execute: {why}"),
            fix: Some(if !config.sandbox.enabled {
                "set sandbox.enabled = true (or USERZ_SANDBOX=1)".to_string()
            } else if config.sandbox.backend == config::SandboxBackendKind::Process {
                "install bubblewrap (apt-get install bubblewrap) and run the server as root, or set \
                 sandbox.backend = \"microvm\""
                    .to_string()
            } else {
                INSTALL_VM.to_string()
            }),
        },
    });

    parts.push(match &config.model {
        None => Part {
            name: "model",
            state: State::NotReady,
            detail: "no model configured: every run fails".into(),
            fix: Some(
                "./scripts/start.sh (starts a local model), or set USERZ_MODEL_API, USERZ_MODEL_BASE_URL and \
                 USERZ_MODEL (a [model] section), with the org's key sealed by `userz-server admin secret set \
                 --org <org id> --kind ai_provider_key --slot model`"
                    .into(),
            ),
        },
        Some(m) => {
            let api = match m.api {
                config::ModelApiKind::Openai => "OpenAI-compatible",
                config::ModelApiKind::Anthropic => "Anthropic",
            };
            let detail =
                format!("{api} at {}, model {}{}", m.base_url, m.model, if m.guided { " (guided turns)" } else { "" });
            match facts.model_reachable {
                Some(false) => Part {
                    name: "model",
                    state: State::NotReady,
                    detail: format!("{detail}: nothing answers there"),
                    fix: Some(format!("start the model server at {} or point USERZ_MODEL_BASE_URL at one", m.base_url)),
                },
                _ => Part { name: "model", state: State::Ready, detail, fix: None },
            }
        }
    });

    let github = config.github_app.as_ref().map(|g| format!("GitHub App {} (draft PRs)", g.app_id));
    let mut vcs = Vec::new();
    if let Some(remote) = &facts.demo_remote {
        vcs.push(format!("demo repository {remote} (branch-only: runs push a branch)"));
    }
    vcs.extend(github.clone());
    vcs.push("git remotes and GitLab projects linked with `userz-server admin repo create`".into());
    parts.push(Part {
        name: "vcs",
        state: State::Ready,
        detail: vcs.join("; "),
        fix: github.is_none().then(|| {
            "draft PRs on GitHub: a [github_app] section; on GitLab: `userz-server admin repo create … --gitlab \
             <project>` and its token sealed with `secret set --kind repo_token`"
                .to_string()
        }),
    });

    parts.push(match &config.smtp {
        Some(s) => {
            Part { name: "mail", state: State::Ready, detail: format!("SMTP {} as {}", s.addr, s.from), fix: None }
        }
        None => Part {
            name: "mail",
            state: State::Off,
            detail: "sign-in links are printed to this log instead of mailed".into(),
            fix: Some("set USERZ_SMTP_ADDR=host:port (an [smtp] section)".into()),
        },
    });

    parts.push(if facts.chat.is_empty() {
        Part {
            name: "chat-ops",
            state: State::Off,
            detail: "no Slack or Discord app".into(),
            fix: Some("set USERZ_SLACK_SIGNING_SECRET or USERZ_DISCORD_PUBLIC_KEY".into()),
        }
    } else {
        let scope = match &facts.chatops_org {
            Some(org) => format!("acting on {org}'s reports only"),
            None => "acting on every org's reports".into(),
        };
        Part {
            name: "chat-ops",
            state: State::Ready,
            detail: format!("{} ({scope})", facts.chat.join(", ")),
            fix: facts.chatops_org.is_none().then(|| "set USERZ_CHATOPS_ORG=<org id> to bind it to one org".into()),
        }
    });

    parts.push(match (config.classifier, &config.model) {
        (config::ClassifierKind::Embedding, _) => Part {
            name: "classifier",
            state: State::Ready,
            detail: "classifier model: all-MiniLM-L6-v2 embedding and pre-filter signals through a trained head".into(),
            fix: None,
        },
        (config::ClassifierKind::Layered, Some(m)) => Part {
            name: "classifier",
            state: State::Ready,
            detail: format!("pre-filter and heuristics, then model {}", m.model),
            fix: None,
        },
        _ => Part {
            name: "classifier",
            state: State::Ready,
            detail: "pre-filter and heuristics (no model call)".into(),
            fix: None,
        },
    });
    Readiness { parts }
}

/// Whether something accepts a TCP connection at the model's base URL, for
/// URLs that name a literal address (a host name is not resolved here).
pub(crate) async fn probe_model(config: &Config) -> Option<bool> {
    let m = config.model.as_ref()?;
    let addr: SocketAddr = crate::literal_socket_addr(&m.base_url)?;
    let connect = tokio::net::TcpStream::connect(addr);
    Some(matches!(tokio::time::timeout(Duration::from_secs(1), connect).await, Ok(Ok(_))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn facts() -> Facts {
        Facts {
            sandbox: Ok("microVM sandbox (own guest kernel 6.12, QEMU 9.2)".into()),
            model_reachable: Some(true),
            demo_remote: Some("/data/demo-repo.git".into()),
            chat: vec![],
            chatops_org: None,
        }
    }

    fn model() -> config::ModelConfig {
        config::ModelConfig {
            api: config::ModelApiKind::Openai,
            base_url: "http://127.0.0.1:8091/v1".into(),
            model: "smollm2".into(),
            api_key_env: None,
            max_tokens_field: None,
            guided: true,
        }
    }

    #[test]
    fn a_missing_model_or_sandbox_is_not_ready_and_says_what_fixes_it() {
        let config = Config::default();
        let mut f = facts();
        f.sandbox = Err("qemu-system-x86_64 is not installed".into());
        let r = assess(&config, &f);
        assert!(!r.main_job_ready());
        let sandbox = r.part("sandbox").unwrap();
        assert_eq!(sandbox.state, State::NotReady);
        assert!(sandbox.detail.contains("qemu-system-x86_64 is not installed"), "{sandbox:?}");
        assert!(sandbox.fix.as_deref().unwrap().contains("./scripts/start.sh"), "{sandbox:?}");
        let model = r.part("model").unwrap();
        assert_eq!(model.state, State::NotReady);
        assert!(model.fix.as_deref().unwrap().contains("USERZ_MODEL_API"), "{model:?}");
        // Optional parts are off, each with the setting that enables it.
        for name in ["mail", "chat-ops"] {
            let p = r.part(name).unwrap();
            assert_eq!(p.state, State::Off, "{p:?}");
            assert!(p.fix.as_deref().is_some_and(|f| f.contains("USERZ_")), "{p:?}");
        }
        let text = r.to_string();
        assert!(text.contains("sandbox:") && text.contains("NOT READY") && text.contains("→ "), "{text}");
    }

    #[test]
    fn a_configured_reachable_model_and_a_microvm_are_ready() {
        let config = Config { model: Some(model()), ..Config::default() };
        let r = assess(&config, &facts());
        assert!(r.main_job_ready(), "{r}");
        let m = r.part("model").unwrap();
        assert_eq!((m.state, m.fix.as_ref()), (State::Ready, None));
        assert!(m.detail.contains("http://127.0.0.1:8091/v1") && m.detail.contains("guided"), "{m:?}");
        assert!(r.part("sandbox").unwrap().detail.contains("own guest kernel"));
        assert!(r.part("vcs").unwrap().detail.contains("/data/demo-repo.git"));
    }

    #[test]
    fn an_unreachable_model_and_a_shared_kernel_are_said_plainly() {
        let config = Config { model: Some(model()), ..Config::default() };
        let mut f = facts();
        f.model_reachable = Some(false);
        f.sandbox = Ok("process sandbox (bubblewrap namespaces; runs share the host kernel)".into());
        let r = assess(&config, &f);
        let m = r.part("model").unwrap();
        assert_eq!(m.state, State::NotReady);
        assert!(m.fix.as_deref().unwrap().contains("http://127.0.0.1:8091/v1"), "{m:?}");
        let s = r.part("sandbox").unwrap();
        assert_eq!(s.state, State::Ready);
        assert!(s.fix.as_deref().unwrap().contains("kernel boundary"), "{s:?}");
    }

    #[test]
    fn chat_ops_says_which_orgs_it_acts_on() {
        let mut f = facts();
        f.chat = vec!["Slack"];
        let r = assess(&Config::default(), &f);
        let c = r.part("chat-ops").unwrap();
        assert_eq!(c.state, State::Ready);
        assert!(c.detail.contains("every org") && c.fix.as_deref().unwrap().contains("USERZ_CHATOPS_ORG"), "{c:?}");
    }
}
