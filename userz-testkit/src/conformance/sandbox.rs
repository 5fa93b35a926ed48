//! [`Sandbox`] conformance: the escape suite and the port contract.
//!
//! Every escape check runs `userz-escape-probe` (a binary of this crate,
//! found with [`probe_binary`]) inside a real sandbox of the backend under
//! test, asserts the attempt failed and that the run still ended with an
//! outcome (not an error). The contract checks drive the port itself:
//! allocation, release, cleanup when the caller gives up, the disk cap.
//!
//! A backend implements [`SandboxBackend`] (a sandbox per [`SandboxSetup`])
//! and [`SandboxUnderTest`] (the few host-side views the checks need), then
//! runs every check with [`sandbox_conformance_tests!`](crate::sandbox_conformance_tests)
//! (one `#[tokio::test]` per check) or [`run_all`]. What a backend cannot do
//! it states in [`SandboxCapabilities`]; a check waived by a flag says so on
//! stderr, never silently.

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use userz_core::ids::RunId;
use userz_core::ports::sandbox::{EgressRecord, Limits, ResourceUsage, Sandbox};
use userz_core::Error;

/// Where the backend must make the probe executable inside the sandbox.
pub const PROBE_INSIDE: &str = "/userz/bin/userz-escape-probe";

/// The size of the scratch `/tmp` every backend under test is configured with.
pub const SCRATCH_BYTES: u64 = 16 << 20;

/// The host path of the `userz-escape-probe` binary (built with this crate's
/// binaries: `cargo build --bins -p userz-testkit`).
pub fn probe_binary() -> PathBuf {
    crate::bins::workspace_bin("userz-escape-probe")
}

/// What a backend cannot do.
#[derive(Debug, Clone, Copy)]
pub struct SandboxCapabilities {
    /// Each run gets its own kernel (a microVM). `false`: runs share the host
    /// kernel, so the host kernel's attack surface (ptrace, mount, new
    /// namespaces, module loading) is the boundary and every check of it runs.
    /// `true` waives those four checks: inside a guest they touch only the
    /// run's own kernel.
    pub kernel_isolation: bool,
    /// The run writes the host's workspace directory in place (a bind
    /// mount). `false` (a microVM): the host never mounts what the run
    /// wrote, so a write inside must succeed **and** leave the host's
    /// directory untouched (results come back only as checked git packs),
    /// and runs need no distinct host uids (the VM is the boundary).
    pub shared_workspace: bool,
}

/// How the suite wants a sandbox configured, beyond the backend's defaults
/// (which must include a scratch `/tmp` of [`SCRATCH_BYTES`]).
#[derive(Debug, Clone, Default)]
pub struct SandboxSetup {
    /// Extra names the egress proxy resolves (e.g. a rebinding name).
    pub resolve: Vec<(String, IpAddr)>,
    /// A loopback address the egress proxy may reach when allowlisted (the
    /// positive control of the address rules).
    pub egress_except: Option<SocketAddr>,
    /// A model-provider key the run's egress proxy holds; it must never be
    /// visible inside.
    pub model_key: Option<String>,
}

/// Starts sandboxes of the backend under test.
pub trait SandboxBackend: Send + Sync {
    /// A sandbox configured as `setup` says; `None` when this host cannot run
    /// the backend and the environment allows skipping (`USERZ_ALLOW_SKIP=1`);
    /// otherwise a host that cannot run it panics naming what is missing.
    fn start(&self, setup: SandboxSetup) -> Option<Box<dyn SandboxUnderTest>>;
}

/// One sandbox of the backend under test, with the host-side views the
/// checks need.
#[async_trait]
pub trait SandboxUnderTest: Send + Sync {
    /// The port.
    fn port(&self) -> Arc<dyn Sandbox>;
    /// A host directory outside every workspace (the backend's state root):
    /// world-readable files planted here must stay invisible inside.
    fn host_dir(&self) -> &Path;
    /// The host uid a run's processes (and its workspace files, during a run)
    /// belong to.
    fn run_uid(&self, run: RunId) -> u32;
    /// The only `argv[0]`s a run may show in its process list (the backend's
    /// init and [`PROBE_INSIDE`]).
    fn own_processes(&self) -> Vec<String>;
    /// Host resources (cgroups, VMs …) of `run` still present.
    fn leftovers(&self, run: RunId) -> Vec<PathBuf>;
    /// Bytes the host holds for `run`'s workspace storage.
    fn workspace_host_bytes(&self, run: RunId) -> u64;
    /// Allocates a workspace for a fresh run; released (best effort,
    /// synchronously) when the returned guard drops, even on a panic.
    async fn allocate(&self, limits: &Limits) -> TestRun;
    /// Runs the probe with `args` in a fresh sandbox over `run`'s workspace.
    async fn probe(&self, run: &TestRun, limits: Limits, args: &[&str]) -> ProbeOutcome;
    /// Like [`probe`](Self::probe) behind a fresh egress proxy letting
    /// through `allowlist` only; returns every egress decision too.
    async fn probe_with_egress(
        &self,
        run: &TestRun,
        limits: Limits,
        args: &[&str],
        allowlist: &[String],
    ) -> (ProbeOutcome, Vec<EgressRecord>);
}

/// A run's allocated workspace; its cleanup runs on drop.
pub struct TestRun {
    /// The run.
    pub run: RunId,
    /// The host path of its workspace.
    pub workspace: PathBuf,
    cleanup: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl TestRun {
    /// A run whose storage `cleanup` releases.
    pub fn new(run: RunId, workspace: PathBuf, cleanup: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self { run, workspace, cleanup: Some(Box::new(cleanup)) }
    }
}

impl fmt::Debug for TestRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRun").field("run", &self.run).field("workspace", &self.workspace).finish()
    }
}

impl Drop for TestRun {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup();
        }
    }
}

/// How one probe run ended.
#[derive(Clone, Default)]
pub struct ProbeOutcome {
    /// The probe's exit code (128+N when signal N killed it inside).
    pub exit_code: Option<i32>,
    /// Whether the wall clock ran out.
    pub timed_out: bool,
    /// Standard output (the verdict lines).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// The cap that was hit (`memory`, `pids`, `disk`).
    pub limit: Option<String>,
    /// Forks refused by the pids cap.
    pub pids_max_hits: u64,
    /// CPU, peak memory and wall time.
    pub resources: ResourceUsage,
}

impl fmt::Debug for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeOutcome")
            .field("exit_code", &self.exit_code)
            .field("timed_out", &self.timed_out)
            .field("stdout", &String::from_utf8_lossy(&self.stdout))
            .field("stderr", &String::from_utf8_lossy(&self.stderr))
            .field("limit", &self.limit)
            .field("pids_max_hits", &self.pids_max_hits)
            .field("resources", &self.resources)
            .finish()
    }
}

/// Small caps so a check that breaks out of one fails fast.
pub fn limits() -> Limits {
    Limits {
        cpu_millis: 1000,
        memory_bytes: 256 << 20,
        disk_bytes: 64 << 20,
        pids: 64,
        wall_clock: Duration::from_secs(20),
    }
}

/// The probe's verdict lines.
pub fn verdicts(outcome: &ProbeOutcome) -> Vec<Value> {
    String::from_utf8_lossy(&outcome.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("probe printed {l:?}: {e}")))
        .collect()
}

/// The single verdict of a probe that must have run to its end, asserted
/// not to have escaped.
#[track_caller]
pub fn contained(outcome: &ProbeOutcome, verdicts: &[Value]) -> Value {
    assert_eq!(
        outcome.exit_code,
        Some(0),
        "probe failed: {outcome:?} stderr={}",
        String::from_utf8_lossy(&outcome.stderr)
    );
    assert!(!outcome.timed_out, "{outcome:?}");
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    let v = verdicts[0].clone();
    assert_eq!(v["escaped"], Value::Bool(false), "ESCAPED: {v}");
    v
}

async fn probe(h: &dyn SandboxUnderTest, run: &TestRun, limits: Limits, args: &[&str]) -> (ProbeOutcome, Vec<Value>) {
    let outcome = h.probe(run, limits, args).await;
    let v = verdicts(&outcome);
    (outcome, v)
}

/// Whether `check` is waived for a backend with its own kernel (said on stderr).
fn waived_by_kernel_isolation(check: &str, caps: &SandboxCapabilities) -> bool {
    if caps.kernel_isolation {
        eprintln!("sandbox conformance: {check} waived (kernel_isolation: the run has its own kernel)");
    }
    caps.kernel_isolation
}

fn ok<T>(r: std::io::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path {p:?}"))
}

/// Every check, in one go (a backend may instead expand
/// [`sandbox_conformance_tests!`](crate::sandbox_conformance_tests) for one
/// test per check).
pub async fn run_all(b: &dyn SandboxBackend, caps: &SandboxCapabilities) {
    true_runs_and_leaves_no_cgroup(b, caps).await;
    reading_etc_shadow_fails(b, caps).await;
    another_runs_workspace_is_out_of_reach(b, caps).await;
    host_env_secret_is_invisible_and_env_is_scrubbed(b, caps).await;
    writes_outside_the_workspace_fail_and_inside_succeed(b, caps).await;
    planted_symlink_to_a_host_file_is_not_followed(b, caps).await;
    ptrace_is_refused(b, caps).await;
    mounting_is_refused(b, caps).await;
    new_namespaces_are_refused(b, caps).await;
    kernel_modules_cannot_be_loaded(b, caps).await;
    direct_network_is_unreachable(b, caps).await;
    egress_refuses_unlisted_loopback_private_and_rebinding_targets(b, caps).await;
    egress_control_an_allowlisted_excepted_target_goes_through(b, caps).await;
    fork_bomb_hits_the_pids_cap(b, caps).await;
    memory_bomb_is_oom_killed_inside(b, caps).await;
    cpu_spin_is_throttled_to_the_quota(b, caps).await;
    disk_fill_stops_at_the_cap(b, caps).await;
    scratch_tmp_is_size_capped(b, caps).await;
    sleeping_past_the_deadline_is_killed(b, caps).await;
    process_list_shows_only_the_sandbox(b, caps).await;
    identity_has_no_privileges(b, caps).await;
    files_in_the_workspace_cannot_be_executed(b, caps).await;
    model_key_and_repo_token_are_not_found_inside_during_a_run(b, caps).await;
    allocate_again_releases_leftovers_and_release_is_idempotent(b, caps).await;
    too_small_disk_cap_is_refused_with_the_field(b, caps).await;
    dropping_the_run_future_kills_the_sandbox_and_removes_its_cgroup(b, caps).await;
}

/// One `#[tokio::test]` per sandbox check, for a backend's
/// `tests/conformance.rs`: `sandbox_conformance_tests!(backend, caps);` where
/// `backend` is a [`SandboxBackend`] expression and `caps` its
/// [`SandboxCapabilities`]. The test names are the checks' names.
#[macro_export]
macro_rules! sandbox_conformance_tests {
    ($backend:expr, $caps:expr $(,)?) => {
        $crate::sandbox_conformance_tests!(@each $backend, $caps;
            true_runs_and_leaves_no_cgroup,
            reading_etc_shadow_fails,
            another_runs_workspace_is_out_of_reach,
            host_env_secret_is_invisible_and_env_is_scrubbed,
            writes_outside_the_workspace_fail_and_inside_succeed,
            planted_symlink_to_a_host_file_is_not_followed,
            ptrace_is_refused,
            mounting_is_refused,
            new_namespaces_are_refused,
            kernel_modules_cannot_be_loaded,
            direct_network_is_unreachable,
            egress_refuses_unlisted_loopback_private_and_rebinding_targets,
            egress_control_an_allowlisted_excepted_target_goes_through,
            fork_bomb_hits_the_pids_cap,
            memory_bomb_is_oom_killed_inside,
            cpu_spin_is_throttled_to_the_quota,
            disk_fill_stops_at_the_cap,
            scratch_tmp_is_size_capped,
            sleeping_past_the_deadline_is_killed,
            process_list_shows_only_the_sandbox,
            identity_has_no_privileges,
            files_in_the_workspace_cannot_be_executed,
            model_key_and_repo_token_are_not_found_inside_during_a_run,
            allocate_again_releases_leftovers_and_release_is_idempotent,
            too_small_disk_cap_is_refused_with_the_field,
            dropping_the_run_future_kills_the_sandbox_and_removes_its_cgroup,
        );
    };
    (@each $backend:expr, $caps:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::conformance::sandbox::$check(&$backend, &$caps).await;
            }
        )*
    };
}

/// A plain probe run reports its identity and leaves no host resource behind.
pub async fn true_runs_and_leaves_no_cgroup(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, verdicts) = probe(h.as_ref(), &run, limits(), &["status"]).await;
    eprintln!("{outcome:?}\n{}", String::from_utf8_lossy(&outcome.stderr));
    let v = contained(&outcome, &verdicts);
    assert_eq!(v["detail"]["uid"], "1000");
    assert!(h.leftovers(run.run).is_empty());
}

/// `/etc/shadow` cannot be read.
pub async fn reading_etc_shadow_fails(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["read", "/etc/shadow"]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["error"].is_string(), "{v}");
}

/// Nothing is shared with other runs: run A can neither list nor read run
/// B's workspace, and runs have distinct host uids.
pub async fn another_runs_workspace_is_out_of_reach(b: &dyn SandboxBackend, caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let a = h.allocate(&limits()).await;
    let bb = h.allocate(&limits()).await;
    let secret = bb.workspace.join("secret.txt");
    ok(std::fs::write(&secret, "run B only"), "write");
    ok(std::os::unix::fs::chown(&secret, Some(h.run_uid(bb.run)), None), "chown");
    if caps.shared_workspace {
        assert_ne!(h.run_uid(a.run), h.run_uid(bb.run), "runs share a host uid");
    } else {
        eprintln!("sandbox conformance: distinct host uids not required (no shared workspace: each run is its own VM)");
    }
    for args in [["list", s(&bb.workspace)], ["read", s(&secret)]] {
        let (outcome, v) = probe(h.as_ref(), &a, limits(), &args).await;
        contained(&outcome, &v);
    }
    // Outside any namespace and outside its runs, B's workspace belongs to the
    // host user with mode 0700: A's uid has no way in either.
    let meta = ok(std::fs::metadata(&bb.workspace), "metadata");
    assert_eq!(meta.mode() & 0o077, 0);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    if caps.shared_workspace {
        assert_ne!(meta.uid(), h.run_uid(a.run));
    }
}

/// No host secret enters the sandbox: the environment holds `PATH`, `HOME`
/// and `LANG` only, in the probe and in pid 1.
pub async fn host_env_secret_is_invisible_and_env_is_scrubbed(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    // Planted in the test process (the sandbox's host side).
    std::env::set_var("USERZ_HOST_SECRET", "hunter2");
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["env"]).await;
    let v = contained(&outcome, &v);
    let allowed = ["PATH", "HOME", "LANG"];
    for list in ["own", "pid1"] {
        let names: Vec<&str> = v["detail"][list]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|n| n.as_str().unwrap_or_else(|| panic!("{v}")))
            .collect();
        assert!(names.iter().all(|n| allowed.contains(n)), "{list}: {names:?}");
    }
    assert!(!String::from_utf8_lossy(&outcome.stdout).contains("hunter2"));
}

/// The workspace is the only writable place; writes there land on the host
/// and are handed back to the host user after the run.
pub async fn writes_outside_the_workspace_fail_and_inside_succeed(b: &dyn SandboxBackend, caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    for path in ["/usr/x", "/etc/x", "/x", "/userz/bin/x", "/proc/x"] {
        let (outcome, v) = probe(h.as_ref(), &run, limits(), &["write", path]).await;
        contained(&outcome, &v);
    }
    // The control: the same probe does write where it may.
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["write", "/workspace/ok.txt"]).await;
    assert_eq!(v[0]["escaped"], Value::Bool(true), "{outcome:?}");
    if !caps.shared_workspace {
        // The write happened on the guest's own disk; the host's directory
        // never sees it (results come back as packs only).
        assert!(!run.workspace.join("ok.txt").exists(), "a guest write reached the host directory");
        return;
    }
    assert_eq!(ok(std::fs::read(run.workspace.join("ok.txt")), "read"), b"escaped");
    // Written as the run's uid inside; handed back to the host user after the run.
    assert_eq!(ok(std::fs::metadata(run.workspace.join("ok.txt")), "metadata").uid(), nix::unistd::geteuid().as_raw());
}

/// Symlinks planted in the workspace resolve inside the sandbox, not on the host.
pub async fn planted_symlink_to_a_host_file_is_not_followed(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    // World-readable on the host: only the sandbox's mount namespace keeps it out.
    let host_file = h.host_dir().join("host-secret.txt");
    ok(std::fs::write(&host_file, "host only"), "write");
    ok(std::os::unix::fs::symlink(&host_file, run.workspace.join("leak")), "symlink");
    ok(std::os::unix::fs::symlink("/etc/shadow", run.workspace.join("shadow")), "symlink");
    for path in ["/workspace/leak", "/workspace/shadow"] {
        let (outcome, v) = probe(h.as_ref(), &run, limits(), &["read", path]).await;
        contained(&outcome, &v);
    }
}

/// ptrace of a child is refused.
pub async fn ptrace_is_refused(b: &dyn SandboxBackend, caps: &SandboxCapabilities) {
    if waived_by_kernel_isolation("ptrace_is_refused", caps) {
        return;
    }
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["ptrace"]).await;
    let v = contained(&outcome, &v);
    assert_eq!(v["detail"]["spawned"], Value::Bool(true));
    assert!(v["detail"]["attach"].as_str().unwrap_or_else(|| panic!("{v}")).contains("EPERM"), "{v}");
}

/// mount(2) is refused.
pub async fn mounting_is_refused(b: &dyn SandboxBackend, caps: &SandboxCapabilities) {
    if waived_by_kernel_isolation("mounting_is_refused", caps) {
        return;
    }
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["mount"]).await;
    contained(&outcome, &v);
}

/// unshare(2) of new namespaces is refused.
pub async fn new_namespaces_are_refused(b: &dyn SandboxBackend, caps: &SandboxCapabilities) {
    if waived_by_kernel_isolation("new_namespaces_are_refused", caps) {
        return;
    }
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["unshare"]).await;
    contained(&outcome, &v);
}

/// Kernel modules cannot be loaded.
pub async fn kernel_modules_cannot_be_loaded(b: &dyn SandboxBackend, caps: &SandboxCapabilities) {
    if waived_by_kernel_isolation("kernel_modules_cannot_be_loaded", caps) {
        return;
    }
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["module"]).await;
    contained(&outcome, &v);
}

/// Direct TCP reaches neither the host's loopback, a private address nor
/// the internet.
pub async fn direct_network_is_unreachable(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let listener = ok(TcpListener::bind("127.0.0.1:0"), "bind");
    ok(listener.set_nonblocking(true), "nonblocking");
    let host_port = ok(listener.local_addr(), "local_addr").to_string();
    for (addr, timeout) in [(host_port.as_str(), "1000"), ("10.0.0.1:80", "1000"), ("1.1.1.1:443", "1000")] {
        let (outcome, v) = probe(h.as_ref(), &run, limits(), &["tcp", addr, timeout]).await;
        contained(&outcome, &v);
    }
    assert!(listener.accept().is_err(), "the host listener was reached");
}

/// The egress proxy denies what is not allowlisted, loopback, private
/// addresses and an allowlisted name that resolves to loopback, and records
/// each decision with its rule.
pub async fn egress_refuses_unlisted_loopback_private_and_rebinding_targets(
    b: &dyn SandboxBackend,
    _caps: &SandboxCapabilities,
) {
    let setup =
        SandboxSetup { resolve: vec![("rebind.test".into(), IpAddr::from([127, 0, 0, 1]))], ..SandboxSetup::default() };
    let Some(h) = b.start(setup) else { return };
    let run = h.allocate(&limits()).await;
    let listener = ok(TcpListener::bind("127.0.0.1:0"), "bind");
    ok(listener.set_nonblocking(true), "nonblocking");
    let loopback = ok(listener.local_addr(), "local_addr").to_string();
    let targets = ["evil.example:443", loopback.as_str(), "10.0.0.1:80", "rebind.test:443"];
    let mut args = vec!["egress"];
    args.extend(targets);
    let (outcome, records) = h.probe_with_egress(&run, limits(), &args, &["rebind.test:443".to_string()]).await;
    let verdicts = verdicts(&outcome);
    assert_eq!(outcome.exit_code, Some(0), "{}", String::from_utf8_lossy(&outcome.stderr));
    assert_eq!(verdicts.len(), targets.len(), "{verdicts:?}");
    for v in &verdicts {
        assert_eq!(v["escaped"], Value::Bool(false), "ESCAPED: {v}");
        assert_eq!(v["detail"]["status"], 403, "{v}");
    }
    assert_eq!(records.len(), targets.len(), "{records:?}");
    for (r, t) in records.iter().zip(targets) {
        assert_eq!(r.target, t);
        assert!(!r.allowed, "{r:?}");
    }
    assert_eq!(records[0].rule, "not_allowlisted");
    assert_eq!(records[3].rule, "address_denied");
    assert!(listener.accept().is_err(), "the host listener was reached");
}

/// The positive control of the refusals above: the same socket and probe do
/// get a tunnel when the target is allowlisted and excepted.
pub async fn egress_control_an_allowlisted_excepted_target_goes_through(
    b: &dyn SandboxBackend,
    _caps: &SandboxCapabilities,
) {
    let listener = ok(TcpListener::bind("127.0.0.1:0"), "bind");
    let addr = ok(listener.local_addr(), "local_addr");
    let Some(h) = b.start(SandboxSetup { egress_except: Some(addr), ..SandboxSetup::default() }) else { return };
    let run = h.allocate(&limits()).await;
    let target = addr.to_string();
    let (outcome, records) =
        h.probe_with_egress(&run, limits(), &["egress", &target], std::slice::from_ref(&target)).await;
    let v = verdicts(&outcome);
    assert_eq!(v.len(), 1, "{outcome:?}");
    assert_eq!(v[0]["detail"]["status"], 200, "{v:?}");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].allowed && records[0].rule == "allowlisted", "{records:?}");
}

/// A fork bomb stops at the pids cap, is reported as `pids`, and the host
/// still forks.
pub async fn fork_bomb_hits_the_pids_cap(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let caps = Limits { pids: 32, ..limits() };
    let run = h.allocate(&caps).await;
    let (outcome, v) = probe(h.as_ref(), &run, caps, &["fork-bomb", "10000"]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["spawned"].as_u64().unwrap_or_else(|| panic!("{v}")) < 32, "{v}");
    assert_eq!(outcome.limit.as_deref(), Some("pids"), "{outcome:?}");
    assert!(outcome.pids_max_hits > 0);
    // The host still forks.
    assert!(ok(std::process::Command::new("/bin/true").status(), "/bin/true").success());
    assert!(h.leftovers(run.run).is_empty());
}

/// Allocating past the memory cap is OOM-killed inside and reported as `memory`.
pub async fn memory_bomb_is_oom_killed_inside(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let caps = Limits { memory_bytes: 128 << 20, ..limits() };
    let run = h.allocate(&caps).await;
    let (outcome, v) = probe(h.as_ref(), &run, caps, &["memory", "1024"]).await;
    assert!(v.is_empty(), "the probe allocated 1 GiB under a 128 MiB cap: {v:?}");
    assert_eq!(outcome.limit.as_deref(), Some("memory"), "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(128 + 9), "{outcome:?}");
    assert!(outcome.resources.peak_memory_bytes <= 128 << 20, "{outcome:?}");
}

/// Spinning threads get no more CPU than the quota.
pub async fn cpu_spin_is_throttled_to_the_quota(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let caps = Limits { cpu_millis: 500, ..limits() };
    let run = h.allocate(&caps).await;
    let (outcome, v) = probe(h.as_ref(), &run, caps, &["spin", "4", "2000"]).await;
    contained(&outcome, &v);
    let r = outcome.resources;
    assert!(r.cpu_ms > 0 && r.wall_ms >= 2000, "{r:?}");
    let ratio = r.cpu_ms as f64 / r.wall_ms as f64;
    assert!(
        ratio <= 0.5 * 1.25,
        "cpu {} ms over wall {} ms = {ratio:.2} CPUs under a 0.5 CPU cap",
        r.cpu_ms,
        r.wall_ms
    );
}

/// Filling the workspace stops with ENOSPC at the disk cap, reported as
/// `disk`, and the host holds no more than the cap for it.
pub async fn disk_fill_stops_at_the_cap(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let caps = limits();
    let run = h.allocate(&caps).await;
    let cap = caps.disk_bytes.to_string();
    let (outcome, v) = probe(h.as_ref(), &run, caps, &["fill", "/workspace/fill", &cap]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["written"].as_u64().unwrap_or_else(|| panic!("{v}")) <= caps.disk_bytes, "{v}");
    assert!(v["detail"]["error"].as_str().unwrap_or_else(|| panic!("{v}")).contains("Some(28)"), "not ENOSPC: {v}");
    assert_eq!(outcome.limit.as_deref(), Some("disk"), "{outcome:?}");
    // The host holds no more than the image's size for it.
    assert!(h.workspace_host_bytes(run.run) <= caps.disk_bytes);
}

/// The scratch `/tmp` is capped ([`SCRATCH_BYTES`]).
pub async fn scratch_tmp_is_size_capped(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let scratch = SCRATCH_BYTES.to_string();
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["fill", "/tmp/fill", &scratch]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["error"].as_str().unwrap_or_else(|| panic!("{v}")).contains("Some(28)"), "not ENOSPC: {v}");
}

/// The wall clock is enforced from outside and reported as a timeout.
pub async fn sleeping_past_the_deadline_is_killed(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let caps = Limits { wall_clock: Duration::from_secs(2), ..limits() };
    let run = h.allocate(&caps).await;
    let (outcome, v) = probe(h.as_ref(), &run, caps, &["sleep", "60"]).await;
    assert!(v.is_empty(), "{v:?}");
    assert!(outcome.timed_out, "{outcome:?}");
    assert!((2000..8000).contains(&outcome.resources.wall_ms), "{outcome:?}");
    assert!(h.leftovers(run.run).is_empty());
}

/// The process list shows the sandbox's own processes only.
pub async fn process_list_shows_only_the_sandbox(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["procs"]).await;
    let v = contained(&outcome, &v);
    let own = h.own_processes();
    let procs = v["detail"]["processes"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(!procs.is_empty() && procs.len() <= 2, "{procs:?}");
    for p in procs {
        let argv0 = p["argv0"].as_str().unwrap_or_else(|| panic!("{p}"));
        assert!(own.iter().any(|o| o == argv0), "host process visible: {p}");
    }
}

/// The agent runs as uid 1000 with no capabilities, `no_new_privs` and a
/// seccomp filter.
pub async fn identity_has_no_privileges(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["status"]).await;
    let v = contained(&outcome, &v);
    assert_eq!(v["detail"]["uid"], "1000");
    assert_eq!(v["detail"]["cap_eff"], "0000000000000000");
    assert_eq!(v["detail"]["no_new_privs"], "1");
    assert_eq!(v["detail"]["seccomp"], "2");
}

/// The workspace is mounted `noexec`; system binaries do run.
pub async fn files_in_the_workspace_cannot_be_executed(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let copy = run.workspace.join("true");
    ok(std::fs::copy("/bin/true", &copy), "copy");
    ok(std::os::unix::fs::chown(&copy, Some(h.run_uid(run.run)), None), "chown");
    let (outcome, v) = probe(h.as_ref(), &run, limits(), &["exec", "/workspace/true"]).await;
    contained(&outcome, &v);
    // The control: a binary of the image does run.
    let (_, v) = probe(h.as_ref(), &run, limits(), &["exec", PROBE_INSIDE]).await;
    assert_eq!(v[0]["escaped"], Value::Bool(true), "{v:?}");
}

/// During a run whose egress proxy holds the model key, and with a repository
/// token in the host's environment and temp dir, neither appears anywhere the
/// sandbox can look: its environment, any process's environ or cmdline, or any
/// file it can read (the read-only host system directories aside). A control
/// needle planted in the workspace is found, so the search itself works.
pub async fn model_key_and_repo_token_are_not_found_inside_during_a_run(
    b: &dyn SandboxBackend,
    _caps: &SandboxCapabilities,
) {
    const KEY: &str = "sk-live-model-key-4f1c9a7e2b";
    const TOKEN: &str = "ghs_repoTokenForThisRun0123456789";
    const CONTROL: &str = "control-needle-5d2e8b";
    let Some(h) = b.start(SandboxSetup { model_key: Some(KEY.into()), ..SandboxSetup::default() }) else {
        return;
    };
    std::env::set_var("USERZ_REPO_TOKEN", TOKEN);
    let host_file = std::env::temp_dir().join(format!("userz-token-{}", std::process::id()));
    ok(std::fs::write(&host_file, TOKEN), "write");
    let run = h.allocate(&limits()).await;
    ok(std::fs::write(run.workspace.join("control.txt"), CONTROL), "write");
    // The probe takes its needles reversed, so its own command line holds none.
    let rev = |s: &str| s.chars().rev().collect::<String>();
    let (k, t, c) = (rev(KEY), rev(TOKEN), rev(CONTROL));
    let (outcome, _egress) = h.probe_with_egress(&run, limits(), &["find-secret", &k, &t, &c], &[]).await;
    let _ = std::fs::remove_file(&host_file);
    let v = verdicts(&outcome);
    assert_eq!(v.len(), 1, "{outcome:?}");
    let found: Vec<&str> = v[0]["detail"]["found"]
        .as_array()
        .unwrap_or_else(|| panic!("{v:?}"))
        .iter()
        .map(|p| p.as_str().unwrap_or_else(|| panic!("{p}")))
        .collect();
    assert_eq!(found, vec!["/workspace/control.txt"], "only the control needle is visible: {v:?}");
    assert!(v[0]["detail"]["files"].as_u64().unwrap_or(0) > 5, "the search read files: {v:?}");
    assert!(v[0]["detail"]["processes"].as_u64().unwrap_or(0) >= 1, "{v:?}");
}

/// `allocate_workspace` again for the same run releases what an earlier
/// attempt left and returns an empty, private directory on its own file
/// system; `release_workspace` removes it, twice is fine, and so is a run
/// that never allocated.
pub async fn allocate_again_releases_leftovers_and_release_is_idempotent(
    b: &dyn SandboxBackend,
    caps: &SandboxCapabilities,
) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let port = h.port();
    let run = h.allocate(&limits()).await;
    ok(std::fs::write(run.workspace.join("left-over"), "x"), "write");
    let again = port.allocate_workspace(run.run, &limits()).await.unwrap_or_else(|e| panic!("allocate: {e}"));
    assert_eq!(again, run.workspace);
    assert_eq!(ok(std::fs::read_dir(&again), "read_dir").count(), 0, "not empty");
    let meta = ok(std::fs::metadata(&again), "metadata");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (nix::unistd::geteuid().as_raw(), 0o700));
    if caps.shared_workspace {
        // On its own file system (the disk-capped storage).
        assert_ne!(meta.dev(), ok(std::fs::metadata(h.host_dir()), "metadata").dev());
    } else {
        eprintln!("sandbox conformance: workspace on the host's file system (the cap is the guest disk image's size)");
    }

    port.release_workspace(run.run).await.unwrap_or_else(|e| panic!("release: {e}"));
    assert!(!again.exists());
    port.release_workspace(run.run).await.unwrap_or_else(|e| panic!("release twice: {e}"));
    port.release_workspace(RunId::new()).await.unwrap_or_else(|e| panic!("release unknown: {e}"));
}

/// A disk cap too small to hold a workspace is refused naming `limits.disk_bytes`.
pub async fn too_small_disk_cap_is_refused_with_the_field(b: &dyn SandboxBackend, _caps: &SandboxCapabilities) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let err = match h.port().allocate_workspace(RunId::new(), &Limits { disk_bytes: 1 << 20, ..limits() }).await {
        Ok(p) => panic!("a 1 MiB disk cap was accepted: {p:?}"),
        Err(e) => e,
    };
    assert!(matches!(&err, Error::Invalid(m) if m.contains("limits.disk_bytes")), "{err}");
}

/// Live (not zombie) processes of `uid`. Killed sandbox processes whose
/// parent died are reparented to the host's init, which may reap them late.
pub fn processes_of(uid: u32) -> Vec<i32> {
    ok(std::fs::read_dir("/proc"), "/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}")).map(|m| m.uid() == uid).unwrap_or(false))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some(Some('Z' | 'X')) | None)
        })
        .collect()
}

/// A caller that gives up (drops the run's future) leaves no process and no
/// host resource of the run behind.
pub async fn dropping_the_run_future_kills_the_sandbox_and_removes_its_cgroup(
    b: &dyn SandboxBackend,
    caps: &SandboxCapabilities,
) {
    let Some(h) = b.start(SandboxSetup::default()) else { return };
    let run = h.allocate(&limits()).await;
    let uid = h.run_uid(run.run);
    let gave_up = tokio::time::timeout(Duration::from_millis(800), h.probe(&run, limits(), &["sleep", "60"])).await;
    assert!(gave_up.is_err(), "the probe should still be sleeping");
    assert!(h.leftovers(run.run).is_empty(), "{:?}", h.leftovers(run.run));
    // SIGKILL is delivered at once but a busy host may schedule the dying
    // process a moment later: allow it a bounded moment to go, then require
    // that nothing of the run's uid is alive.
    if !caps.shared_workspace {
        // Runs have no uid of their own (QEMU runs as the caller): the
        // backend's leftovers (its VMs and their processes) must be gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !h.leftovers(run.run).is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(h.leftovers(run.run).is_empty(), "{:?}", h.leftovers(run.run));
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = processes_of(uid);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = processes_of(uid);
    }
    assert!(left.is_empty(), "sandbox processes survived: {left:?}");
}
