//! Interim evaluator: exact-prefix matching on the default rules.
//!
//! This is replaced by the normalising evaluator of the security-primitives work;
//! it exists so the engine can be wired and tested end to end meanwhile.

use super::{Change, Violation};

/// The spec's default forbidden paths.
pub const DEFAULT_RULES: &[&str] =
    &[".env", ".env.*", ".github/workflows/**", ".git/**", "infra/**", "scripts/release/**"];

/// A set of forbidden-path rules.
#[derive(Debug, Clone)]
pub struct Guardrails {
    rules: Vec<String>,
}

impl Default for Guardrails {
    fn default() -> Self {
        Self { rules: DEFAULT_RULES.iter().map(|s| s.to_string()).collect() }
    }
}

impl Guardrails {
    /// Adds per-repo rules.
    pub fn with_rules(mut self, extra: impl IntoIterator<Item = String>) -> Self {
        self.rules.extend(extra);
        self
    }

    /// Every violation, in change-list order.
    pub fn check(&self, changes: &[Change]) -> Vec<Violation> {
        let mut out = Vec::new();
        for c in changes {
            for p in std::iter::once(&c.path).chain(c.old_path.as_ref()) {
                for r in &self.rules {
                    let hit = if let Some(dir) = r.strip_suffix("/**") {
                        p.starts_with(&format!("{dir}/"))
                    } else if let Some(stem) = r.strip_suffix('*') {
                        p.starts_with(stem)
                    } else {
                        p == r
                    };
                    if hit {
                        out.push(Violation { file: p.clone(), rule: r.clone() });
                    }
                }
            }
        }
        out
    }
}
