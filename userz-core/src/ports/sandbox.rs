//! The [`Sandbox`] port: one single-use, capped, isolated agent run.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::{OrgId, RunId};
use crate::ports::vcs::Workspace;

/// Resource caps of one run. Defaults are the spec's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPUs (in milli-CPUs: 2000 = 2 CPUs).
    pub cpu_millis: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Disk for the workspace and scratch, in bytes.
    pub disk_bytes: u64,
    /// Maximum number of processes/threads.
    pub pids: u32,
    /// Wall clock, enforced from outside the sandbox.
    pub wall_clock: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
            disk_bytes: 8 << 30,
            pids: 256,
            wall_clock: Duration::from_secs(20 * 60),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The run.
    pub run: RunId,
    /// The org the run belongs to (blob keys of its transcript are per org).
    pub org: OrgId,
    /// The prepared workspace (the only writable place).
    pub workspace: Workspace,
    /// The agent's system text (trusted; says the report is data).
    pub system_prompt: String,
    /// The agent's user prompt: task plus the report inside the untrusted wrapper.
    pub prompt: String,
    /// Caps.
    pub limits: Limits,
    /// Hosts (`host:port`) the egress proxy lets through.
    pub egress_allowlist: Vec<String>,
    /// The org's own model-provider key, decrypted for this run only. The
    /// sandbox hands it to the run's egress proxy (never into the sandbox);
    /// `None`: the deployment's configured key. Zeroized when dropped.
    pub model_key: Option<crate::secret::SecretString>,
}

/// How a run ended inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SandboxExit {
    /// The agent finished.
    Completed,
    /// The agent gave up or failed; `reason` says why.
    AgentFailed {
        /// Why.
        reason: String,
    },
    /// A resource cap was hit.
    LimitExceeded {
        /// Which cap (`memory`, `pids`, `disk`, `cpu`).
        limit: String,
    },
    /// The wall clock ran out.
    TimedOut,
}

/// Usage reported for the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Model provider.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Cost in micro-USD.
    pub cost_micros: u64,
}

/// One decision of the run's egress proxy (G19: denials are audit events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRecord {
    /// What the sandbox asked for (`host:port`, or the model route).
    pub target: String,
    /// Whether it went through.
    pub allowed: bool,
    /// The rule that decided (stable name, e.g. `not_allowlisted`, `denied_address`).
    pub rule: String,
}

/// Resources the sandbox used, read from its cgroup after exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// CPU time in ms.
    pub cpu_ms: u64,
    /// Peak memory in bytes (0 when the backend cannot tell).
    pub peak_memory_bytes: u64,
    /// Wall time in ms.
    pub wall_ms: u64,
}

/// The result of one sandboxed run.
#[derive(Debug, Clone)]
pub struct SandboxOutcome {
    /// How it ended.
    pub exit: SandboxExit,
    /// Token usage and cost.
    pub usage: Usage,
    /// The agent's transcript (JSON lines) as the host read it out of the
    /// sandbox, capped by the backend; untrusted data. The engine stores it
    /// through the `BlobStore` port as the run's transcript.
    pub transcript: Option<bytes::Bytes>,
    /// Egress decisions of the run's proxy, in order.
    pub egress: Vec<EgressRecord>,
    /// Resources used.
    pub resources: ResourceUsage,
}

impl SandboxOutcome {
    /// An outcome with `exit` and nothing else recorded.
    pub fn new(exit: SandboxExit) -> Self {
        Self {
            exit,
            usage: Usage::default(),
            transcript: None,
            egress: Vec::new(),
            resources: ResourceUsage::default(),
        }
    }
}

/// Runs the coding agent in a fresh sandbox.
///
/// # Contract
/// - Each call creates a new sandbox and destroys it before returning, on every
///   path (success, failure, cancellation of the future).
/// - Nothing is shared with other runs or the host except the workspace directory.
/// - Every cap in `limits` is enforced; the wall clock is enforced from outside and
///   reported as `SandboxExit::TimedOut`.
/// - No platform credential enters the sandbox.
/// - `allocate_workspace` returns an empty directory on storage capped at
///   `limits.disk_bytes` (the VCS step clones into it); calling it again for the
///   same run first releases what an earlier (crashed) attempt left.
/// - `release_workspace` removes it; releasing twice, or a run that never
///   allocated, is fine.
#[async_trait]
pub trait Sandbox: Send + Sync + Debug {
    /// Provides the empty, disk-capped directory the run's workspace goes into.
    async fn allocate_workspace(&self, run: RunId, limits: &Limits) -> Result<PathBuf>;
    /// Runs the agent.
    async fn run(&self, spec: &SandboxSpec) -> Result<SandboxOutcome>;
    /// Removes the run's workspace storage.
    async fn release_workspace(&self, run: RunId) -> Result<()>;
    /// Names the backend and its boundary for the run's record (shown on the
    /// run's page), e.g. whether runs share the host kernel.
    fn describe(&self) -> String {
        "sandbox (backend not described)".into()
    }
}
