//! The two halves of `userz-sandbox-exec`.
//!
//! - `host`: runs on the host as root, joins the command's cgroups (so every
//!   sandbox process is capped from birth), drops to the run's uid and gid,
//!   sets no-new-privs and `exec`s bubblewrap.
//! - `inner`: the first program inside bubblewrap; applies a Landlock ruleset
//!   (best effort by kernel ABI) and a seccomp filter, then `exec`s the target.
//!
//! Both are plain argument lists so the adapter builds them without a shell:
//!
//! ```text
//! userz-sandbox-exec host  [--cgroup-procs FILE]... [--uid N --gid N] -- PROGRAM ARGS...
//! userz-sandbox-exec inner [--exec PATH]... [--read PATH]... [--write PATH]... -- PROGRAM ARGS...
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    ABI,
};
use nix::libc;
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Arguments of `host` mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostArgs {
    /// `cgroup.procs` files to join.
    pub cgroup_procs: Vec<PathBuf>,
    /// Uid to drop to.
    pub uid: Option<u32>,
    /// Gid to drop to.
    pub gid: Option<u32>,
    /// The program (bubblewrap) and its arguments.
    pub command: Vec<OsString>,
}

/// Arguments of `inner` mode: the Landlock policy and the target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InnerArgs {
    /// Paths that may be read and executed.
    pub exec: Vec<PathBuf>,
    /// Paths that may be read.
    pub read: Vec<PathBuf>,
    /// Paths that may be read and written (never executed).
    pub write: Vec<PathBuf>,
    /// The target program and its arguments.
    pub command: Vec<OsString>,
}

fn split_command(args: Vec<OsString>) -> Result<(Vec<OsString>, Vec<OsString>), String> {
    let pos = args.iter().position(|a| a == "--").ok_or("missing `--` before the program")?;
    let mut opts = args;
    let command = opts.split_off(pos + 1);
    opts.pop();
    if command.is_empty() {
        return Err("no program after `--`".into());
    }
    Ok((opts, command))
}

fn pairs(opts: Vec<OsString>) -> Result<Vec<(String, OsString)>, String> {
    let mut it = opts.into_iter();
    let mut out = Vec::new();
    while let Some(flag) = it.next() {
        let flag = flag.into_string().map_err(|f| format!("bad flag {f:?}"))?;
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        out.push((flag, value));
    }
    Ok(out)
}

fn number(flag: &str, v: OsString) -> Result<u32, String> {
    v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| format!("{flag}: not a number: {v:?}"))
}

impl HostArgs {
    /// Parses the arguments after `host`.
    pub fn parse(args: Vec<OsString>) -> Result<Self, String> {
        let (opts, command) = split_command(args)?;
        let mut out = Self { command, ..Self::default() };
        for (flag, value) in pairs(opts)? {
            match flag.as_str() {
                "--cgroup-procs" => out.cgroup_procs.push(value.into()),
                "--uid" => out.uid = Some(number(&flag, value)?),
                "--gid" => out.gid = Some(number(&flag, value)?),
                _ => return Err(format!("unknown host flag {flag}")),
            }
        }
        Ok(out)
    }

    /// The argument list (after the binary) that [`HostArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["host".into()];
        for p in &self.cgroup_procs {
            a.extend(["--cgroup-procs".into(), p.clone().into()]);
        }
        if let Some(uid) = self.uid {
            a.extend(["--uid".into(), uid.to_string().into()]);
        }
        if let Some(gid) = self.gid {
            a.extend(["--gid".into(), gid.to_string().into()]);
        }
        a.push("--".into());
        a.extend(self.command.iter().cloned());
        a
    }

    /// Joins the cgroups, drops privileges and `exec`s the command. Returns
    /// only on failure.
    pub fn run(self) -> String {
        for procs in &self.cgroup_procs {
            // "0" is the writing process itself, on v1 and v2 alike.
            if let Err(e) = std::fs::write(procs, "0") {
                return format!("joining cgroup {}: {e}", procs.display());
            }
        }
        if let (Some(uid), Some(gid)) = (self.uid, self.gid) {
            let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
            if let Err(e) = setgroups(&[]) {
                return format!("setgroups: {e}");
            }
            if let Err(e) = setresgid(gid, gid, gid) {
                return format!("setresgid: {e}");
            }
            if let Err(e) = setresuid(uid, uid, uid) {
                return format!("setresuid: {e}");
            }
            if setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok() {
                return "privileges were not dropped".into();
            }
        }
        if let Err(e) = nix::sys::prctl::set_no_new_privs() {
            return format!("no_new_privs: {e}");
        }
        let Some((program, rest)) = self.command.split_first() else {
            return "no program".into();
        };
        let err = Command::new(program).args(rest).env_clear().env("PATH", "/usr/bin:/bin").exec();
        format!("exec {program:?}: {err}")
    }
}

impl InnerArgs {
    /// Parses the arguments after `inner`.
    pub fn parse(args: Vec<OsString>) -> Result<Self, String> {
        let (opts, command) = split_command(args)?;
        let mut out = Self { command, ..Self::default() };
        for (flag, value) in pairs(opts)? {
            match flag.as_str() {
                "--exec" => out.exec.push(value.into()),
                "--read" => out.read.push(value.into()),
                "--write" => out.write.push(value.into()),
                _ => return Err(format!("unknown inner flag {flag}")),
            }
        }
        Ok(out)
    }

    /// The argument list (after the binary) that [`InnerArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["inner".into()];
        for (flag, paths) in [("--exec", &self.exec), ("--read", &self.read), ("--write", &self.write)] {
            for p in paths {
                a.extend([flag.into(), p.clone().into()]);
            }
        }
        a.push("--".into());
        a.extend(self.command.iter().cloned());
        a
    }

    /// Applies Landlock and seccomp, then `exec`s the target. Returns only on failure.
    pub fn run(self) -> String {
        if let Err(e) = self.landlock() {
            return format!("landlock: {e}");
        }
        if let Err(e) = apply_seccomp() {
            return format!("seccomp: {e}");
        }
        let Some((program, rest)) = self.command.split_first() else {
            return "no program".into();
        };
        // Only the scrubbed set goes on (bubblewrap adds `PWD` after `--clearenv`).
        let env: Vec<_> = std::env::vars_os().filter(|(k, _)| SANDBOX_ENV_NAMES.iter().any(|n| k == n)).collect();
        let err = Command::new(program).args(rest).env_clear().envs(env).exec();
        format!("exec {program:?}: {err}")
    }

    /// Restricts the file system to the policy's paths and, where the kernel
    /// supports it, forbids TCP bind/connect, abstract Unix sockets and
    /// signals outside the sandbox. Best effort by ABI: an older kernel
    /// enforces what it knows.
    fn landlock(&self) -> Result<RulesetStatus, landlock::RulesetError> {
        let abi = ABI::V6;
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        let exec = read | AccessFs::Execute;
        let write = AccessFs::from_all(abi) & !AccessFs::Execute;
        let status = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))?
            .handle_access(AccessNet::from_all(abi))?
            .scope(Scope::AbstractUnixSocket | Scope::Signal)?
            .create()?
            .add_rules(path_beneath_rules(&self.exec, exec))?
            .add_rules(path_beneath_rules(&self.read, read))?
            .add_rules(path_beneath_rules(&self.write, write))?
            .restrict_self()?;
        Ok(status.ruleset)
    }
}

/// The environment variables the target program gets (values set by bubblewrap).
pub const SANDBOX_ENV_NAMES: [&str; 3] = ["PATH", "HOME", "LANG"];

/// `clone` flags that create namespaces (`CLONE_NEWTIME` shares its bit with
/// the exit signal in `clone`, so it is only reachable through `clone3`,
/// which is refused as a whole).
const CLONE_NEW_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Syscalls refused with `EPERM` whatever their arguments.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_quotactl,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_vhangup,
];

fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("{}: {e}", std::env::consts::ARCH))
}

/// The seccomp programs `inner` installs: (1) default allow, `EPERM` for a
/// fixed list of dangerous syscalls (see the crate README), namespace-creating
/// `clone` and `personality` changes; (2) `clone3` answers `ENOSYS` so libc
/// falls back to `clone`, whose flags filter (1) can inspect.
pub fn seccomp_programs() -> Result<Vec<BpfProgram>, String> {
    let e = |e: seccompiler::BackendError| e.to_string();
    let arch = target_arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
    let clone_rules = CLONE_NEW_FLAGS
        .iter()
        .map(|&flag| {
            let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)?;
            SeccompRule::new(vec![cond])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    rules.insert(libc::SYS_clone, clone_rules);
    // personality(0) and personality(0xffffffff) (a query) stay allowed; any
    // other persona (e.g. READ_IMPLIES_EXEC) is refused.
    let persona = SeccompRule::new(vec![
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, 0).map_err(e)?,
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, 0xffff_ffff).map_err(e)?,
    ])
    .map_err(e)?;
    rules.insert(libc::SYS_personality, vec![persona]);
    let deny =
        SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch).map_err(e)?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(e)?;
    let mut programs = vec![BpfProgram::try_from(deny).map_err(e)?, BpfProgram::try_from(clone3).map_err(e)?];
    if arch == TargetArch::x86_64 {
        programs.push(deny_x32());
    }
    Ok(programs)
}

/// On x86_64 the x32 ABI reaches the same kernel with syscall numbers
/// offset by `__X32_SYSCALL_BIT` and the same audit arch, so a number-keyed
/// deny list would not see them: refuse every x32 syscall outright.
fn deny_x32() -> BpfProgram {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const OFFSET_NR: u32 = 0; // seccomp_data.nr
    const OFFSET_ARCH: u32 = 4; // seccomp_data.arch
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let ins = |code, jt, jf, k| seccompiler::sock_filter { code, jt, jf, k };
    vec![
        ins(LD_W_ABS, 0, 0, OFFSET_ARCH),
        // Another arch: the first program already kills it; allow here.
        ins(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        ins(LD_W_ABS, 0, 0, OFFSET_NR),
        ins(JGE_K, 0, 1, X32_SYSCALL_BIT),
        ins(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
        ins(RET_K, 0, 0, RET_ALLOW),
    ]
}

/// Installs [`seccomp_programs`] on the calling thread (inherited across `exec`).
pub fn apply_seccomp() -> Result<(), String> {
    for program in seccomp_programs()? {
        seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn host_args_round_trip() {
        let a = HostArgs {
            cgroup_procs: vec!["/sys/fs/cgroup/pids/userz/x/cgroup.procs".into()],
            uid: Some(200_001),
            gid: Some(200_001),
            command: os(&["/usr/bin/bwrap", "--", "--odd"]),
        };
        let args = a.to_args();
        assert_eq!(args[0], "host");
        assert_eq!(HostArgs::parse(args[1..].to_vec()).unwrap(), a);
    }

    #[test]
    fn inner_args_round_trip_and_refuse_missing_program() {
        let a = InnerArgs {
            exec: vec!["/usr".into()],
            read: vec!["/etc".into()],
            write: vec!["/workspace".into()],
            command: os(&["/userz/bin/x", "--task", "t"]),
        };
        let args = a.to_args();
        assert_eq!(InnerArgs::parse(args[1..].to_vec()).unwrap(), a);
        assert!(InnerArgs::parse(os(&["--exec", "/usr", "--"])).unwrap_err().contains("no program"));
        assert!(InnerArgs::parse(os(&["--exec", "/usr"])).unwrap_err().contains("--"));
        assert!(InnerArgs::parse(os(&["--bogus", "x", "--", "p"])).unwrap_err().contains("unknown"));
    }

    #[test]
    fn seccomp_programs_compile() {
        let programs = seccomp_programs().unwrap();
        assert_eq!(programs.len(), if std::env::consts::ARCH == "x86_64" { 3 } else { 2 });
        assert!(programs.iter().all(|p| !p.is_empty()));
    }
}
