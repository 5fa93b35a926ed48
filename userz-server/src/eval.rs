//! `userz-server eval classifier --data FILE.jsonl [--json]`: runs the
//! configured classifier over labelled reports and prints the confusion
//! matrix with each label's precision and recall.
//!
//! Each line of the file is a JSON object with `text` and `label` (one of
//! the five labels); other fields are ignored, blank lines skipped. A line
//! that is not such an object stops the command before anything is
//! classified, naming the file, the line and the field.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{json, Value};
use userz_core::ports::{Classifier, ClassifierInput, Label};
use userz_core::Sensitive;

use crate::Config;

/// An evaluation.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// The configured classifier against labelled reports (JSONL: `text`, `label`).
    Classifier {
        /// The labelled reports.
        #[arg(long)]
        data: PathBuf,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
}

/// One labelled report of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Its text.
    pub text: String,
    /// The expected label.
    pub label: Label,
}

/// Reads a JSONL file of labelled reports.
///
/// # Errors
///
/// `FILE:LINE: …` naming the field for a line that is not an object with a
/// string `text` and a known `label`.
pub fn read_examples(path: &Path) -> Result<Vec<Example>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        let line = line.map_err(|e| format!("{at}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{at}: not JSON ({e})"))?;
        let text = v.get("text").and_then(Value::as_str).ok_or_else(|| format!("{at}: text: a string is required"))?;
        let raw = v.get("label").and_then(Value::as_str).ok_or_else(|| format!("{at}: label: a string is required"))?;
        let label = Label::parse(raw).ok_or_else(|| {
            let all: Vec<&str> = Label::ALL.iter().map(|l| l.as_str()).collect();
            format!("{at}: label: {raw:?} is not one of {}", all.join(", "))
        })?;
        out.push(Example { text: text.to_string(), label });
    }
    if out.is_empty() {
        return Err(format!("{}: no labelled reports", path.display()));
    }
    Ok(out)
}

/// What the classifier made of the examples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `(expected, predicted)` → count.
    pub confusion: HashMap<(Label, Label), usize>,
    /// Reports the classifier failed on (counted as not benign: held or rejected).
    pub errors: usize,
}

impl Report {
    /// Adds one outcome (`None`: the classifier failed).
    pub fn add(&mut self, expected: Label, predicted: Option<Label>) {
        match predicted {
            Some(p) => *self.confusion.entry((expected, p)).or_default() += 1,
            None => self.errors += 1,
        }
    }

    fn count(&self, expected: Label, predicted: Label) -> usize {
        self.confusion.get(&(expected, predicted)).copied().unwrap_or(0)
    }

    /// Examples with this expected label (failures excluded).
    pub fn support(&self, label: Label) -> usize {
        Label::ALL.iter().map(|p| self.count(label, *p)).sum()
    }

    /// Of the reports predicted `label`, the share that were.
    pub fn precision(&self, label: Label) -> f64 {
        let predicted: usize = Label::ALL.iter().map(|e| self.count(*e, label)).sum();
        ratio(self.count(label, label), predicted)
    }

    /// Of the reports that were `label`, the share predicted so.
    pub fn recall(&self, label: Label) -> f64 {
        ratio(self.count(label, label), self.support(label))
    }

    /// Benign reports given any other label.
    pub fn benign_fpr(&self) -> f64 {
        let benign = self.support(Label::Benign);
        ratio(benign - self.count(Label::Benign, Label::Benign), benign)
    }

    /// The JSON form (`--json`).
    pub fn to_json(&self) -> Value {
        let per_label: serde_json::Map<String, Value> = Label::ALL
            .iter()
            .map(|l| {
                let v =
                    json!({"precision": self.precision(*l), "recall": self.recall(*l), "support": self.support(*l)});
                (l.as_str().to_string(), v)
            })
            .collect();
        let confusion: serde_json::Map<String, Value> = Label::ALL
            .iter()
            .map(|e| {
                let row: serde_json::Map<String, Value> =
                    Label::ALL.iter().map(|p| (p.as_str().to_string(), json!(self.count(*e, *p)))).collect();
                (e.as_str().to_string(), Value::Object(row))
            })
            .collect();
        json!({
            "n": self.confusion.values().sum::<usize>() + self.errors,
            "errors": self.errors,
            "per_label": per_label,
            "confusion": confusion,
            "benign_fpr": self.benign_fpr(),
            "malicious_recall": self.recall(Label::MaliciousInjection),
        })
    }

    /// The tables for people.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("confusion (rows: expected, columns: predicted)\n");
        let _ = write!(s, "{:<20}", "");
        for p in Label::ALL {
            let _ = write!(s, "{:>20}", p.as_str());
        }
        s.push('\n');
        for e in Label::ALL {
            let _ = write!(s, "{:<20}", e.as_str());
            for p in Label::ALL {
                let _ = write!(s, "{:>20}", self.count(e, p));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\n{:<20}{:>10}{:>10}{:>10}", "label", "precision", "recall", "support");
        for l in Label::ALL {
            let _ = writeln!(
                s,
                "{:<20}{:>10.3}{:>10.3}{:>10}",
                l.as_str(),
                self.precision(l),
                self.recall(l),
                self.support(l)
            );
        }
        let _ = writeln!(
            s,
            "\nbenign false-positive rate {:.3} · malicious_injection recall {:.3} · classifier errors {}",
            self.benign_fpr(),
            self.recall(Label::MaliciousInjection),
            self.errors
        );
        s
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        #[allow(clippy::cast_precision_loss)]
        let r = num as f64 / den as f64;
        r
    }
}

/// Runs `classifier` over `examples`, with progress on standard error every
/// 500 reports.
pub async fn evaluate(classifier: &dyn Classifier, examples: &[Example]) -> Report {
    let mut report = Report::default();
    for (i, ex) in examples.iter().enumerate() {
        let input =
            ClassifierInput { text: Sensitive::new(ex.text.clone()), url: None, console: Sensitive::new(Vec::new()) };
        report.add(ex.label, classifier.classify(&input).await.ok().map(|c| c.label));
        if (i + 1) % 500 == 0 {
            eprintln!("eval: {} of {} classified", i + 1, examples.len());
        }
    }
    report
}

/// Runs an eval command; the exit code (0 done, 2 bad input or configuration).
pub async fn main(config: &Config, command: EvalCommand) -> u8 {
    match command {
        EvalCommand::Classifier { data, json } => {
            let examples = match read_examples(&data) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let classifier = match crate::classifier(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let report = evaluate(classifier.as_ref(), &examples).await;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            0
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn precision_recall_and_the_benign_false_positive_rate() {
        let mut r = Report::default();
        for _ in 0..8 {
            r.add(Label::Benign, Some(Label::Benign));
        }
        r.add(Label::Benign, Some(Label::Abuse));
        r.add(Label::Benign, Some(Label::MaliciousInjection));
        for _ in 0..3 {
            r.add(Label::MaliciousInjection, Some(Label::MaliciousInjection));
        }
        r.add(Label::MaliciousInjection, Some(Label::Benign));
        r.add(Label::Spam, None);
        assert_eq!(r.support(Label::Benign), 10);
        assert!((r.benign_fpr() - 0.2).abs() < 1e-9);
        assert!((r.recall(Label::MaliciousInjection) - 0.75).abs() < 1e-9);
        assert!((r.precision(Label::MaliciousInjection) - 0.75).abs() < 1e-9);
        assert!((r.precision(Label::Benign) - 8.0 / 9.0).abs() < 1e-9);
        assert_eq!(r.recall(Label::OffTopic), 0.0, "no support is 0, not NaN");
        let j = r.to_json();
        assert_eq!(j["n"], 15);
        assert_eq!(j["errors"], 1);
        assert_eq!(j["per_label"]["benign"]["support"], 10);
        assert_eq!(j["confusion"]["benign"]["abuse"], 1);
        assert!(r.to_text().contains("malicious_injection recall 0.750"));
    }

    #[test]
    fn bad_lines_name_the_file_line_and_field() {
        let dir = std::env::temp_dir().join(format!("userz-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("data.jsonl");
        let cases = [
            ("{\"text\":\"a\",\"label\":\"benign\"}\n\n{\"text\":\"b\",\"label\":\"nice\"}\n", ":3: label: \"nice\""),
            ("{\"label\":\"spam\"}\n", ":1: text:"),
            ("not json\n", ":1: not JSON"),
            ("\n", "no labelled reports"),
        ];
        for (text, want) in cases {
            std::fs::write(&file, text).unwrap();
            let err = read_examples(&file).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        std::fs::write(&file, "{\"text\":\"a\",\"label\":\"off_topic\",\"lang\":\"de\"}\n").unwrap();
        assert_eq!(read_examples(&file).unwrap(), vec![Example { text: "a".into(), label: Label::OffTopic }]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
