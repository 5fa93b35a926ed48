//! Helpers shared by the tests that run the built `userz-server` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server process, killed on drop.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary under test with a clean `USERZ_*` environment on `data_dir`.
pub fn server_command(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_userz-server"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("USERZ_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("USERZ_DATA_DIR", data_dir).env("USERZ_LISTEN", "127.0.0.1:0").env("USERZ_SANDBOX", "0");
    cmd
}

/// Starts `cmd` and collects its stdout and stderr lines on a channel.
pub fn spawn(mut cmd: Command) -> (Running, mpsc::Receiver<String>) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("userz-server starts");
    let (tx, rx) = mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (Running(child), rx)
}

/// Waits (60 s at most) for a line matching `pred`, keeping everything seen
/// for the failure message.
pub fn wait_line(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if pred(&line) {
                    return line;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no matching line; output so far:\n{}", seen.join("\n"));
}

/// Starts a server on `data_dir` and returns it with its base URL.
pub fn start_server(mut cmd: Command) -> (Running, mpsc::Receiver<String>, String, Vec<String>) {
    cmd.arg("serve");
    let (running, rx) = spawn(cmd);
    let mut seen = Vec::new();
    let line = wait_line(&rx, &mut seen, |l| l.starts_with("userz server listening on "));
    let base = line.trim_start_matches("userz server listening on ").trim().to_string();
    (running, rx, base, seen)
}

/// Runs curl with a cookie jar, returns the body.
pub fn curl(jar: &std::path::Path, args: &[&str]) -> String {
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
pub fn dashboard_lists(base: &str, rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, id: &str) -> bool {
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

/// Runs the exact printed `curl` line (by `sh`), expects `201` and returns the
/// new report's id.
pub fn submit_printed_curl_line(curl: &str) -> String {
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
    created["id"].as_str().expect("the answer names the report").to_string()
}
