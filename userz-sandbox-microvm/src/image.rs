//! The guest's root image: an initramfs (`newc` cpio) built from the
//! project's own binaries, reproducibly.
//!
//! It holds the init (`/init`), the agent and any extra binaries under
//! `/userz/bin`, the shared libraries they load (found with `ldd`), the guest
//! kernel's virtio modules with their dependencies (`/lib/modules/*.ko` and
//! the load order in `/lib/modules/userz.order`), a two-line `/etc/passwd`
//! and the empty mount points. No shell, no package manager, nothing else.
//! Entries are sorted, owned by root with mtime 0, and binaries are stripped
//! of debug info when `objcopy` is present, so the same inputs give the same
//! bytes; the image is named by its SHA-256. The guest remounts it read-only
//! before the program starts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use userz_core::{Error, Result};

/// The modules the guest loads at boot (PCI transport, serial ports, the
/// workspace disk). No network driver: the guest has no network device.
pub const GUEST_MODULES: [&str; 3] = ["virtio_pci", "virtio_console", "virtio_blk"];

/// Where binaries go inside.
pub const INSIDE_BIN: &str = "/userz/bin";

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The init binary (`userz-vm-init`).
    pub init: PathBuf,
    /// Binaries placed in [`INSIDE_BIN`] under their file names.
    pub binaries: Vec<PathBuf>,
    /// The guest kernel's `/lib/modules/<release>` directory.
    pub modules_dir: PathBuf,
}

/// A built image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The cpio file.
    pub path: PathBuf,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

enum Entry {
    Dir,
    File(Vec<u8>, u32),
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::Unsupported(what.into())
}

/// Reads a file, stripped of debug info when `objcopy` can do it.
fn stripped(path: &Path, scratch: &Path) -> Result<Vec<u8>> {
    let out = scratch.join(format!("strip-{}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    let ok =
        Command::new("objcopy").arg("--strip-debug").arg(path).arg(&out).status().map(|s| s.success()).unwrap_or(false);
    let bytes = if ok { fs::read(&out) } else { fs::read(path) };
    let _ = fs::remove_file(&out);
    bytes.map_err(|e| unsupported(format!("microvm image: reading {}: {e}", path.display())))
}

/// The absolute paths of the shared libraries `binary` loads (`ldd`).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| unsupported(format!("microvm image: running ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("not found") {
            return Err(unsupported(format!("microvm image: {}: {line}", binary.display())));
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// The `depends=` list of a kernel module's `.modinfo`.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let mut i = 0;
    while let Some(pos) = ko[i..].windows(key.len()).position(|w| w == key) {
        let start = i + pos;
        if start == 0 || ko[start - 1] == 0 {
            let value = &ko[start + key.len()..];
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            return String::from_utf8_lossy(&value[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect();
        }
        i = start + key.len();
    }
    Vec::new()
}

fn index_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            index_modules(&p, out);
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
            out.insert(name.replace('-', "_"), p);
        }
    }
}

/// `wanted` and their dependencies, dependencies first. A name built into
/// the kernel (`modules.builtin`) needs no file.
pub fn module_load_order(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut index = BTreeMap::new();
    index_modules(&modules_dir.join("kernel"), &mut index);
    let builtin: BTreeSet<String> = fs::read_to_string(modules_dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next().and_then(|n| n.strip_suffix(".ko")).map(|n| n.replace('-', "_")))
        .collect();
    let mut order: Vec<(String, PathBuf)> = Vec::new();
    fn visit(
        name: &str,
        index: &BTreeMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        order: &mut Vec<(String, PathBuf)>,
        depth: usize,
    ) -> Result<()> {
        if order.iter().any(|(n, _)| n == name) || builtin.contains(name) {
            return Ok(());
        }
        if depth > 32 {
            return Err(unsupported(format!("microvm image: module dependency loop at {name}")));
        }
        let path = index.get(name).ok_or_else(|| {
            unsupported(format!("microvm image: kernel module {name} not found (modules_dir of the guest kernel)"))
        })?;
        let bytes = fs::read(path).map_err(|e| unsupported(format!("reading {}: {e}", path.display())))?;
        for dep in module_depends(&bytes) {
            visit(&dep, index, builtin, order, depth + 1)?;
        }
        order.push((name.to_string(), path.clone()));
        Ok(())
    }
    for w in wanted {
        visit(w, &index, &builtin, &mut order, 0)?;
    }
    Ok(order)
}

fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let name = name.trim_start_matches('/');
    let fields = [ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, (name.len() + 1) as u32, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(data);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// Builds the image into `dir` (`initramfs-<sha256>.cpio`; reused when it
/// exists).
///
/// # Errors
/// `Unsupported` naming what is missing: a binary, a library, a module.
pub fn build(spec: &ImageSpec, dir: &Path) -> Result<BuiltImage> {
    fs::create_dir_all(dir).map_err(|e| unsupported(format!("microvm state dir {}: {e}", dir.display())))?;
    let scratch = tempfile::Builder::new()
        .prefix("image-")
        .tempdir_in(dir)
        .map_err(|e| unsupported(format!("microvm image scratch: {e}")))?;
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let add_dirs = |entries: &mut BTreeMap<String, Entry>, path: &str| {
        let mut p = Path::new(path).parent();
        while let Some(d) = p.filter(|d| *d != Path::new("/")) {
            entries.entry(d.to_string_lossy().into_owned()).or_insert(Entry::Dir);
            p = d.parent();
        }
    };
    for d in ["/proc", "/sys", "/dev", "/run", "/tmp", "/workspace", "/etc/userz", INSIDE_BIN, "/lib/modules"] {
        add_dirs(&mut entries, &format!("{d}/x"));
    }
    let mut binaries = vec![(spec.init.clone(), "/init".to_string())];
    for b in &spec.binaries {
        let name = b.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        binaries.push((b.clone(), format!("{INSIDE_BIN}/{name}")));
    }
    let mut libs = BTreeSet::new();
    for (host, inside) in &binaries {
        if !host.is_file() {
            return Err(unsupported(format!("microvm image: {} not found (cargo build --bins)", host.display())));
        }
        libs.extend(shared_libraries(host)?);
        add_dirs(&mut entries, inside);
        entries.insert(inside.clone(), Entry::File(stripped(host, scratch.path())?, 0o100_755));
    }
    for lib in libs {
        let real = fs::canonicalize(&lib).unwrap_or_else(|_| lib.clone());
        let bytes = fs::read(&real).map_err(|e| unsupported(format!("microvm image: {}: {e}", lib.display())))?;
        let inside = lib.to_string_lossy().into_owned();
        add_dirs(&mut entries, &inside);
        entries.insert(inside, Entry::File(bytes, 0o100_755));
    }
    let mut order = String::new();
    for (name, path) in module_load_order(&spec.modules_dir, &GUEST_MODULES)? {
        let inside = format!("/lib/modules/{name}.ko");
        let bytes = fs::read(&path).map_err(|e| unsupported(format!("{}: {e}", path.display())))?;
        entries.insert(inside.clone(), Entry::File(bytes, 0o100_644));
        order.push_str(&inside);
        order.push('\n');
    }
    entries.insert("/lib/modules/userz.order".into(), Entry::File(order.into_bytes(), 0o100_644));
    let passwd = "root:x:0:0:root:/:/nonexistent\nagent:x:1000:1000:agent:/workspace:/nonexistent\n";
    entries.insert("/etc/passwd".into(), Entry::File(passwd.as_bytes().to_vec(), 0o100_644));
    entries.insert("/etc/group".into(), Entry::File(b"root:x:0:\nagent:x:1000:\n".to_vec(), 0o100_644));
    // The process backend's seccomp filter, compiled here: the guest only loads it.
    let filters = userz_sandbox_process::exec::seccomp_programs().map_err(|e| unsupported(format!("seccomp: {e}")))?;
    entries.insert("/etc/userz/seccomp.bpf".into(), Entry::File(crate::protocol::encode_filters(&filters), 0o100_644));

    let mut cpio = Vec::new();
    for (ino, (name, entry)) in entries.iter().enumerate() {
        match entry {
            Entry::Dir => cpio_entry(&mut cpio, ino as u32 + 1, name, 0o040_755, &[]),
            Entry::File(bytes, mode) => cpio_entry(&mut cpio, ino as u32 + 1, name, *mode, bytes),
        }
    }
    cpio_entry(&mut cpio, 0, "TRAILER!!!", 0, &[]);
    let sha256 = hex(&Sha256::digest(&cpio));
    let path = dir.join(format!("initramfs-{sha256}.cpio"));
    if !path.is_file() {
        let tmp = scratch.path().join("image.cpio");
        fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&cpio).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| unsupported(format!("writing {}: {e}", path.display())))?;
    }
    Ok(BuiltImage { path, sha256, bytes: cpio.len() as u64 })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn modinfo_depends_is_read_from_the_nul_separated_section() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio,virtio_ring,crc-t10dif\0name=virtio_blk\0";
        assert_eq!(module_depends(ko), vec!["virtio", "virtio_ring", "crc_t10dif"]);
        assert!(module_depends(b"\0depends=\0name=x\0").is_empty());
        // A `depends=` inside another string is not the key.
        assert!(module_depends(b"\0xdepends=a\0").is_empty());
    }

    #[test]
    fn cpio_entries_are_aligned_and_end_with_the_trailer() {
        let mut out = Vec::new();
        cpio_entry(&mut out, 1, "/init", 0o100_755, b"abc");
        cpio_entry(&mut out, 0, "TRAILER!!!", 0, &[]);
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
        // namesize of "init" + NUL.
        assert_eq!(&out[94..102], b"00000005");
    }
}
