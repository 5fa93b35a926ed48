//! DESIGN §4: nothing depends on an adapter crate except the composition root,
//! examples and benches. `userz-http` reaches storage, sandboxes, VCS and models
//! only through the ports of `userz-core` (and the engine over them), so its
//! normal dependency tree holds no adapter crate and no `object_store`.

use std::process::Command;

fn is_adapter(name: &str) -> bool {
    ["userz-store-", "userz-sandbox-", "userz-vcs-"].iter().any(|p| name.starts_with(p))
        || matches!(name, "userz-model" | "object_store")
}

#[test]
fn http_depends_on_no_adapter_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "userz-http", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cargo tree: {e}"));
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"userz-engine"), "the tree lists dependencies: {tree}");
    let mut adapters: Vec<&str> = names.into_iter().filter(|n| is_adapter(n)).collect();
    adapters.sort_unstable();
    adapters.dedup();
    assert!(adapters.is_empty(), "userz-http depends on adapter crates: {adapters:?}");
}
