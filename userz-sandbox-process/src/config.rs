//! Configuration of a [`ProcessSandbox`](crate::ProcessSandbox).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use userz_core::agent::{AgentBudget, ModelApi};
use userz_egress::{ModelRoute, Resolver};

/// How `allocate_workspace` caps the workspace's disk use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskCap {
    /// A sparse ext4 image of `limits.disk_bytes`, loop-mounted (needs root
    /// and loop devices; `allocate_workspace` fails with `Unsupported` without them).
    #[default]
    LoopMount,
    /// A plain directory under the state root: **the disk cap is not
    /// enforced** (only the scratch `/tmp` stays size-capped). For hosts
    /// without loop devices; weaker, so it must be chosen explicitly.
    Unenforced,
}

/// The model the agent talks to, through the run's egress proxy.
#[derive(Debug, Clone)]
pub struct AgentModel {
    /// Wire format the agent speaks.
    pub api: ModelApi,
    /// Model id.
    pub model: String,
    /// The proxy's model route (holds the provider key; the key never enters
    /// the sandbox: the task file only names the route host).
    pub route: ModelRoute,
    /// Guided turns for small models (`ModelEndpoint::guided`).
    pub guided: bool,
}

/// Settings of a [`ProcessSandbox`](crate::ProcessSandbox). Start from
/// [`ProcessSandboxConfig::new`] and adjust with the `with_*` methods.
#[derive(Clone)]
pub struct ProcessSandboxConfig {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// The `userz-sandbox-exec` binary of this crate (host and inner helper).
    pub exec_helper: PathBuf,
    /// The agent binary (`userz-agent`), bound read-only at `/userz/bin/userz-agent`.
    pub agent: PathBuf,
    /// Per-run state (images, mounts, sockets): `<state_root>/<run>/`.
    pub state_root: PathBuf,
    /// Where cgroup hierarchies are mounted.
    pub cgroup_root: PathBuf,
    /// Parent cgroup (relative) under which each command gets its own group.
    pub cgroup_parent: String,
    /// First host uid (and gid) given to runs.
    pub uid_base: u32,
    /// Number of host uids runs are spread over (run id hash modulo this).
    pub uid_range: u32,
    /// Size cap of the sandbox's `/tmp` (a tmpfs, also charged to the memory cap).
    pub scratch_bytes: u64,
    /// How the workspace disk cap is enforced.
    pub disk_cap: DiskCap,
    /// Bytes of stdout and of stderr kept per command (the rest is drained and dropped).
    pub output_cap: usize,
    /// Bytes of the agent's transcript copied out (the rest is cut).
    pub transcript_cap: u64,
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
    /// Exact socket addresses the egress proxy may reach despite the address
    /// policy (e.g. a model server on loopback).
    pub egress_allow_socket_addrs: Vec<SocketAddr>,
}

impl fmt::Debug for ProcessSandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessSandboxConfig")
            .field("bwrap", &self.bwrap)
            .field("exec_helper", &self.exec_helper)
            .field("agent", &self.agent)
            .field("state_root", &self.state_root)
            .field("cgroup_root", &self.cgroup_root)
            .field("cgroup_parent", &self.cgroup_parent)
            .field("uid_base", &self.uid_base)
            .field("uid_range", &self.uid_range)
            .field("scratch_bytes", &self.scratch_bytes)
            .field("disk_cap", &self.disk_cap)
            .field("model", &self.model)
            .field("egress_allow_socket_addrs", &self.egress_allow_socket_addrs)
            .finish_non_exhaustive()
    }
}

impl ProcessSandboxConfig {
    /// Defaults: `/usr/bin/bwrap`, state under `/var/lib/userz/sandboxes`,
    /// cgroups under `/sys/fs/cgroup` in `userz/`, uids from 200000 over
    /// 65536, 512 MiB scratch, loop-mounted disk cap, no model route.
    pub fn new(exec_helper: impl Into<PathBuf>, agent: impl Into<PathBuf>) -> Self {
        Self {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            exec_helper: exec_helper.into(),
            agent: agent.into(),
            state_root: PathBuf::from("/var/lib/userz/sandboxes"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            cgroup_parent: "userz".into(),
            uid_base: 200_000,
            uid_range: 65_536,
            scratch_bytes: 512 << 20,
            disk_cap: DiskCap::LoopMount,
            output_cap: 1 << 20,
            transcript_cap: 64 << 20,
            model: None,
            budget: AgentBudget::default(),
            author_name: "Userz Agent".into(),
            author_email: "agent@userz.invalid".into(),
            resolver: None,
            egress_allow_socket_addrs: Vec::new(),
        }
    }

    /// Sets the bubblewrap binary.
    pub fn with_bwrap(mut self, path: impl Into<PathBuf>) -> Self {
        self.bwrap = path.into();
        self
    }

    /// Sets the state root.
    pub fn with_state_root(mut self, path: impl AsRef<Path>) -> Self {
        self.state_root = path.as_ref().to_path_buf();
        self
    }

    /// Sets the cgroup parent (relative to each hierarchy's root).
    pub fn with_cgroup_parent(mut self, parent: impl Into<String>) -> Self {
        self.cgroup_parent = parent.into();
        self
    }

    /// Sets the host uid range runs are spread over.
    pub fn with_uid_range(mut self, base: u32, range: u32) -> Self {
        self.uid_base = base;
        self.uid_range = range;
        self
    }

    /// Sets the `/tmp` size cap.
    pub fn with_scratch_bytes(mut self, bytes: u64) -> Self {
        self.scratch_bytes = bytes;
        self
    }

    /// Sets how the disk cap is enforced.
    pub fn with_disk_cap(mut self, cap: DiskCap) -> Self {
        self.disk_cap = cap;
        self
    }

    /// Sets the model route the agent uses.
    pub fn with_model(mut self, model: AgentModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Sets the agent's budgets.
    pub fn with_budget(mut self, budget: AgentBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Sets the resolver of the egress proxy.
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
