//! Fixture helpers of the userz-git tests: fixtures are built with the `git`
//! program (trusted test set-up); the code under test never starts it.

pub use userz_testkit::git_fixture::git;
