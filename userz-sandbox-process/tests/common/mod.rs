//! Shared set-up of the sandbox tests: a sandbox on a throwaway state root,
//! runs whose storage is released even when a test panics, probe helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{Limits, Sandbox};
use userz_egress::Resolver;
use userz_sandbox_process::{CommandOutcome, CommandRequest, ProcessSandbox, ProcessSandboxConfig};

pub const EXEC_HELPER: &str = env!("CARGO_BIN_EXE_userz-sandbox-exec");
pub const PROBE: &str = env!("CARGO_BIN_EXE_userz-escape-probe");
pub const PROBE_INSIDE: &str = "/userz/bin/userz-escape-probe";
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

/// Small caps so a test that breaks out of one fails fast.
pub fn limits() -> Limits {
    Limits {
        cpu_millis: 1000,
        memory_bytes: 256 << 20,
        disk_bytes: 64 << 20,
        pids: 64,
        wall_clock: Duration::from_secs(20),
    }
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
        let config = ProcessSandboxConfig::new(EXEC_HELPER, PROBE)
            .with_bwrap(BWRAP)
            .with_state_root(state.path())
            .with_cgroup_parent("userz-test")
            .with_scratch_bytes(16 << 20);
        let sandbox = Arc::new(ProcessSandbox::new(adjust(config)).unwrap());
        Some(Self { sandbox, state })
    }

    pub fn with_resolver(resolver: Arc<dyn Resolver>) -> Option<Self> {
        Self::with(|c| c.with_resolver(resolver))
    }

    /// Allocates a workspace for a fresh run; released when the guard drops.
    pub async fn run(&self, limits: &Limits) -> RunGuard {
        let run = RunId::new();
        let workspace = self.sandbox.allocate_workspace(run, limits).await.unwrap();
        RunGuard { sandbox: self.sandbox.clone(), run, workspace, mnt: self.state.path().join(run.to_string()) }
    }

    /// A request running the probe with `args`.
    pub fn probe(&self, run: &RunGuard, limits: Limits, args: &[&str]) -> CommandRequest {
        let mut argv = vec![PROBE_INSIDE.to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        CommandRequest::new(run.run, limits, &run.workspace, argv).with_ro_bind(PROBE, PROBE_INSIDE)
    }

    /// Runs the probe and returns the outcome and its verdict lines.
    pub async fn run_probe(&self, run: &RunGuard, limits: Limits, args: &[&str]) -> (CommandOutcome, Vec<Value>) {
        let outcome = self.sandbox.run_command(self.probe(run, limits, args)).await.unwrap();
        let verdicts = verdicts(&outcome);
        (outcome, verdicts)
    }
}

pub fn verdicts(outcome: &CommandOutcome) -> Vec<Value> {
    String::from_utf8_lossy(&outcome.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("probe printed {l:?}: {e}")))
        .collect()
}

/// The single verdict of a probe that must have run to its end, asserted
/// not to have escaped.
#[track_caller]
pub fn contained(outcome: &CommandOutcome, verdicts: &[Value]) -> Value {
    assert_eq!(
        outcome.exit_code,
        Some(0),
        "probe failed: {outcome:?} stderr={}",
        String::from_utf8_lossy(&outcome.stderr)
    );
    assert!(!outcome.timed_out, "{outcome:?}");
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    let v = verdicts[0].clone();
    assert_eq!(v["escaped"], Value::Bool(false), "ESCAPED: {v}");
    v
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
