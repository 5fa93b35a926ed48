//! `userz-core` stays small and free of I/O, runtime and crypto: its normal
//! dependency tree (`cargo tree -p userz-core -e normal`) holds no database,
//! network, sandbox, async-runtime, cryptography, regex or provider crate. The
//! engine (`userz-engine`) and the security primitives (`userz-security`) carry
//! those, so a store adapter compiles little more than the ports it implements.

use std::process::Command;

/// Crates that would mean the core does I/O of its own.
const IO: &[&str] = &[
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

/// An async runtime: the core defines traits; the engine runs them.
const RUNTIME: &[&str] = &["tokio", "async-std", "smol", "async-executor", "tokio-util"];

/// Cryptography: ciphers, hashes, MACs, KDFs, signatures, JWT. (`subtle` and
/// `zeroize`, which the plaintext wrappers use for constant-time equality and
/// wiping, are not cryptography and are allowed; so is `sha1_smol`, which
/// `uuid` uses for name-based v5 ids, derived ids being no security function.)
const CRYPTO: &[&str] = &[
    "aes",
    "aes-siv",
    "aes-gcm",
    "cipher",
    "ctr",
    "cmac",
    "digest",
    "sha1",
    "sha2",
    "sha3",
    "md-5",
    "hmac",
    "hkdf",
    "pbkdf2",
    "argon2",
    "blake2",
    "blake3",
    "ed25519",
    "ed25519-dalek",
    "curve25519-dalek",
    "x25519-dalek",
    "chacha20poly1305",
    "rsa",
    "p256",
    "ring",
    "aws-lc-rs",
    "aws-lc-sys",
    "jsonwebtoken",
];

/// Text matching engines: the pre-filter and guardrails own them.
const REGEX: &[&str] = &["regex", "regex-automata", "regex-syntax", "aho-corasick", "fancy-regex"];

/// Crates of a particular provider's API.
const PROVIDER: &[&str] = &[
    "octocrab",
    "gitlab",
    "async-openai",
    "openai-api-rs",
    "anthropic-sdk",
    "async-stripe",
    "stripe-rust",
    "slack-morphism",
    "serenity",
    "twilight-http",
    "aws-sdk-s3",
    "aws-config",
];

fn core_tree() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "userz-core", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cargo tree: {e}"));
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<String> = tree.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect();
    assert!(names.iter().any(|n| n == "userz-core"), "the tree lists the crate itself: {tree}");
    assert!(names.iter().any(|n| n == "serde"), "the tree lists dependencies: {tree}");
    names
}

#[track_caller]
fn assert_none_of(kind: &str, forbidden: &[&str]) {
    let names = core_tree();
    let mut found: Vec<&str> = names.iter().map(String::as_str).filter(|n| forbidden.contains(n)).collect();
    found.sort_unstable();
    found.dedup();
    assert!(found.is_empty(), "userz-core depends on {kind} crates: {found:?}");
}

#[test]
fn core_dependency_tree_has_no_io_crates() {
    assert_none_of("I/O", IO);
}

#[test]
fn core_dependency_tree_has_no_async_runtime() {
    assert_none_of("async runtime", RUNTIME);
}

#[test]
fn core_dependency_tree_has_no_crypto() {
    assert_none_of("cryptography", CRYPTO);
}

#[test]
fn core_dependency_tree_has_no_regex() {
    assert_none_of("regex", REGEX);
}

#[test]
fn core_dependency_tree_has_no_provider_crate() {
    assert_none_of("provider", PROVIDER);
}

/// The lists above must name crates that exist in this workspace's lock file
/// where the workspace uses them, or the check would pass by misspelling.
#[test]
fn forbidden_lists_name_crates_the_workspace_really_uses() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .unwrap_or_else(|e| panic!("Cargo.lock: {e}"));
    for used in [
        "tokio",
        "sha2",
        "hmac",
        "argon2",
        "aes-siv",
        "jsonwebtoken",
        "ed25519-dalek",
        "regex",
        "aho-corasick",
        "hyper",
        "rusqlite",
    ] {
        assert!(lock.contains(&format!("name = \"{used}\"")), "{used} is not in Cargo.lock: update the lists");
        let listed = [IO, RUNTIME, CRYPTO, REGEX, PROVIDER].iter().any(|l| l.contains(&used));
        assert!(listed, "{used} is used by the workspace but not forbidden in core");
    }
}
