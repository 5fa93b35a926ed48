//! Host-level git configuration (global and XDG files) takes no part in the
//! agent's git tools. Its own test binary: it points `HOME` and
//! `XDG_CONFIG_HOME` at a planted configuration before libgit2 starts.

mod common;

use common::Fixture;
use userz_agent::{GitRepo, Workspace};

#[test]
fn global_and_xdg_config_are_ignored() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let xdg = home.path().join("xdg");
    std::fs::create_dir_all(xdg.join("git")).unwrap_or_else(|e| panic!("{e}"));
    let excludes = home.path().join("global-ignore");
    std::fs::write(&excludes, "*.secret\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        home.path().join(".gitconfig"),
        format!("[core]\n\texcludesFile = {}\n[user]\n\tname = Host Global\n", excludes.display()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(xdg.join("git/config"), "[user]\n\temail = host@xdg.invalid\n").unwrap_or_else(|e| panic!("{e}"));
    // Before the first libgit2 call in this process: libgit2 reads these once.
    std::env::set_var("HOME", home.path());
    std::env::set_var("XDG_CONFIG_HOME", &xdg);

    let fx = Fixture::new();
    std::fs::write(fx.root().join("token.secret"), "x").unwrap_or_else(|e| panic!("{e}"));

    // Control: a plainly opened repository does see the planted files.
    let plain = fx.repo();
    let cfg = plain.config().and_then(|mut c| c.snapshot()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.get_str("user.name").ok(), Some("Host Global"), "the planted global config is in effect");
    assert_eq!(cfg.get_str("user.email").ok(), Some("host@xdg.invalid"), "the planted XDG config is in effect");
    let plain_sees = plain
        .statuses(Some(git2::StatusOptions::new().include_untracked(true)))
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .any(|e| e.path() == Ok("token.secret"));
    assert!(!plain_sees, "the global excludesFile hides the file from a plain open");

    // The agent's repository: only the local file, so the file shows up.
    let git = GitRepo::open(fx.root()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(git.config_levels().unwrap_or_else(|e| panic!("{e}")), vec![git2::ConfigLevel::Local]);
    let status = git.status().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.iter().any(|e| e.path == "token.secret" && e.unstaged == Some("untracked")), "{status:?}");
    // And the commit identity is the task's, never the host's user.*.
    let ws = Workspace::open(fx.root()).unwrap_or_else(|e| panic!("{e}"));
    git.add(&ws, &["token.secret".to_string()]).unwrap_or_else(|e| panic!("{e}"));
    git.commit("Add", "Task Author", "task@example.invalid").unwrap_or_else(|e| panic!("{e}"));
    let c = plain.head().and_then(|h| h.peel_to_commit()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.author().email().ok(), Some("task@example.invalid"));
}
