//! The GitHub App provider against the shared VCS conformance suite
//! (`userz_testkit::conformance::vcs`), with the GitHub fake and a real git
//! smart-HTTP server (lighttpd + `git http-backend`) that requires the token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use userz_testkit::conformance::vcs::ForgeCapabilities;

userz_testkit::vcs_conformance_tests!(
    common::forge(),
    ForgeCapabilities { opens_pull_requests: true, authenticates_git: true, rewrites_pr_text: true }
);
