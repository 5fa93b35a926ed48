//! The workspace's layering, checked from `cargo metadata` and the sources:
//!
//! - no crate depends on an adapter (a store, sandbox, VCS or model adapter,
//!   or the HTTP and dashboard adapters) except the composition root
//!   (`userz-server`), the in-sandbox agent binary (`userz-agent`, a
//!   composition root of its own), examples and benches;
//! - no example depends on another example;
//! - `userz-core` stays under 7,000 lines of non-test code, and the reference
//!   server example (its `main.rs` and configuration file) under 150 lines.
//!
//! Dev-dependencies are not counted: tests may use any adapter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Package {
    name: String,
    dir: PathBuf,
    deps: Vec<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn packages() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("metadata JSON: {e}"));
    let list = meta["packages"].as_array().cloned().unwrap_or_default();
    assert!(list.len() > 20, "the workspace lists its crates: {}", list.len());
    list.iter()
        .map(|p| Package {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            dir: Path::new(p["manifest_path"].as_str().unwrap_or_default())
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            deps: p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["kind"].is_null()) // normal (and build) dependencies only
                .filter_map(|d| d["name"].as_str().map(str::to_owned))
                .collect(),
        })
        .collect()
}

fn is_adapter(name: &str) -> bool {
    ["userz-store-", "userz-sandbox-", "userz-vcs-"].iter().any(|p| name.starts_with(p))
        || matches!(name, "userz-model" | "userz-embed" | "userz-http" | "userz-dashboard")
}

fn is_example(p: &Package) -> bool {
    p.dir.parent().is_some_and(|d| d.ends_with("examples"))
}

fn may_depend_on_adapters(p: &Package) -> bool {
    matches!(p.name.as_str(), "userz-server" | "userz-agent" | "userz-benches") || is_example(p)
}

#[test]
fn only_the_composition_root_examples_and_benches_depend_on_adapters() {
    let pkgs = packages();
    let adapters: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).filter(|n| is_adapter(n)).collect();
    for expected in
        ["userz-store-sqlite", "userz-sandbox-process", "userz-vcs-github", "userz-model", "userz-embed", "userz-http"]
    {
        assert!(adapters.contains(&expected), "{expected} is classified as an adapter: {adapters:?}");
    }
    let mut wrong: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in pkgs.iter().filter(|p| !may_depend_on_adapters(p)) {
        // The microVM backend applies the process backend's seccomp filter
        // inside its guests (one policy for both); a shared sandbox-policy
        // crate would remove this one exception.
        let shared_policy = |d: &str| p.name == "userz-sandbox-microvm" && d == "userz-sandbox-process";
        for d in p.deps.iter().filter(|d| is_adapter(d) && !shared_policy(d)) {
            wrong.entry(p.name.as_str()).or_default().push(d.as_str());
        }
    }
    assert!(wrong.is_empty(), "crates that depend on adapters (add a port instead): {wrong:?}");
}

#[test]
fn no_example_depends_on_another() {
    let pkgs = packages();
    let examples: Vec<&Package> = pkgs.iter().filter(|p| is_example(p)).collect();
    assert!(examples.len() >= 2, "examples found: {}", examples.len());
    let names: Vec<&str> = examples.iter().map(|p| p.name.as_str()).collect();
    for p in &examples {
        let on_examples: Vec<&String> = p.deps.iter().filter(|d| names.contains(&d.as_str())).collect();
        assert!(on_examples.is_empty(), "{} depends on examples {on_examples:?}", p.name);
    }
}

/// Lines of a Rust file before its `#[cfg(test)] mod …` (test modules sit at
/// the end of a file by the house style), blank lines included. A
/// `#[cfg(test)]` on anything else (a `use`, a helper) does not end the count.
fn non_test_lines(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        let item = lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.starts_with("#["));
        if item.is_some_and(|l| l.starts_with("mod ") || l.starts_with("pub mod ") || l.starts_with("pub(crate) mod "))
        {
            return i;
        }
    }
    lines.len()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_stays_under_seven_thousand_lines_of_non_test_code() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("userz-core/src"), &mut files);
    assert!(files.len() > 10, "core's sources found: {}", files.len());
    let total: usize = files.iter().map(|f| non_test_lines(f)).sum();
    assert!(total < 7_000, "userz-core has {total} lines of non-test code");
}

#[test]
fn the_reference_server_example_is_a_main_and_a_config_file() {
    let dir = workspace_root().join("examples/reference-server");
    let mut files = Vec::new();
    rust_files(&dir.join("src"), &mut files);
    assert_eq!(files.len(), 1, "only main.rs: {files:?}");
    let config = dir.join("userz.toml");
    let config_lines =
        std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{}: {e}", config.display())).lines().count();
    let total = non_test_lines(&files[0]) + config_lines;
    assert!(total < 150, "the reference server example has {total} lines");
}
