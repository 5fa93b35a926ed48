//! Small shared helpers: error constructors, host tools, files the sandbox wrote.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;
use userz_core::{Error, Result};

/// An `Error::Effect` of this port.
pub(crate) fn effect(message: impl Into<String>) -> Error {
    Error::Effect { port: "sandbox", message: message.into(), retryable: false }
}

/// A name unique within this host: process id plus a process-wide counter.
pub(crate) fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Finds a host tool on `PATH` or in the sbin directories (which a test
/// runner's `PATH` often lacks).
pub(crate) fn host_tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Unsupported(format!("host tool `{name}` not found")))
}

/// Creates `dir` (and parents) and sets its mode.
pub(crate) fn mkdir_mode(dir: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| effect(format!("creating {}: {e}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| effect(format!("chmod {}: {e}", dir.display())))
}

/// Writes `contents` to a new file with `mode`.
pub(crate) fn write_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    fs::write(path, contents).map_err(|e| effect(format!("writing {}: {e}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| effect(format!("chmod {}: {e}", path.display())))
}

/// Opens a file the sandbox wrote, refusing symlinks and anything that is not
/// a regular file (a FIFO would block the host, a symlink could point at a
/// host file the sandbox cannot read itself).
pub(crate) fn open_untrusted(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"));
    }
    Ok(file)
}

/// Reads at most `cap` bytes of a file the sandbox wrote (see [`open_untrusted`]).
pub(crate) fn read_untrusted(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    open_untrusted(path)?.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn untrusted_reads_refuse_symlinks_and_fifos_and_cap_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "0123456789").unwrap();
        assert_eq!(read_untrusted(&target, 4).unwrap(), b"0123");
        std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
        assert!(read_untrusted(&dir.path().join("link"), 100).is_err());
        nix::unistd::mkfifo(&dir.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(read_untrusted(&dir.path().join("fifo"), 100).is_err());
        fs::create_dir(dir.path().join("dir")).unwrap();
        assert!(read_untrusted(&dir.path().join("dir"), 100).is_err());
    }
}
