//! The process backend against the shared sandbox conformance suite
//! (`userz_testkit::conformance::sandbox`): the escape probe's cases and the
//! port contract, one test per check. Needs root and bubblewrap; fails loudly
//! without them unless `USERZ_ALLOW_SKIP=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use userz_testkit::conformance::sandbox::SandboxCapabilities;

// Runs share the host kernel: every check of its attack surface runs.
userz_testkit::sandbox_conformance_tests!(
    common::Process,
    SandboxCapabilities { kernel_isolation: false, shared_workspace: true }
);
