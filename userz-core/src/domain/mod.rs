//! The domain model: one decider per aggregate.
//!
//! | aggregate | stream | decider |
//! |---|---|---|
//! | Organization | `org-<id>` | [`org::OrgDecider`] |
//! | App | `app-<id>` | [`app::AppDecider`] |
//! | Repo | `repo-<id>` | [`repo::RepoDecider`] |
//! | Feedback | `feedback-<id>` | [`feedback::FeedbackDecider`] |
//! | AgentRun | `run-<id>` | [`run::RunDecider`] |
//! | PullRequest | `pr-<id>` | [`pr::PrDecider`] |
//! | Timer | `timer-<id>` | [`timer::TimerDecider`] |
//! | Blob | `blob-<uuid v5 of the key>` | [`blob::BlobDecider`] |
//! | Org secrets | `secrets-<org id>` | [`secrets::SecretsDecider`] |
//! | Billing | `billing-<org id>` | [`billing::BillingDecider`] |

pub mod app;
pub mod billing;
pub mod blob;
pub mod common;
pub mod feedback;
pub mod org;
pub mod pr;
pub mod repo;
pub mod run;
pub mod secrets;
pub mod timer;

pub use common::{Actor, Dedup, ProcessingMode, Role, Severity};
