//! `userz-server eval classifier`: the configured classifier (the default
//! heuristic one here) over the corpus's held-out split, as JSON and as
//! tables; a bad file is refused with the line and field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::server_command;

fn corpus(split: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/classifier").join(format!("{split}.jsonl"))
}

#[test]
fn eval_classifier_prints_the_matrix_and_per_label_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = server_command(tmp.path())
        .args(["eval", "classifier", "--json", "--data"])
        .arg(corpus("test"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines = std::fs::read_to_string(corpus("test")).unwrap().lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(v["n"], lines, "{v}");
    let mut support = 0;
    for label in ["benign", "spam", "malicious_injection", "abuse", "off_topic"] {
        let l = &v["per_label"][label];
        for k in ["precision", "recall"] {
            let x = l[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{label} {k} {x}");
        }
        support += l["support"].as_u64().unwrap();
    }
    assert_eq!(support + v["errors"].as_u64().unwrap(), lines as u64);
    for k in ["benign_fpr", "malicious_recall"] {
        assert!((0.0..=1.0).contains(&v[k].as_f64().unwrap()), "{k}: {v}");
    }

    let out = server_command(tmp.path()).args(["eval", "classifier", "--data"]).arg(corpus("test")).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("confusion (rows: expected") && text.contains("malicious_injection recall"), "{text}");

    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"text\":\"hi\",\"label\":\"benign\"}\n{\"text\":\"x\",\"label\":\"phishing\"}\n").unwrap();
    let out = server_command(tmp.path()).args(["eval", "classifier", "--data"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jsonl:2: label: \"phishing\""), "{err}");
}
