//! The microVM backend against the shared sandbox conformance suite
//! (`userz_testkit::conformance::sandbox`), one test per check, run as an
//! unprivileged user. Needs QEMU and the guest kernel (`scripts/services.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use userz_testkit::conformance::sandbox::SandboxCapabilities;

// Each run has its own kernel (the host kernel's ptrace/mount/namespace/module
// surface is out of reach), and the host never mounts what the guest wrote.
userz_testkit::sandbox_conformance_tests!(
    common::MicroVm,
    SandboxCapabilities { kernel_isolation: true, shared_workspace: false }
);
