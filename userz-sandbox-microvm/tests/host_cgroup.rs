//! QEMU in a host cgroup where the host offers one: each VM's QEMU process
//! is a member of its own group with the memory, process and CPU caps set,
//! and the group goes with the VM. Runs as root on cgroup v1 hierarchies (or
//! a writable v2 root with the controllers); scripts/test.sh runs it in the
//! root part of the suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use userz_sandbox_microvm::hostcg::HostCgroup;
use userz_sandbox_microvm::vm::{self, VmShape};

fn host_cgroup() -> Option<HostCgroup> {
    let root = Path::new("/sys/fs/cgroup");
    let why = if !nix::unistd::geteuid().is_root() {
        "not root"
    } else if ["memory", "pids", "cpu"].iter().all(|c| root.join(c).join("tasks").exists()) {
        return Some(HostCgroup::V1 { root: root.to_path_buf(), parent: "userz-test-vm".into() });
    } else if std::fs::read_to_string(root.join("cgroup.subtree_control"))
        .map(|c| ["memory", "pids", "cpu"].iter().all(|k| c.contains(k)))
        .unwrap_or(false)
    {
        return Some(HostCgroup::V2(root.join("userz-test-vm")));
    } else {
        "no cgroup hierarchy with the memory, pids and cpu controllers"
    };
    if std::env::var("USERZ_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("skipping: {why} (USERZ_ALLOW_SKIP=1)");
        return None;
    }
    panic!("the host-cgroup test needs root and a cgroup hierarchy: {why}");
}

#[tokio::test]
async fn qemu_runs_in_its_own_capped_host_cgroup_which_goes_with_the_vm() {
    let Some(cg) = host_cgroup() else { return };
    let Some((kernel, modules)) = common::kernel() else {
        panic!("USERZ_VM_KERNEL / USERZ_VM_MODULES are not set (source scripts/services.sh)");
    };
    std::fs::create_dir_all(common::cache_dir()).unwrap();
    let state = tempfile::Builder::new().prefix("cg-").tempdir_in(common::cache_dir()).unwrap();
    let mut config = common::base_config_with(state.path(), kernel, modules);
    config = config.with_host_cgroup(cg).with_accel(userz_sandbox_microvm::Accel::Tcg);
    let sandbox = common::sandbox(config.clone());
    let shape = VmShape { vcpus: 1, memory_mib: 384, disk_bytes: 32 << 20 };
    let booted = vm::boot(&config, &sandbox.image().path, shape, sandbox.accel(), false).await.unwrap();
    let dirs: Vec<PathBuf> = booted.host_cgroups().to_vec();
    assert!(!dirs.is_empty());
    let qemu_pids: Vec<String> =
        dirs.iter().map(|d| std::fs::read_to_string(d.join("cgroup.procs")).unwrap()).collect();
    for procs in &qemu_pids {
        assert_eq!(procs.lines().count(), 1, "QEMU alone in its group: {procs}");
    }
    let limit = |file: &str| dirs.iter().find_map(|d| std::fs::read_to_string(d.join(file)).ok()).unwrap_or_default();
    let memory = if dirs.len() == 1 { limit("memory.max") } else { limit("memory.limit_in_bytes") };
    assert_eq!(memory.trim().parse::<u64>().unwrap(), (384 << 20) + (512 << 20));
    assert_eq!(limit("pids.max").trim(), "256");
    drop(booted);
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}
