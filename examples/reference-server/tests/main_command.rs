//! The README's main command on a fresh data directory: the built
//! `userz-server` binary starts on embedded defaults, prints a `curl` line,
//! that exact line (run by `sh`) gets 201, and the report appears in the
//! dashboard after signing in with the printed owner's e-mail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{server_command, spawn, wait_line};

#[test]
fn printed_curl_line_returns_201_and_the_report_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, rx) = spawn(server_command(tmp.path()));
    let mut seen = Vec::new();
    let url_line = wait_line(&rx, &mut seen, |l| l.starts_with("userz server listening on "));
    let base = url_line.trim_start_matches("userz server listening on ").trim().to_string();
    wait_line(&rx, &mut seen, |l| l.starts_with("submit feedback:"));
    let curl = wait_line(&rx, &mut seen, |l| l.trim_start().starts_with("curl "));

    // The exact printed line, plus a status-code trailer.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{} -w '\\n%{{http_code}}'", curl.trim()))
        .output()
        .expect("sh and curl run (scripts/services.sh installs curl)");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "201", "body: {body}");
    let created: serde_json::Value = serde_json::from_str(body).unwrap();
    let id = created["id"].as_str().expect("the answer names the report").to_string();

    // The same report is listed for the demo org through the dashboard.
    let listed = dashboard_lists(&base, &rx, &mut seen, &id);
    assert!(listed, "feedback {id} is in the dashboard queue");
}

/// Runs curl with a cookie jar, returns the body.
fn curl(jar: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-c", jar.to_str().unwrap(), "-b", jar.to_str().unwrap()])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Signs in as the demo owner (with no SMTP relay configured the server prints
/// the single-use link) and looks for `id` on the queue page.
fn dashboard_lists(base: &str, rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, id: &str) -> bool {
    let owner = seen
        .iter()
        .find_map(|l| l.trim().strip_prefix("sign in as: ").map(str::to_string))
        .expect("the owner's e-mail is printed");
    let tmp = tempfile::tempdir().unwrap();
    let jar = tmp.path().join("cookies");
    let page = curl(
        &jar,
        &[
            "-X",
            "POST",
            "-H",
            &format!("Origin: {base}"),
            "--data-urlencode",
            &format!("email={owner}"),
            &format!("{base}/signin"),
        ],
    );
    assert!(page.contains("check-inbox"), "{page}");
    let link_line = wait_line(rx, seen, |l| l.starts_with("sign-in link for "));
    let link = link_line.rsplit(' ').next().unwrap().to_string();
    assert!(link.starts_with(&format!("{base}/signin/email?token=")), "{link}");
    // Following the link sets the session cookie and lands on the queue.
    let queue = curl(&jar, &["-L", &link]);
    assert!(queue.contains("feedback-list"), "signed in and on the queue page: {queue}");
    // The list is a projection: allow it a moment to catch up.
    let row = format!("data-feedback-id=\"{id}\"");
    let mut page = queue;
    for _ in 0..50 {
        if page.contains(&row) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        page = curl(&jar, &[&format!("{base}/")]);
    }
    false
}
