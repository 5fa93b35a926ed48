//! [`ProcessSandbox`]: the `Sandbox` port on Linux processes.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use userz_core::agent::{AgentResult, AgentStop, AgentTask, ModelApi, ModelEndpoint};
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{
    EgressRecord, Limits, ResourceUsage, Sandbox, SandboxExit, SandboxOutcome, SandboxSpec,
};
use userz_core::{Error, Result};
use userz_egress::{EgressProxy, EgressProxyBuilder, MemoryAudit};
use userz_security::secret::SecretString;

use crate::cgroup::{Cgroup, Hierarchy};
use crate::config::ProcessSandboxConfig;
use crate::disk::{self, RunDirs};
use crate::exec::{HostArgs, InnerArgs};
use crate::util::{effect, mkdir_mode, nonce, read_untrusted, write_mode};

/// Uid and gid of the sandbox user as seen inside.
pub const INSIDE_UID: u32 = 1000;
/// Where the helper is bound inside.
pub const INSIDE_EXEC_HELPER: &str = "/userz/bin/userz-sandbox-exec";
/// Where the agent binary is bound inside.
pub const INSIDE_AGENT: &str = "/userz/bin/userz-agent";
/// Where the task file is bound inside.
pub const INSIDE_TASK: &str = "/userz/task.json";
/// Where the output directory is bound inside.
pub const INSIDE_OUT: &str = "/userz/out";
/// Where the egress proxy's socket is bound inside.
pub const INSIDE_EGRESS_SOCKET: &str = "/run/userz/egress.sock";
/// Where the workspace is bound inside.
pub const INSIDE_WORKSPACE: &str = "/workspace";

/// The only environment inside the sandbox.
pub const SANDBOX_ENV: [(&str, &str); 3] =
    [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", INSIDE_WORKSPACE), ("LANG", "C.UTF-8")];

/// System directories bound read-only (or recreated as symlinks on merged-/usr hosts).
const SYSTEM_DIRS: [&str; 7] = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"];
/// Host `/etc` entries the sandbox may see; nothing with accounts or secrets.
const ETC_ENTRIES: [&str; 6] = [
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl/certs",
    "/etc/alternatives",
    "/etc/localtime",
];

/// A host path bound read-only inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Path on the host.
    pub host: PathBuf,
    /// Path inside (executable when under `/userz/bin/`).
    pub inside: PathBuf,
}

/// One command to run in a fresh sandbox ([`ProcessSandbox::run_command`]).
#[derive(Debug, Clone)]
pub struct CommandRequest {
    /// The run (picks the host uid and the state directory).
    pub run: RunId,
    /// Caps.
    pub limits: Limits,
    /// Program (a path inside the sandbox) and arguments.
    pub argv: Vec<String>,
    /// Extra read-only binds.
    pub ro_binds: Vec<Bind>,
    /// Host directory bound read-write at `/workspace` (the working directory);
    /// the run's uid must own it (as `allocate_workspace` leaves it).
    pub workspace: PathBuf,
    /// Host directory bound read-write at `/userz/out`, if any.
    pub out_dir: Option<PathBuf>,
    /// Host Unix socket bound at `/run/userz/egress.sock`, if any.
    pub egress_socket: Option<PathBuf>,
}

impl CommandRequest {
    /// A request with no extra binds, output directory or egress.
    pub fn new(run: RunId, limits: Limits, workspace: impl Into<PathBuf>, argv: Vec<String>) -> Self {
        Self {
            run,
            limits,
            argv,
            ro_binds: Vec::new(),
            workspace: workspace.into(),
            out_dir: None,
            egress_socket: None,
        }
    }

    /// Binds `host` read-only at `inside`.
    pub fn with_ro_bind(mut self, host: impl Into<PathBuf>, inside: impl Into<PathBuf>) -> Self {
        self.ro_binds.push(Bind { host: host.into(), inside: inside.into() });
        self
    }

    /// Binds `dir` read-write at `/userz/out`.
    pub fn with_out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Binds the egress proxy's socket at `/run/userz/egress.sock`.
    pub fn with_egress_socket(mut self, socket: impl Into<PathBuf>) -> Self {
        self.egress_socket = Some(socket.into());
        self
    }
}

/// How a sandboxed command ended.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CommandOutcome {
    /// Exit code reported by bubblewrap: the program's own code, or 128+N
    /// when the program was killed by signal N inside (e.g. 137 after an OOM kill).
    pub exit_code: Option<i32>,
    /// Signal that killed bubblewrap itself (the adapter's kill after a timeout).
    pub signal: Option<i32>,
    /// Standard output, cut at `output_cap`.
    pub stdout: Vec<u8>,
    /// Standard error, cut at `output_cap`.
    pub stderr: Vec<u8>,
    /// The cap that was hit: `memory` (OOM kill), `pids` (fork refused) or
    /// `disk` (workspace file system full), in that order of precedence.
    pub limit: Option<String>,
    /// Whether the wall clock ran out and the adapter killed everything.
    pub timed_out: bool,
    /// Processes the cgroup's OOM killer killed.
    pub oom_kills: u64,
    /// Forks refused by the pids cap.
    pub pids_max_hits: u64,
    /// CPU, peak memory and wall time.
    pub resources: ResourceUsage,
}

impl fmt::Debug for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandOutcome")
            .field("exit_code", &self.exit_code)
            .field("signal", &self.signal)
            .field("stdout", &String::from_utf8_lossy(&self.stdout))
            .field("stderr", &String::from_utf8_lossy(&self.stderr))
            .field("limit", &self.limit)
            .field("timed_out", &self.timed_out)
            .field("oom_kills", &self.oom_kills)
            .field("pids_max_hits", &self.pids_max_hits)
            .field("resources", &self.resources)
            .finish()
    }
}

impl CommandOutcome {
    /// Exit code 0, no timeout, no cap hit.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.limit.is_none()
    }
}

/// The `Sandbox` port on Linux processes: bubblewrap namespaces (user, pid,
/// net, ipc, uts, cgroup, mount), cgroup caps, seccomp, Landlock, a per-run
/// host uid, a loop-mounted disk-capped workspace and a per-run egress proxy.
#[derive(Debug)]
pub struct ProcessSandbox {
    config: ProcessSandboxConfig,
    hierarchy: Hierarchy,
    disable_userns: bool,
    switch_uid: bool,
    uids: Mutex<HashMap<RunId, u32>>,
}

/// A directory removed (recursively) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The sandbox's outermost process and its cgroup. Dropped early (the
/// caller gave up on the future), it kills the process tree, reaps the
/// helper synchronously (an unreaped zombie keeps the cgroup busy) and
/// removes the cgroup.
struct Running {
    child: tokio::process::Child,
    cgroup: Cgroup,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.cgroup.kill_all();
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.cgroup.remove();
    }
}

/// A per-run egress proxy on a Unix socket and its audit (shared with the
/// microVM backend, whose guests reach the same kind of proxy).
#[derive(Debug)]
pub struct RunEgress {
    proxy: EgressProxy,
    audit: Arc<MemoryAudit>,
    /// The socket it listens on.
    pub socket: PathBuf,
}

/// What a run's egress proxy lets through besides its allowlist.
#[derive(Debug, Clone, Copy, Default)]
pub struct EgressSettings<'a> {
    /// The model route (the provider key stays in the proxy).
    pub model: Option<&'a crate::AgentModel>,
    /// The org's own key for this run, replacing the route's.
    pub model_key: Option<&'a SecretString>,
    /// The resolver (system DNS when `None`).
    pub resolver: Option<&'a Arc<dyn userz_egress::Resolver>>,
    /// Exact addresses allowed despite the address policy.
    pub allow_socket_addrs: &'a [std::net::SocketAddr],
}

impl RunEgress {
    /// Starts a proxy on `socket` letting through CONNECTs to `allowlist`
    /// and the settings' model route.
    ///
    /// # Errors
    /// `Invalid` naming a bad setting (`egress.<field>`); `Effect` when it
    /// cannot listen.
    pub async fn start(socket: &Path, allowlist: &[String], settings: EgressSettings<'_>) -> Result<Self> {
        let audit = Arc::new(MemoryAudit::new());
        let mut builder = EgressProxyBuilder::new()
            .with_unix_socket(socket)
            .with_allowed_targets(allowlist.iter().cloned())
            .with_audit(audit.clone());
        if let Some(model) = settings.model {
            let route = match settings.model_key {
                Some(key) => model.route.clone().with_key(key.clone()),
                None => model.route.clone(),
            };
            builder = builder.with_model_route(route);
        }
        if let Some(resolver) = settings.resolver {
            builder = builder.with_resolver(resolver.clone());
        }
        for addr in settings.allow_socket_addrs {
            builder = builder.with_allow_socket_addr(*addr);
        }
        let proxy = builder.start().await.map_err(|e| match e {
            userz_egress::Error::InvalidConfig { field, reason } => Error::Invalid(format!("egress.{field}: {reason}")),
            other => effect(format!("egress proxy: {other}")),
        })?;
        Ok(Self { proxy, audit, socket: socket.to_path_buf() })
    }

    /// Stops the proxy and returns its decisions in order.
    pub async fn finish(self) -> Vec<EgressRecord> {
        self.proxy.shutdown().await;
        self.audit
            .decisions()
            .into_iter()
            .map(|d| EgressRecord { target: d.target, allowed: d.allowed, rule: d.rule.as_str().to_string() })
            .collect()
    }
}

async fn read_capped<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Whether a file system is full for practical purposes: writes fail with
/// `ENOSPC` a little before the last block (metadata, partial chunks), so
/// "full" is less than 2 MiB or 2 % left, whichever is larger.
// The statvfs field types differ between platforms; the casts are no-ops here.
#[allow(clippy::unnecessary_cast)]
fn nearly_full(s: nix::sys::statvfs::Statvfs) -> bool {
    let frsize = s.fragment_size() as u64;
    let total = s.blocks() as u64 * frsize;
    let avail = s.blocks_available() as u64 * frsize;
    avail < (2 << 20).max(total / 50)
}

fn hashed_uid(run: &RunId, base: u32, range: u32) -> u32 {
    let digest = Sha256::digest(run.to_string().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    base + (u64::from_be_bytes(first) % u64::from(range.max(1))) as u32
}

impl ProcessSandbox {
    /// Checks the host (bubblewrap, helper, cgroups) and prepares the state root.
    ///
    /// # Errors
    /// `Unsupported` naming what is missing: bubblewrap, the helper binary,
    /// a cgroup hierarchy with the memory, pids and cpu controllers.
    pub fn new(config: ProcessSandboxConfig) -> Result<Self> {
        if !config.bwrap.is_file() {
            return Err(Error::Unsupported(format!(
                "sandbox.bwrap: bubblewrap not found at {} (install the bubblewrap package)",
                config.bwrap.display()
            )));
        }
        if !config.exec_helper.is_file() {
            return Err(Error::Unsupported(format!(
                "sandbox.exec_helper: userz-sandbox-exec not found at {}",
                config.exec_helper.display()
            )));
        }
        if config.uid_range == 0 || config.uid_base == 0 {
            return Err(Error::Invalid("sandbox.uid_range: uid_base and uid_range must be non-zero".into()));
        }
        let help = std::process::Command::new(&config.bwrap)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Unsupported(format!("sandbox.bwrap: running {}: {e}", config.bwrap.display())))?;
        let disable_userns = String::from_utf8_lossy(&help.stdout).contains("--disable-userns");
        let hierarchy = Hierarchy::detect(&config.cgroup_root)?;
        // 0711: the run uids must traverse to their own binds, not list others.
        mkdir_mode(&config.state_root, 0o711)?;
        let switch_uid = nix::unistd::geteuid().is_root();
        Ok(Self { config, hierarchy, disable_userns, switch_uid, uids: Mutex::new(HashMap::new()) })
    }

    /// The configuration.
    pub fn config(&self) -> &ProcessSandboxConfig {
        &self.config
    }

    fn dirs(&self, run: &RunId) -> RunDirs {
        RunDirs::new(&self.config.state_root, &run.to_string())
    }

    /// The host uid (also used as gid) a run's processes and files get:
    /// `uid_base + hash(run) % uid_range`, moved to the next free uid when
    /// another live run of this process already has it. When not running as
    /// root every run shares the caller's uid (weaker: documented in the README).
    pub fn run_uid(&self, run: &RunId) -> u32 {
        if !self.switch_uid {
            return nix::unistd::geteuid().as_raw();
        }
        let mut uids = self.uids.lock();
        if let Some(uid) = uids.get(run) {
            return *uid;
        }
        let (base, range) = (self.config.uid_base, self.config.uid_range);
        // A workspace allocated by an earlier process keeps its owner.
        let existing = fs::metadata(self.dirs(run).workspace())
            .ok()
            .map(|m| m.uid())
            .filter(|u| (base..base.saturating_add(range)).contains(u));
        let mut uid = existing.unwrap_or_else(|| hashed_uid(run, base, range));
        if existing.is_none() {
            for _ in 0..range {
                if !uids.values().any(|u| *u == uid) {
                    break;
                }
                uid = base + (uid - base + 1) % range;
            }
        }
        uids.insert(*run, uid);
        uid
    }

    /// Runs one command in a fresh sandbox and reports how it ended. Every
    /// process of the sandbox is killed and its cgroup removed before this
    /// returns, and also when the future is dropped.
    ///
    /// # Errors
    /// Only when the sandbox could not be set up (`Unsupported`, `Effect`);
    /// whatever the command does is reported in the [`CommandOutcome`].
    pub async fn run_command(&self, req: CommandRequest) -> Result<CommandOutcome> {
        if req.argv.is_empty() {
            return Err(Error::Invalid("command.argv: empty".into()));
        }
        if !self.switch_uid {
            return self.execute(req).await;
        }
        // The workspace belongs to the host user outside of runs: hand it to the
        // run's uid for the command and back afterwards, on every path (the host
        // reads the commits next, and libgit2 refuses a repository another user
        // owns; nothing stays writable by the run's uid).
        let uid = self.run_uid(&req.run);
        let ws = req.workspace.clone();
        own(&ws, uid, uid).await?;
        let outcome = self.execute(req).await;
        let (host_uid, host_gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        own(&ws, host_uid, host_gid).await?;
        outcome
    }

    async fn execute(&self, req: CommandRequest) -> Result<CommandOutcome> {
        let uid = self.run_uid(&req.run);
        let dirs = self.dirs(&req.run);
        mkdir_mode(&dirs.root, 0o711)?;
        let call_dir = dirs.root.join(format!("call-{}", nonce()));
        mkdir_mode(&call_dir, 0o711)?;
        let _call_guard = RemoveOnDrop(call_dir.clone());
        write_mode(&call_dir.join("passwd"), b"sandbox:x:1000:1000:sandbox:/workspace:/usr/sbin/nologin\n", 0o644)?;
        write_mode(&call_dir.join("group"), b"sandbox:x:1000:\n", 0o644)?;
        write_mode(&call_dir.join("hosts"), b"127.0.0.1 localhost sandbox\n::1 localhost\n", 0o644)?;
        write_mode(&call_dir.join("nsswitch.conf"), b"passwd: files\ngroup: files\nhosts: files\n", 0o644)?;

        let name = format!("{}-{}", req.run, nonce());
        let cgroup = Cgroup::create(&self.hierarchy, &self.config.cgroup_parent, &name, &req.limits)?;
        let host = HostArgs {
            cgroup_procs: cgroup.procs_files(),
            uid: self.switch_uid.then_some(uid),
            gid: self.switch_uid.then_some(uid),
            command: self.bwrap_command(&req, &call_dir),
        };
        let started = Instant::now();
        let child = Command::new(&self.config.exec_helper)
            .args(host.to_args())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| effect(format!("starting {}: {e}", self.config.exec_helper.display())))?;
        let mut running = Running { child, cgroup };
        let cap = self.config.output_cap;
        let stdout = running.child.stdout.take().map(|s| tokio::spawn(read_capped(s, cap)));
        let stderr = running.child.stderr.take().map(|s| tokio::spawn(read_capped(s, cap)));

        let waited = tokio::time::timeout(req.limits.wall_clock, running.child.wait()).await;
        let timed_out = waited.is_err();
        // Whatever is left (daemonised children, the whole tree on timeout) goes now.
        running.cgroup.kill_all();
        let status = match waited {
            Ok(status) => status,
            Err(_) => {
                let _ = running.child.start_kill();
                running.child.wait().await
            }
        }
        .map_err(|e| effect(format!("waiting for the sandbox: {e}")))?;
        let wall_ms = started.elapsed().as_millis() as u64;
        let report = running.cgroup.report();
        running.cgroup.remove();

        let collect = |h: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
            match h {
                Some(h) => tokio::time::timeout(Duration::from_secs(2), h).await.ok().and_then(|r| r.ok()),
                None => None,
            }
            .unwrap_or_default()
        };
        let (stdout, stderr) = (collect(stdout).await, collect(stderr).await);

        use std::os::unix::process::ExitStatusExt;
        let disk_full = nix::sys::statvfs::statvfs(&req.workspace).map(nearly_full).unwrap_or(false);
        let limit = if report.oom_kills > 0 {
            Some("memory")
        } else if report.pids_max_hits > 0 {
            Some("pids")
        } else if disk_full {
            Some("disk")
        } else {
            None
        };
        Ok(CommandOutcome {
            exit_code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            limit: limit.map(str::to_string),
            timed_out,
            oom_kills: report.oom_kills,
            pids_max_hits: report.pids_max_hits,
            resources: ResourceUsage { cpu_ms: report.cpu_ms, peak_memory_bytes: report.peak_memory_bytes, wall_ms },
        })
    }

    /// Like [`run_command`](Self::run_command) behind a fresh egress proxy
    /// (exactly the one [`Sandbox::run`] starts): CONNECT only to
    /// `allowlist`, the configured model route, every decision returned.
    pub async fn run_with_egress(
        &self,
        req: CommandRequest,
        allowlist: &[String],
    ) -> Result<(CommandOutcome, Vec<EgressRecord>)> {
        let dirs = self.dirs(&req.run);
        mkdir_mode(&dirs.root, 0o711)?;
        let dir = dirs.root.join(format!("egress-{}", nonce()));
        mkdir_mode(&dir, 0o711)?;
        let _guard = RemoveOnDrop(dir.clone());
        let egress = self.start_egress(&dir, allowlist, self.run_uid(&req.run), None).await?;
        let req = req.with_egress_socket(egress.socket.clone());
        let outcome = self.run_command(req).await;
        let records = egress.finish().await;
        Ok((outcome?, records))
    }

    async fn start_egress(
        &self,
        dir: &Path,
        allowlist: &[String],
        uid: u32,
        model_key: Option<&SecretString>,
    ) -> Result<RunEgress> {
        let socket = dir.join("egress.sock");
        let settings = EgressSettings {
            model: self.config.model.as_ref(),
            model_key,
            resolver: self.config.resolver.as_ref(),
            allow_socket_addrs: &self.config.egress_allow_socket_addrs,
        };
        let egress = RunEgress::start(&socket, allowlist, settings).await?;
        // Only the run's uid may connect.
        std::os::unix::fs::chown(&socket, Some(uid), Some(uid))
            .and_then(|()| fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)))
            .map_err(|e| effect(format!("egress socket {}: {e}", socket.display())))?;
        Ok(egress)
    }

    /// The bubblewrap command line (program first) for `req`.
    fn bwrap_command(&self, req: &CommandRequest, call_dir: &Path) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![self.config.bwrap.clone().into()];
        let mut push = |args: &[&dyn AsRef<std::ffi::OsStr>]| a.extend(args.iter().map(|s| s.as_ref().to_os_string()));
        let uid = INSIDE_UID.to_string();
        push(&[&"--unshare-all", &"--unshare-user"]);
        if self.disable_userns {
            push(&[&"--disable-userns"]);
        }
        push(&[&"--uid", &uid, &"--gid", &uid, &"--cap-drop", &"ALL", &"--die-with-parent", &"--new-session"]);
        push(&[&"--clearenv"]);
        for (k, v) in SANDBOX_ENV {
            push(&[&"--setenv", &k, &v]);
        }
        push(&[&"--hostname", &"sandbox"]);
        let mut exec_paths: Vec<PathBuf> = Vec::new();
        for dir in SYSTEM_DIRS {
            match fs::symlink_metadata(dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = fs::read_link(dir) {
                        push(&[&"--symlink", &target, &dir]);
                    }
                }
                Ok(m) if m.is_dir() => {
                    push(&[&"--ro-bind", &dir, &dir]);
                    exec_paths.push(dir.into());
                }
                _ => {}
            }
        }
        for entry in ETC_ENTRIES {
            push(&[&"--ro-bind-try", &entry, &entry]);
        }
        for f in ["passwd", "group", "hosts", "nsswitch.conf"] {
            push(&[&"--ro-bind", &call_dir.join(f), &Path::new("/etc").join(f)]);
        }
        let scratch = self.config.scratch_bytes.to_string();
        push(&[&"--proc", &"/proc", &"--dev", &"/dev", &"--size", &scratch, &"--tmpfs", &"/tmp"]);
        push(&[&"--ro-bind", &self.config.exec_helper, &INSIDE_EXEC_HELPER]);
        for b in &req.ro_binds {
            push(&[&"--ro-bind", &b.host, &b.inside]);
        }
        push(&[&"--bind", &req.workspace, &INSIDE_WORKSPACE]);
        let mut write: Vec<PathBuf> =
            ["/workspace", "/tmp", "/dev/null", "/dev/zero", "/dev/full"].map(PathBuf::from).into();
        if let Some(out) = &req.out_dir {
            push(&[&"--bind", &out, &INSIDE_OUT]);
            write.push(INSIDE_OUT.into());
        }
        if let Some(sock) = &req.egress_socket {
            push(&[&"--bind", &sock, &INSIDE_EGRESS_SOCKET]);
            write.push("/run/userz".into());
        }
        push(&[&"--remount-ro", &"/", &"--chdir", &INSIDE_WORKSPACE, &"--"]);

        exec_paths.push("/userz/bin".into());
        let mut read: Vec<PathBuf> = ["/etc", "/proc", "/dev/urandom", "/dev/random"].map(PathBuf::from).into();
        read.extend(req.ro_binds.iter().map(|b| b.inside.clone()));
        let inner = InnerArgs { exec: exec_paths, read, write, command: req.argv.iter().map(OsString::from).collect() };
        a.push(INSIDE_EXEC_HELPER.into());
        a.extend(inner.to_args());
        a
    }
}

/// The failure reason of an agent's stop (`None`: it completed).
pub fn stop_reason(stop: &AgentStop) -> Option<String> {
    match stop {
        AgentStop::Completed => None,
        AgentStop::StepBudget => Some("step budget exhausted".into()),
        AgentStop::TokenBudget => Some("token budget exhausted".into()),
        AgentStop::ModelError { message } => Some(format!("model error: {message}")),
        AgentStop::Failed { reason } => Some(reason.clone()),
    }
}

/// Maps how the command ended and what the agent reported to the port's exit:
/// the wall clock first, then an OOM kill, then the agent's own report, then
/// the other caps, then a missing or unreadable result.
fn sandbox_exit(outcome: &CommandOutcome, result: &std::result::Result<AgentResult, String>) -> SandboxExit {
    if outcome.timed_out {
        return SandboxExit::TimedOut;
    }
    if outcome.oom_kills > 0 {
        return SandboxExit::LimitExceeded { limit: "memory".into() };
    }
    match result {
        Ok(r) if outcome.exit_code == Some(0) || r.stop != AgentStop::Completed => match stop_reason(&r.stop) {
            None => SandboxExit::Completed,
            Some(reason) => SandboxExit::AgentFailed { reason },
        },
        _ if outcome.limit.is_some() => SandboxExit::LimitExceeded { limit: outcome.limit.clone().unwrap_or_default() },
        Ok(_) => SandboxExit::AgentFailed {
            reason: format!("agent reported completion but exited with {:?}", outcome.exit_code),
        },
        Err(e) => SandboxExit::AgentFailed { reason: e.clone() },
    }
}

impl ProcessSandbox {
    /// The agent run proper (workspace already owned by `uid`).
    async fn run_agent(&self, spec: &SandboxSpec, model: &crate::AgentModel, uid: u32) -> Result<SandboxOutcome> {
        let dirs = self.dirs(&spec.run);
        mkdir_mode(&dirs.root, 0o711)?;
        let id = nonce();
        let agent_dir = dirs.root.join(format!("agent-{id}"));
        mkdir_mode(&agent_dir, 0o711)?;
        let _agent_guard = RemoveOnDrop(agent_dir.clone());
        // On the capped image when there is one, so the agent cannot fill the host disk.
        let out_dir = dirs.capped_dir().join(format!("out-{id}"));
        mkdir_mode(&out_dir, 0o700)?;
        let _out_guard = RemoveOnDrop(out_dir.clone());
        std::os::unix::fs::chown(&out_dir, Some(uid), Some(uid))
            .map_err(|e| effect(format!("chown {}: {e}", out_dir.display())))?;

        let route = model.route.route_target();
        let authority =
            if route.port() == 80 { route.host().to_string() } else { format!("{}:{}", route.host(), route.port()) };
        let base_url = match model.api {
            ModelApi::OpenaiCompatible => format!("http://{authority}/v1"),
            ModelApi::Anthropic => format!("http://{authority}"),
        };
        let task = AgentTask {
            run: spec.run,
            system_prompt: spec.system_prompt.clone(),
            prompt: spec.prompt.clone(),
            model: ModelEndpoint {
                api: model.api,
                model: model.model.clone(),
                base_url,
                unix_socket: Some(INSIDE_EGRESS_SOCKET.into()),
                guided: model.guided,
            },
            budget: self.config.budget,
            tools: Vec::new(),
            workspace: INSIDE_WORKSPACE.into(),
            transcript: Path::new(INSIDE_OUT).join("transcript.jsonl"),
            result: Path::new(INSIDE_OUT).join("result.json"),
            author_name: self.config.author_name.clone(),
            author_email: self.config.author_email.clone(),
        };
        let task_path = agent_dir.join("task.json");
        write_mode(&task_path, &serde_json::to_vec_pretty(&task)?, 0o644)?;

        let req = CommandRequest::new(
            spec.run,
            spec.limits,
            &spec.workspace.path,
            vec![INSIDE_AGENT.into(), "--task".into(), INSIDE_TASK.into()],
        )
        .with_ro_bind(&self.config.agent, INSIDE_AGENT)
        .with_ro_bind(&task_path, INSIDE_TASK)
        .with_out_dir(&out_dir);
        let egress = self.start_egress(&agent_dir, &spec.egress_allowlist, uid, spec.model_key.as_ref()).await?;
        let req = req.with_egress_socket(egress.socket.clone());
        let outcome = self.run_command(req).await;
        let records = egress.finish().await;
        let outcome = outcome?;

        let result = read_untrusted(&out_dir.join("result.json"), 1 << 20)
            .map_err(|e| format!("agent result missing or unreadable: {e}"))
            .and_then(|b| {
                serde_json::from_slice::<AgentResult>(&b).map_err(|e| format!("agent result is not valid: {e}"))
            });
        let transcript = read_untrusted(&out_dir.join("transcript.jsonl"), self.config.transcript_cap).ok();
        let mut out = SandboxOutcome::new(sandbox_exit(&outcome, &result));
        if let Ok(r) = result {
            out.usage = r.usage;
        }
        out.transcript = transcript.map(bytes::Bytes::from);
        out.egress = records;
        out.resources = outcome.resources;
        Ok(out)
    }
}

/// Gives the workspace tree to `uid:gid` (`lchown`, symlinks not followed).
async fn own(ws: &Path, uid: u32, gid: u32) -> Result<()> {
    let dir = ws.to_path_buf();
    tokio::task::spawn_blocking(move || disk::hand_over(&dir, uid, gid))
        .await
        .map_err(|e| effect(format!("changing the workspace owner: {e}")))?
        .map_err(|e| effect(format!("handing {} to uid {uid}: {e}", ws.display())))
}

#[async_trait]
impl Sandbox for ProcessSandbox {
    /// The directory belongs to the host user (the VCS step clones into it as
    /// that user); `run` hands it to the run's uid for the agent and back after.
    async fn allocate_workspace(&self, run: RunId, limits: &Limits) -> Result<PathBuf> {
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        disk::allocate(&self.dirs(&run), limits.disk_bytes, uid, gid, self.config.disk_cap).await
    }

    /// Runs `userz-agent --task /userz/task.json` in a fresh sandbox behind a
    /// fresh egress proxy. Everything in the workspace is first given to the
    /// run's uid (`lchown`, symlinks not followed): the checkout was made by
    /// the host. The transcript is copied (at most `transcript_cap`
    /// bytes) to `<state_root>/<run>/transcript-*.jsonl`, which stays until
    /// `release_workspace`: upload it before releasing.
    async fn run(&self, spec: &SandboxSpec) -> Result<SandboxOutcome> {
        let model = self
            .config
            .model
            .as_ref()
            .ok_or_else(|| Error::Unsupported("sandbox.model: no model route configured".into()))?;
        if !spec.workspace.path.is_dir() {
            return Err(Error::Invalid(format!(
                "spec.workspace.path: {} is not a directory",
                spec.workspace.path.display()
            )));
        }
        let uid = self.run_uid(&spec.run);
        // `run_command` hands the workspace to `uid` and back around the run.
        self.run_agent(spec, model, uid).await
    }

    fn describe(&self) -> String {
        "process sandbox (bubblewrap namespaces; runs share the host kernel)".into()
    }

    async fn release_workspace(&self, run: RunId) -> Result<()> {
        disk::release(&self.dirs(&run)).await?;
        self.uids.lock().remove(&run);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use userz_core::ports::sandbox::Usage;

    use super::*;

    fn result(stop: AgentStop) -> std::result::Result<AgentResult, String> {
        Ok(AgentResult { stop, usage: Usage::default(), steps: 1, commits: 0 })
    }

    fn exited(code: i32) -> CommandOutcome {
        CommandOutcome { exit_code: Some(code), ..CommandOutcome::default() }
    }

    #[test]
    fn exit_mapping_prefers_timeout_then_oom_then_the_agent_report() {
        let timed = CommandOutcome { timed_out: true, oom_kills: 1, ..exited(137) };
        assert_eq!(sandbox_exit(&timed, &result(AgentStop::Completed)), SandboxExit::TimedOut);
        let oom = CommandOutcome { oom_kills: 1, limit: Some("memory".into()), ..exited(137) };
        assert_eq!(sandbox_exit(&oom, &Err("none".into())), SandboxExit::LimitExceeded { limit: "memory".into() });
        assert_eq!(sandbox_exit(&exited(0), &result(AgentStop::Completed)), SandboxExit::Completed);
        assert_eq!(
            sandbox_exit(&exited(1), &result(AgentStop::StepBudget)),
            SandboxExit::AgentFailed { reason: "step budget exhausted".into() }
        );
        let pids = CommandOutcome { pids_max_hits: 3, limit: Some("pids".into()), ..exited(1) };
        assert_eq!(sandbox_exit(&pids, &Err("none".into())), SandboxExit::LimitExceeded { limit: "pids".into() });
        assert_eq!(
            sandbox_exit(&exited(2), &Err("agent result missing".into())),
            SandboxExit::AgentFailed { reason: "agent result missing".into() }
        );
        assert!(matches!(sandbox_exit(&exited(3), &result(AgentStop::Completed)), SandboxExit::AgentFailed { .. }));
    }

    #[test]
    fn hashed_uid_stays_in_range_and_is_stable() {
        let run = RunId::new();
        let uid = hashed_uid(&run, 200_000, 65_536);
        assert!((200_000..265_536).contains(&uid));
        assert_eq!(uid, hashed_uid(&run, 200_000, 65_536));
    }
}
