//! Host-side git: workspace preparation and reading a run's commits as
//! untrusted data. Fixtures are built with the `git` program (trusted test
//! set-up); the code under test never starts it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::git;
use userz_core::ids::RunId;
use userz_core::ports::{ChangeReader, Workspace};
use userz_git::{prepare_workspace, GitChangeReader, GitError, UntrustedWorkspace};
use userz_security::guardrail::{Guardrails, ObjectKind};

/// A bare "remote" with one commit on `main`.
fn remote(tmp: &Path) -> PathBuf {
    let seed = tmp.join("seed");
    std::fs::create_dir_all(seed.join("src")).expect("mkdir");
    git(tmp, &["init", "-q", seed.to_str().expect("utf8")]);
    std::fs::write(seed.join("src/app.js"), "console.log('v1')\n").expect("write");
    std::fs::write(seed.join("README.md"), "demo\n").expect("write");
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-qm", "seed"]);
    let bare = tmp.join("remote.git");
    git(tmp, &["clone", "-q", "--bare", seed.to_str().expect("utf8"), bare.to_str().expect("utf8")]);
    bare
}

fn workspace(tmp: &Path) -> (PathBuf, Workspace) {
    let bare = remote(tmp);
    let dir = tmp.join("ws");
    std::fs::create_dir(&dir).expect("mkdir");
    let ws = prepare_workspace(bare.to_str().expect("utf8"), None, RunId::new(), "userz/fix-1", false, &dir)
        .expect("prepared");
    (bare, ws)
}

fn commit_all(ws: &Workspace, msg: &str) {
    git(&ws.path, &["add", "-A"]);
    git(&ws.path, &["commit", "-qm", msg]);
}

#[test]
fn prepared_workspace_is_on_a_new_branch_with_no_remote_or_credentials() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (bare, ws) = workspace(tmp.path());
    assert_eq!(git(&ws.path, &["rev-parse", "--abbrev-ref", "HEAD"]), "userz/fix-1");
    assert_eq!(ws.base_commit, git(&bare, &["rev-parse", "main"]));
    assert_eq!(git(&ws.path, &["remote"]), "", "no remote left in the copy");
    let config = std::fs::read_to_string(ws.path.join(".git/config")).expect("config");
    for needle in ["remote", "url", "credential", "branch \""] {
        assert!(!config.contains(needle), "{needle} in config:\n{config}");
    }
    assert_eq!(std::fs::read_to_string(ws.path.join("src/app.js")).expect("file"), "console.log('v1')\n");
}

#[test]
fn preparation_refuses_bad_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = remote(tmp.path());
    let url = bare.to_str().expect("utf8");
    let dir = tmp.path().join("ws");
    std::fs::create_dir(&dir).expect("mkdir");
    for bad in ["", "-x", "a..b", "has space", "refs/../x", "x.lock"] {
        let err = prepare_workspace(url, None, RunId::new(), bad, false, &dir).expect_err(bad);
        assert!(matches!(err, GitError::Invalid { field: "branch", .. }), "{bad}: {err}");
    }
    std::fs::write(dir.join("leftover"), "x").expect("write");
    let err = prepare_workspace(url, None, RunId::new(), "userz/ok", false, &dir).expect_err("not empty");
    assert!(matches!(err, GitError::Invalid { field: "dir", .. }), "{err}");
}

#[test]
fn revision_runs_continue_the_existing_remote_branch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (bare, ws) = workspace(tmp.path());
    std::fs::write(ws.path.join("src/app.js"), "console.log('v2')\n").expect("write");
    commit_all(&ws, "first run");
    let reader = UntrustedWorkspace::open(&ws).expect("open");
    reader.push_checked_head(bare.to_str().expect("utf8")).expect("push");
    let pushed = reader.head().to_string();

    let dir = tmp.path().join("ws2");
    std::fs::create_dir(&dir).expect("mkdir");
    let ws2 = prepare_workspace(bare.to_str().expect("utf8"), None, RunId::new(), "userz/fix-1", true, &dir)
        .expect("revision workspace");
    assert_eq!(ws2.base_commit, pushed, "a revision starts from the pushed head");
    assert_eq!(std::fs::read_to_string(dir.join("src/app.js")).expect("file"), "console.log('v2')\n");
}

#[tokio::test]
async fn change_list_comes_from_objects_and_trips_the_guardrail() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_bare, ws) = workspace(tmp.path());
    std::fs::write(ws.path.join("src/app.js"), "console.log('fixed')\n").expect("write");
    std::fs::create_dir_all(ws.path.join(".github/workflows")).expect("mkdir");
    std::fs::write(ws.path.join(".github/workflows/ci.yml"), "on: push\n").expect("write");
    commit_all(&ws, "agent");
    let changes = GitChangeReader.changes(&ws).await.expect("changes");
    let paths: Vec<_> = changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec![".github/workflows/ci.yml", "src/app.js"]);
    let v = Guardrails::default().check(&changes);
    assert_eq!(
        v.first().map(|v| (v.file.as_str(), v.rule.as_str())),
        Some((".github/workflows/ci.yml", ".github/workflows/**"))
    );
}

#[test]
fn a_forbidden_file_added_then_removed_still_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_bare, ws) = workspace(tmp.path());
    std::fs::write(ws.path.join(".env"), "SECRET=1\n").expect("write");
    commit_all(&ws, "add");
    std::fs::remove_file(ws.path.join(".env")).expect("rm");
    std::fs::write(ws.path.join("src/app.js"), "x\n").expect("write");
    commit_all(&ws, "hide it");
    let changes = UntrustedWorkspace::open(&ws).expect("open").changes().expect("changes");
    assert!(changes.iter().any(|c| c.path == ".env"), "{changes:?}");
    assert!(!Guardrails::default().check(&changes).is_empty());
}

#[test]
fn renames_count_on_both_sides_and_symlinks_keep_their_target() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_bare, ws) = workspace(tmp.path());
    std::fs::create_dir_all(ws.path.join("infra")).expect("mkdir");
    std::fs::write(ws.path.join("infra/main.tf"), "resource \"x\" \"y\" { a = 1 }\n".repeat(20)).expect("write");
    commit_all(&ws, "add infra (pretend it was there)");
    // Move the base forward so infra/main.tf is part of the base.
    let base = git(&ws.path, &["rev-parse", "HEAD"]);
    let ws = Workspace { base_commit: base, ..ws };
    git(&ws.path, &["mv", "infra/main.tf", "docs.tf"]);
    std::os::unix::fs::symlink("../../etc/passwd", ws.path.join("src/link")).expect("symlink");
    commit_all(&ws, "rename and link");
    let changes = UntrustedWorkspace::open(&ws).expect("open").changes().expect("changes");
    let rename = changes.iter().find(|c| c.path == "docs.tf").expect("rename listed");
    assert_eq!(rename.old_path.as_deref(), Some("infra/main.tf"));
    let link = changes.iter().find(|c| c.path == "src/link").expect("link listed");
    assert_eq!(link.object, ObjectKind::Symlink { target: "../../etc/passwd".into() });
    let rules: Vec<_> = Guardrails::default().check(&changes).into_iter().map(|v| v.file).collect();
    assert!(rules.iter().any(|f| f == "infra/main.tf" || f == "docs.tf"), "rename source refused: {rules:?}");
}

#[test]
fn merges_and_foreign_histories_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_bare, ws) = workspace(tmp.path());
    git(&ws.path, &["checkout", "-qb", "side"]);
    std::fs::write(ws.path.join("side.txt"), "s\n").expect("write");
    commit_all(&ws, "side");
    git(&ws.path, &["checkout", "-q", "userz/fix-1"]);
    std::fs::write(ws.path.join("main.txt"), "m\n").expect("write");
    commit_all(&ws, "main");
    git(&ws.path, &["merge", "-q", "--no-edit", "side"]);
    let err = UntrustedWorkspace::open(&ws).expect("open").changes().expect_err("merge refused");
    assert_eq!(err.code(), "merge_commit", "{err}");

    git(&ws.path, &["checkout", "-q", "--orphan", "other"]);
    commit_all(&ws, "unrelated");
    git(&ws.path, &["branch", "-f", "userz/fix-1", "other"]);
    let err = UntrustedWorkspace::open(&ws).expect("open").changes().expect_err("orphan refused");
    assert_eq!(err.code(), "history_not_from_base", "{err}");
}

#[test]
fn reader_tricks_are_refused_before_opening() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (bare, ws) = workspace(tmp.path());
    let gd = ws.path.join(".git");

    std::fs::write(gd.join("objects/info/alternates"), format!("{}/objects\n", bare.display())).expect("write");
    assert_eq!(UntrustedWorkspace::open(&ws).expect_err("alternates").code(), "alternates");
    std::fs::remove_file(gd.join("objects/info/alternates")).expect("rm");

    std::fs::write(gd.join("commondir"), bare.display().to_string()).expect("write");
    assert_eq!(UntrustedWorkspace::open(&ws).expect_err("commondir").code(), "commondir");
    std::fs::remove_file(gd.join("commondir")).expect("rm");

    std::fs::create_dir_all(gd.join("refs/replace")).expect("mkdir");
    std::fs::write(gd.join("refs/replace").join(&ws.base_commit), format!("{}\n", ws.base_commit)).expect("write");
    assert_eq!(UntrustedWorkspace::open(&ws).expect_err("replace").code(), "replace_refs");
    std::fs::remove_file(gd.join("refs/replace").join(&ws.base_commit)).expect("rm");

    // `.git` as a file pointing at another repository, and as a symlink.
    let moved = tmp.path().join("moved.git");
    std::fs::rename(&gd, &moved).expect("move");
    std::fs::write(&gd, format!("gitdir: {}\n", bare.display())).expect("write");
    assert_eq!(UntrustedWorkspace::open(&ws).expect_err("gitdir file").code(), "git_dir_not_directory");
    std::fs::remove_file(&gd).expect("rm");
    std::os::unix::fs::symlink(&bare, &gd).expect("symlink");
    assert_eq!(UntrustedWorkspace::open(&ws).expect_err("symlink").code(), "git_dir_not_directory");
    std::fs::remove_file(&gd).expect("rm");
    std::fs::rename(&moved, &gd).expect("restore");

    // A missing branch is named as such.
    let other = Workspace { branch: "userz/nope".into(), ..ws.clone() };
    assert_eq!(UntrustedWorkspace::open(&other).expect_err("missing").code(), "branch_missing");
    assert!(UntrustedWorkspace::open(&ws).is_ok());
}

/// Plants `core.fsmonitor`, `core.hooksPath` and hooks that each write a marker,
/// proves the trap fires under the `git` program, then shows that reading the
/// change list and pushing run none of them.
#[tokio::test]
async fn hooks_and_fsmonitor_in_the_workspace_never_run_on_the_host() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (bare, ws) = workspace(tmp.path());
    std::fs::write(ws.path.join("src/app.js"), "changed\n").expect("write");
    commit_all(&ws, "agent");
    let markers = tmp.path().join("markers");
    std::fs::create_dir(&markers).expect("mkdir");
    let script = |name: &str| -> PathBuf {
        let p = tmp.path().join(format!("{name}.sh"));
        std::fs::write(&p, format!("#!/bin/sh\ntouch {}/{name}\nexit 0\n", markers.display())).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    };
    let fsmonitor = script("fsmonitor");
    let hooks = ws.path.join(".git/hooks");
    std::fs::create_dir_all(&hooks).expect("mkdir");
    for hook in ["pre-push", "post-checkout", "reference-transaction", "pre-commit", "post-index-change"] {
        std::fs::copy(script(hook), hooks.join(hook)).expect("hook");
    }
    let alt_hooks = tmp.path().join("alt-hooks");
    std::fs::create_dir(&alt_hooks).expect("mkdir");
    std::fs::copy(script("alt-reference-transaction"), alt_hooks.join("reference-transaction")).expect("hook");
    let mut config = std::fs::read_to_string(ws.path.join(".git/config")).expect("config");
    config.push_str(&format!(
        "[core]\n\tfsmonitor = {}\n\thooksPath = {}\n[uploadpack]\n\tpackObjectsHook = {}\n",
        fsmonitor.display(),
        alt_hooks.display(),
        script("pack-objects-hook").display()
    ));
    std::fs::write(ws.path.join(".git/config"), config).expect("config");
    let bare_hooks = bare.join("hooks");
    std::fs::create_dir_all(&bare_hooks).expect("mkdir");
    for hook in ["pre-receive", "update", "post-receive"] {
        std::fs::copy(script(hook), bare_hooks.join(hook)).expect("hook");
    }

    // The trap is real: the git program runs the fsmonitor on `status`.
    git(&ws.path, &["status", "--porcelain"]);
    assert!(markers.join("fsmonitor").exists(), "fixture trap does not fire under git itself");
    std::fs::remove_file(markers.join("fsmonitor")).expect("reset");

    let changes = GitChangeReader.changes(&ws).await.expect("changes");
    assert_eq!(changes.len(), 1);
    let reader = UntrustedWorkspace::open(&ws).expect("open");
    reader.push_checked_head(bare.to_str().expect("utf8")).expect("push");
    assert_eq!(git(&bare, &["rev-parse", "userz/fix-1"]), reader.head().to_string());

    let fired: Vec<_> = std::fs::read_dir(&markers).expect("markers").flatten().map(|e| e.file_name()).collect();
    assert!(fired.is_empty(), "ran on the host: {fired:?}");
    GitChangeReader.discard(&ws).await.expect("discard");
    assert!(!ws.path.exists());
    GitChangeReader.discard(&ws).await.expect("discard twice");
}

#[test]
fn the_remote_default_branch_is_read_from_its_head() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bare = remote(tmp.path());
    let url = bare.to_str().expect("utf8");
    assert_eq!(userz_git::remote_default_branch(url, None).expect("default branch"), "main");
    // A remote whose HEAD names another branch reports that one.
    git(&bare, &["branch", "trunk", "main"]);
    git(&bare, &["symbolic-ref", "HEAD", "refs/heads/trunk"]);
    assert_eq!(userz_git::remote_default_branch(url, None).expect("default branch"), "trunk");
    // An unreachable remote is an error, not a guess.
    let missing = tmp.path().join("nowhere.git");
    assert!(userz_git::remote_default_branch(missing.to_str().expect("utf8"), None).is_err());
}
