//! Fixture helpers of the userz-git tests: fixtures are built with the `git`
//! program (trusted test set-up); the code under test never starts it.
#![allow(dead_code, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// Runs `git args` in `dir` with a fixed identity and no system or user config.
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
