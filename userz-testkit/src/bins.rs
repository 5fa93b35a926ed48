//! Finds workspace binaries (the agent, the sandbox launcher) from tests of
//! other packages, which Cargo does not hand `CARGO_BIN_EXE_*` for.
//!
//! Looks in `$USERZ_BIN_DIR` first, then in the profile directory the running
//! test executable was built into (`target/<profile>/deps/..`). The test
//! command (`scripts/test.sh`) builds every binary before the tests run.

use std::path::PathBuf;

/// The path of workspace binary `name`, or a panic that says how to build it.
pub fn workspace_bin(name: &str) -> PathBuf {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("USERZ_BIN_DIR") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
        tried.push(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test>-<hash>  →  target/<profile>/<name>
        if let Some(profile_dir) = exe.parent().and_then(|deps| deps.parent()) {
            let p = profile_dir.join(name);
            if p.is_file() {
                return p;
            }
            tried.push(p);
        }
    }
    panic!(
        "binary `{name}` not found (looked at {tried:?}); build it first with `cargo build --workspace --bins` \
         (scripts/test.sh does) or point USERZ_BIN_DIR at its directory"
    )
}
