//! The README's first command, `scripts/start.sh`, on a fresh data directory
//! (its set-up steps already satisfied by `scripts/test.sh`: QEMU, the guest
//! kernel, the local model server's build, the binaries, which it is pointed
//! at with `USERZ_BIN_DIR`): it starts the local
//! model server (SmolLM2-135M, guided turns) and the reference server, the
//! printed curl line's report is classified, runs in a microVM, passes the
//! guardrails and ends as a branch pushed to the demo repository; the run
//! page shows the stages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{curl, spawn, submit_printed_curl_line};
use userz_testkit::services::require;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Waits up to `secs` for a line matching `pred`.
fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, secs: u64, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                eprintln!("start.sh | {line}");
                seen.push(line.clone());
                if pred(&line) {
                    return line;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no matching line in {secs} s; output so far:\n{}", seen.join("\n"));
}

/// The first `attr="…"` value in `html` after `anchor`.
fn attr_after<'a>(html: &'a str, anchor: &str, attr: &str) -> Option<&'a str> {
    let rest = &html[html.find(anchor)?..];
    let start = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    rest[start..].split('"').next()
}

#[test]
fn the_first_command_turns_the_printed_report_into_a_pushed_branch() {
    let (Some(_), Some(chromium), Some(node_path), Some(kernel), Some(modules)) = (
        require("USERZ_LLAMA_URL"), // the local model server is built
        require("USERZ_CHROMIUM"),
        require("USERZ_NODE_PATH"),
        require("USERZ_VM_KERNEL"),
        require("USERZ_VM_MODULES"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let llama_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = Command::new("bash");
    cmd.arg("scripts/start.sh").current_dir(repo_root());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("USERZ_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("USERZ_DATA_DIR", &data)
        .env("USERZ_LISTEN", "127.0.0.1:0")
        // The programs this test run built (the set-up step "build" is
        // satisfied; building again here would race the other tests).
        .env("USERZ_BIN_DIR", Path::new(env!("CARGO_BIN_EXE_userz-server")).parent().unwrap())
        .env("USERZ_LLAMA_PORT", llama_port.to_string())
        .env("USERZ_VM_KERNEL", kernel)
        .env("USERZ_VM_MODULES", modules)
        // Its own process group: the script's children (model server,
        // reference server) are stopped with it.
        .process_group(0);
    let (server, rx) = spawn(cmd);
    let group = server.0.id();
    let _stop = StopGroup(group);
    let mut seen = Vec::new();
    let url_line = wait_for(&rx, &mut seen, 900, |l| l.starts_with("userz server listening on "));
    let base = url_line.trim_start_matches("userz server listening on ").trim().to_string();
    wait_for(&rx, &mut seen, 60, |l| l.starts_with("submit feedback:"));
    // The banner: every part the main job needs is ready, with the microVM
    // (its own kernel) as the sandbox and the local model the script started.
    let part =
        |name: &str| seen.iter().find(|l| l.trim_start().starts_with(&format!("{name}:"))).cloned().unwrap_or_default();
    for name in ["store", "sandbox", "model", "vcs", "mail", "chat-ops"] {
        assert!(!part(name).is_empty(), "the banner has a {name} line: {seen:#?}");
    }
    assert!(!seen.iter().any(|l| l.contains("NOT READY")), "every part the main job needs is ready: {seen:#?}");
    assert!(part("sandbox").contains("ready") && part("sandbox").contains("own guest kernel"), "{seen:#?}");
    assert!(part("model").contains("ready") && part("model").contains("guided"), "{seen:#?}");
    assert!(part("mail").contains("off"), "no SMTP is configured, and the banner says so: {seen:#?}");
    let curl_line = wait_for(&rx, &mut seen, 60, |l| l.trim_start().starts_with("curl "));
    // The script's own lines come on stderr: "ready" may have been read
    // before the server's curl line.
    if !seen.iter().any(|l| l.contains("] ready (")) {
        wait_for(&rx, &mut seen, 60, |l| l.contains("] ready ("));
    }
    let id = submit_printed_curl_line(&curl_line);

    // Sign in as the printed owner (the link is printed without SMTP).
    let owner = seen
        .iter()
        .find_map(|l| l.trim().strip_prefix("sign in as: ").map(str::to_string))
        .expect("the owner's e-mail is printed");
    let jar = tmp.path().join("cookies");
    let origin = format!("Origin: {base}");
    let email = format!("email={owner}");
    let signin = format!("{base}/signin");
    let sign_in_link = |seen: &mut Vec<String>| {
        curl(&jar, &["-X", "POST", "-H", &origin, "--data-urlencode", &email, &signin]);
        let line = wait_for(&rx, seen, 60, |l| l.starts_with("sign-in link for "));
        line.rsplit(' ').next().unwrap().to_string()
    };
    let link = sign_in_link(&mut seen);
    curl(&jar, &["-L", &link]);

    // The report gets a run; the run ends.
    let deadline = Instant::now() + Duration::from_secs(900);
    let run = loop {
        let page = curl(&jar, &[&format!("{base}/feedback/{id}")]);
        // The report's run link: `<a href="/runs/run_…" class="run-link">`.
        if let Some(i) = page.find("href=\"/runs/") {
            break page[i + "href=\"/runs/".len()..].split('"').next().unwrap_or_default().to_string();
        }
        assert!(Instant::now() < deadline, "report {id} got no run; page:\n{page}");
        std::thread::sleep(Duration::from_secs(2));
    };
    let page = loop {
        let page = curl(&jar, &[&format!("{base}/runs/{run}")]);
        if attr_after(&page, "id=\"run-status\"", "data-terminal") == Some("true") {
            break page;
        }
        assert!(Instant::now() < deadline, "run {run} did not end; page:\n{page}");
        std::thread::sleep(Duration::from_secs(2));
    };
    let status = attr_after(&page, "id=\"run-status\"", "data-status").unwrap_or_default().to_string();
    assert_eq!(status, "branch_pushed", "the demo run pushed its branch; page:\n{page}");
    for stage in ["AgentStarted", "GuardrailPassed", "BranchPushed"] {
        assert!(page.contains(stage), "the run page shows {stage}:\n{page}");
    }
    assert!(page.contains("own guest kernel"), "the run page names the microVM backend:\n{page}");

    // What a person sees on the run page, in headless Chromium on a phone's
    // viewport: the stages with their durations and the diff.
    // The browser carries the session the sign-in link gave curl (a
    // second link for the same address would be throttled).
    let cookies: Vec<String> = std::fs::read_to_string(&jar)
        .unwrap()
        .lines()
        .map(|l| l.strip_prefix("#HttpOnly_").unwrap_or(l))
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 7).then(|| format!("{}={}", f[5], f[6]))
        })
        .collect();
    assert!(!cookies.is_empty(), "the sign-in link set a session cookie");
    let artifacts = std::env::var("USERZ_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("tests/browser/artifacts"));
    let out = Command::new("node")
        .arg("tests/browser/run-page.mjs")
        .current_dir(repo_root())
        .env("USERZ_CHROMIUM", chromium)
        .env("USERZ_NODE_PATH", node_path)
        .env("USERZ_COOKIES", cookies.join("; "))
        .env("USERZ_RUN_URL", format!("{base}/runs/{run}"))
        .env("USERZ_ARTIFACTS_DIR", &artifacts)
        .output()
        .expect("node runs (scripts/services.sh installs it)");
    assert!(out.status.success(), "run page in Chromium: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let shown: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(shown["status"], "branch_pushed", "{shown}");
    let stages: Vec<&str> = shown["stages"].as_array().unwrap().iter().filter_map(|s| s["event"].as_str()).collect();
    for stage in ["AgentStarted", "GuardrailPassed", "BranchPushed"] {
        assert!(stages.contains(&stage), "{stage} in {stages:?}");
    }
    assert!(
        shown["stages"].as_array().unwrap().iter().skip(1).all(|s| s["took"].as_str().is_some_and(|t| t.contains('+'))),
        "every stage after the first shows how long it took: {shown}"
    );
    assert!(!shown["diffFiles"].as_array().unwrap().is_empty(), "the diff names its files: {shown}");
    assert!(!shown["diffAdded"].as_array().unwrap().is_empty(), "the diff shows added lines: {shown}");
    // Every page fits a phone's width, and the list reads without ids.
    for page in ["overflowsPhone", "feedbackOverflowsPhone", "listOverflowsPhone"] {
        assert_eq!(shown[page], false, "{page}: a page is wider than a 390 px phone: {shown}");
    }
    let row = shown["listRows"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).expect("the report's row");
    assert_eq!(row["report"], "The Save button does nothing", "the list shows the report's first line: {row}");
    assert_eq!(row["severity"], "high", "{row}");
    assert!(row["label"].as_str().unwrap().contains("benign"), "{row}");
    let outcome = row["outcome"].as_str().unwrap();
    assert!(outcome.contains("branch_pushed") && outcome.contains(&pushed_branch(&data)), "{row}");
    // The branch is in the demo repository, one commit ahead of main.
    let repo = git2::Repository::open_bare(data.join("demo-repo.git")).unwrap();
    let head =
        repo.find_branch(&pushed_branch(&data), git2::BranchType::Local).unwrap().get().peel_to_commit().unwrap();
    let main = repo.find_branch("main", git2::BranchType::Local).unwrap().get().peel_to_commit().unwrap();
    assert_eq!(head.parent_id(0).unwrap(), main.id(), "one commit on top of main");
    assert_ne!(head.tree_id(), main.tree_id(), "the commit changes a file");
}

/// The one branch besides `main` in the demo repository.
fn pushed_branch(data: &Path) -> String {
    let repo = git2::Repository::open_bare(data.join("demo-repo.git")).unwrap();
    let pushed: Vec<String> = repo
        .branches(Some(git2::BranchType::Local))
        .unwrap()
        .flatten()
        .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
        .filter(|n| n != "main")
        .collect();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    pushed[0].clone()
}

/// Stops the script's process group (model server and reference server).
struct StopGroup(u32);

impl Drop for StopGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.0)]).status();
    }
}
