//! # userz-sandbox-microvm
//!
//! The `Sandbox` port on QEMU: every run gets a brand-new guest with **its own
//! kernel**, so an exploit of the kernel by the agent or its tools reaches
//! that guest and nothing else. The control plane needs no privilege: QEMU
//! runs as the server's own user (KVM only when `/dev/kvm` is usable and
//! actually boots the guest; software emulation, TCG, otherwise).
//!
//! - **Image**: an initramfs built reproducibly from the project's own
//!   binaries ([`image`]): the Rust init (`userz-vm-init`), `userz-agent`,
//!   their shared libraries and the guest kernel's virtio modules. No shell,
//!   no package manager; the init remounts it read-only.
//! - **Inside**: the program runs as uid 1000 with no capabilities,
//!   `no_new_privs`, the same seccomp filter as the process backend, in a
//!   cgroup capped at `limits.pids`, `limits.memory_bytes` and
//!   `limits.cpu_millis`; `/proc` hides other users' processes.
//! - **Caps from outside**: vCPUs (`limits.cpu_millis` rounded up), guest RAM
//!   (`limits.memory_bytes` plus `memory_overhead_bytes` for the kernel and
//!   image), the workspace disk's size (`limits.disk_bytes`) and the wall
//!   clock (the host kills QEMU).
//! - **Network**: none. The guest has no network device; its only way out
//!   is the `userz.egress` virtio-serial port, whose streams the init
//!   accepts on `/run/userz/egress.sock` inside (the same socket the agent
//!   uses under the process backend) and the host relays, one connection
//!   per stream, to the run's egress proxy. No secret enters the guest: the
//!   proxy adds the model key; the host clones and pushes.
//! - **Files**: the host never mounts a file system the guest wrote. The
//!   workspace goes in as an ext4 image made by `mkfs.ext4 -d` in user
//!   space; the result comes back over the control channel ([`protocol`]) as
//!   a git pack of the run's commits, indexed and checked in user space
//!   (`userz_git::import_result_pack`) before the guardrails read it.
//! - **Host cgroup** ([`hostcg`]): where the host offers one
//!   (`MicroVmConfig::host_cgroup`, v2 delegated or v1), QEMU itself runs in a
//!   per-VM group capping its memory, processes and CPU.
//! - **Warm pool**: `pool_size` guests booted ahead; each serves exactly one
//!   run and is destroyed after it. Before it reports ready, a pool guest
//!   rehearses a run on a blank file system (mount, hand-over, the caps,
//!   the agent's `--version`), so that under TCG the code a run goes
//!   through is already translated; nothing of the run exists yet and
//!   nothing of the rehearsal stays. In every guest the program's
//!   *launcher* (the init, already confined in the run's cgroup as the
//!   run's uid) is started before the task arrives, and the guest sets the
//!   task up while the host writes the workspace image. A claimed pool
//!   guest's replacement boots once the program printed (at most 0.5 s after
//!   it started), not beside its start.
//!
//! The host needs `qemu-system-x86_64`, `mkfs.ext4` and a guest kernel with
//! its modules (`scripts/services.sh` installs QEMU and unpacks Debian's
//! `linux-image-cloud-amd64` without installing it).
//!
//! ```no_run
//! # async fn demo() -> userz_core::Result<()> {
//! use userz_core::ports::Sandbox;
//! use userz_sandbox_microvm::{MicroVmConfig, MicroVmSandbox};
//!
//! let config = MicroVmConfig::new(
//!     "/var/cache/userz/kernel/vmlinuz-6.1.0-57-cloud-amd64",
//!     "/var/cache/userz/kernel/modules/6.1.0-57-cloud-amd64",
//!     "/usr/lib/userz/userz-vm-init",
//!     "/usr/lib/userz/userz-agent",
//! )
//! .with_state_root("/var/lib/userz/microvm")
//! .with_pool(1, Default::default());
//! let sandbox = MicroVmSandbox::new(config).await?; // builds the image, settles KVM or TCG
//! sandbox.fill_pool().await?;
//! println!("{}", sandbox.describe());
//! # Ok(()) }
//! ```

pub mod accel;
pub mod config;
pub mod hostcg;
pub mod image;
pub mod protocol;
pub mod sandbox;
pub mod vm;

pub use config::{Accel, AgentModel, MicroVmConfig};
pub use sandbox::{GuestOutcome, GuestRequest, MicroVmSandbox, GUEST_UID, INSIDE_EGRESS_SOCKET};
