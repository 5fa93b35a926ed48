//! The [`Embedder`] port: text in, a vector out, such that texts with the
//! same meaning lie close together. Duplicate detection and the classifier
//! model read it.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;

/// Turns texts into unit vectors.
///
/// # Contract
/// - Every vector has [`dimensions`](Embedder::dimensions) entries and an L2
///   norm of 1 (± 1e-4), so the dot product of two is their cosine.
/// - The same text gives the same vector (deterministic, no hidden state).
/// - Runs offline: no model or data is fetched at run time.
/// - `embed(&[])` is `Ok(vec![])`; the answer has one vector per text, in order.
/// - A text longer than the model reads is cut to its first part (the
///   adapter documents how many tokens); it is never an error.
#[async_trait]
pub trait Embedder: Send + Sync + Debug {
    /// How many entries each vector has.
    fn dimensions(&self) -> usize;

    /// The model's name and pinned digest, recorded with every decision
    /// that used its vectors.
    fn model(&self) -> &str;

    /// Embeds `texts`.
    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// The cosine of two vectors (0 when either is all zeros or their lengths
/// differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_of_parallel_orthogonal_and_degenerate_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 1.0]), 0.0);
    }
}
