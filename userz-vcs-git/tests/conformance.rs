//! The branch-only git provider against the shared VCS conformance suite
//! (`userz_testkit::conformance::vcs`), over a local bare repository.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use userz_testkit::conformance::vcs::ForgeCapabilities;

userz_testkit::vcs_conformance_tests!(
    common::forge(),
    // Pushes the branch only; a local remote takes no credentials.
    ForgeCapabilities { opens_pull_requests: false, authenticates_git: false, rewrites_pr_text: false }
);
