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
