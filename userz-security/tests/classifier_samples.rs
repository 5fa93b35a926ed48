//! G3: the default classifier on sample reports kept in `tests/data/`.

use userz_core::ports::{Classifier, ClassifierInput, Label};
use userz_security::classifier::HeuristicClassifier;

fn samples(file: &str) -> Vec<String> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

async fn label(text: &str) -> Label {
    let input = ClassifierInput {
        text: text.to_owned().into(),
        url: Some("https://app.example/settings".into()),
        console: Vec::new().into(),
    };
    match HeuristicClassifier::new().classify(&input).await {
        Ok(c) => c.label,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn injection_samples_are_malicious() {
    let s = samples("injection_samples.txt");
    assert!(s.len() >= 10);
    let mut missed = Vec::new();
    for t in &s {
        let l = label(t).await;
        if l != Label::MaliciousInjection {
            missed.push(format!("{l}: {t}"));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

#[tokio::test]
async fn benign_samples_stay_benign() {
    let s = samples("benign_samples.txt");
    assert!(s.len() >= 10);
    let mut wrong = Vec::new();
    for t in &s {
        let l = label(t).await;
        if l != Label::Benign {
            wrong.push(format!("{l}: {t}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
