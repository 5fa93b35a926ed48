//! Configuration of a [`MicroVmSandbox`](crate::MicroVmSandbox).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use userz_core::agent::AgentBudget;
use userz_core::ports::sandbox::Limits;
use userz_egress::Resolver;
pub use userz_sandbox_process::AgentModel;

/// How QEMU executes the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// KVM when `/dev/kvm` can be opened **and** actually boots the guest
    /// (probed once per kernel and image, the answer cached in the state
    /// root), TCG otherwise.
    #[default]
    Auto,
    /// Hardware virtualization (`-accel kvm -cpu host`).
    Kvm,
    /// Software emulation (`-accel tcg -cpu max`): slower, needs nothing.
    Tcg,
}

impl Accel {
    /// The QEMU name.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Settings of a [`MicroVmSandbox`](crate::MicroVmSandbox). Start from
/// [`MicroVmConfig::new`].
#[derive(Clone)]
pub struct MicroVmConfig {
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// The guest kernel (a bzImage; Debian's `linux-image-cloud-amd64`).
    pub kernel: PathBuf,
    /// The guest kernel's modules (`/lib/modules/<release>`), for the virtio drivers.
    pub modules_dir: PathBuf,
    /// The guest init (`userz-vm-init`).
    pub init: PathBuf,
    /// The agent (`userz-agent`); also exports the result pack in the guest.
    pub agent: PathBuf,
    /// More binaries for `/userz/bin` (tests add the escape probe).
    pub extra_binaries: Vec<PathBuf>,
    /// `mkfs.ext4` (builds workspace images in user space).
    pub mkfs: PathBuf,
    /// Per-VM and per-run state.
    pub state_root: PathBuf,
    /// Where the built image and the accelerator answer are cached
    /// (`None`: `state_root`).
    pub cache_dir: Option<PathBuf>,
    /// KVM or TCG.
    pub accel: Accel,
    /// A host cgroup for each VM's QEMU process, where the host offers one
    /// (`None`: QEMU runs in the server's own group).
    pub host_cgroup: Option<crate::hostcg::HostCgroup>,
    /// Pre-booted VMs kept ready (0 disables the pool). A pool VM serves
    /// exactly one run and is destroyed after it.
    pub pool_size: usize,
    /// The caps pool VMs are booted with; a run with other caps boots cold.
    pub pool_limits: Limits,
    /// Guest RAM on top of `limits.memory_bytes` for the guest kernel, the
    /// image and the init (the run's own cgroup is capped at
    /// `limits.memory_bytes` inside).
    pub memory_overhead_bytes: u64,
    /// Size of the guest's scratch `/tmp` (guest RAM).
    pub scratch_bytes: u64,
    /// How long a boot may take before it counts as failed.
    pub boot_timeout: Duration,
    /// Bytes of stdout and of stderr kept per run.
    pub output_cap: usize,
    /// Bytes of the transcript brought back.
    pub transcript_cap: u64,
    /// Bytes of the result pack accepted.
    pub pack_cap: usize,
    /// The model route; `None` makes `Sandbox::run` refuse with `Unsupported`.
    pub model: Option<AgentModel>,
    /// Budgets written into the agent's task.
    pub budget: AgentBudget,
    /// Commit author name given to the agent.
    pub author_name: String,
    /// Commit author email given to the agent.
    pub author_email: String,
    /// Resolver the egress proxy uses (system DNS when `None`).
    pub resolver: Option<Arc<dyn Resolver>>,
    /// Exact socket addresses the egress proxy may reach despite the address policy.
    pub egress_allow_socket_addrs: Vec<SocketAddr>,
}

impl fmt::Debug for MicroVmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MicroVmConfig")
            .field("qemu", &self.qemu)
            .field("kernel", &self.kernel)
            .field("modules_dir", &self.modules_dir)
            .field("state_root", &self.state_root)
            .field("accel", &self.accel)
            .field("pool_size", &self.pool_size)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// The first of `names` found on `PATH`, then in `extra` directories.
pub fn find_program(names: &[&str], extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(extra.iter().map(PathBuf::from)).collect::<Vec<_>>();
    names.iter().flat_map(|n| dirs.iter().map(move |d| d.join(n))).find(|p| p.is_file())
}

impl MicroVmConfig {
    /// Defaults: QEMU and `mkfs.ext4` from `PATH` (or `/usr/sbin`), state
    /// under `/var/tmp/userz-microvm`, `Accel::Auto`, no pool, 256 MiB RAM
    /// overhead, 512 MiB scratch, a 60 s boot timeout, no model route.
    pub fn new(
        kernel: impl Into<PathBuf>,
        modules_dir: impl Into<PathBuf>,
        init: impl Into<PathBuf>,
        agent: impl Into<PathBuf>,
    ) -> Self {
        Self {
            qemu: find_program(&["qemu-system-x86_64"], &["/usr/bin"])
                .unwrap_or_else(|| PathBuf::from("/usr/bin/qemu-system-x86_64")),
            kernel: kernel.into(),
            modules_dir: modules_dir.into(),
            init: init.into(),
            agent: agent.into(),
            extra_binaries: Vec::new(),
            mkfs: find_program(&["mkfs.ext4", "mke2fs"], &["/usr/sbin", "/sbin"])
                .unwrap_or_else(|| PathBuf::from("/usr/sbin/mkfs.ext4")),
            state_root: PathBuf::from("/var/tmp/userz-microvm"),
            cache_dir: None,
            accel: Accel::Auto,
            host_cgroup: None,
            pool_size: 0,
            pool_limits: Limits::default(),
            memory_overhead_bytes: 256 << 20,
            scratch_bytes: 512 << 20,
            boot_timeout: Duration::from_secs(60),
            output_cap: 1 << 20,
            transcript_cap: 64 << 20,
            pack_cap: 128 << 20,
            model: None,
            budget: AgentBudget::default(),
            author_name: "Userz Agent".into(),
            author_email: "agent@userz.invalid".into(),
            resolver: None,
            egress_allow_socket_addrs: Vec::new(),
        }
    }

    /// The guest kernel's release, from the modules directory's name.
    pub fn kernel_release(&self) -> String {
        self.modules_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// The cache directory (image, accelerator answer).
    pub fn cache(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| self.state_root.clone())
    }

    /// Sets the state root.
    pub fn with_state_root(mut self, path: impl AsRef<Path>) -> Self {
        self.state_root = path.as_ref().to_path_buf();
        self
    }

    /// Sets the accelerator.
    pub fn with_accel(mut self, accel: Accel) -> Self {
        self.accel = accel;
        self
    }

    /// Puts each VM's QEMU process in a host cgroup under `cg`.
    pub fn with_host_cgroup(mut self, cg: crate::hostcg::HostCgroup) -> Self {
        self.host_cgroup = Some(cg);
        self
    }

    /// Sets the warm pool size (0 disables it).
    pub fn with_pool(mut self, size: usize, limits: Limits) -> Self {
        self.pool_size = size;
        self.pool_limits = limits;
        self
    }

    /// Adds a binary to `/userz/bin`.
    pub fn with_extra_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_binaries.push(path.into());
        self
    }

    /// Sets the scratch `/tmp` size.
    pub fn with_scratch_bytes(mut self, bytes: u64) -> Self {
        self.scratch_bytes = bytes;
        self
    }

    /// Sets the model route.
    pub fn with_model(mut self, model: AgentModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Sets the agent's budgets.
    pub fn with_budget(mut self, budget: AgentBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Sets the egress proxy's resolver.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Lets the egress proxy reach `addr` despite the address policy.
    pub fn with_egress_allow_socket_addr(mut self, addr: SocketAddr) -> Self {
        self.egress_allow_socket_addrs.push(addr);
        self
    }
}
