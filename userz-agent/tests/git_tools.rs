//! The in-process git tools: status, diff, add, commit; path confinement;
//! and no hook or configured command ever runs.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::Fixture;
use userz_agent::{GitRepo, ToolError, Workspace};

fn open(fx: &Fixture) -> (Workspace, GitRepo) {
    let ws = Workspace::open(fx.root()).unwrap_or_else(|e| panic!("{e}"));
    let git = GitRepo::open(fx.root()).unwrap_or_else(|e| panic!("{e}"));
    (ws, git)
}

fn code<T: std::fmt::Debug>(r: Result<T, ToolError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.code(),
    }
}

fn strings(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn status_lists_changed_staged_and_untracked_files() {
    let fx = Fixture::new();
    let (ws, git) = open(&fx);
    assert!(git.status().unwrap_or_else(|e| panic!("{e}")).is_empty(), "clean after the initial commit");
    ws.write_file("src/app.js", "changed\n").unwrap_or_else(|e| panic!("{e}"));
    ws.write_file("new/dir/file.txt", "new\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(fx.root().join("README.md")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(fx.root().join(".gitignore"), "*.log\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(fx.root().join("debug.log"), "ignored\n").unwrap_or_else(|e| panic!("{e}"));
    let status = git.status().unwrap_or_else(|e| panic!("{e}"));
    let view: Vec<(&str, Option<&str>, Option<&str>)> =
        status.iter().map(|e| (e.path.as_str(), e.staged, e.unstaged)).collect();
    assert_eq!(
        view,
        vec![
            (".gitignore", None, Some("untracked")),
            ("README.md", None, Some("deleted")),
            ("new/dir/file.txt", None, Some("untracked")),
            ("src/app.js", None, Some("modified")),
        ]
    );
    git.add(&ws, &strings(&["src/app.js", "README.md"])).unwrap_or_else(|e| panic!("{e}"));
    let status = git.status().unwrap_or_else(|e| panic!("{e}"));
    let staged: Vec<(&str, Option<&str>)> = status.iter().map(|e| (e.path.as_str(), e.staged)).collect();
    assert!(staged.contains(&("src/app.js", Some("modified"))), "{staged:?}");
    assert!(staged.contains(&("README.md", Some("deleted"))), "{staged:?}");
}

#[test]
fn diff_is_unified_against_head_includes_untracked_and_is_capped() {
    let fx = Fixture::new();
    let (ws, git) = open(&fx);
    assert_eq!(git.diff().unwrap_or_else(|e| panic!("{e}")).patch, "");
    ws.edit_file("src/app.js", "return null;", "return 1;").unwrap_or_else(|e| panic!("{e}"));
    ws.write_file("added.txt", "hello\n").unwrap_or_else(|e| panic!("{e}"));
    let d = git.diff().unwrap_or_else(|e| panic!("{e}"));
    assert!(!d.truncated);
    assert_eq!(d.files, vec!["added.txt", "src/app.js"]);
    assert!(d.patch.contains("diff --git a/src/app.js b/src/app.js"), "{}", d.patch);
    assert!(d.patch.contains("\n-  return null;\n+  return 1;\n"), "{}", d.patch);
    assert!(d.patch.contains("+++ b/added.txt\n@@ -0,0 +1 @@\n+hello\n"), "{}", d.patch);
    // Staged changes still show (work tree with index against HEAD).
    git.add(&ws, &strings(&["src/app.js"])).unwrap_or_else(|e| panic!("{e}"));
    assert!(git.diff().unwrap_or_else(|e| panic!("{e}")).patch.contains("+  return 1;"));

    ws.write_file("big.txt", &"line of text\n".repeat(10_000)).unwrap_or_else(|e| panic!("{e}"));
    let git = git.with_max_diff(2_000);
    let d = git.diff().unwrap_or_else(|e| panic!("{e}"));
    assert!(d.truncated);
    assert!(d.patch.len() <= 2_000, "{}", d.patch.len());
    assert_eq!(d.files, vec!["added.txt", "big.txt", "src/app.js"], "the file list stays complete");
}

#[test]
fn add_confines_paths_like_the_file_tools() {
    let fx = Fixture::new();
    let (ws, git) = open(&fx);
    symlink(fx.outside.path(), fx.root().join("outdir")).unwrap_or_else(|e| panic!("{e}"));
    symlink("src", fx.root().join("alias")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(fx.root().join("vendor/.git")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(git.add(&ws, &strings(&["../x"]))), "parent_component");
    assert_eq!(code(git.add(&ws, &strings(&["src/../../x"]))), "parent_component");
    assert_eq!(code(git.add(&ws, &strings(&["/etc/passwd"]))), "absolute_path");
    assert_eq!(code(git.add(&ws, &strings(&[".git/config"]))), "git_internal");
    assert_eq!(code(git.add(&ws, &strings(&[".git"]))), "git_internal");
    assert_eq!(code(git.add(&ws, &strings(&["vendor/.git/config"]))), "git_internal");
    assert_eq!(code(git.add(&ws, &strings(&["outdir/secret.txt"]))), "beyond_symlink");
    assert_eq!(code(git.add(&ws, &strings(&["alias/app.js"]))), "beyond_symlink");
    assert_eq!(code(git.add(&ws, &strings(&["missing.txt"]))), "not_found");
    assert_eq!(code(git.add(&ws, &[])), "empty_path");
    std::fs::write(fx.root().join(".gitignore"), "*.log\n").unwrap_or_else(|e| panic!("{e}"));
    ws.write_file("debug.log", "x").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(git.add(&ws, &strings(&["debug.log"]))), "ignored_path");
    // An unchanged tracked file is not an error: nothing to stage.
    assert!(git.add(&ws, &strings(&["README.md"])).unwrap_or_else(|e| panic!("{e}")).is_empty());
    let index = fx.repo().index().unwrap_or_else(|e| panic!("{e}"));
    assert!(index.iter().all(|e| !String::from_utf8_lossy(&e.path).contains("secret")), "nothing from outside staged");

    // A symlink itself is staged as a link (its target text), never followed.
    let staged = git.add(&ws, &strings(&["outdir"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(staged, vec!["outdir"]);
    let repo = fx.repo();
    let entry = repo.index().unwrap_or_else(|e| panic!("{e}")).get_path(Path::new("outdir"), 0);
    assert_eq!(entry.map(|e| e.mode), Some(0o120000));

    // A directory stages what is under it.
    ws.write_file("src/lib/a.js", "a\n").unwrap_or_else(|e| panic!("{e}"));
    ws.write_file("src/lib/b.js", "b\n").unwrap_or_else(|e| panic!("{e}"));
    let staged = git.add(&ws, &strings(&["src/lib"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(staged, vec!["src/lib/a.js", "src/lib/b.js"]);
}

#[test]
fn commit_uses_the_task_author_and_refuses_empty_commits() {
    let fx = Fixture::new();
    let (ws, git) = open(&fx);
    assert_eq!(code(git.commit("nothing", "A", "a@example.invalid")), "empty_commit");
    ws.write_file("src/app.js", "fixed\n").unwrap_or_else(|e| panic!("{e}"));
    // Changed in the work tree but not staged: still nothing to commit.
    assert_eq!(code(git.commit("unstaged", "A", "a@example.invalid")), "empty_commit");
    git.add(&ws, &strings(&["src/app.js"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(git.commit("  \n ", "A", "a@example.invalid")), "empty_message");
    assert_eq!(code(git.commit("msg", "", "")), "bad_author");
    let info = git.commit("Fix it\n\nBody.", "Ada Agent", "ada@example.invalid").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.files_changed, 1);
    let repo = fx.repo();
    let head = repo.head().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.branch, head.shorthand().unwrap_or_default());
    let c = head.peel_to_commit().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.id().to_string(), info.commit);
    assert_eq!(c.message().ok(), Some("Fix it\n\nBody.\n"));
    assert_eq!((c.author().name().ok(), c.author().email().ok()), (Some("Ada Agent"), Some("ada@example.invalid")));
    assert_eq!(c.committer().name().ok(), Some("Ada Agent"));
    assert_eq!(code(git.commit("again", "A", "a@example.invalid")), "empty_commit");
}

#[test]
fn commit_on_an_unborn_branch() {
    let ws_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    git2::Repository::init(ws_dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let ws = Workspace::open(ws_dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let git = GitRepo::open(ws_dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(git.commit("empty", "A", "a@example.invalid")), "empty_commit");
    assert!(git.diff().unwrap_or_else(|e| panic!("{e}")).patch.is_empty());
    ws.write_file("first.txt", "1\n").unwrap_or_else(|e| panic!("{e}"));
    git.add(&ws, &strings(&["."])).unwrap_or_else(|e| panic!("{e}"));
    let info = git.commit("First", "A", "a@example.invalid").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.files_changed, 1);
}

#[test]
fn open_takes_exactly_the_workspace_root() {
    let fx = Fixture::new();
    // A subdirectory of a repository is not a work tree root: no upward search.
    assert_eq!(code(GitRepo::open(fx.root().join("src"))), "not_a_repository");
    let plain = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(GitRepo::open(plain.path())), "not_a_repository");
    // A core.worktree that points elsewhere is refused.
    let repo = fx.repo();
    repo.config()
        .and_then(|mut c| c.set_str("core.worktree", &fx.outside.path().display().to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(GitRepo::open(fx.root())), "not_a_repository");
}

#[test]
fn only_the_repository_config_is_consulted() {
    let fx = Fixture::new();
    let (_ws, git) = open(&fx);
    let levels = git.config_levels().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(levels, vec![git2::ConfigLevel::Local]);
}

fn marker_script(dir: &Path, name: &str, marker: &Path) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho {name} >> '{}'\ncat\n", marker.display()))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn hooks_fsmonitor_filters_and_external_diff_never_run() {
    let fx = Fixture::new();
    let scripts = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let marker = fx.outside.path().join("MARKER");
    let hooks = fx.root().join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap_or_else(|e| panic!("{e}"));
    let mut all = Vec::new();
    for hook in ["pre-commit", "post-commit", "commit-msg", "prepare-commit-msg", "post-index-change"] {
        all.push(marker_script(&hooks, hook, &marker));
        all.push(marker_script(scripts.path(), hook, &marker));
    }
    let fsmonitor = marker_script(scripts.path(), "fsmonitor", &marker);
    let filter = marker_script(scripts.path(), "filter", &marker);
    let external = marker_script(scripts.path(), "external-diff", &marker);
    let textconv = marker_script(scripts.path(), "textconv", &marker);
    all.extend([fsmonitor.clone(), filter.clone(), external.clone(), textconv.clone()]);
    {
        let repo = fx.repo();
        let mut cfg = repo.config().unwrap_or_else(|e| panic!("{e}"));
        let set = |cfg: &mut git2::Config, k: &str, v: &Path| {
            cfg.set_str(k, &v.display().to_string()).unwrap_or_else(|e| panic!("{k}: {e}"))
        };
        set(&mut cfg, "core.hooksPath", scripts.path());
        set(&mut cfg, "core.fsmonitor", &fsmonitor);
        set(&mut cfg, "filter.evil.clean", &filter);
        set(&mut cfg, "filter.evil.smudge", &filter);
        cfg.set_bool("filter.evil.required", false).unwrap_or_else(|e| panic!("{e}"));
        set(&mut cfg, "diff.external", &external);
        set(&mut cfg, "diff.evil.textconv", &textconv);
    }
    std::fs::write(fx.root().join(".gitattributes"), "* filter=evil diff=evil\n").unwrap_or_else(|e| panic!("{e}"));

    // The scripts work: run directly, each one writes the marker.
    for s in &all {
        let status = std::process::Command::new(s).stdin(std::process::Stdio::null()).status();
        assert!(status.map(|s| s.success()).unwrap_or(false), "{} did not run", s.display());
    }
    let lines = std::fs::read_to_string(&marker).unwrap_or_default().lines().count();
    assert_eq!(lines, all.len(), "every script writes the marker when run");
    std::fs::remove_file(&marker).unwrap_or_else(|e| panic!("{e}"));

    // The agent's git tools run none of them.
    let (ws, git) = open(&fx);
    ws.write_file("src/app.js", "changed\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(!git.status().unwrap_or_else(|e| panic!("{e}")).is_empty());
    git.add(&ws, &[".gitattributes".to_string(), "src/app.js".to_string()]).unwrap_or_else(|e| panic!("{e}"));
    git.commit("Change app", "A", "a@example.invalid").unwrap_or_else(|e| panic!("{e}"));
    ws.write_file("src/app.js", "changed again\n").unwrap_or_else(|e| panic!("{e}"));
    let d = git.diff().unwrap_or_else(|e| panic!("{e}"));
    assert!(d.patch.contains("+changed again"), "{}", d.patch);
    git.add(&ws, &[".".to_string()]).unwrap_or_else(|e| panic!("{e}"));
    git.commit("Change again", "A", "a@example.invalid").unwrap_or_else(|e| panic!("{e}"));
    assert!(!marker.exists(), "a script ran: {}", std::fs::read_to_string(&marker).unwrap_or_default());
    // The committed blob is the raw content (no clean filter applied).
    let repo = fx.repo();
    let tree = repo.head().and_then(|h| h.peel_to_tree()).unwrap_or_else(|e| panic!("{e}"));
    let blob = tree
        .get_path(Path::new("src/app.js"))
        .and_then(|e| e.to_object(&repo))
        .and_then(|o| o.peel_to_blob())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(blob.content(), b"changed again\n");
}
