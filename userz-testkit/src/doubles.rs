//! Scripted test doubles for the effect ports (classifier, sandbox, VCS, change
//! reader). Each records its calls so engine tests can assert on them, and follows
//! its port's contract (the VCS double finds an open PR by branch, like GitHub).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::watch;
use userz_core::guardrail::Change;
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{
    EgressRecord, Limits, ResourceUsage, SandboxExit, SandboxOutcome, SandboxSpec, Usage,
};
use userz_core::ports::vcs::{PrRef, PrRequest, PushedBranch, RepoTarget, VcsCapabilities, Workspace};
use userz_core::ports::{ChangeReader, Classification, Classifier, ClassifierInput, Label, Sandbox, VcsProvider};
use userz_core::{Error, Result};

/// A classifier that labels by substring rules (default `Benign`).
#[derive(Debug, Default)]
pub struct ScriptedClassifier {
    rules: Mutex<Vec<(String, Label)>>,
    calls: Mutex<Vec<String>>,
    fail_next: AtomicU32,
}

impl ScriptedClassifier {
    /// A classifier that says `Benign` to everything.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Reports whose text contains `needle` get `label`.
    pub fn label_when(&self, needle: &str, label: Label) {
        self.rules.lock().push((needle.to_string(), label));
    }

    /// The next `n` calls fail with a retryable error.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Texts classified so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().clone()
    }
}

#[async_trait]
impl Classifier for ScriptedClassifier {
    async fn classify(&self, input: &ClassifierInput) -> Result<Classification> {
        let text = input.text.expose().clone();
        self.calls.lock().push(text.clone());
        if self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(Error::Effect { port: "classifier", message: "scripted failure".into(), retryable: true });
        }
        let label =
            self.rules.lock().iter().find(|(n, _)| text.contains(n.as_str())).map(|(_, l)| *l).unwrap_or(Label::Benign);
        Ok(Classification { label, confidence: 0.9, signals: vec![], classifier: "scripted".into() })
    }
}

/// One call the VCS double received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcsCall {
    /// `prepare_workspace`.
    Prepare {
        /// Run.
        run: RunId,
        /// Branch.
        branch: String,
        /// Existing branch (revision).
        existing: bool,
    },
    /// `push`.
    Push {
        /// Run.
        run: RunId,
        /// Branch.
        branch: String,
    },
    /// `open_or_update_pr`.
    OpenOrUpdate {
        /// Run.
        run: RunId,
        /// Branch.
        branch: String,
    },
}

/// A PR held by the VCS double.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePr {
    /// Number.
    pub number: u64,
    /// Head branch.
    pub branch: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Runs that opened or updated it.
    pub runs: Vec<RunId>,
}

/// A repository host double: `VcsProvider` and `ChangeReader` in one, with the
/// changes each run "committed" supplied by [`ScriptedSandbox`].
#[derive(Debug)]
pub struct ScriptedRepoHost {
    calls: Mutex<Vec<VcsCall>>,
    prs: Mutex<Vec<FakePr>>,
    changes: Mutex<HashMap<RunId, Vec<Change>>>,
    discarded: Mutex<Vec<RunId>>,
    pull_requests: bool,
    hang_after_create: AtomicBool,
    fail_push: AtomicU32,
}

impl ScriptedRepoHost {
    /// A host with a PR API.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::with_pull_requests(true))
    }

    /// A branch-only host.
    pub fn branch_only() -> Arc<Self> {
        Arc::new(Self::with_pull_requests(false))
    }

    fn with_pull_requests(pull_requests: bool) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            prs: Mutex::new(Vec::new()),
            changes: Mutex::new(HashMap::new()),
            discarded: Mutex::new(Vec::new()),
            pull_requests,
            hang_after_create: AtomicBool::new(false),
            fail_push: AtomicU32::new(0),
        }
    }

    /// The next PR creation stores the PR and then never returns (a crash between
    /// the provider's side effect and our event).
    pub fn hang_after_next_create(&self) {
        self.hang_after_create.store(true, Ordering::SeqCst);
    }

    /// The next `n` pushes fail with a retryable error.
    pub fn fail_next_pushes(&self, n: u32) {
        self.fail_push.store(n, Ordering::SeqCst);
    }

    /// Calls so far.
    pub fn calls(&self) -> Vec<VcsCall> {
        self.calls.lock().clone()
    }

    /// PRs that exist.
    pub fn prs(&self) -> Vec<FakePr> {
        self.prs.lock().clone()
    }

    /// Runs whose workspace was discarded.
    pub fn discarded(&self) -> Vec<RunId> {
        self.discarded.lock().clone()
    }

    /// Sets the change list a run produced (called by the sandbox double).
    pub fn set_changes(&self, run: RunId, changes: Vec<Change>) {
        self.changes.lock().insert(run, changes);
    }
}

#[async_trait]
impl VcsProvider for ScriptedRepoHost {
    async fn prepare_workspace(
        &self,
        _target: &RepoTarget,
        run: RunId,
        branch: &str,
        existing_branch: bool,
        dir: &Path,
    ) -> Result<Workspace> {
        self.calls.lock().push(VcsCall::Prepare { run, branch: branch.into(), existing: existing_branch });
        Ok(Workspace { run, path: dir.to_path_buf(), branch: branch.to_string(), base_commit: "0000base".into() })
    }

    async fn push(&self, _target: &RepoTarget, ws: &Workspace) -> Result<PushedBranch> {
        self.calls.lock().push(VcsCall::Push { run: ws.run, branch: ws.branch.clone() });
        if self.fail_push.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(Error::Effect { port: "vcs", message: "scripted push failure".into(), retryable: true });
        }
        Ok(PushedBranch { branch: ws.branch.clone(), head_commit: format!("head-{}", ws.run.as_uuid().simple()) })
    }

    async fn open_or_update_pr(&self, request: &PrRequest) -> Result<PrRef> {
        self.calls.lock().push(VcsCall::OpenOrUpdate { run: request.run, branch: request.branch.clone() });
        let (pr, created) = {
            let mut prs = self.prs.lock();
            if let Some(p) = prs.iter_mut().find(|p| p.branch == request.branch) {
                p.runs.push(request.run);
                (p.clone(), false)
            } else {
                let p = FakePr {
                    number: prs.len() as u64 + 1,
                    branch: request.branch.clone(),
                    title: request.title.clone(),
                    body: request.body.clone(),
                    runs: vec![request.run],
                };
                prs.push(p.clone());
                (p, true)
            }
        };
        if created && self.hang_after_create.swap(false, Ordering::SeqCst) {
            futures::future::pending::<()>().await;
        }
        Ok(PrRef { number: pr.number, url: format!("https://forge.invalid/pr/{}", pr.number), created })
    }

    fn capabilities(&self) -> VcsCapabilities {
        if self.pull_requests {
            VcsCapabilities::with_pull_requests()
        } else {
            VcsCapabilities::branch_only()
        }
    }
}

#[async_trait]
impl ChangeReader for ScriptedRepoHost {
    async fn changes(&self, workspace: &Workspace) -> Result<Vec<Change>> {
        Ok(self.changes.lock().get(&workspace.run).cloned().unwrap_or_default())
    }

    async fn discard(&self, workspace: &Workspace) -> Result<()> {
        self.discarded.lock().push(workspace.run);
        Ok(())
    }
}

/// What the scripted agent does.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentScript {
    /// How the sandbox exits.
    pub exit: SandboxExit,
    /// The change list its commits amount to.
    pub changes: Vec<Change>,
    /// Never finishes (for deadline tests).
    pub hang: bool,
    /// Egress decisions the run's proxy made.
    pub egress: Vec<EgressRecord>,
}

impl Default for AgentScript {
    fn default() -> Self {
        Self {
            exit: SandboxExit::Completed,
            changes: vec![Change::file("src/app.js")],
            hang: false,
            egress: Vec::new(),
        }
    }
}

/// One sandbox run the double saw.
#[derive(Debug, Clone)]
pub struct SandboxCall {
    /// Run.
    pub run: RunId,
    /// The system text.
    pub system: String,
    /// The prompt.
    pub prompt: String,
}

/// A sandbox double: plays an [`AgentScript`] chosen by prompt substring.
#[derive(Debug)]
pub struct ScriptedSandbox {
    host: Arc<ScriptedRepoHost>,
    scripts: Mutex<Vec<(String, AgentScript)>>,
    default: Mutex<AgentScript>,
    calls: Mutex<Vec<SandboxCall>>,
    gate: watch::Sender<bool>,
    allocated: Mutex<HashSet<RunId>>,
}

impl ScriptedSandbox {
    /// A sandbox whose agent commits `src/app.js` and exits.
    pub fn new(host: Arc<ScriptedRepoHost>) -> Arc<Self> {
        let (gate, _) = watch::channel(true);
        Arc::new(Self {
            host,
            scripts: Mutex::new(Vec::new()),
            default: Mutex::new(AgentScript::default()),
            calls: Mutex::new(Vec::new()),
            gate,
            allocated: Mutex::new(HashSet::new()),
        })
    }

    /// Prompts containing `needle` play `script`.
    pub fn when_prompt_contains(&self, needle: &str, script: AgentScript) {
        self.scripts.lock().push((needle.to_string(), script));
    }

    /// Replaces the default script.
    pub fn set_default(&self, script: AgentScript) {
        *self.default.lock() = script;
    }

    /// Runs block (after recording their call) until [`release`](Self::release).
    pub fn hold(&self) {
        self.gate.send_replace(false);
    }

    /// Lets held runs finish.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// Runs whose workspace storage is allocated and not yet released.
    pub fn allocated(&self) -> Vec<RunId> {
        self.allocated.lock().iter().copied().collect()
    }

    /// Runs so far.
    pub fn calls(&self) -> Vec<SandboxCall> {
        self.calls.lock().clone()
    }
}

#[async_trait]
impl Sandbox for ScriptedSandbox {
    async fn allocate_workspace(&self, run: RunId, _limits: &Limits) -> Result<PathBuf> {
        self.allocated.lock().insert(run);
        Ok(PathBuf::new())
    }

    async fn release_workspace(&self, run: RunId) -> Result<()> {
        self.allocated.lock().remove(&run);
        Ok(())
    }

    async fn run(&self, spec: &SandboxSpec) -> Result<SandboxOutcome> {
        self.calls.lock().push(SandboxCall {
            run: spec.run,
            system: spec.system_prompt.clone(),
            prompt: spec.prompt.clone(),
        });
        let script = self
            .scripts
            .lock()
            .iter()
            .find(|(n, _)| spec.prompt.contains(n.as_str()))
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| self.default.lock().clone());
        let mut gate = self.gate.subscribe();
        if gate.wait_for(|open| *open).await.is_err() || script.hang {
            futures::future::pending::<()>().await;
        }
        self.host.set_changes(spec.run, script.changes.clone());
        Ok(SandboxOutcome {
            exit: script.exit,
            usage: Usage {
                provider: "scripted".into(),
                model: "scripted-1".into(),
                tokens_in: spec.prompt.len() as u64 / 4,
                tokens_out: 100,
                cost_micros: 1_234,
            },
            transcript: Some(bytes::Bytes::from(format!("{{\"type\":\"stopped\",\"run\":\"{}\"}}\n", spec.run))),
            egress: script.egress.clone(),
            resources: ResourceUsage::default(),
        })
    }
}
