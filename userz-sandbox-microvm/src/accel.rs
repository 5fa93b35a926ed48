//! Choosing KVM or TCG.
//!
//! `/dev/kvm` existing proves nothing: some hosts expose a paravirtual KVM
//! that cannot boot a stock kernel (it hangs or trips an assertion). With
//! [`Accel::Auto`] the sandbox opens `/dev/kvm`, and if it can, boots the
//! real guest once with KVM and keeps KVM only when that guest says READY in
//! time. The answer is cached per kernel and image in the state root
//! (`accel-<key>`), so the probe runs once per host, not per run.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Accel, MicroVmConfig};
use crate::image::BuiltImage;
use crate::vm::{self, VmShape};

/// How long a KVM probe boot may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `/dev/kvm` can be opened for reading and writing.
pub fn kvm_openable() -> bool {
    fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

fn cache_key(config: &MicroVmConfig, image: &BuiltImage) -> String {
    let meta = fs::metadata(&config.kernel).ok();
    let mut h = Sha256::new();
    h.update(config.kernel.to_string_lossy().as_bytes());
    h.update(meta.as_ref().map(|m| m.size()).unwrap_or(0).to_be_bytes());
    h.update(meta.as_ref().map(|m| m.mtime()).unwrap_or(0).to_be_bytes());
    h.update(image.sha256.as_bytes());
    h.update(config.qemu.to_string_lossy().as_bytes());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The accelerator to use: `config.accel` unless it is `Auto`.
pub async fn settle(config: &MicroVmConfig, image: &BuiltImage) -> Accel {
    if config.accel != Accel::Auto {
        return config.accel;
    }
    if !kvm_openable() {
        return Accel::Tcg;
    }
    let cache = config.cache().join(format!("accel-{}", cache_key(config, image)));
    match fs::read_to_string(&cache).as_deref().map(str::trim) {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    let mut probe = config.clone();
    probe.boot_timeout = PROBE_TIMEOUT;
    let shape = VmShape { vcpus: 1, memory_mib: 256, disk_bytes: 16 << 20 };
    let accel = match vm::boot(&probe, &image.path, shape, Accel::Kvm, false).await {
        Ok(_vm) => Accel::Kvm,
        Err(e) => {
            tracing::info!(error = %e, "microvm: KVM did not boot the guest; using TCG");
            Accel::Tcg
        }
    };
    let _ = fs::write(&cache, accel.as_str());
    accel
}
