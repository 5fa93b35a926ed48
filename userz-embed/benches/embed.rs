//! Embedding one 8 KB report (cut to the 256 tokens the model reads) beside
//! the raw baseline of the same run: tokenising that report with the same
//! tokenizer. Needs `USERZ_EMBED_MODEL_DIR` (`scripts/services.sh`:
//! `svc_embed_model`); without it the bench says so and measures nothing.
//!
//!     source scripts/services.sh && svc_embed_model && cargo bench -p userz-embed --bench embed
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use userz_embed::MiniLm;

fn report() -> String {
    let para = "When I open the order history on the mobile app and scroll past the first page, the list \
                jumps back to the top and the spinner never stops; the console shows a 502 from the orders \
                endpoint. It started after yesterday's update. ";
    para.repeat(8192 / para.len() + 1)[..8192].to_string()
}

fn bench(c: &mut Criterion) {
    let Ok(dir) = std::env::var("USERZ_EMBED_MODEL_DIR") else {
        eprintln!("embed bench: USERZ_EMBED_MODEL_DIR is not set (source scripts/services.sh && svc_embed_model)");
        return;
    };
    let model = MiniLm::load(Path::new(&dir)).unwrap();
    let tokenizer = tokenizers::Tokenizer::from_file(Path::new(&dir).join("tokenizer.json")).unwrap();
    let text = report();
    let mut g = c.benchmark_group("embed_8kb_report");
    g.sample_size(20);
    g.bench_function("baseline_tokenize_only", |b| b.iter(|| tokenizer.encode(text.as_str(), true).unwrap()));
    g.bench_function("embed", |b| b.iter(|| model.embed_blocking(&[text.as_str()]).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
