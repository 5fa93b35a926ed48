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
