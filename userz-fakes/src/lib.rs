//! # userz-fakes
//!
//! Local fakes of the providers the Userz engine talks to, each a real HTTP
//! server on loopback speaking the provider's published wire format:
//! - [`github_fake`]: the GitHub REST operations the GitHub App provider uses;
//! - [`gitlab_fake`]: the GitLab merge-request operations the GitLab provider
//!   uses, mountable under a path prefix, forwarding git smart-HTTP to a
//!   `userz_testkit::git_http::GitHttpServer`;
//! - [`google_fake`]: Google's OAuth 2.0 / OpenID Connect endpoints;
//! - [`model_server`]: a scripted model server speaking the OpenAI and
//!   Anthropic wire formats;
//! - [`vcs_webhooks`]: realistic inbound GitHub and GitLab webhook deliveries.
//!
//! ```no_run
//! # async fn demo() {
//! use userz_fakes::model_server::{ScriptedModelServer, ScriptedTurn};
//! let server = ScriptedModelServer::start(vec![ScriptedTurn::text("hello")]).await;
//! let _base = server.base_url();
//! # }
//! ```

pub mod github_fake;
pub mod gitlab_fake;
pub mod google_fake;
pub mod model_server;
pub mod vcs_webhooks;
