//! Every egress decision, allowed or denied, goes to an [`EgressAudit`] sink.

use std::fmt::{self, Debug};
use std::net::SocketAddr;

use parking_lot::Mutex;
use userz_core::Timestamp;

/// The rule that decided a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// A CONNECT to an allowlisted `host:port` whose addresses all passed.
    Allowlisted,
    /// A request on the model-provider route, forwarded with the key added.
    ModelRoute,
    /// The target is not on the allowlist (or not the model route).
    NotAllowlisted,
    /// The target, or an address its name resolved to, is in a denied range.
    AddressDenied,
    /// The allowlisted name did not resolve.
    DnsFailed,
    /// The method is not served (e.g. `PUT` on the model route).
    MethodNotAllowed,
    /// The run already has the maximum number of open tunnels.
    TooManyTunnels,
    /// Every checked address refused the connection (or timed out).
    UpstreamUnreachable,
}

impl Rule {
    /// The rule's wire name, as sent in the denial body and the
    /// `x-userz-egress-rule` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Allowlisted => "allowlisted",
            Rule::ModelRoute => "model_route",
            Rule::NotAllowlisted => "not_allowlisted",
            Rule::AddressDenied => "address_denied",
            Rule::DnsFailed => "dns_failed",
            Rule::MethodNotAllowed => "method_not_allowed",
            Rule::TooManyTunnels => "too_many_tunnels",
            Rule::UpstreamUnreachable => "upstream_unreachable",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision of the proxy. Holds no header, body or credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressDecision {
    /// What the sandbox asked for: `host:port` of a CONNECT, or the model
    /// route's `host:port` (the path is left out: it may carry data).
    pub target: String,
    /// Whether traffic went (or was about to go) out.
    pub allowed: bool,
    /// The rule that decided.
    pub rule: Rule,
    /// The address connected to when allowed; the offending address when
    /// [`Rule::AddressDenied`]; otherwise `None`.
    pub resolved: Option<SocketAddr>,
    /// When the decision was made.
    pub at: Timestamp,
}

/// Receives every [`EgressDecision`].
///
/// # Contract
///
/// - Called exactly once per request the proxy decides on (one per CONNECT,
///   one per plain-HTTP request), on the proxy's task: it must not block;
///   a sink that writes to a store buffers and writes elsewhere.
/// - Must not fail the request: a sink that cannot record logs and drops.
pub trait EgressAudit: Send + Sync + Debug {
    /// Records one decision.
    fn record(&self, decision: EgressDecision);
}

/// The default sink: one `tracing` event per decision (`info` when allowed,
/// `warn` when denied), target `userz_egress::audit`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingAudit;

impl EgressAudit for TracingAudit {
    fn record(&self, d: EgressDecision) {
        let resolved = d.resolved.map(|a| a.to_string());
        if d.allowed {
            tracing::info!(target: "userz_egress::audit", target_host = %d.target, rule = %d.rule, resolved = ?resolved, "egress allowed");
        } else {
            tracing::warn!(target: "userz_egress::audit", target_host = %d.target, rule = %d.rule, resolved = ?resolved, "egress denied");
        }
    }
}

/// Keeps every decision in memory, in order. For tests.
#[derive(Debug, Default)]
pub struct MemoryAudit {
    decisions: Mutex<Vec<EgressDecision>>,
}

impl MemoryAudit {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every decision recorded so far.
    pub fn decisions(&self) -> Vec<EgressDecision> {
        self.decisions.lock().clone()
    }
}

impl EgressAudit for MemoryAudit {
    fn record(&self, decision: EgressDecision) {
        self.decisions.lock().push(decision);
    }
}
