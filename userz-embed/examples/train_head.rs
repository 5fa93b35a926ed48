//! Trains the classifier head the crate ships (`head/minilm-head-v1.json`):
//! multinomial logistic regression over the report's all-MiniLM-L6-v2
//! embedding and the pre-filter's features, fitted on
//! `data/classifier/train.jsonl`; each non-benign label's threshold is then
//! calibrated on `val.jsonl` so that benign validation reports given that
//! label stay within a budget. `test.jsonl` is never read here.
//!
//!     source scripts/services.sh && svc_embed_model
//!     cargo run -p userz-embed --example train_head
//!
//! Deterministic: full-batch AdamW from zero weights, fixed epochs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use userz_core::ports::Label;
use userz_embed::head::{feature_names, prepare, Head};
use userz_embed::{MiniLm, MINILM_DIMENSIONS, MINILM_SHA256};

fn knob(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
/// Share of benign validation reports each label may take.
const BUDGET_INJECTION: f64 = 0.01;
const BUDGET_OTHER: f64 = 0.003;

struct Split {
    x: Vec<Vec<f32>>,
    y: Vec<usize>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(model: &MiniLm, name: &str) -> (Split, String) {
    let path = root().join("data/classifier").join(format!("{name}.jsonl"));
    let raw = std::fs::read(&path).unwrap();
    let sha = format!("{:x}", Sha256::digest(&raw));
    let mut texts = Vec::new();
    let mut y = Vec::new();
    for line in String::from_utf8(raw).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let label = Label::parse(v["label"].as_str().unwrap()).unwrap();
        texts.push(v["text"].as_str().unwrap().to_string());
        y.push(Label::ALL.iter().position(|l| *l == label).unwrap());
    }
    let prepared: Vec<_> = texts.iter().map(|t| prepare(t)).collect();
    // Embeddings are cached beside the build (keyed by the split's digest):
    // training again with other settings does not embed again.
    let cache = root().join("target").join(format!("head-embeddings-{name}-{}.json", &sha[..16]));
    let embeddings: Vec<Vec<f32>> = match std::fs::read(&cache) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => {
            // Similar lengths batched together: padding costs little.
            let mut order: Vec<usize> = (0..prepared.len()).collect();
            order.sort_by_key(|i| prepared[*i].normalized.len());
            let mut out = vec![Vec::new(); prepared.len()];
            for (n, chunk) in order.chunks(16).enumerate() {
                let refs: Vec<&str> = chunk.iter().map(|i| prepared[*i].normalized.as_str()).collect();
                for (i, e) in chunk.iter().zip(model.embed_blocking(&refs).unwrap()) {
                    out[*i] = e;
                }
                if n % 20 == 0 {
                    eprintln!("{name}: embedded {} of {}", (n + 1) * 16, prepared.len());
                }
            }
            std::fs::write(&cache, serde_json::to_vec(&out).unwrap()).unwrap();
            out
        }
    };
    let x = embeddings
        .into_iter()
        .zip(&prepared)
        .map(|(e, p)| e.into_iter().chain(p.extra.iter().copied()).collect())
        .collect();
    (Split { x, y }, sha)
}

fn main() {
    let dir = std::env::var("USERZ_EMBED_MODEL_DIR")
        .expect("USERZ_EMBED_MODEL_DIR (source scripts/services.sh && svc_embed_model)");
    let model = MiniLm::load(Path::new(&dir)).unwrap();
    let (train, train_sha) = load(&model, "train");
    let (val, val_sha) = load(&model, "val");
    let d = MINILM_DIMENSIONS + feature_names().len();
    let k = Label::ALL.len();

    // Standardise with the training split's statistics.
    let n = train.x.len() as f32;
    let mean: Vec<f32> = (0..d).map(|j| train.x.iter().map(|r| r[j]).sum::<f32>() / n).collect();
    let std: Vec<f32> =
        (0..d).map(|j| (train.x.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f32>() / n).sqrt().max(1e-4)).collect();
    let scale = |rows: &[Vec<f32>]| -> Vec<f32> {
        rows.iter().flat_map(|r| r.iter().enumerate().map(|(j, v)| (v - mean[j]) / std[j])).collect()
    };

    let dev = Device::Cpu;
    let x = Tensor::from_vec(scale(&train.x), (train.x.len(), d), &dev).unwrap();
    let y = Tensor::from_vec(train.y.iter().map(|v| *v as u32).collect::<Vec<_>>(), train.y.len(), &dev).unwrap();
    let w = Var::zeros((d, k), DType::F32, &dev).unwrap();
    let b = Var::zeros(k, DType::F32, &dev).unwrap();
    let (epochs, lr, wd) = (knob("EPOCHS", 300.0) as usize, knob("LR", 0.01), knob("WD", 1.0));
    let params = ParamsAdamW { lr, weight_decay: wd, ..ParamsAdamW::default() };
    let mut opt = AdamW::new(vec![w.clone(), b.clone()], params).unwrap();
    for epoch in 0..epochs {
        let logits = x.matmul(w.as_tensor()).unwrap().broadcast_add(b.as_tensor()).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
        opt.backward_step(&loss).unwrap();
        if epoch % 100 == 0 || epoch == epochs - 1 {
            eprintln!("epoch {epoch}: loss {:.4}", loss.to_scalar::<f32>().unwrap());
        }
    }
    let wt: Vec<Vec<f32>> = w.as_tensor().t().unwrap().to_vec2().unwrap();
    let bias: Vec<f32> = b.as_tensor().to_vec1().unwrap();

    let mut head = Head {
        name: "minilm-head-v1".into(),
        embedding_sha256: MINILM_SHA256.into(),
        features: feature_names(),
        labels: Label::ALL.to_vec(),
        mean,
        std,
        weights: wt,
        bias,
        thresholds: Label::ALL.iter().map(|l| (*l, 0.5)).collect(),
        provenance: Value::Null,
    };

    // Calibrate each non-benign threshold on validation: the lowest that
    // keeps benign reports given that label within the budget.
    let probs: Vec<Vec<f32>> =
        val.x.iter().map(|r| head.probabilities(&r[..MINILM_DIMENSIONS], &r[MINILM_DIMENSIONS..])).collect();
    let benign = Label::ALL.iter().position(|l| *l == Label::Benign).unwrap();
    {
        let mut c = vec![vec![0usize; k]; k];
        for (p, y) in probs.iter().zip(&val.y) {
            let arg = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            c[*y][arg] += 1;
        }
        eprintln!("validation, most probable label: {c:?}");
    }
    let benign_rows: Vec<&Vec<f32>> = probs.iter().zip(&val.y).filter(|(_, y)| **y == benign).map(|(p, _)| p).collect();
    for (i, label) in Label::ALL.iter().enumerate() {
        if *label == Label::Benign {
            continue;
        }
        let budget = if *label == Label::MaliciousInjection { BUDGET_INJECTION } else { BUDGET_OTHER };
        let allowed = (budget * benign_rows.len() as f64).floor() as usize;
        let mut scores: Vec<f32> = benign_rows.iter().map(|p| p[i]).collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        // Above the (allowed+1)-th highest benign score, at least 0.5.
        let t = scores.get(allowed).map_or(0.5, |s| (s + 1e-6).max(0.5));
        head.thresholds.iter_mut().find(|(l, _)| l == label).unwrap().1 = t;
    }

    // Validation figures with the calibrated thresholds.
    let mut confusion = vec![vec![0usize; k]; k];
    for (p, y) in probs.iter().zip(&val.y) {
        let (label, _) = head.decide(p);
        confusion[*y][Label::ALL.iter().position(|l| *l == label).unwrap()] += 1;
    }
    let recall = |i: usize| confusion[i][i] as f64 / confusion[i].iter().sum::<usize>().max(1) as f64;
    let inj = Label::ALL.iter().position(|l| *l == Label::MaliciousInjection).unwrap();
    let benign_fpr = 1.0 - recall(benign);
    eprintln!("validation: malicious_injection recall {:.3}, benign false-positive rate {benign_fpr:.3}", recall(inj));
    for (i, l) in Label::ALL.iter().enumerate() {
        eprintln!("  {:<20} recall {:.3}  row {:?}", l.as_str(), recall(i), confusion[i]);
    }
    head.provenance = json!({
        "trainer": "userz-embed/examples/train_head.rs",
        "model": "multinomial logistic regression, full-batch AdamW",
        "epochs": epochs, "learning_rate": lr, "weight_decay": wd,
        "threshold_budgets": {"malicious_injection": BUDGET_INJECTION, "other": BUDGET_OTHER},
        "train": {"file": "data/classifier/train.jsonl", "sha256": train_sha, "n": train.y.len()},
        "validation": {"file": "data/classifier/val.jsonl", "sha256": val_sha, "n": val.y.len(),
                        "malicious_injection_recall": recall(inj), "benign_fpr": benign_fpr,
                        "confusion": confusion},
    });
    let out = root().join("userz-embed/head/minilm-head-v1.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let text = serde_json::to_string(&head).unwrap();
    Head::parse(&text).unwrap();
    std::fs::write(&out, text).unwrap();
    eprintln!("wrote {}", out.display());
}
