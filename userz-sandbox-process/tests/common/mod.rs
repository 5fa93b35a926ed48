//! Shared set-up of the sandbox tests: a sandbox on a throwaway state root,
//! runs whose storage is released even when a test panics, probe helpers,
//! and [`Process`], the process backend as the conformance suite drives it.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tempfile::TempDir;
use userz_core::agent::ModelApi;
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{EgressRecord, Limits, Sandbox};
use userz_egress::{ModelRoute, StaticResolver};
use userz_sandbox_process::{AgentModel, CommandOutcome, CommandRequest, ProcessSandbox, ProcessSandboxConfig};
use userz_testkit::conformance::sandbox::{ProbeOutcome, SandboxBackend, SandboxSetup, SandboxUnderTest, TestRun};

pub use userz_testkit::conformance::sandbox::{limits, probe_binary, PROBE_INSIDE, SCRATCH_BYTES};

pub const EXEC_HELPER: &str = env!("CARGO_BIN_EXE_userz-sandbox-exec");
pub const BWRAP: &str = "/usr/bin/bwrap";

/// Whether this host can run the suite. Without root or bubblewrap the
/// tests fail loudly unless `USERZ_ALLOW_SKIP=1` (then they skip).
pub fn host_ready() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let bwrap = Path::new(BWRAP).is_file();
    if root && bwrap {
        return true;
    }
    let why = if !root { "not running as root" } else { "bubblewrap is not installed (/usr/bin/bwrap)" };
    if std::env::var("USERZ_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("skipping sandbox test: {why} (USERZ_ALLOW_SKIP=1)");
        return false;
    }
    panic!(
        "sandbox tests need root and bubblewrap: {why}; run them through ./scripts/test.sh (which installs \
         bubblewrap) or set USERZ_ALLOW_SKIP=1 to skip"
    );
}

/// A sandbox over a temporary state root.
pub struct Harness {
    pub sandbox: Arc<ProcessSandbox>,
    pub state: TempDir,
}

impl Harness {
    pub fn new() -> Option<Self> {
        Self::with(|c| c)
    }

    pub fn with(adjust: impl FnOnce(ProcessSandboxConfig) -> ProcessSandboxConfig) -> Option<Self> {
        if !host_ready() {
            return None;
        }
        let state = tempfile::Builder::new().prefix("userz-sandbox-test").tempdir().unwrap();
        let config = ProcessSandboxConfig::new(EXEC_HELPER, probe_binary())
            .with_bwrap(BWRAP)
            .with_state_root(state.path())
            .with_cgroup_parent("userz-test")
            .with_scratch_bytes(SCRATCH_BYTES);
        let sandbox = Arc::new(ProcessSandbox::new(adjust(config)).unwrap());
        Some(Self { sandbox, state })
    }

    /// Allocates a workspace for a fresh run; released when the guard drops.
    pub async fn run(&self, limits: &Limits) -> RunGuard {
        let run = RunId::new();
        let workspace = self.sandbox.allocate_workspace(run, limits).await.unwrap();
        RunGuard { sandbox: self.sandbox.clone(), run, workspace, mnt: self.state.path().join(run.to_string()) }
    }

    /// A request running the probe with `args` over `workspace`.
    pub fn probe_request(&self, run: RunId, workspace: &Path, limits: Limits, args: &[&str]) -> CommandRequest {
        let mut argv = vec![PROBE_INSIDE.to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        CommandRequest::new(run, limits, workspace, argv).with_ro_bind(probe_binary(), PROBE_INSIDE)
    }
}

/// A run's storage; released (synchronously, best effort) on drop so a
/// panicking test leaves no mount behind.
pub struct RunGuard {
    pub sandbox: Arc<ProcessSandbox>,
    pub run: RunId,
    pub workspace: PathBuf,
    mnt: PathBuf,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mnt = self.mnt.join("mnt");
        let _ = std::process::Command::new("umount").arg("-l").arg(&mnt).stderr(std::process::Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.mnt);
    }
}

/// Whether any cgroup of `run` is left under the test parent.
pub fn cgroups_left(run: &RunId) -> Vec<PathBuf> {
    let mut left = Vec::new();
    let roots = ["memory", "pids", "cpu", "cpuacct", ""].map(|c| Path::new("/sys/fs/cgroup").join(c));
    for root in roots {
        if let Ok(entries) = std::fs::read_dir(root.join("userz-test")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&run.to_string()) {
                    left.push(e.path());
                }
            }
        }
    }
    left
}

/// The process backend as the conformance suite drives it.
pub struct Process;

impl SandboxBackend for Process {
    fn start(&self, setup: SandboxSetup) -> Option<Box<dyn SandboxUnderTest>> {
        let h = Harness::with(|mut c| {
            if !setup.resolve.is_empty() {
                let resolver =
                    setup.resolve.iter().fold(StaticResolver::new(), |r, (host, ip)| r.with_host(host, [*ip]));
                c = c.with_resolver(Arc::new(resolver));
            }
            if let Some(addr) = setup.egress_except {
                c = c.with_egress_allow_socket_addr(addr);
            }
            if let Some(key) = setup.model_key {
                let route =
                    ModelRoute::openai_compatible("model.egress.internal", "http://127.0.0.1:9", key.into()).unwrap();
                c = c.with_model(AgentModel {
                    api: ModelApi::OpenaiCompatible,
                    model: "m".into(),
                    route,
                    guided: false,
                });
            }
            c
        })?;
        Some(Box::new(h))
    }
}

fn probe_outcome(o: CommandOutcome) -> ProbeOutcome {
    ProbeOutcome {
        exit_code: o.exit_code,
        timed_out: o.timed_out,
        stdout: o.stdout,
        stderr: o.stderr,
        limit: o.limit,
        pids_max_hits: o.pids_max_hits,
        resources: o.resources,
    }
}

#[async_trait]
impl SandboxUnderTest for Harness {
    fn port(&self) -> Arc<dyn Sandbox> {
        self.sandbox.clone()
    }

    fn host_dir(&self) -> &Path {
        self.state.path()
    }

    fn run_uid(&self, run: RunId) -> u32 {
        self.sandbox.run_uid(&run)
    }

    fn own_processes(&self) -> Vec<String> {
        vec![BWRAP.to_string(), PROBE_INSIDE.to_string()]
    }

    fn leftovers(&self, run: RunId) -> Vec<PathBuf> {
        cgroups_left(&run)
    }

    fn workspace_host_bytes(&self, run: RunId) -> u64 {
        let image = self.state.path().join(run.to_string()).join("disk.img");
        std::fs::metadata(image).unwrap().blocks() * 512
    }

    async fn allocate(&self, limits: &Limits) -> TestRun {
        let guard = self.run(limits).await;
        let (run, workspace) = (guard.run, guard.workspace.clone());
        TestRun::new(run, workspace, move || drop(guard))
    }

    async fn probe(&self, run: &TestRun, limits: Limits, args: &[&str]) -> ProbeOutcome {
        let req = self.probe_request(run.run, &run.workspace, limits, args);
        probe_outcome(self.sandbox.run_command(req).await.unwrap())
    }

    async fn probe_with_egress(
        &self,
        run: &TestRun,
        limits: Limits,
        args: &[&str],
        allowlist: &[String],
    ) -> (ProbeOutcome, Vec<EgressRecord>) {
        let req = self.probe_request(run.run, &run.workspace, limits, args);
        let (outcome, records) = self.sandbox.run_with_egress(req, allowlist).await.unwrap();
        (probe_outcome(outcome), records)
    }
}
