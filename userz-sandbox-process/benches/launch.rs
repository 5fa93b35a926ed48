//! What the sandbox costs per command: `ProcessSandbox::run_command(/bin/true)`
//! (cgroups joined, uid dropped, bubblewrap namespaces, Landlock, seccomp)
//! against the baseline of a bare `bwrap --unshare-all … /bin/true`, both in
//! this process.
//!
//! ```text
//! cargo bench -p userz-sandbox-process --bench launch -- --warm-up-time 1 --measurement-time 5
//! ```
//! Needs root and bubblewrap (`/usr/bin/bwrap`); without them it prints why and
//! measures nothing. The workspace is a plain directory: allocation (the loop
//! mount) is not part of a launch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{Limits, Sandbox};
use userz_sandbox_process::{CommandRequest, DiskCap, ProcessSandbox, ProcessSandboxConfig};

const BWRAP: &str = "/usr/bin/bwrap";

fn bare_bwrap_true() {
    let status = Command::new(BWRAP)
        .args(["--unshare-all", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib"])
        .args(["--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--", "/bin/true"])
        .status()
        .expect("bwrap starts");
    assert!(status.success(), "bare bwrap /bin/true failed");
}

fn launch(c: &mut Criterion) {
    if !nix::unistd::geteuid().is_root() || !Path::new(BWRAP).is_file() {
        eprintln!("launch bench skipped: needs root and {BWRAP}");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let state = tempfile::Builder::new().prefix("userz-launch-bench").tempdir().unwrap();
    let config = ProcessSandboxConfig::new(env!("CARGO_BIN_EXE_userz-sandbox-exec"), "/bin/true")
        .with_bwrap(BWRAP)
        .with_state_root(state.path())
        .with_cgroup_parent("userz-bench")
        .with_disk_cap(DiskCap::Unenforced);
    let sandbox = ProcessSandbox::new(config).unwrap();
    let (run, limits) = (RunId::new(), Limits::default());
    let ws = rt.block_on(sandbox.allocate_workspace(run, &limits)).unwrap();

    let mut group = c.benchmark_group("launch_true");
    group.sample_size(30);
    group.bench_function("bare_bwrap_baseline", |b| b.iter(bare_bwrap_true));
    group.bench_function("run_command", |b| {
        b.iter(|| {
            let req = CommandRequest::new(run, limits, &ws, vec!["/bin/true".into()]);
            let out = rt.block_on(sandbox.run_command(req)).unwrap();
            assert!(out.success(), "{out:?}");
        })
    });
    group.finish();
    rt.block_on(sandbox.release_workspace(run)).unwrap();
}

criterion_group!(benches, launch);
criterion_main!(benches);
