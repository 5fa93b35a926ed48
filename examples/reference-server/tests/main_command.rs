//! The README's main command on a fresh data directory: the built
//! `userz-server` binary starts on embedded defaults, prints a `curl` line,
//! that exact line (run by `sh`) gets 201, and the report appears in the
//! dashboard after signing in with the printed owner's e-mail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dashboard_lists, server_command, spawn, submit_printed_curl_line, wait_line};

#[test]
fn printed_curl_line_returns_201_and_the_report_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, rx) = spawn(server_command(tmp.path()));
    let mut seen = Vec::new();
    let url_line = wait_line(&rx, &mut seen, |l| l.starts_with("userz server listening on "));
    let base = url_line.trim_start_matches("userz server listening on ").trim().to_string();
    wait_line(&rx, &mut seen, |l| l.starts_with("submit feedback:"));
    let curl = wait_line(&rx, &mut seen, |l| l.trim_start().starts_with("curl "));

    let id = submit_printed_curl_line(&curl);

    // The same report is listed for the demo org through the dashboard.
    let listed = dashboard_lists(&base, &rx, &mut seen, &id);
    assert!(listed, "feedback {id} is in the dashboard queue");
}
