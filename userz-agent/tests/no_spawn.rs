//! G5: there is no code path in the agent that runs a shell or any other
//! program. Checked three ways: the crate's source, its dependency tree, and
//! the dynamic imports of the built binary.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/` (new modules are covered without listing them).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_code_path_runs_a_shell_or_any_program() {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let names: Vec<String> =
        files.iter().filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    for expected in ["lib.rs", "main.rs", "tools.rs", "git.rs", "run.rs", "toolbox.rs"] {
        assert!(names.iter().any(|n| n == expected), "{expected} not scanned: {names:?}");
    }
    let needles = [
        "process::Command",
        "Command::new",
        "process::Child",
        "process::Stdio",
        "CommandExt",
        "os::unix::process",
        "tokio::process",
        ".spawn(",
        "exec(",
        "execv",
        "execl",
        "fexecve",
        "libc::system",
        "libc::fork",
        "libc::vfork",
        "libc::popen",
        "libc::clone",
        "posix_spawn",
        "nix::unistd",
        "nix::spawn",
        "fork(",
        "sh -c",
        "/bin/sh",
        "duct::",
        "xshell",
        "subprocess",
    ];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}"));
        for needle in needles {
            assert!(!text.contains(needle), "{} mentions {needle}", file.display());
        }
        // `std::process` is allowed only for the exit code.
        for (at, _) in text.match_indices("process::") {
            let rest = &text[at + "process::".len()..];
            assert!(rest.starts_with("ExitCode"), "{}: process::{}", file.display(), &rest[..rest.len().min(20)]);
        }
    }
}

#[test]
fn no_process_spawning_crate_in_the_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "userz-agent",
            "-e",
            "normal,features",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("cargo tree: {e}"));
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    // Control: the tree is the agent's, with features shown.
    assert!(tree.lines().any(|l| l.starts_with("git2 feature \"vendored-libgit2\"")), "{tree}");
    let crates = [
        "duct",
        "subprocess",
        "xshell",
        "cmd_lib",
        "async-process",
        "command-group",
        "process-wrap",
        "tokio-process",
        "rexpect",
        "expectrl",
        "portable-pty",
        "pty-process",
        "libssh2-sys",
        "openssl-sys",
    ];
    let features = [
        "tokio feature \"process\"",
        "nix feature \"process\"",
        "git2 feature \"ssh\"",
        "git2 feature \"https\"",
        "libgit2-sys feature \"ssh\"",
        "libgit2-sys feature \"https\"",
    ];
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(!crates.contains(&name), "process-spawning or network-transport crate in the tree: {line}");
        for f in features {
            assert!(!line.starts_with(f), "forbidden feature in the tree: {line}");
        }
    }
}

/// Names of the undefined (imported) symbols of an ELF64 little-endian file's
/// dynamic symbol table.
fn dynamic_imports(elf: &[u8]) -> Vec<String> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap_or_default()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap_or_default()) as usize;
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "expected ELF64 little-endian");
    let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
    let section = |i: usize| shoff + i * shentsize;
    let mut names = Vec::new();
    for i in 0..shnum {
        let sh = section(i);
        if u32_at(sh + 4) != 11 {
            continue; // not SHT_DYNSYM
        }
        let (off, size, link, entsize) = (u64_at(sh + 0x18), u64_at(sh + 0x20), u32_at(sh + 0x28), u64_at(sh + 0x38));
        let strtab = u64_at(section(link) + 0x18);
        for sym in (off..off + size).step_by(entsize.max(1)) {
            let shndx = u16_at(sym + 6);
            if shndx != 0 {
                continue; // defined here, not imported
            }
            let start = strtab + u32_at(sym);
            let end = elf[start..].iter().position(|b| *b == 0).map_or(start, |n| start + n);
            names.push(String::from_utf8_lossy(&elf[start..end]).into_owned());
        }
    }
    names
}

#[test]
fn the_binary_imports_no_process_creating_function() {
    let bin = std::fs::read(env!("CARGO_BIN_EXE_userz-agent")).unwrap_or_else(|e| panic!("{e}"));
    let imports = dynamic_imports(&bin);
    // Control: the parser sees the imports every program has.
    for usual in ["open64", "read", "write", "close"] {
        assert!(imports.iter().any(|i| i == usual), "{usual} not among {imports:?}");
    }
    let forbidden = [
        "fork",
        "vfork",
        "clone",
        "clone3",
        "execve",
        "execv",
        "execvp",
        "execvpe",
        "execl",
        "execlp",
        "execle",
        "fexecve",
        "posix_spawn",
        "posix_spawnp",
        "system",
        "popen",
    ];
    for f in forbidden {
        assert!(!imports.iter().any(|i| i == f), "the agent binary imports {f}");
    }
}
