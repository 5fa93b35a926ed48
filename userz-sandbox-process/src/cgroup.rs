//! One cgroup per sandboxed command, on cgroup v1 (one directory per
//! controller) or v2 (one directory), with the run's caps written before any
//! sandbox process exists.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use userz_core::ports::sandbox::Limits;
use userz_core::{Error, Result};

use crate::util::effect;

/// CFS period used for the CPU quota (100 ms).
const CPU_PERIOD_US: u64 = 100_000;

/// Which hierarchy the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hierarchy {
    /// cgroup v1: `<root>/<controller>/…` per controller.
    V1 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// cgroup v2 mounted at `root` with the memory, pids and cpu controllers.
    V2 {
        /// Usually `/sys/fs/cgroup` (or `/sys/fs/cgroup/unified` on hybrid hosts).
        root: PathBuf,
    },
}

impl Hierarchy {
    /// Finds a usable hierarchy under `root`: pure v2 first, then v1 controllers,
    /// then a hybrid host's v2 mount if it carries the controllers.
    pub(crate) fn detect(root: &Path) -> Result<Self> {
        let v2_has_controllers = |dir: &Path| {
            fs::read_to_string(dir.join("cgroup.controllers"))
                .map(|c| ["memory", "pids", "cpu"].iter().all(|want| c.split_whitespace().any(|h| h == *want)))
                .unwrap_or(false)
        };
        if root.join("cgroup.controllers").exists() {
            if v2_has_controllers(root) {
                return Ok(Self::V2 { root: root.to_path_buf() });
            }
            return Err(Error::Unsupported(format!(
                "cgroup v2 at {} lacks one of the memory, pids, cpu controllers",
                root.display()
            )));
        }
        if ["memory", "pids", "cpu"].iter().all(|c| root.join(c).join("cgroup.procs").exists()) {
            return Ok(Self::V1 { root: root.to_path_buf() });
        }
        let unified = root.join("unified");
        if v2_has_controllers(&unified) {
            return Ok(Self::V2 { root: unified });
        }
        Err(Error::Unsupported(format!(
            "no cgroup hierarchy with the memory, pids and cpu controllers under {}",
            root.display()
        )))
    }
}

/// What the cgroup recorded about the command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CgroupReport {
    /// CPU time in ms.
    pub(crate) cpu_ms: u64,
    /// Peak memory in bytes (0 when the kernel does not say).
    pub(crate) peak_memory_bytes: u64,
    /// Processes killed by the cgroup's OOM killer.
    pub(crate) oom_kills: u64,
    /// Times a fork was refused by `pids.max`.
    pub(crate) pids_max_hits: u64,
}

#[derive(Debug)]
enum Dirs {
    V1 { memory: PathBuf, pids: PathBuf, cpu: PathBuf, cpuacct: Option<PathBuf> },
    V2 { dir: PathBuf },
}

/// A live cgroup. Dropping it kills whatever is left inside and removes it.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Dirs,
    removed: bool,
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| effect(format!("cgroup: writing {value:?} to {}: {e}", path.display())))
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`memory.events`, `cpu.stat`, …).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    read(path)?.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok()).flatten()
    })
}

fn mkdir_new(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| effect(format!("cgroup: creating {}: {e}", parent.display())))?;
    }
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(Error::Unsupported(format!(
            "cgroup: no permission to create {} (run as root or delegate the cgroup parent)",
            dir.display()
        ))),
        Err(e) => Err(effect(format!("cgroup: creating {}: {e}", dir.display()))),
    }
}

impl Cgroup {
    /// Creates `<parent>/<name>` and writes the caps of `limits` into it.
    pub(crate) fn create(hierarchy: &Hierarchy, parent: &str, name: &str, limits: &Limits) -> Result<Self> {
        let cpu_quota = (u64::from(limits.cpu_millis) * CPU_PERIOD_US / 1000).max(1000);
        match hierarchy {
            Hierarchy::V1 { root } => {
                let memory = root.join("memory").join(parent).join(name);
                let pids = root.join("pids").join(parent).join(name);
                let cpu = root.join("cpu").join(parent).join(name);
                let same = |a: &str, b: &str| matches!((fs::canonicalize(root.join(a)), fs::canonicalize(root.join(b))), (Ok(x), Ok(y)) if x == y);
                let cpuacct = (root.join("cpuacct").exists() && !same("cpu", "cpuacct"))
                    .then(|| root.join("cpuacct").join(parent).join(name));
                // The value is built before any directory exists so a failing
                // mkdir below still leaves `Drop` something consistent to remove.
                let cg = Self { dirs: Dirs::V1 { memory, pids, cpu, cpuacct }, removed: false };
                let Dirs::V1 { memory, pids, cpu, cpuacct } = &cg.dirs else { unreachable!("built just above") };
                for d in [memory, pids, cpu].into_iter().chain(cpuacct) {
                    mkdir_new(d)?;
                }
                write(&memory.join("memory.limit_in_bytes"), &limits.memory_bytes.to_string())?;
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &limits.memory_bytes.to_string())?;
                }
                let swappiness = memory.join("memory.swappiness");
                if swappiness.exists() {
                    // Best effort: without memsw accounting this keeps the cap from spilling to swap.
                    let _ = fs::write(&swappiness, "0");
                }
                write(&pids.join("pids.max"), &limits.pids.to_string())?;
                write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &cpu_quota.to_string())?;
                Ok(cg)
            }
            Hierarchy::V2 { root } => {
                // Controllers must be enabled on every level from the root down
                // to the parent for the new group to get the interface files.
                let mut level = root.clone();
                let mut levels = vec![level.clone()];
                for part in Path::new(parent).components() {
                    level = level.join(part);
                    levels.push(level.clone());
                }
                for l in &levels {
                    mkdir_new(l)?;
                    write(&l.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
                }
                let dir = level.join(name);
                let cg = Self { dirs: Dirs::V2 { dir }, removed: false };
                let Dirs::V2 { dir } = &cg.dirs else { unreachable!("built just above") };
                mkdir_new(dir)?;
                write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                write(&dir.join("pids.max"), &limits.pids.to_string())?;
                write(&dir.join("cpu.max"), &format!("{cpu_quota} {CPU_PERIOD_US}"))?;
                Ok(cg)
            }
        }
    }

    /// The `cgroup.procs` files a process writes itself into to join.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        match &self.dirs {
            Dirs::V1 { memory, pids, cpu, cpuacct } => {
                [memory, pids, cpu].into_iter().chain(cpuacct).map(|d| d.join("cgroup.procs")).collect()
            }
            Dirs::V2 { dir } => vec![dir.join("cgroup.procs")],
        }
    }

    fn members_file(&self) -> PathBuf {
        match &self.dirs {
            Dirs::V1 { pids, .. } => pids.join("cgroup.procs"),
            Dirs::V2 { dir } => dir.join("cgroup.procs"),
        }
    }

    fn members(&self) -> Vec<i32> {
        read(&self.members_file())
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills every process in the cgroup and waits (up to ~2 s) until it is empty.
    ///
    /// On v2 `cgroup.kill` does this atomically. On v1 the member list is read
    /// and signalled until it stays empty; `pids.max` bounds how fast a fork
    /// loop can refill it. Returns whether the cgroup ended up empty.
    pub(crate) fn kill_all(&self) -> bool {
        if let Dirs::V2 { dir } = &self.dirs {
            let _ = fs::write(dir.join("cgroup.kill"), "1");
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = self.members();
            if pids.is_empty() {
                return true;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if Instant::now() > deadline {
                tracing::warn!(cgroup = %self.members_file().display(), "processes survived SIGKILL");
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads CPU time, peak memory and the limit events.
    pub(crate) fn report(&self) -> CgroupReport {
        match &self.dirs {
            Dirs::V1 { memory, pids, cpu, cpuacct } => {
                let acct = cpuacct.as_ref().unwrap_or(cpu);
                let oom_kills = keyed(&memory.join("memory.oom_control"), "oom_kill").unwrap_or(0);
                CgroupReport {
                    cpu_ms: read_u64(&acct.join("cpuacct.usage")).unwrap_or(0) / 1_000_000,
                    peak_memory_bytes: read_u64(&memory.join("memory.max_usage_in_bytes")).unwrap_or(0),
                    oom_kills,
                    pids_max_hits: keyed(&pids.join("pids.events"), "max").unwrap_or(0),
                }
            }
            Dirs::V2 { dir } => CgroupReport {
                cpu_ms: keyed(&dir.join("cpu.stat"), "usage_usec").unwrap_or(0) / 1000,
                peak_memory_bytes: read_u64(&dir.join("memory.peak")).unwrap_or(0),
                oom_kills: keyed(&dir.join("memory.events"), "oom_kill").unwrap_or(0),
                pids_max_hits: keyed(&dir.join("pids.events"), "max").unwrap_or(0),
            },
        }
    }

    fn dirs(&self) -> Vec<&Path> {
        match &self.dirs {
            Dirs::V1 { memory, pids, cpu, cpuacct } => {
                [memory, pids, cpu].into_iter().chain(cpuacct).map(PathBuf::as_path).collect()
            }
            Dirs::V2 { dir } => vec![dir.as_path()],
        }
    }

    /// Kills what is left and removes the directories (retrying while the
    /// kernel still holds exiting tasks). Best effort; logs what stays.
    pub(crate) fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        self.kill_all();
        for dir in self.dirs() {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() > deadline => {
                        tracing::warn!(cgroup = %dir.display(), error = %e, "cgroup left behind");
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keyed_reads_flat_keyed_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("memory.events");
        fs::write(&f, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n").unwrap();
        assert_eq!(keyed(&f, "oom_kill"), Some(2));
        assert_eq!(keyed(&f, "oom"), Some(1));
        assert_eq!(keyed(&f, "missing"), None);
    }

    #[test]
    fn detect_prefers_pure_v2_and_requires_its_controllers() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        assert_eq!(Hierarchy::detect(dir.path()).unwrap(), Hierarchy::V2 { root: dir.path().to_path_buf() });
        fs::write(dir.path().join("cgroup.controllers"), "cpuset io\n").unwrap();
        assert!(matches!(Hierarchy::detect(dir.path()), Err(Error::Unsupported(m)) if m.contains("lacks")));
    }

    fn limits() -> Limits {
        Limits { cpu_millis: 500, memory_bytes: 128 << 20, pids: 32, ..Limits::default() }
    }

    fn text(p: PathBuf) -> String {
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn v2_group_gets_controllers_on_every_level_and_the_caps() {
        // A plain directory stands in for the cgroup2 mount: the files the
        // kernel would offer are created by the writes (swap only if present).
        let root = tempfile::tempdir().unwrap();
        let h = Hierarchy::V2 { root: root.path().to_path_buf() };
        let group = root.path().join("userz/runs/g1");
        fs::create_dir_all(&group).unwrap();
        fs::write(group.join("memory.swap.max"), "max").unwrap();
        let cg = Cgroup::create(&h, "userz/runs", "g1", &limits()).unwrap();
        for level in ["", "userz", "userz/runs"] {
            assert_eq!(text(root.path().join(level).join("cgroup.subtree_control")), "+memory +pids +cpu");
        }
        assert_eq!(text(group.join("memory.max")), (128u64 << 20).to_string());
        assert_eq!(text(group.join("memory.swap.max")), "0");
        assert_eq!(text(group.join("pids.max")), "32");
        assert_eq!(text(group.join("cpu.max")), "50000 100000");
        assert_eq!(cg.procs_files(), vec![group.join("cgroup.procs")]);
        fs::write(group.join("cpu.stat"), "usage_usec 2500000\nuser_usec 1\n").unwrap();
        fs::write(group.join("memory.peak"), "4096\n").unwrap();
        fs::write(group.join("memory.events"), "low 0\noom 1\noom_kill 1\n").unwrap();
        fs::write(group.join("pids.events"), "max 4\n").unwrap();
        let report = cg.report();
        assert_eq!(report, CgroupReport { cpu_ms: 2500, peak_memory_bytes: 4096, oom_kills: 1, pids_max_hits: 4 });
        // Not a real cgroup: its directory cannot be rmdir'ed while holding files.
        std::mem::forget(cg);
    }

    #[test]
    fn v1_groups_per_controller_get_the_caps() {
        let root = tempfile::tempdir().unwrap();
        let h = Hierarchy::V1 { root: root.path().to_path_buf() };
        for c in ["memory", "pids", "cpu", "cpuacct"] {
            fs::create_dir_all(root.path().join(c).join("userz/g1")).unwrap();
        }
        fs::write(root.path().join("memory/userz/g1/memory.memsw.limit_in_bytes"), "max").unwrap();
        let cg = Cgroup::create(&h, "userz", "g1", &limits()).unwrap();
        let dir = |c: &str| root.path().join(c).join("userz/g1");
        assert_eq!(text(dir("memory").join("memory.limit_in_bytes")), (128u64 << 20).to_string());
        assert_eq!(text(dir("memory").join("memory.memsw.limit_in_bytes")), (128u64 << 20).to_string());
        assert_eq!(text(dir("pids").join("pids.max")), "32");
        assert_eq!(text(dir("cpu").join("cpu.cfs_quota_us")), "50000");
        assert_eq!(text(dir("cpu").join("cpu.cfs_period_us")), "100000");
        // cpuacct is a separate hierarchy here, so it is joined too.
        assert_eq!(cg.procs_files().len(), 4);
        fs::write(dir("cpuacct").join("cpuacct.usage"), "3000000000").unwrap();
        fs::write(dir("memory").join("memory.max_usage_in_bytes"), "8192").unwrap();
        fs::write(dir("memory").join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        fs::write(dir("pids").join("pids.events"), "max 0\n").unwrap();
        assert_eq!(cg.report(), CgroupReport { cpu_ms: 3000, peak_memory_bytes: 8192, oom_kills: 2, pids_max_hits: 0 });
        std::mem::forget(cg);
    }

    #[test]
    fn detect_finds_v1_controllers_and_hybrid_unified() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Hierarchy::detect(dir.path()), Err(Error::Unsupported(_))));
        fs::create_dir_all(dir.path().join("unified")).unwrap();
        fs::write(dir.path().join("unified/cgroup.controllers"), "memory pids cpu").unwrap();
        assert_eq!(Hierarchy::detect(dir.path()).unwrap(), Hierarchy::V2 { root: dir.path().join("unified") });
        for c in ["memory", "pids", "cpu"] {
            fs::create_dir_all(dir.path().join(c)).unwrap();
            fs::write(dir.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        assert_eq!(Hierarchy::detect(dir.path()).unwrap(), Hierarchy::V1 { root: dir.path().to_path_buf() });
    }
}
