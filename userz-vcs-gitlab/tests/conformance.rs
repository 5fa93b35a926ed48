//! The GitLab provider against the shared VCS conformance suite
//! (`userz_testkit::conformance::vcs`), with the GitLab fake and a real git
//! smart-HTTP server behind it that requires the project token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use userz_testkit::conformance::vcs::ForgeCapabilities;

userz_testkit::vcs_conformance_tests!(
    common::forge(),
    // GitLab's published operations cannot rewrite a merge request's text.
    ForgeCapabilities { opens_pull_requests: true, authenticates_git: true, rewrites_pr_text: false }
);
