//! The run's disk-capped storage: a sparse ext4 image, loop-mounted under the
//! run's state directory.
//!
//! Layout of `<state_root>/<run>/` (mode 0711, owned by root):
//! - `disk.img` — the sparse image of `limits.disk_bytes`;
//! - `mnt/` — its mount point (`nosuid,nodev`); `mnt/ws` is the workspace
//!   (owned by the run uid, 0700) and `mnt/out-*` the agent's output
//!   directories, so both count against the cap;
//! - `call-*/`, `agent-*/` — per-command files (passwd, task, egress socket).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::process::Command;
use userz_core::{Error, Result};

use crate::config::DiskCap;
use crate::util::{effect, host_tool, mkdir_mode};

/// Paths of one run's storage.
#[derive(Debug, Clone)]
pub(crate) struct RunDirs {
    pub(crate) root: PathBuf,
}

impl RunDirs {
    pub(crate) fn new(state_root: &Path, run: &str) -> Self {
        Self { root: state_root.join(run) }
    }
    pub(crate) fn image(&self) -> PathBuf {
        self.root.join("disk.img")
    }
    pub(crate) fn mnt(&self) -> PathBuf {
        self.root.join("mnt")
    }
    pub(crate) fn workspace(&self) -> PathBuf {
        self.mnt().join("ws")
    }
    /// Whether `mnt` is a mount point (its device differs from the run dir's).
    pub(crate) fn mounted(&self) -> bool {
        match (fs::metadata(self.mnt()), fs::metadata(&self.root)) {
            (Ok(m), Ok(r)) => m.dev() != r.dev(),
            _ => false,
        }
    }
    /// Where capped per-command output goes: on the image when mounted.
    pub(crate) fn capped_dir(&self) -> PathBuf {
        if self.mounted() {
            self.mnt()
        } else {
            self.root.clone()
        }
    }
}

async fn run_tool(name: &str, args: &[&std::ffi::OsStr]) -> Result<std::process::Output> {
    let tool = host_tool(name)?;
    Command::new(&tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| effect(format!("running {}: {e}", tool.display())))
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Creates the run's storage and returns the empty workspace directory on it,
/// owned by `uid:gid`. Anything an earlier attempt left is released first.
pub(crate) async fn allocate(dirs: &RunDirs, disk_bytes: u64, uid: u32, gid: u32, cap: DiskCap) -> Result<PathBuf> {
    release(dirs).await?;
    mkdir_mode(&dirs.root, 0o711)?;
    let mnt = dirs.mnt();
    mkdir_mode(&mnt, 0o711)?;
    if cap == DiskCap::LoopMount {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::Unsupported(
                "disk cap: loop-mounting the workspace image needs root (or configure DiskCap::Unenforced)".into(),
            ));
        }
        if disk_bytes < 8 << 20 {
            return Err(Error::Invalid(format!("limits.disk_bytes: {disk_bytes} is below the 8 MiB minimum")));
        }
        let image = dirs.image();
        let file = fs::File::create(&image).map_err(|e| effect(format!("creating {}: {e}", image.display())))?;
        file.set_len(disk_bytes).map_err(|e| effect(format!("sizing {}: {e}", image.display())))?;
        drop(file);
        // -m 0: the run gets every block (nothing is reserved for root).
        let out =
            run_tool("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), "-m".as_ref(), "0".as_ref(), image.as_os_str()])
                .await?;
        if !out.status.success() {
            return Err(effect(format!("mkfs.ext4 {}: {}", image.display(), stderr_of(&out))));
        }
        let out = run_tool("mount", &["-o".as_ref(), "loop,nosuid,nodev".as_ref(), image.as_os_str(), mnt.as_os_str()])
            .await?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&dirs.root);
            return Err(Error::Unsupported(format!(
                "disk cap: loop-mounting {} failed (loop devices unavailable?): {}",
                image.display(),
                stderr_of(&out)
            )));
        }
        mkdir_mode(&mnt, 0o711)?;
    }
    let ws = dirs.workspace();
    mkdir_mode(&ws, 0o700)?;
    std::os::unix::fs::chown(&ws, Some(uid), Some(gid)).map_err(|e| effect(format!("chown {}: {e}", ws.display())))?;
    Ok(ws)
}

/// Unmounts and deletes the run's storage. Missing storage is fine.
pub(crate) async fn release(dirs: &RunDirs) -> Result<()> {
    if !dirs.root.exists() {
        return Ok(());
    }
    if dirs.mounted() {
        let mnt = dirs.mnt();
        let out = run_tool("umount", &[mnt.as_os_str()]).await?;
        if !out.status.success() {
            // Busy (a process still has a file open): detach now, the kernel
            // frees the loop device when the last user goes.
            let lazy = run_tool("umount", &["-l".as_ref(), mnt.as_os_str()]).await?;
            if !lazy.status.success() {
                return Err(effect(format!("umount {}: {} / {}", mnt.display(), stderr_of(&out), stderr_of(&lazy))));
            }
        }
    }
    if dirs.mounted() {
        return Err(effect(format!("{} is still mounted", dirs.mnt().display())));
    }
    fs::remove_dir_all(&dirs.root).map_err(|e| effect(format!("removing {}: {e}", dirs.root.display())))
}

/// Gives every entry under `dir` (and `dir`) to `uid:gid`, never following
/// symlinks (`lchown`): the VCS step clones as root, the agent works as the
/// run's uid, and a symlink in an untrusted checkout must not hand over the
/// host file it points at. Stays on `dir`'s file system.
pub(crate) fn hand_over(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let dev = fs::symlink_metadata(dir)?.dev();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        if meta.dev() != dev {
            continue;
        }
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        }
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hand_over_changes_owners_without_following_symlinks() {
        if !nix::unistd::geteuid().is_root() {
            return; // lchown to another uid needs root; the port tests cover it as root.
        }
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        hand_over(dir.path(), 4242, 4243).unwrap();
        for p in ["", "sub", "sub/f", "link"] {
            let m = fs::symlink_metadata(dir.path().join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4243), "{p}");
        }
        assert_eq!(fs::metadata(outside.path()).unwrap().uid(), 0, "followed the symlink");
    }
}
