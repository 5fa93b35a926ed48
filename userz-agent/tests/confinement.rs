//! The tool layer refuses absolute paths, `..` and symlink escapes (the
//! no-process guarantee is in `no_spawn.rs`).

use std::os::unix::fs::symlink;

use userz_agent::Workspace;

fn setup() -> (tempfile::TempDir, tempfile::TempDir, Workspace) {
    let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(ws.path().join("src")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(ws.path().join("src/app.js"), "function save() {\n  return null;\n}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(outside.path().join("secret.txt"), "host secret").unwrap_or_else(|e| panic!("{e}"));
    let w = Workspace::open(ws.path()).unwrap_or_else(|e| panic!("{e}"));
    (ws, outside, w)
}

fn code<T: std::fmt::Debug>(r: Result<T, userz_agent::ToolError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e.code(),
    }
}

#[test]
fn absolute_paths_are_refused() {
    let (_ws, outside, w) = setup();
    let abs = outside.path().join("secret.txt").display().to_string();
    assert_eq!(code(w.read_file(&abs)), "absolute_path");
    assert_eq!(code(w.read_file("/etc/shadow")), "absolute_path");
    assert_eq!(code(w.write_file("/tmp/x", "y")), "absolute_path");
}

#[test]
fn parent_components_are_refused() {
    let (_ws, _outside, w) = setup();
    for p in ["../secret.txt", "src/../../x", "src/..", ".."] {
        assert_eq!(code(w.read_file(p)), "parent_component", "{p}");
        assert_eq!(code(w.write_file(p, "x")), "parent_component", "{p}");
    }
}

#[test]
fn symlinks_out_of_the_workspace_are_refused() {
    let (ws, outside, w) = setup();
    symlink(outside.path().join("secret.txt"), ws.path().join("planted")).unwrap_or_else(|e| panic!("{e}"));
    symlink(outside.path(), ws.path().join("outdir")).unwrap_or_else(|e| panic!("{e}"));
    symlink("/etc/passwd", ws.path().join("passwd")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(w.read_file("planted")), "escapes_workspace");
    assert_eq!(code(w.read_file("passwd")), "escapes_workspace");
    assert_eq!(code(w.read_file("outdir/secret.txt")), "escapes_workspace");
    assert_eq!(code(w.write_file("outdir/new.txt", "x")), "escapes_workspace");
    assert_eq!(code(w.write_file("outdir/sub/deeper.txt", "x")), "escapes_workspace");
    assert!(!outside.path().join("new.txt").exists(), "nothing written outside");
    assert!(!outside.path().join("sub").exists(), "no directory created outside");
    // Writing to a planted symlink replaces the link; the target is untouched.
    w.write_file("planted", "mine").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read_to_string(outside.path().join("secret.txt")).unwrap_or_default(), "host secret");
    assert_eq!(std::fs::read_to_string(ws.path().join("planted")).unwrap_or_default(), "mine");
    // Search never follows the links out.
    let hits = w.search("host secret|root:").unwrap_or_else(|e| panic!("{e}"));
    assert!(hits.is_empty(), "{hits:?}");
}

#[test]
fn symlinks_inside_the_workspace_work() {
    let (ws, _outside, w) = setup();
    symlink("src/app.js", ws.path().join("alias.js")).unwrap_or_else(|e| panic!("{e}"));
    assert!(w.read_file("alias.js").unwrap_or_else(|e| panic!("{e}")).contains("save"));
}

#[test]
fn git_internals_are_off_limits() {
    let (ws, _outside, w) = setup();
    std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(w.write_file(".git/hooks/pre-commit", "#!/bin/sh\n")), "git_internal");
    assert_eq!(code(w.write_file(".GIT/config", "x")), "git_internal");
    assert_eq!(code(w.read_file("./.git/config")), "git_internal");
}

#[test]
fn edit_needs_exactly_one_match() {
    let (_ws, _outside, w) = setup();
    w.edit_file("src/app.js", "return null;", "return save_all();").unwrap_or_else(|e| panic!("{e}"));
    assert!(w.read_file("src/app.js").unwrap_or_default().contains("save_all"));
    assert_eq!(code(w.edit_file("src/app.js", "nothing like this", "x")), "no_match");
    w.write_file("src/dup.txt", "a\na\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code(w.edit_file("src/dup.txt", "a", "b")), "not_unique");
    assert_eq!(code(w.read_file("src/missing.rs")), "not_found");
}

#[test]
fn read_is_size_capped_and_search_respects_gitignore() {
    let (ws, _outside, w) = setup();
    let w = w.with_max_read(16);
    assert_eq!(code(w.read_file("src/app.js")), "too_large");
    let w = Workspace::open(ws.path()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(ws.path().join(".gitignore"), "build/\n").unwrap_or_else(|e| panic!("{e}"));
    w.write_file("build/out.js", "function save() {}").unwrap_or_else(|e| panic!("{e}"));
    let hits = w.search(r"function save").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hits.iter().map(|h| (h.path.as_str(), h.line)).collect::<Vec<_>>(), vec![("src/app.js", 1)]);
    assert_eq!(code(w.search("(")), "invalid_pattern");
}
