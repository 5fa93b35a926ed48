//! Start latency of the microVM sandbox, in one run, on the same kernel and
//! image:
//! - `bare_boot`: a bare `qemu-system-x86_64` of the guest kernel and the
//!   sandbox's image until the init prints its first line on the serial
//!   console (no devices beyond the console, no control channel);
//! - `cold`: from the call to `run_guest` (a claimed run) to the first line
//!   the agent prints (`userz-agent --version`), on a freshly booted guest
//!   (boot, workspace image, task, the agent's own start-up);
//! - `warm`: the same on a guest from the warm pool (the refill boot between
//!   iterations is not timed).
//!
//! Needs QEMU and the guest kernel (`USERZ_VM_KERNEL`, `USERZ_VM_MODULES`, from
//! `scripts/services.sh`'s `svc_install_microvm`) and the guest binaries
//! `userz-agent` and `userz-vm-init` (`USERZ_BIN_DIR`, an absolute path, default
//! `target/debug`: `cargo build --bins`; `target/release` for release
//! binaries). Without
//! them it prints why and measures nothing.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use userz_core::ids::RunId;
use userz_core::ports::sandbox::Limits;
use userz_sandbox_microvm::{Accel, GuestRequest, MicroVmConfig, MicroVmSandbox};

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("USERZ_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/release/deps/microvm_start-HASH → target/debug
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    exe.ancestors().nth(3).map(|t| t.join("debug")).unwrap_or_else(|| PathBuf::from("target/debug"))
}

fn limits() -> Limits {
    Limits {
        cpu_millis: 1000,
        memory_bytes: 256 << 20,
        disk_bytes: 64 << 20,
        pids: 64,
        wall_clock: Duration::from_secs(60),
    }
}

struct Setup {
    rt: tokio::runtime::Runtime,
    cold: MicroVmSandbox,
    warm: MicroVmSandbox,
    workspace: PathBuf,
    _state: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    let (Some(kernel), Some(modules)) = (std::env::var_os("USERZ_VM_KERNEL"), std::env::var_os("USERZ_VM_MODULES"))
    else {
        eprintln!(
            "microvm_start: USERZ_VM_KERNEL / USERZ_VM_MODULES are not set (source scripts/services.sh); skipping"
        );
        return None;
    };
    let bins = bin_dir();
    for b in ["userz-agent", "userz-vm-init"] {
        if !bins.join(b).is_file() {
            eprintln!("microvm_start: {} is missing (cargo build --bins); skipping", bins.join(b).display());
            return None;
        }
    }
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let config = |dir: &str| {
        MicroVmConfig::new(&kernel, &modules, bins.join("userz-vm-init"), bins.join("userz-agent"))
            .with_state_root(state.path().join(dir))
            .with_scratch_bytes(16 << 20)
    };
    let (cold, warm) = rt.block_on(async {
        let cold = MicroVmSandbox::new(config("cold")).await.unwrap_or_else(|e| panic!("{e}"));
        let warm = MicroVmSandbox::new(config("warm").with_pool(1, limits())).await.unwrap_or_else(|e| panic!("{e}"));
        (cold, warm)
    });
    let workspace = state.path().join("ws");
    std::fs::create_dir_all(&workspace).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(workspace.join("README.md"), "bench\n").unwrap_or_else(|e| panic!("{e}"));
    Some(Setup { rt, cold, warm, workspace, _state: state })
}

fn request(s: &Setup) -> GuestRequest {
    let argv = vec!["/userz/bin/userz-agent".into(), "--version".into()];
    GuestRequest::new(RunId::new(), limits(), &s.workspace, argv)
}

/// A bare QEMU boot of the same kernel and image until the init's first line.
fn bare_boot(s: &Setup) -> Duration {
    let c = s.cold.config();
    let accel = match s.cold.accel() {
        Accel::Kvm => "kvm",
        _ => "tcg",
    };
    let started = Instant::now();
    let mut child = Command::new(&c.qemu)
        .args(["-M", "q35", "-accel", accel, "-m", "512M", "-nodefaults", "-no-user-config", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio", "-kernel"])
        .arg(&c.kernel)
        .arg("-initrd")
        .arg(&s.cold.image().path)
        .args(["-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("qemu: {e}"));
    let out = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    // Raw lines: firmware output need not be UTF-8.
    let needle = b"userz-vm-init: started";
    let found = BufReader::new(out)
        .split(b'\n')
        .map_while(Result::ok)
        .any(|line| line.windows(needle.len()).any(|w| w == needle));
    assert!(found, "the bare guest never reached its init");
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

/// The median of `v` (sorted in place).
fn p50(v: &mut [Duration]) -> Duration {
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

fn bench(c: &mut Criterion) {
    let Some(s) = setup() else { return };
    // Every timed start, for the medians and ratios printed at the end.
    let (bare, cold, warm) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()), RefCell::new(Vec::new()));
    let mut g = c.benchmark_group("microvm_start");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    g.bench_function("bare_boot", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let d = bare_boot(&s);
                    bare.borrow_mut().push(d);
                    d
                })
                .sum()
        })
    });
    g.bench_function("cold", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let o = s.rt.block_on(s.cold.run_guest(request(&s))).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(o.exit_code(), Some(0), "{:?}", o.output);
                    let d = o.first_output.unwrap_or_else(|| panic!("no output: {:?}", o.output));
                    cold.borrow_mut().push(d);
                    d
                })
                .sum()
        })
    });
    g.bench_function("warm", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    // The pool's refill is not part of a run's start.
                    s.rt.block_on(s.warm.fill_pool()).unwrap_or_else(|e| panic!("{e}"));
                    let o = s.rt.block_on(s.warm.run_guest(request(&s))).unwrap_or_else(|e| panic!("{e}"));
                    assert!(o.warm && o.exit_code() == Some(0), "{:?}", o.output);
                    let d = o.first_output.unwrap_or_else(|| panic!("no output: {:?}", o.output));
                    warm.borrow_mut().push(d);
                    d
                })
                .sum()
        })
    });
    g.finish();
    let (bare, cold, warm) = (p50(&mut bare.borrow_mut()), p50(&mut cold.borrow_mut()), p50(&mut warm.borrow_mut()));
    eprintln!(
        "microvm_start p50 ({}, guest binaries from {}): bare boot {bare:?}, cold {cold:?} ({:.2}x the bare boot; goal <= 1.3x), \
         warm {warm:?} (goal <= 50 ms)",
        s.cold.accel().as_str(),
        bin_dir().display(),
        cold.as_secs_f64() / bare.as_secs_f64().max(f64::EPSILON),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
