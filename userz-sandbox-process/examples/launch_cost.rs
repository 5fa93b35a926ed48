//! What a sandbox costs per command: `run_command(/bin/true)` against a bare
//! `bwrap --unshare-all … /bin/true`, medians of N launches each.
//!
//! ```text
//! cargo build -p userz-sandbox-process --bins && \
//!   cargo run -p userz-sandbox-process --example launch_cost -- [N]
//! ```
//! Needs root and bubblewrap. The workspace is a plain directory (no loop
//! mount: allocation is not part of the launch).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use userz_core::ids::RunId;
use userz_core::ports::sandbox::{Limits, Sandbox};
use userz_sandbox_process::{CommandRequest, DiskCap, ProcessSandbox, ProcessSandboxConfig};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    // The helper sits next to the examples directory in the target dir.
    let exe = std::env::current_exe()?;
    let helper: PathBuf = exe.parent().and_then(|p| p.parent()).ok_or("no target dir")?.join("userz-sandbox-exec");
    let state = std::env::temp_dir().join(format!("userz-launch-cost-{}", std::process::id()));
    let config = ProcessSandboxConfig::new(&helper, "/bin/true")
        .with_state_root(&state)
        .with_cgroup_parent("userz-bench")
        .with_disk_cap(DiskCap::Unenforced);
    let sandbox = ProcessSandbox::new(config)?;
    let run = RunId::new();
    let limits = Limits::default();
    let ws = sandbox.allocate_workspace(run, &limits).await?;

    let mut sandboxed = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let out = sandbox.run_command(CommandRequest::new(run, limits, &ws, vec!["/bin/true".into()])).await?;
        sandboxed.push(t.elapsed());
        if !out.success() {
            return Err(format!("sandboxed /bin/true failed: {out:?}").into());
        }
    }
    let mut bare = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let status = std::process::Command::new("/usr/bin/bwrap")
            .args(["--unshare-all", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib"])
            .args(["--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--", "/bin/true"])
            .status()?;
        bare.push(t.elapsed());
        if !status.success() {
            return Err("bare bwrap /bin/true failed".into());
        }
    }
    sandbox.release_workspace(run).await?;
    let _ = std::fs::remove_dir_all(&state);
    let (s, b) = (median(sandboxed), median(bare));
    println!("run_command(/bin/true): median {s:?} over {n}");
    println!("bare bwrap --unshare-all /bin/true: median {b:?} over {n}");
    println!("ratio: {:.1}x", s.as_secs_f64() / b.as_secs_f64());
    Ok(())
}
