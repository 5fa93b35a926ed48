//! `userz-core` must stay free of I/O: no database, network or sandbox crate in
//! its normal dependency tree (`cargo tree -p userz-core`).

use std::process::Command;

/// Crates that would mean the core does I/O of its own.
const FORBIDDEN: &[&str] = &[
    // network
    "mio",
    "socket2",
    "hyper",
    "h2",
    "reqwest",
    "tonic",
    "axum",
    "tower",
    "async-nats",
    "rustls",
    "native-tls",
    "openssl",
    "tokio-tungstenite",
    // databases
    "rusqlite",
    "libsqlite3-sys",
    "sqlx",
    "tokio-postgres",
    "postgres",
    "redis",
    "kurrentdb",
    "object_store",
    // sandboxes
    "seccompiler",
    "landlock",
    "nix",
    "caps",
    "wasmtime",
    "cgroups-rs",
    // processes / files runtimes
    "tokio-process",
    "notify",
];

#[test]
fn core_dependency_tree_has_no_io_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "userz-core", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cargo tree: {e}"));
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains(&"userz-core"), "the tree lists the crate itself: {tree}");
    assert!(names.contains(&"serde"), "the tree lists dependencies: {tree}");
    let found: Vec<&str> = names.iter().copied().filter(|n| FORBIDDEN.contains(n)).collect();
    assert!(found.is_empty(), "userz-core depends on I/O crates: {found:?}");
}

#[test]
fn core_tokio_has_no_networking_features() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "userz-core", "-e", "features,no-dev", "-i", "tokio", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cargo tree: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    for feature in ["\"net\"", "\"process\"", "\"fs\"", "\"signal\""] {
        assert!(
            !text.contains(&format!("tokio feature {feature}")),
            "tokio feature {feature} enabled in core's tree:\n{text}"
        );
    }
}
