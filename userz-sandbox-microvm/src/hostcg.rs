//! QEMU in a host cgroup, where the host offers one: a second fence around
//! the guest (memory, processes, CPU of the QEMU process itself), beside the
//! caps QEMU enforces on the guest.
//!
//! - **cgroup v2**: a directory delegated to the server's user (e.g. a
//!   systemd `Delegate=yes` unit's subtree) with the `memory`, `pids` and
//!   `cpu` controllers enabled for its children.
//! - **cgroup v1**: the `memory`, `pids` and `cpu` hierarchies under a root
//!   (usually `/sys/fs/cgroup`), writable by the server (root).
//!
//! Each VM gets `vm-<name>` under the parent; QEMU is moved in right after it
//! starts (before the guest boots), and the group is removed with the VM.

use std::fs;
use std::path::{Path, PathBuf};

use userz_core::{Error, Result};

/// Where VM cgroups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCgroup {
    /// A cgroup v2 directory whose children may use memory, pids and cpu.
    V2(PathBuf),
    /// cgroup v1: `root/{memory,pids,cpu}/parent/`.
    V1 {
        /// Where the hierarchies are mounted.
        root: PathBuf,
        /// The parent group's relative path.
        parent: String,
    },
}

/// The caps of one VM's QEMU process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuCaps {
    /// Memory of the QEMU process (guest RAM plus QEMU's own).
    pub memory_bytes: u64,
    /// Threads and processes of QEMU.
    pub pids: u32,
    /// CPU in milli-CPUs.
    pub cpu_millis: u32,
}

/// One VM's cgroup(s); removed on drop.
#[derive(Debug)]
pub struct VmCgroup {
    dirs: Vec<PathBuf>,
}

fn setup_err(path: &Path, e: std::io::Error) -> Error {
    Error::Unsupported(format!("microvm.host_cgroup: {}: {e}", path.display()))
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| setup_err(path, e))
}

impl HostCgroup {
    /// Creates `vm-<name>` with `caps`.
    ///
    /// # Errors
    /// `Unsupported` naming the file that could not be written.
    pub fn create(&self, name: &str, caps: QemuCaps) -> Result<VmCgroup> {
        let quota = u64::from(caps.cpu_millis.max(10)) * 100;
        match self {
            HostCgroup::V2(parent) => {
                let dir = parent.join(format!("vm-{name}"));
                fs::create_dir_all(&dir).map_err(|e| setup_err(&dir, e))?;
                let cg = VmCgroup { dirs: vec![dir.clone()] };
                write(&dir.join("memory.max"), &caps.memory_bytes.to_string())?;
                write(&dir.join("pids.max"), &caps.pids.to_string())?;
                write(&dir.join("cpu.max"), &format!("{quota} 100000"))?;
                Ok(cg)
            }
            HostCgroup::V1 { root, parent } => {
                let mut cg = VmCgroup { dirs: Vec::new() };
                for controller in ["memory", "pids", "cpu"] {
                    let dir = root.join(controller).join(parent).join(format!("vm-{name}"));
                    fs::create_dir_all(&dir).map_err(|e| setup_err(&dir, e))?;
                    cg.dirs.push(dir.clone());
                    match controller {
                        "memory" => write(&dir.join("memory.limit_in_bytes"), &caps.memory_bytes.to_string())?,
                        "pids" => write(&dir.join("pids.max"), &caps.pids.to_string())?,
                        _ => {
                            write(&dir.join("cpu.cfs_period_us"), "100000")?;
                            write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                        }
                    }
                }
                Ok(cg)
            }
        }
    }
}

impl VmCgroup {
    /// Moves process `pid` into every group.
    ///
    /// # Errors
    /// `Unsupported` naming the `cgroup.procs` file that refused it.
    pub fn add(&self, pid: u32) -> Result<()> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The group directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for VmCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Empty once QEMU is gone; a group still busy stays (logged by
            // the leftover checks, removed by the next start's sweep).
            let _ = fs::remove_dir(d);
        }
    }
}
