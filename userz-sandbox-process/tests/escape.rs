//! The escape suite: each test runs `userz-escape-probe` inside a real
//! sandbox, asserts the attempt failed and that the run still ended with an
//! outcome (not an error). Needs root and bubblewrap; fails loudly without
//! them unless `USERZ_ALLOW_SKIP=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use userz_core::ports::sandbox::Limits;
use userz_egress::StaticResolver;

#[tokio::test]
async fn reading_etc_shadow_fails() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["read", "/etc/shadow"]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["error"].is_string(), "{v}");
}

#[tokio::test]
async fn another_runs_workspace_is_out_of_reach() {
    let Some(h) = Harness::new() else { return };
    let a = h.run(&limits()).await;
    let b = h.run(&limits()).await;
    let secret = b.workspace.join("secret.txt");
    std::fs::write(&secret, "run B only").unwrap();
    std::os::unix::fs::chown(&secret, Some(h.sandbox.run_uid(&b.run)), None).unwrap();
    assert_ne!(h.sandbox.run_uid(&a.run), h.sandbox.run_uid(&b.run), "runs share a host uid");
    for args in [["list", b.workspace.to_str().unwrap()], ["read", secret.to_str().unwrap()]] {
        let (outcome, v) = h.run_probe(&a, limits(), &args).await;
        contained(&outcome, &v);
    }
    // Outside any namespace and outside its runs, B's workspace belongs to the
    // host user with mode 0700: A's uid has no way in either.
    let meta = std::fs::metadata(&b.workspace).unwrap();
    assert_eq!(meta.mode() & 0o077, 0);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    assert_ne!(meta.uid(), h.sandbox.run_uid(&a.run));
}

#[tokio::test]
async fn host_env_secret_is_invisible_and_env_is_scrubbed() {
    let Some(h) = Harness::new() else { return };
    // Planted in the test process (the sandbox's host side).
    std::env::set_var("USERZ_HOST_SECRET", "hunter2");
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["env"]).await;
    let v = contained(&outcome, &v);
    let allowed = ["PATH", "HOME", "LANG"];
    for list in ["own", "pid1"] {
        let names: Vec<&str> = v["detail"][list].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        assert!(names.iter().all(|n| allowed.contains(n)), "{list}: {names:?}");
    }
    assert!(!String::from_utf8_lossy(&outcome.stdout).contains("hunter2"));
}

#[tokio::test]
async fn writes_outside_the_workspace_fail_and_inside_succeed() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    for path in ["/usr/x", "/etc/x", "/x", "/userz/bin/x", "/proc/x"] {
        let (outcome, v) = h.run_probe(&run, limits(), &["write", path]).await;
        contained(&outcome, &v);
    }
    // The control: the same probe does write where it may.
    let (outcome, v) = h.run_probe(&run, limits(), &["write", "/workspace/ok.txt"]).await;
    assert_eq!(v[0]["escaped"], Value::Bool(true), "{outcome:?}");
    assert_eq!(std::fs::read(run.workspace.join("ok.txt")).unwrap(), b"escaped");
    // Written as the run's uid inside; handed back to the host user after the run.
    assert_eq!(std::fs::metadata(run.workspace.join("ok.txt")).unwrap().uid(), nix::unistd::geteuid().as_raw());
}

#[tokio::test]
async fn planted_symlink_to_a_host_file_is_not_followed() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    // World-readable on the host: only the sandbox's mount namespace keeps it out.
    let host_file = h.state.path().join("host-secret.txt");
    std::fs::write(&host_file, "host only").unwrap();
    std::os::unix::fs::symlink(&host_file, run.workspace.join("leak")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", run.workspace.join("shadow")).unwrap();
    for path in ["/workspace/leak", "/workspace/shadow"] {
        let (outcome, v) = h.run_probe(&run, limits(), &["read", path]).await;
        contained(&outcome, &v);
    }
}

#[tokio::test]
async fn ptrace_is_refused() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["ptrace"]).await;
    let v = contained(&outcome, &v);
    assert_eq!(v["detail"]["spawned"], Value::Bool(true));
    assert!(v["detail"]["attach"].as_str().unwrap().contains("EPERM"), "{v}");
}

#[tokio::test]
async fn mounting_is_refused() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["mount"]).await;
    contained(&outcome, &v);
}

#[tokio::test]
async fn new_namespaces_are_refused() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["unshare"]).await;
    contained(&outcome, &v);
}

#[tokio::test]
async fn kernel_modules_cannot_be_loaded() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["module"]).await;
    contained(&outcome, &v);
}

#[tokio::test]
async fn direct_network_is_unreachable() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let host_port = listener.local_addr().unwrap().to_string();
    for (addr, timeout) in [(host_port.as_str(), "1000"), ("10.0.0.1:80", "1000"), ("1.1.1.1:443", "1000")] {
        let (outcome, v) = h.run_probe(&run, limits(), &["tcp", addr, timeout]).await;
        contained(&outcome, &v);
    }
    assert!(listener.accept().is_err(), "the host listener was reached");
}

#[tokio::test]
async fn egress_refuses_unlisted_loopback_private_and_rebinding_targets() {
    let resolver = StaticResolver::new().with_host("rebind.test", ["127.0.0.1".parse().unwrap()]);
    let Some(h) = Harness::with_resolver(Arc::new(resolver)) else { return };
    let run = h.run(&limits()).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let loopback = listener.local_addr().unwrap().to_string();
    let targets = ["evil.example:443", loopback.as_str(), "10.0.0.1:80", "rebind.test:443"];
    let mut args = vec!["egress"];
    args.extend(targets);
    let req = h.probe(&run, limits(), &args);
    let (outcome, records) = h.sandbox.run_with_egress(req, &["rebind.test:443".to_string()]).await.unwrap();
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

#[tokio::test]
async fn fork_bomb_hits_the_pids_cap() {
    let Some(h) = Harness::new() else { return };
    let caps = Limits { pids: 32, ..limits() };
    let run = h.run(&caps).await;
    let (outcome, v) = h.run_probe(&run, caps, &["fork-bomb", "10000"]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["spawned"].as_u64().unwrap() < 32, "{v}");
    assert_eq!(outcome.limit.as_deref(), Some("pids"), "{outcome:?}");
    assert!(outcome.pids_max_hits > 0);
    // The host still forks.
    assert!(std::process::Command::new("/bin/true").status().unwrap().success());
    assert!(cgroups_left(&run.run).is_empty());
}

#[tokio::test]
async fn memory_bomb_is_oom_killed_inside() {
    let Some(h) = Harness::new() else { return };
    let caps = Limits { memory_bytes: 128 << 20, ..limits() };
    let run = h.run(&caps).await;
    let (outcome, v) = h.run_probe(&run, caps, &["memory", "1024"]).await;
    assert!(v.is_empty(), "the probe allocated 1 GiB under a 128 MiB cap: {v:?}");
    assert_eq!(outcome.limit.as_deref(), Some("memory"), "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(128 + 9), "{outcome:?}");
    assert!(outcome.resources.peak_memory_bytes <= 128 << 20, "{outcome:?}");
}

#[tokio::test]
async fn cpu_spin_is_throttled_to_the_quota() {
    let Some(h) = Harness::new() else { return };
    let caps = Limits { cpu_millis: 500, ..limits() };
    let run = h.run(&caps).await;
    let (outcome, v) = h.run_probe(&run, caps, &["spin", "4", "2000"]).await;
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

#[tokio::test]
async fn disk_fill_stops_at_the_cap() {
    let Some(h) = Harness::new() else { return };
    let caps = limits();
    let run = h.run(&caps).await;
    let cap = caps.disk_bytes.to_string();
    let (outcome, v) = h.run_probe(&run, caps, &["fill", "/workspace/fill", &cap]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["written"].as_u64().unwrap() <= caps.disk_bytes, "{v}");
    assert!(v["detail"]["error"].as_str().unwrap().contains("Some(28)"), "not ENOSPC: {v}");
    assert_eq!(outcome.limit.as_deref(), Some("disk"), "{outcome:?}");
    // The host holds no more than the image's size for it.
    let image = h.state.path().join(run.run.to_string()).join("disk.img");
    assert!(std::fs::metadata(image).unwrap().blocks() * 512 <= caps.disk_bytes);
}

#[tokio::test]
async fn scratch_tmp_is_size_capped() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    // The harness configures 16 MiB of scratch.
    let (outcome, v) = h.run_probe(&run, limits(), &["fill", "/tmp/fill", "16777216"]).await;
    let v = contained(&outcome, &v);
    assert!(v["detail"]["error"].as_str().unwrap().contains("Some(28)"), "not ENOSPC: {v}");
}

#[tokio::test]
async fn sleeping_past_the_deadline_is_killed() {
    let Some(h) = Harness::new() else { return };
    let caps = Limits { wall_clock: Duration::from_secs(2), ..limits() };
    let run = h.run(&caps).await;
    let (outcome, v) = h.run_probe(&run, caps, &["sleep", "60"]).await;
    assert!(v.is_empty(), "{v:?}");
    assert!(outcome.timed_out, "{outcome:?}");
    assert!((2000..8000).contains(&outcome.resources.wall_ms), "{outcome:?}");
    assert!(cgroups_left(&run.run).is_empty());
}

#[tokio::test]
async fn process_list_shows_only_the_sandbox() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["procs"]).await;
    let v = contained(&outcome, &v);
    let procs = v["detail"]["processes"].as_array().unwrap();
    assert!(!procs.is_empty() && procs.len() <= 2, "{procs:?}");
    for p in procs {
        let argv0 = p["argv0"].as_str().unwrap();
        assert!(argv0 == BWRAP || argv0 == PROBE_INSIDE, "host process visible: {p}");
    }
}

#[tokio::test]
async fn identity_has_no_privileges() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let (outcome, v) = h.run_probe(&run, limits(), &["status"]).await;
    let v = contained(&outcome, &v);
    assert_eq!(v["detail"]["uid"], "1000");
    assert_eq!(v["detail"]["cap_eff"], "0000000000000000");
    assert_eq!(v["detail"]["no_new_privs"], "1");
    assert_eq!(v["detail"]["seccomp"], "2");
}

#[tokio::test]
async fn files_in_the_workspace_cannot_be_executed() {
    let Some(h) = Harness::new() else { return };
    let run = h.run(&limits()).await;
    let copy = run.workspace.join("true");
    std::fs::copy("/bin/true", &copy).unwrap();
    std::os::unix::fs::chown(&copy, Some(h.sandbox.run_uid(&run.run)), None).unwrap();
    let (outcome, v) = h.run_probe(&run, limits(), &["exec", "/workspace/true"]).await;
    contained(&outcome, &v);
    // The control: a system binary does run.
    let (_, v) = h.run_probe(&run, limits(), &["exec", "/bin/true"]).await;
    assert_eq!(v[0]["escaped"], Value::Bool(true), "{v:?}");
}

#[tokio::test]
async fn egress_control_an_allowlisted_excepted_target_goes_through() {
    // The positive control of the refusals above: the same socket and probe
    // do get a tunnel when the target is allowlisted and excepted.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let Some(h) = Harness::with(|c| c.with_egress_allow_socket_addr(addr)) else { return };
    let run = h.run(&limits()).await;
    let target = addr.to_string();
    let req = h.probe(&run, limits(), &["egress", &target]);
    let (outcome, records) = h.sandbox.run_with_egress(req, std::slice::from_ref(&target)).await.unwrap();
    let v = verdicts(&outcome);
    assert_eq!(v.len(), 1, "{outcome:?}");
    assert_eq!(v[0]["detail"]["status"], 200, "{v:?}");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].allowed && records[0].rule == "allowlisted", "{records:?}");
}

/// During a run whose egress proxy holds the model key, and with a repository
/// token in the host's environment and temp dir, neither appears anywhere the
/// sandbox can look: its environment, any process's environ or cmdline, or any
/// file it can read (the read-only host system directories aside). A control
/// needle planted in the workspace is found, so the search itself works.
#[tokio::test]
async fn model_key_and_repo_token_are_not_found_inside_during_a_run() {
    const KEY: &str = "sk-live-model-key-4f1c9a7e2b";
    const TOKEN: &str = "ghs_repoTokenForThisRun0123456789";
    const CONTROL: &str = "control-needle-5d2e8b";
    let route =
        userz_egress::ModelRoute::openai_compatible("model.egress.internal", "http://127.0.0.1:9", KEY.into()).unwrap();
    let Some(h) = Harness::with(|c| {
        c.with_model(userz_sandbox_process::AgentModel {
            api: userz_core::agent::ModelApi::OpenaiCompatible,
            model: "m".into(),
            route,
        })
    }) else {
        return;
    };
    std::env::set_var("USERZ_REPO_TOKEN", TOKEN);
    let host_file = std::env::temp_dir().join(format!("userz-token-{}", std::process::id()));
    std::fs::write(&host_file, TOKEN).unwrap();
    let run = h.run(&limits()).await;
    std::fs::write(run.workspace.join("control.txt"), CONTROL).unwrap();
    // The probe takes its needles reversed, so its own command line holds none.
    let rev = |s: &str| s.chars().rev().collect::<String>();
    let (k, t, c) = (rev(KEY), rev(TOKEN), rev(CONTROL));
    let req = h.probe(&run, limits(), &["find-secret", &k, &t, &c]);
    let (outcome, _egress) = h.sandbox.run_with_egress(req, &[]).await.unwrap();
    let _ = std::fs::remove_file(&host_file);
    let v = verdicts(&outcome);
    assert_eq!(v.len(), 1, "{outcome:?}");
    let found: Vec<&str> = v[0]["detail"]["found"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(found, vec!["/workspace/control.txt"], "only the control needle is visible: {v:?}");
    assert!(v[0]["detail"]["files"].as_u64().unwrap() > 5, "the search read files: {v:?}");
    assert!(v[0]["detail"]["processes"].as_u64().unwrap() >= 1, "{v:?}");
}
