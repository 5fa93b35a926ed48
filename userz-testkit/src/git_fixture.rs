//! Test set-up with the `git` program (trusted fixtures only: the code under
//! test never starts it).

use std::path::Path;
use std::process::Command;

/// Runs `git args` in `dir` with a fixed identity, `main` as the initial
/// branch and no system or user configuration; panics when git fails.
/// Returns the trimmed stdout.
#[allow(clippy::expect_used)]
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Fixture", "-c", "user.email=fixture@example.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
