//! # userz-egress
//!
//! The host-side egress proxy of the Userz engine: one per agent run, and the
//! sandbox's only way out (design goals G8, G9, G19).
//!
//! - **CONNECT tunnels** to exact allowlisted `host:port` targets. The proxy
//!   resolves the name itself through a [`Resolver`], checks every address
//!   against the [`AddressPolicy`] (no loopback, private, link-local, CGNAT,
//!   multicast, documentation … ranges unless one exact socket address is
//!   excepted) and connects to the address it checked, never resolving again.
//! - **A model route**: plain-HTTP requests for one configured host (e.g.
//!   `http://model.egress.internal/v1/chat/completions`) are forwarded to the
//!   provider with the key added by the proxy, after every credential header
//!   the sandbox sent is removed. The key never enters the sandbox.
//! - Everything else is refused (403 naming the rule) without a connection,
//!   and every decision goes to an [`EgressAudit`] sink.
//!
//! ```no_run
//! # async fn demo() -> userz_egress::Result<()> {
//! use std::sync::Arc;
//! use userz_egress::{EgressProxyBuilder, MemoryAudit, ModelRoute};
//! let audit = Arc::new(MemoryAudit::new());
//! let proxy = EgressProxyBuilder::new()
//!     .with_unix_socket("/run/userz/run-42/egress.sock")
//!     .with_tcp("127.0.0.1:0".parse().expect("literal"))
//!     .with_allowed_target("github.com:443")
//!     .with_model_route(ModelRoute::anthropic(
//!         "model.egress.internal",
//!         "http://127.0.0.1:8000",
//!         "sk-ant-...".into(),
//!     )?)
//!     .with_allow_socket_addr("127.0.0.1:8000".parse().expect("literal"))
//!     .with_audit(audit.clone())
//!     .start()
//!     .await?;
//! println!("proxy on {:?}", proxy.local_addr());
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```

mod audit;
mod error;
mod model_route;
mod policy;
mod proxy;
mod resolver;
mod tunnel;

pub use audit::{EgressAudit, EgressDecision, MemoryAudit, Rule, TracingAudit};
pub use error::{Error, Result};
pub use model_route::{ModelRoute, ProviderAuth, DEFAULT_ANTHROPIC_VERSION};
pub use policy::{denied_range, AddressPolicy, Allowlist, Target};
pub use proxy::{EgressLimits, EgressProxy, EgressProxyBuilder, EgressStats, RULE_HEADER};
pub use resolver::{Resolver, StaticResolver, SystemResolver};
