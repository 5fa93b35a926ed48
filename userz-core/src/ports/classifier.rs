//! The [`Classifier`] port.

use std::fmt::{self, Debug};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sensitive::Sensitive;

/// The five labels every report gets. Only `Benign` reaches an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A genuine product report.
    Benign,
    /// Advertising, gibberish, bulk submissions.
    Spam,
    /// An attempt to steer the coding agent.
    MaliciousInjection,
    /// Insults, harassment, threats.
    Abuse,
    /// Not about the product.
    OffTopic,
}

impl Label {
    /// All labels.
    pub const ALL: [Label; 5] = [Label::Benign, Label::Spam, Label::MaliciousInjection, Label::Abuse, Label::OffTopic];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Benign => "benign",
            Label::Spam => "spam",
            Label::MaliciousInjection => "malicious_injection",
            Label::Abuse => "abuse",
            Label::OffTopic => "off_topic",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A soft signal from the pre-filter, as recorded with the classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// Stable signal code, e.g. `role_tag`, `ignore_instructions`.
    pub kind: String,
    /// Byte offset in the normalised text.
    pub offset: usize,
    /// Byte length in the normalised text.
    pub len: usize,
    /// Weight in `0.0..=1.0`.
    pub weight: f32,
}

/// What the classifier sees: the report's free-text fields only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierInput {
    /// Feedback text.
    pub text: Sensitive<String>,
    /// Page URL, if any.
    pub url: Option<String>,
    /// Console messages, if any.
    pub console: Sensitive<Vec<String>>,
}

impl ClassifierInput {
    /// Everything the coding agent may later see of the report as one text
    /// (the text, then the URL and each console line on lines of their own):
    /// what an injection scan covers.
    pub fn all_text(&self) -> String {
        let mut all = self.text.expose().clone();
        for extra in self.url.iter().chain(self.console.expose()) {
            all.push('\n');
            all.push_str(extra);
        }
        all
    }
}

/// The classifier's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The label.
    pub label: Label,
    /// Confidence in `0.0..=1.0`.
    pub confidence: f32,
    /// Pre-filter signals that fed the decision.
    pub signals: Vec<SignalRecord>,
    /// Which classifier produced it (name and version or model id).
    pub classifier: String,
}

/// Labels a report.
///
/// # Contract
/// - Runs in its own context: no tools, no state shared with the coding agent, no
///   memory of other reports.
/// - Returns exactly one of the five labels; a classifier that cannot decide must
///   return an error (the engine then retries or fails the report), never a guess
///   of `Benign`.
#[async_trait]
pub trait Classifier: Send + Sync + Debug {
    /// Classifies one report.
    async fn classify(&self, input: &ClassifierInput) -> Result<Classification>;
}
