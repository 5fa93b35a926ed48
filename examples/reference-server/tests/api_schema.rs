//! The published API matches the server: Schemathesis (a property-based API
//! tester, installed by `scripts/services.sh`, path in `USERZ_SCHEMATHESIS`)
//! reads the running reference server's `/openapi.json`, generates valid and
//! invalid requests for every operation and checks every answer against the
//! document: status codes, content types, headers and bodies, invalid input
//! refused, valid input accepted, no 5xx. Any finding fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{server_command, start_server, wait_line};
use userz_testkit::services::require;

/// Examples per operation and phase; with the coverage phase this is about
/// a thousand requests.
const MAX_EXAMPLES: &str = "60";

#[test]
fn schemathesis_finds_nothing_against_the_running_server() {
    let Some(st) = require("USERZ_SCHEMATHESIS") else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Generated traffic is a burst from one address and one key: give the
    // rate limits room so that they do not answer instead of the handlers
    // (their 429 is documented and tested elsewhere).
    let config = tmp.path().join("userz.toml");
    std::fs::write(
        &config,
        "[limits]\npublic_per_ip_burst = 100000\npublic_per_ip_per_minute = 100000\n\
         private_per_user_burst = 100000\nprivate_per_user_per_minute = 100000\n\
         per_key_burst = 100000\nper_key_per_minute = 100000\n",
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut cmd = server_command(&data);
    cmd.arg("-c").arg(&config);
    let (_server, rx, base, mut seen) = start_server(cmd);
    wait_line(&rx, &mut seen, |l| l.starts_with("submit feedback:"));

    // An API key for the demo org, issued beside the running server.
    let demo: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join("demo.json")).unwrap()).unwrap();
    let out = server_command(&data)
        .args(["admin", "key", "issue", "--org", demo["org"].as_str().unwrap(), "--name", "schemathesis"])
        .output()
        .unwrap();
    assert!(out.status.success(), "key issue: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.split_whitespace().find(|w| w.starts_with("sk_")).expect("the key is printed").to_string();
    // The key reaches the server through the store's event feed.
    let authed = || {
        let status = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Authorization: Bearer {key}")])
            .arg(format!("{base}/v1/apps"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&status.stdout) == "200"
    };
    let mut tries = 0;
    while !authed() {
        tries += 1;
        assert!(tries < 100, "the new key was never honoured");
        std::thread::sleep(Duration::from_millis(100));
    }

    let report = tmp.path().join("report");
    let out = Command::new(&st)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", "20261207", "--workers", "1"])
        .args(["--request-timeout", "10", "--max-failures", "50", "--no-color"])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--header", &format!("X-Userz-Public-Key: {}", demo["public_key"].as_str().unwrap())])
        .args(["--header", &format!("Origin: {base}")])
        .arg("--report-dir")
        .arg(&report)
        .env("NO_COLOR", "1")
        // Its example database and reports stay out of the repository.
        .current_dir(tmp.path())
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found mismatches between /openapi.json and the server:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It did test: every operation of the document ran.
    assert!(stdout.contains("passed") && !stdout.contains("No operations"), "{stdout}");
}
