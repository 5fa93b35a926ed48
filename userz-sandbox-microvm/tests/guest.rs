//! MicroVM-specific checks beyond the shared suite: the guest has no network
//! (QEMU's usual host and DNS addresses, the host's loopback services and
//! the outside all fail, by TCP and by a DNS query) while its egress socket
//! does reach the run's proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{probe_outcome, Harness};
use userz_core::ids::RunId;
use userz_core::ports::sandbox::Sandbox;
use userz_testkit::conformance::sandbox::{limits, verdicts};

#[tokio::test]
async fn the_guest_network_reaches_only_the_egress_proxy() {
    let Some(h) = Harness::with(|c| c) else { return };
    let run = RunId::new();
    let ws = h.sandbox.allocate_workspace(run, &limits()).await.unwrap();
    // QEMU user networking's host alias and DNS address (were there a NIC),
    // the host's loopback listener by its own address, and the outside.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_alias = format!("10.0.2.2:{port}");
    let loopback = format!("127.0.0.1:{port}");
    let mut req = h.probe_request(
        run,
        &ws,
        limits(),
        &["tcp", &host_alias, "1000", "10.0.2.3:53", "1000", &loopback, "1000", "1.1.1.1:443", "1000"],
    );
    req.egress = Some(vec![]);
    let o = probe_outcome(h.sandbox.run_guest(req).await.unwrap());
    let mut v = verdicts(&o);
    assert_eq!(v.len(), 4, "{o:?}");
    for server in ["10.0.2.3:53", "127.0.0.53:53", "8.8.8.8:53"] {
        let dns = h.probe_request(run, &ws, limits(), &["dns", server]);
        let o = probe_outcome(h.sandbox.run_guest(dns).await.unwrap());
        v.extend(verdicts(&o));
    }
    assert_eq!(v.len(), 7, "{v:?}");
    // The control: the egress socket does reach the proxy (a refusal with its rule).
    let mut control = h.probe_request(run, &ws, limits(), &["egress", "evil.example:443"]);
    control.egress = Some(vec![]);
    let o = probe_outcome(h.sandbox.run_guest(control).await.unwrap());
    let c = verdicts(&o);
    assert_eq!(c[0]["detail"]["status"], 403, "{o:?}");
    assert_eq!(c[0]["detail"]["rule"], "not_allowlisted", "{o:?}");
    for v in &v {
        assert_eq!(v["escaped"], false, "{v}");
    }
    assert!(listener.accept().is_err(), "the host listener was reached from the guest");
    h.sandbox.release_workspace(run).await.unwrap();
}

/// A warm pool VM serves exactly one run: the pool refills with a fresh boot,
/// and the next run gets a guest with another boot id; the used guest's
/// directory (disk image, sockets) is gone. A pool guest rehearsed a run
/// before it was claimed (a blank file system, the caps at their defaults,
/// the agent's `--version`): the run still gets its own workspace, its own
/// caps and a confined program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_vm_serves_one_run_and_is_never_reused() {
    let Some(h) = Harness::with(|c| c.with_pool(1, limits())) else { return };
    h.sandbox.fill_pool().await.unwrap();
    assert_eq!(h.sandbox.pool_ready(), 1);
    let run = RunId::new();
    let ws = h.sandbox.allocate_workspace(run, &limits()).await.unwrap();
    let marker = format!("marker-{run}");
    std::fs::write(ws.join(&marker), "the run's own file").unwrap();
    let refilled = || async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while h.sandbox.pool_ready() == 0 {
            assert!(std::time::Instant::now() < deadline, "the pool did not refill");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let first = h.sandbox.run_guest(h.probe_request(run, &ws, limits(), &["status"])).await.unwrap();
    assert!(first.warm, "the first run did not use the pool");
    let first_boot = first.boot_id.clone();
    assert!(!first_boot.is_empty());
    let o = probe_outcome(first);
    assert_eq!(o.exit_code, Some(0), "{o:?}");
    let v = verdicts(&o);
    assert_eq!((v.len(), &v[0]["escaped"]), (1, &serde_json::json!(false)), "{o:?}");
    assert_ne!(v[0]["detail"]["uid"], "0", "{v:?}");
    // The refill boots a new guest in the background.
    refilled().await;
    let path = format!("/workspace/{marker}");
    let second = h.sandbox.run_guest(h.probe_request(run, &ws, limits(), &["read", &path])).await.unwrap();
    assert!(second.warm);
    assert_ne!(first_boot, second.boot_id, "a pool guest served two runs");
    let v = verdicts(&probe_outcome(second));
    assert_eq!(v[0]["escaped"], true, "the run's file is not in the pool guest's workspace: {v:?}");
    refilled().await;
    let bomb = h.sandbox.run_guest(h.probe_request(run, &ws, limits(), &["fork-bomb", "200"])).await.unwrap();
    assert!(bomb.warm);
    let v = verdicts(&probe_outcome(bomb));
    let spawned = v[0]["detail"]["spawned"].as_u64().unwrap();
    assert!(spawned < u64::from(limits().pids), "the run's pids cap did not hold in a pool guest: {v:?}");
    // Only the refilled pool guest remains.
    refilled().await;
    let vms: Vec<_> = std::fs::read_dir(h.state.path().join("vms")).unwrap().flatten().collect();
    assert!(vms.len() <= 1, "{vms:?}");
    h.sandbox.release_workspace(run).await.unwrap();
}

/// The guest reports where its time went (diagnostics; the figures live in
/// `benches/benches/microvm_start.rs`).
#[tokio::test]
async fn the_guest_reports_its_phases() {
    let Some(h) = Harness::with(|c| c) else { return };
    let run = RunId::new();
    let ws = h.sandbox.allocate_workspace(run, &limits()).await.unwrap();
    let o = h.sandbox.run_guest(h.probe_request(run, &ws, limits(), &["status"])).await.unwrap();
    let exit = o.output.exit.clone().unwrap();
    eprintln!(
        "boot {:?} (uptime at init/ready {:?}), phases {:?}, wall {:?}",
        o.boot, o.uptime_ms, exit.phases_ms, o.output.wall
    );
    let names: Vec<&str> = exit.phases_ms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["setup", "workspace", "program", "export"]);
    assert!(o.boot > std::time::Duration::ZERO && !o.warm);
    h.sandbox.release_workspace(run).await.unwrap();
}
