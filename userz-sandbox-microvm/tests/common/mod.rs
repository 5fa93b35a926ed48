//! Shared set-up of the microVM tests: where the guest kernel and the
//! binaries are, a sandbox per test over its own state root (the built image
//! and the accelerator answer cached in a shared directory), and [`MicroVm`],
//! the backend as the sandbox conformance suite drives it.
//!
//! The tests must run as an **unprivileged** user (that is what they
//! prove); `scripts/test.sh` runs them with `runuser -u nobody`. As root they
//! fail unless `USERZ_MICROVM_ALLOW_ROOT=1`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use userz_core::agent::ModelApi;
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{EgressRecord, Limits, Sandbox};
use userz_egress::{ModelRoute, StaticResolver};
use userz_sandbox_microvm::{AgentModel, GuestOutcome, GuestRequest, MicroVmConfig, MicroVmSandbox};
use userz_testkit::conformance::sandbox::{ProbeOutcome, SandboxBackend, SandboxSetup, SandboxUnderTest, TestRun};

pub use userz_testkit::conformance::sandbox::{probe_binary, PROBE_INSIDE, SCRATCH_BYTES};

fn bin(name: &str, compiled: &str) -> PathBuf {
    match std::env::var_os("USERZ_BIN_DIR") {
        Some(dir) if Path::new(&dir).join(name).is_file() => Path::new(&dir).join(name),
        _ => PathBuf::from(compiled),
    }
}

/// The guest kernel and its modules: `USERZ_VM_KERNEL` / `USERZ_VM_MODULES`
/// (exported by `scripts/services.sh`).
pub fn kernel() -> Option<(PathBuf, PathBuf)> {
    let k = std::env::var_os("USERZ_VM_KERNEL").map(PathBuf::from)?;
    let m = std::env::var_os("USERZ_VM_MODULES").map(PathBuf::from)?;
    Some((k, m))
}

/// The guest init binary.
pub fn init_binary() -> PathBuf {
    bin("userz-vm-init", env!("CARGO_BIN_EXE_userz-vm-init"))
}

/// Whether this host can run the suite; fails loudly otherwise unless
/// `USERZ_ALLOW_SKIP=1`.
pub fn host_ready() -> bool {
    let why = if kernel().is_none() {
        Some("USERZ_VM_KERNEL / USERZ_VM_MODULES are not set (source scripts/services.sh; svc_install_microvm)")
    } else if MicroVmConfig::new("k", "m", "i", "a").qemu.is_file() {
        if nix::unistd::geteuid().is_root() && std::env::var("USERZ_MICROVM_ALLOW_ROOT").as_deref() != Ok("1") {
            Some("running as root: the microVM backend is proven unprivileged (scripts/test.sh runs it as nobody)")
        } else {
            None
        }
    } else {
        Some("qemu-system-x86_64 is not installed")
    };
    let Some(why) = why else { return true };
    if std::env::var("USERZ_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("skipping microVM test: {why} (USERZ_ALLOW_SKIP=1)");
        return false;
    }
    panic!("microVM tests: {why}; run them through ./scripts/test.sh or set USERZ_ALLOW_SKIP=1 to skip");
}

/// The shared cache directory (image, accelerator answer).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("USERZ_MICROVM_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("userz-microvm"))
}

/// The sandbox configuration every test starts from.
pub fn base_config(state: &Path) -> MicroVmConfig {
    let (kernel, modules) = kernel().unwrap();
    base_config_with(state, kernel, modules)
}

/// [`base_config`] with the kernel given.
pub fn base_config_with(state: &Path, kernel: PathBuf, modules: PathBuf) -> MicroVmConfig {
    let mut c = MicroVmConfig::new(kernel, modules, init_binary(), userz_testkit::bins::workspace_bin("userz-agent"))
        .with_state_root(state)
        .with_extra_binary(probe_binary())
        .with_scratch_bytes(SCRATCH_BYTES);
    c.cache_dir = Some(cache_dir());
    c
}

/// Builds a sandbox outside the caller's runtime (the suite's `start` is sync).
pub fn sandbox(config: MicroVmConfig) -> MicroVmSandbox {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(MicroVmSandbox::new(config))
    })
    .join()
    .unwrap()
    .unwrap_or_else(|e| panic!("microVM sandbox: {e}"))
}

/// A sandbox over a temporary state root.
pub struct Harness {
    pub sandbox: Arc<MicroVmSandbox>,
    pub state: tempfile::TempDir,
}

impl Harness {
    pub fn with(adjust: impl FnOnce(MicroVmConfig) -> MicroVmConfig) -> Option<Self> {
        if !host_ready() {
            return None;
        }
        std::fs::create_dir_all(cache_dir()).unwrap();
        let state = tempfile::Builder::new().prefix("h-").tempdir_in(cache_dir()).unwrap();
        let sandbox = Arc::new(sandbox(adjust(base_config(state.path()))));
        Some(Self { sandbox, state })
    }

    pub fn probe_request(&self, run: RunId, workspace: &Path, limits: Limits, args: &[&str]) -> GuestRequest {
        let mut argv = vec![PROBE_INSIDE.to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        GuestRequest::new(run, limits, workspace, argv)
    }
}

/// The microVM backend as the conformance suite drives it.
pub struct MicroVm;

impl SandboxBackend for MicroVm {
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

pub fn probe_outcome(o: GuestOutcome) -> ProbeOutcome {
    let exit_code = o.exit_code();
    let pids_max_hits = o.output.exit.as_ref().map(|e| e.pids_max_hits).unwrap_or(0);
    let mut stderr = o.output.stderr;
    for l in &o.output.logs {
        stderr.extend_from_slice(format!("\n[init] {l}").as_bytes());
    }
    if let Some(e) = o.output.exit.as_ref().and_then(|e| e.init_error.as_ref()) {
        stderr.extend_from_slice(format!("\n[init error] {e}").as_bytes());
    }
    if let Some(e) = &o.output.channel_error {
        stderr.extend_from_slice(format!("\n[channel] {e}").as_bytes());
    }
    ProbeOutcome {
        exit_code,
        timed_out: o.output.timed_out,
        stdout: o.output.stdout,
        stderr,
        limit: o.limit,
        pids_max_hits,
        resources: o.resources,
    }
}

fn du(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else { return 0 };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            total += du(&e.path());
        }
    }
    total
}

#[async_trait]
impl SandboxUnderTest for Harness {
    fn port(&self) -> Arc<dyn Sandbox> {
        self.sandbox.clone()
    }

    fn host_dir(&self) -> &Path {
        self.state.path()
    }

    fn run_uid(&self, _run: RunId) -> u32 {
        // QEMU runs as the caller; the boundary is the VM, not a host uid.
        nix::unistd::geteuid().as_raw()
    }

    fn own_processes(&self) -> Vec<String> {
        vec![PROBE_INSIDE.to_string()]
    }

    fn leftovers(&self, _run: RunId) -> Vec<PathBuf> {
        // Every VM of this harness (no pool): a directory or a QEMU process
        // naming this state root means a VM left.
        let mut left: Vec<PathBuf> = std::fs::read_dir(self.state.path().join("vms"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let needle = self.state.path().to_string_lossy().into_owned();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()) == Some('Z');
            if !zombie && String::from_utf8_lossy(&cmdline).contains(&needle) {
                left.push(e.path());
            }
        }
        left
    }

    fn workspace_host_bytes(&self, run: RunId) -> u64 {
        du(&self.sandbox.workspace_dir(&run))
    }

    async fn allocate(&self, limits: &Limits) -> TestRun {
        let run = RunId::new();
        let workspace = self.sandbox.allocate_workspace(run, limits).await.unwrap();
        let sandbox = self.sandbox.clone();
        TestRun::new(run, workspace, move || {
            let _ = std::fs::remove_dir_all(sandbox.workspace_dir(&run).parent().unwrap());
        })
    }

    async fn probe(&self, run: &TestRun, limits: Limits, args: &[&str]) -> ProbeOutcome {
        let req = self.probe_request(run.run, &run.workspace, limits, args);
        probe_outcome(self.sandbox.run_guest(req).await.unwrap())
    }

    async fn probe_with_egress(
        &self,
        run: &TestRun,
        limits: Limits,
        args: &[&str],
        allowlist: &[String],
    ) -> (ProbeOutcome, Vec<EgressRecord>) {
        let mut req = self.probe_request(run.run, &run.workspace, limits, args);
        req.egress = Some(allowlist.to_vec());
        let outcome = self.sandbox.run_guest(req).await.unwrap();
        let records = outcome.egress.clone();
        (probe_outcome(outcome), records)
    }
}
