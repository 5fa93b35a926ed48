//! [`MicroVmSandbox`]: the `Sandbox` port on QEMU guests.

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use userz_core::agent::{AgentResult, AgentStop, AgentTask, ModelApi, ModelEndpoint};
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{
    EgressRecord, Limits, ResourceUsage, Sandbox, SandboxExit, SandboxOutcome, SandboxSpec,
};
use userz_core::ports::vcs::Workspace;
use userz_core::secret::SecretString;
use userz_core::{Error, Result};
use userz_sandbox_process::{stop_reason, EgressSettings, RunEgress};

use crate::config::{Accel, MicroVmConfig};
use crate::image::{self, BuiltImage, ImageSpec, INSIDE_BIN};
use crate::protocol::{ExportSpec, GuestExit, GuestFile, GuestTask};
use crate::vm::{self, BootedVm, RunEvent, VmRunOutput, VmShape};

/// The uid (and gid) programs run as inside the guest.
pub const GUEST_UID: u32 = 1000;
/// The egress socket inside the guest (served by the init).
pub const INSIDE_EGRESS_SOCKET: &str = "/run/userz/egress.sock";
const INSIDE_TASK: &str = "/run/userz/task.json";
const INSIDE_RESULT: &str = "/run/userz/out/result.json";
const INSIDE_TRANSCRIPT: &str = "/run/userz/out/transcript.jsonl";
/// Smallest workspace image accepted (ext4 metadata needs room).
pub const MIN_DISK_BYTES: u64 = 16 << 20;

fn effect(message: impl Into<String>) -> Error {
    Error::Effect { port: "sandbox", message: message.into(), retryable: true }
}

/// One program run in a fresh guest.
#[derive(Debug, Clone)]
pub struct GuestRequest {
    /// The run.
    pub run: RunId,
    /// Caps.
    pub limits: Limits,
    /// The host workspace directory (copied into the guest's disk image).
    pub workspace: PathBuf,
    /// Program and arguments (inside paths).
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Files written under `/run/userz` first.
    pub files: Vec<GuestFile>,
    /// Files brought back (name, inside path).
    pub collect: Vec<(String, String)>,
    /// Pack export of the run's commits.
    pub export: Option<ExportSpec>,
    /// The run's egress allowlist (`None`: no egress proxy at all).
    pub egress: Option<Vec<String>>,
    /// The org's model key for the proxy's model route.
    pub model_key: Option<SecretString>,
}

impl GuestRequest {
    /// A request running `argv` over `workspace` with no egress.
    pub fn new(run: RunId, limits: Limits, workspace: impl Into<PathBuf>, argv: Vec<String>) -> Self {
        Self {
            run,
            limits,
            workspace: workspace.into(),
            argv,
            env: Vec::new(),
            files: Vec::new(),
            collect: Vec::new(),
            export: None,
            egress: None,
            model_key: None,
        }
    }
}

/// How a guest run ended, as the host saw it.
#[derive(Debug, Default)]
pub struct GuestOutcome {
    /// What came back.
    pub output: VmRunOutput,
    /// The egress proxy's decisions.
    pub egress: Vec<EgressRecord>,
    /// The cap that was hit (`memory`, `pids`, `disk`), if any.
    pub limit: Option<String>,
    /// CPU, peak memory (the run's cgroup in the guest) and wall time.
    pub resources: ResourceUsage,
    /// Whether the VM came from the warm pool.
    pub warm: bool,
    /// Boot time of the VM (0 for a pool VM: it booted earlier).
    pub boot: Duration,
    /// The guest kernel's release.
    pub kernel: String,
    /// The guest's boot id (distinct per boot).
    pub boot_id: String,
    /// Guest uptime at init start and at READY (ms).
    pub uptime_ms: (u64, u64),
    /// From the call to the program's first output (the guest's boot, the
    /// workspace image and the task included).
    pub first_output: Option<Duration>,
    /// From the call to the guest's report that the program was handed to
    /// its launcher.
    pub started: Option<Duration>,
}

impl GuestOutcome {
    /// The exit code as a shell would show it (128+N for signal N).
    pub fn exit_code(&self) -> Option<i32> {
        let exit = self.output.exit.as_ref()?;
        exit.code.or(exit.signal.map(|s| 128 + s))
    }
}

/// How long after a pool guest's program started its replacement boots at
/// the latest.
const REFILL_AFTER_START: Duration = Duration::from_millis(500);

/// Refills the pool once: when fired, or when dropped unfired.
struct Refill(Arc<Mutex<Option<MicroVmSandbox>>>);

impl Refill {
    fn fire(&self) {
        let taken = self.0.lock().take();
        if let Some(sandbox) = taken {
            sandbox.refill();
        }
    }

    fn fire_after(&self, delay: Duration) {
        if self.0.lock().is_none() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = Refill(self.0.clone());
            rt.spawn(async move {
                tokio::time::sleep(delay).await;
                me.fire();
            });
        }
    }
}

impl Drop for Refill {
    fn drop(&mut self) {
        self.fire();
    }
}

struct Inner {
    config: MicroVmConfig,
    image: BuiltImage,
    accel: Accel,
    pool: Mutex<VecDeque<BootedVm>>,
    booting: Mutex<usize>,
}

/// The microVM sandbox: one fresh QEMU guest per run, with its own kernel.
///
/// See the crate documentation for the boundary it draws.
#[derive(Clone)]
pub struct MicroVmSandbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MicroVmSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicroVmSandbox")
            .field("accel", &self.inner.accel)
            .field("image", &self.inner.image.sha256)
            .field("kernel", &self.inner.config.kernel)
            .finish_non_exhaustive()
    }
}

/// The guest shape for `limits` (vCPUs rounded up, RAM with the overhead).
pub fn shape_for(config: &MicroVmConfig, limits: &Limits) -> VmShape {
    VmShape {
        vcpus: limits.cpu_millis.div_ceil(1000).max(1),
        memory_mib: (limits.memory_bytes + config.memory_overhead_bytes).div_ceil(1 << 20),
        disk_bytes: limits.disk_bytes,
    }
}

impl MicroVmSandbox {
    /// Checks the host (QEMU, kernel, modules, binaries, `mkfs.ext4`), builds
    /// the guest image and settles the accelerator (probing KVM once when
    /// `Accel::Auto`; the answer is cached in the state root).
    ///
    /// # Errors
    /// `Unsupported` naming the setting whose file is missing.
    pub async fn new(config: MicroVmConfig) -> Result<Self> {
        for (field, path) in [
            ("microvm.qemu", &config.qemu),
            ("microvm.kernel", &config.kernel),
            ("microvm.init", &config.init),
            ("microvm.agent", &config.agent),
            ("microvm.mkfs", &config.mkfs),
        ] {
            if !path.is_file() {
                return Err(Error::Unsupported(format!("{field}: {} not found", path.display())));
            }
        }
        if !config.modules_dir.is_dir() {
            return Err(Error::Unsupported(format!(
                "microvm.modules_dir: {} not found (the guest kernel's /lib/modules/<release>)",
                config.modules_dir.display()
            )));
        }
        fs::create_dir_all(&config.state_root)
            .map_err(|e| Error::Unsupported(format!("microvm.state_root: {}: {e}", config.state_root.display())))?;
        let mut binaries = vec![config.agent.clone()];
        binaries.extend(config.extra_binaries.iter().cloned());
        let spec = ImageSpec { init: config.init.clone(), binaries, modules_dir: config.modules_dir.clone() };
        let dir = config.cache().join("images");
        let image = tokio::task::spawn_blocking(move || image::build(&spec, &dir))
            .await
            .map_err(|e| effect(format!("image build: {e}")))??;
        let accel = crate::accel::settle(&config, &image).await;
        Ok(Self {
            inner: Arc::new(Inner { config, image, accel, pool: Mutex::new(VecDeque::new()), booting: Mutex::new(0) }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MicroVmConfig {
        &self.inner.config
    }

    /// The accelerator in use.
    pub fn accel(&self) -> Accel {
        self.inner.accel
    }

    /// The guest image.
    pub fn image(&self) -> &BuiltImage {
        &self.inner.image
    }

    /// Boots pool VMs until the pool holds `pool_size` (returns when they
    /// are ready). A no-op when the pool is disabled.
    pub async fn fill_pool(&self) -> Result<()> {
        let size = self.inner.config.pool_size;
        loop {
            let (have, booting) = (self.inner.pool.lock().len(), *self.inner.booting.lock());
            if have >= size {
                return Ok(());
            }
            if have + booting >= size {
                // Another caller's boot is under way: wait for it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            *self.inner.booting.lock() += 1;
            let booted = self.boot_pool_vm().await;
            *self.inner.booting.lock() -= 1;
            self.inner.pool.lock().push_back(booted?);
        }
    }

    async fn boot_pool_vm(&self) -> Result<BootedVm> {
        let c = &self.inner.config;
        vm::boot(c, &self.inner.image.path, shape_for(c, &c.pool_limits), self.inner.accel, true).await
    }

    /// Pool VMs ready now.
    pub fn pool_ready(&self) -> usize {
        self.inner.pool.lock().len()
    }

    /// Tops the pool up in the background.
    fn refill(&self) {
        if self.inner.config.pool_size == 0 {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = self.clone();
            rt.spawn(async move {
                if let Err(e) = me.fill_pool().await {
                    tracing::warn!(error = %e, "microvm pool: boot failed");
                }
            });
        }
    }

    /// A guest of `shape`: a pool VM when one fits, else a cold boot.
    async fn guest(&self, shape: VmShape) -> Result<(BootedVm, bool)> {
        let pooled = {
            let mut pool = self.inner.pool.lock();
            let pos = pool.iter().position(|v| v.shape == shape);
            pos.and_then(|p| pool.remove(p))
        };
        if let Some(mut vm) = pooled {
            if vm.alive() {
                // The caller refills once the run started.
                return Ok((vm, true));
            }
            self.refill();
        }
        let vm = vm::boot(&self.inner.config, &self.inner.image.path, shape, self.inner.accel, false).await?;
        Ok((vm, false))
    }

    /// Runs one program in a fresh guest and reports how it ended. The guest
    /// is destroyed before this returns, and when the future is dropped.
    ///
    /// # Errors
    /// Only when the guest could not be set up; what the program does is
    /// reported in the [`GuestOutcome`].
    pub async fn run_guest(&self, req: GuestRequest) -> Result<GuestOutcome> {
        let config = &self.inner.config;
        if req.limits.disk_bytes < MIN_DISK_BYTES {
            return Err(Error::Invalid(format!(
                "limits.disk_bytes: {} is below the microVM minimum of {MIN_DISK_BYTES}",
                req.limits.disk_bytes
            )));
        }
        let called = std::time::Instant::now();
        let (mut vm, warm) = self.guest(shape_for(config, &req.limits)).await?;
        // A claimed pool guest is replaced once its program printed, half a
        // second after it started, or when this run ends or fails before
        // that, whichever comes first: a replacement booting beside the
        // claimed guest on a small host would slow its start.
        let refill = Refill(Arc::new(Mutex::new(warm.then(|| self.clone()))));
        let mut env: Vec<(String, String)> = [("PATH", "/userz/bin"), ("HOME", "/tmp"), ("LANG", "C.UTF-8")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(req.env.iter().cloned());
        let task = GuestTask {
            argv: req.argv.clone(),
            env,
            uid: GUEST_UID,
            pids: req.limits.pids,
            memory_bytes: req.limits.memory_bytes,
            cpu_millis: req.limits.cpu_millis,
            scratch_bytes: config.scratch_bytes,
            files: req.files.clone(),
            collect: req.collect.clone(),
            collect_cap: config.transcript_cap,
            export: req.export.clone(),
        };
        // The guest sets the task up while the image is written.
        vm.send_task(&task).await?;
        vm::make_workspace_image(config, &req.workspace, &vm.disk, GUEST_UID).await?;
        let egress = match &req.egress {
            Some(allowlist) => Some(self.start_egress(&vm.egress_socket, allowlist, req.model_key.as_ref()).await?),
            None => None,
        };
        vm.workspace_ready().await?;
        let before_run = called.elapsed();
        let output = vm
            .run(req.limits.wall_clock, config, |event| match event {
                RunEvent::Output => refill.fire(),
                RunEvent::Started => refill.fire_after(REFILL_AFTER_START),
            })
            .await;
        let first_output = output.first_output.map(|d| before_run + d);
        let started = output.started.map(|d| before_run + d);
        let (boot, kernel, boot_id, uptime_ms) = (
            if warm { Duration::ZERO } else { vm.boot },
            vm.ready.kernel.clone(),
            vm.ready.boot_id.clone(),
            vm.ready.uptime_ms,
        );
        drop(vm);
        let egress = match egress {
            Some(e) => e.finish().await,
            None => Vec::new(),
        };
        let exit = output.exit.clone().unwrap_or_default();
        let limit = if exit.oom_kills > 0 {
            Some("memory".to_string())
        } else if exit.pids_max_hits > 0 {
            Some("pids".to_string())
        } else if exit.disk_full {
            Some("disk".to_string())
        } else {
            None
        };
        let resources = ResourceUsage {
            cpu_ms: exit.cpu_ms,
            peak_memory_bytes: exit.peak_memory_bytes,
            wall_ms: output.wall.as_millis() as u64,
        };
        Ok(GuestOutcome {
            output,
            egress,
            limit,
            resources,
            warm,
            boot,
            kernel,
            boot_id,
            uptime_ms,
            first_output,
            started,
        })
    }

    async fn start_egress(&self, socket: &Path, allowlist: &[String], key: Option<&SecretString>) -> Result<RunEgress> {
        let config = &self.inner.config;
        let settings = EgressSettings {
            model: config.model.as_ref(),
            model_key: key,
            resolver: config.resolver.as_ref(),
            allow_socket_addrs: &config.egress_allow_socket_addrs,
        };
        let egress = RunEgress::start(socket, allowlist, settings).await?;
        fs::set_permissions(socket, fs::Permissions::from_mode(0o600))
            .map_err(|e| effect(format!("egress socket {}: {e}", socket.display())))?;
        Ok(egress)
    }

    fn run_dir(&self, run: &RunId) -> PathBuf {
        self.inner.config.state_root.join("runs").join(run.to_string())
    }

    /// The host directory of `run`'s workspace.
    pub fn workspace_dir(&self, run: &RunId) -> PathBuf {
        self.run_dir(run).join("workspace")
    }
}

/// Maps a guest run to the port's exit: the wall clock first, then an OOM
/// kill, then the agent's report, then the other caps, then what is missing.
pub fn sandbox_exit(o: &GuestOutcome, result: &std::result::Result<AgentResult, String>) -> SandboxExit {
    if o.output.timed_out {
        return SandboxExit::TimedOut;
    }
    if o.limit.as_deref() == Some("memory") {
        return SandboxExit::LimitExceeded { limit: "memory".into() };
    }
    let exit: Option<&GuestExit> = o.output.exit.as_ref();
    if let Some(e) = exit.and_then(|e| e.init_error.as_ref()) {
        return SandboxExit::AgentFailed { reason: format!("guest init: {e}") };
    }
    match result {
        Ok(r) if o.exit_code() == Some(0) || r.stop != AgentStop::Completed => match stop_reason(&r.stop) {
            None => SandboxExit::Completed,
            Some(reason) => SandboxExit::AgentFailed { reason },
        },
        _ if o.limit.is_some() => SandboxExit::LimitExceeded { limit: o.limit.clone().unwrap_or_default() },
        Ok(_) => SandboxExit::AgentFailed {
            reason: format!("agent reported completion but exited with {:?}", o.exit_code()),
        },
        Err(e) => match (&o.output.exit, &o.output.channel_error) {
            (None, Some(c)) => SandboxExit::AgentFailed { reason: format!("the guest ended early: {c}") },
            (None, None) => SandboxExit::AgentFailed { reason: "the guest ended without an exit report".into() },
            _ => SandboxExit::AgentFailed { reason: e.clone() },
        },
    }
}

fn base_url(model: &crate::config::AgentModel) -> String {
    let route = model.route.route_target();
    let authority =
        if route.port() == 80 { route.host().to_string() } else { format!("{}:{}", route.host(), route.port()) };
    match model.api {
        ModelApi::OpenaiCompatible => format!("http://{authority}/v1"),
        ModelApi::Anthropic => format!("http://{authority}"),
    }
}

impl MicroVmSandbox {
    async fn run_agent(&self, spec: &SandboxSpec, model: &crate::config::AgentModel) -> Result<SandboxOutcome> {
        let config = &self.inner.config;
        let task = AgentTask {
            run: spec.run,
            system_prompt: spec.system_prompt.clone(),
            prompt: spec.prompt.clone(),
            model: ModelEndpoint {
                api: model.api,
                model: model.model.clone(),
                base_url: base_url(model),
                unix_socket: Some(INSIDE_EGRESS_SOCKET.into()),
                guided: model.guided,
            },
            budget: config.budget,
            tools: Vec::new(),
            workspace: "/workspace".into(),
            transcript: INSIDE_TRANSCRIPT.into(),
            result: INSIDE_RESULT.into(),
            author_name: config.author_name.clone(),
            author_email: config.author_email.clone(),
        };
        let agent = format!("{INSIDE_BIN}/{}", file_name(&config.agent));
        let mut req = GuestRequest::new(
            spec.run,
            spec.limits,
            &spec.workspace.path,
            vec![agent, "--task".into(), INSIDE_TASK.into()],
        );
        req.files = vec![GuestFile { path: INSIDE_TASK.into(), contents: serde_json::to_string(&task)? }];
        req.collect = vec![("result".into(), INSIDE_RESULT.into()), ("transcript".into(), INSIDE_TRANSCRIPT.into())];
        req.export =
            Some(ExportSpec { base: spec.workspace.base_commit.clone(), branch: spec.workspace.branch.clone() });
        req.egress = Some(spec.egress_allowlist.clone());
        req.model_key = spec.model_key.clone();
        let outcome = self.run_guest(req).await?;
        let file = |name: &str| outcome.output.files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone());
        let result = file("result").ok_or_else(|| "agent result missing".to_string()).and_then(|b| {
            serde_json::from_slice::<AgentResult>(&b).map_err(|e| format!("agent result is not valid: {e}"))
        });
        let mut exit = sandbox_exit(&outcome, &result);
        if exit == SandboxExit::Completed {
            exit = match (&outcome.output.pack, outcome.output.exit.as_ref().and_then(|e| e.export_error.clone())) {
                (Some((head, pack)), _) => {
                    let ws = spec.workspace.clone();
                    let (head, pack) = (head.clone(), pack.clone());
                    match tokio::task::spawn_blocking(move || import(&ws, &head, &pack)).await {
                        Ok(Ok(())) => SandboxExit::Completed,
                        Ok(Err(reason)) => SandboxExit::AgentFailed { reason },
                        Err(e) => SandboxExit::AgentFailed { reason: format!("result pack import: {e}") },
                    }
                }
                (None, Some(e)) => SandboxExit::AgentFailed { reason: format!("no result pack: {e}") },
                (None, None) => SandboxExit::AgentFailed { reason: "no result pack came back".into() },
            };
        }
        let mut out = SandboxOutcome::new(exit);
        if let Ok(r) = result {
            out.usage = r.usage;
        }
        out.transcript = file("transcript").map(bytes::Bytes::from);
        out.egress = outcome.egress;
        out.resources = outcome.resources;
        Ok(out)
    }
}

fn import(ws: &Workspace, head: &str, pack: &[u8]) -> std::result::Result<(), String> {
    userz_git::import_result_pack(ws, head, pack)
        .map(|_| ())
        .map_err(|e| format!("result pack rejected ({}): {e}", e.code()))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[async_trait]
impl Sandbox for MicroVmSandbox {
    /// A plain host directory (the VCS step clones into it); the disk cap is
    /// the size of the ext4 image the run gets, built from it in user space.
    async fn allocate_workspace(&self, run: RunId, limits: &Limits) -> Result<PathBuf> {
        if limits.disk_bytes < MIN_DISK_BYTES {
            return Err(Error::Invalid(format!(
                "limits.disk_bytes: {} is below the microVM minimum of {MIN_DISK_BYTES}",
                limits.disk_bytes
            )));
        }
        let dir = self.run_dir(&run);
        let _ = fs::remove_dir_all(&dir);
        let ws = dir.join("workspace");
        fs::create_dir_all(&ws).map_err(|e| effect(format!("{}: {e}", ws.display())))?;
        for d in [&dir, &ws] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o700))
                .map_err(|e| effect(format!("{}: {e}", d.display())))?;
        }
        Ok(ws)
    }

    /// Runs `userz-agent` in a fresh guest behind a fresh egress proxy; the
    /// run's commits come back as a pack, checked and imported into the
    /// host's copy of the workspace (a rejected pack fails the run with the
    /// rule that tripped).
    async fn run(&self, spec: &SandboxSpec) -> Result<SandboxOutcome> {
        let model = self
            .inner
            .config
            .model
            .clone()
            .ok_or_else(|| Error::Unsupported("sandbox.model: no model route configured".into()))?;
        if !spec.workspace.path.is_dir() {
            return Err(Error::Invalid(format!(
                "spec.workspace.path: {} is not a directory",
                spec.workspace.path.display()
            )));
        }
        self.run_agent(spec, &model).await
    }

    fn describe(&self) -> String {
        format!(
            "microVM sandbox (own guest kernel {}, QEMU {})",
            self.inner.config.kernel_release(),
            self.inner.accel.as_str()
        )
    }

    async fn release_workspace(&self, run: RunId) -> Result<()> {
        match fs::remove_dir_all(self.run_dir(&run)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(effect(format!("releasing {run}: {e}"))),
        }
    }
}
