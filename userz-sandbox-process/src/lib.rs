//! # userz-sandbox-process
//!
//! The `Sandbox` port of the Userz engine on Linux processes: every agent run
//! (and every [`ProcessSandbox::run_command`]) gets a fresh sandbox built from
//!
//! - **bubblewrap** with new user, pid, net, ipc, uts, cgroup and mount
//!   namespaces, no capabilities, a scrubbed environment, a read-only system,
//!   a private `/proc`, a size-capped `/tmp`, no network device but loopback;
//! - **a per-run host uid** (`uid_base + hash(run) % uid_range`), so runs
//!   cannot touch each other's files even outside their namespaces;
//! - **cgroup caps** (memory without swap, pids, CPU quota) joined by the
//!   helper before bubblewrap starts, so every sandbox process is capped from
//!   birth; the wall clock is enforced from outside;
//! - **Landlock and seccomp** applied by `userz-sandbox-exec inner` right
//!   before the target program: files only where the policy says, no
//!   `ptrace`, mounts, namespaces, module loading, `bpf`, `io_uring` …;
//! - **a loop-mounted ext4 image** of `limits.disk_bytes` holding the workspace;
//! - **a per-run egress proxy** ([`userz_egress`]) on a Unix socket bound at
//!   `/run/userz/egress.sock`: the only way out.
//!
//! ```no_run
//! # async fn demo() -> userz_core::Result<()> {
//! use userz_core::ids::RunId;
//! use userz_core::ports::sandbox::{Limits, Sandbox};
//! use userz_sandbox_process::{CommandRequest, ProcessSandbox, ProcessSandboxConfig};
//!
//! let sandbox = ProcessSandbox::new(ProcessSandboxConfig::new(
//!     "/usr/lib/userz/userz-sandbox-exec",
//!     "/usr/lib/userz/userz-agent",
//! ))?;
//! let run = RunId::new();
//! let limits = Limits { disk_bytes: 64 << 20, ..Limits::default() };
//! let workspace = sandbox.allocate_workspace(run, &limits).await?;
//! let outcome = sandbox
//!     .run_command(CommandRequest::new(run, limits, &workspace, vec!["/bin/true".into()]))
//!     .await?;
//! assert!(outcome.success());
//! sandbox.release_workspace(run).await?;
//! # Ok(()) }
//! ```

mod cgroup;
mod config;
mod disk;
pub mod exec;
mod sandbox;
mod util;

pub use config::{AgentModel, DiskCap, ProcessSandboxConfig};
pub use sandbox::{
    stop_reason, Bind, CommandOutcome, CommandRequest, EgressSettings, ProcessSandbox, RunEgress, INSIDE_AGENT,
    INSIDE_EGRESS_SOCKET, INSIDE_EXEC_HELPER, INSIDE_OUT, INSIDE_TASK, INSIDE_UID, INSIDE_WORKSPACE, SANDBOX_ENV,
};
