//! The [`KeyProvider`] port: the master key that wraps each org's data key.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;

/// Wraps and unwraps org data keys with a master key held outside the store.
///
/// # Contract
/// - The master key never leaves the provider through this interface and is
///   never written to the primary store.
/// - `wrap` output names the master key id/version it was wrapped with, so
///   `unwrap` keeps working for older versions after rotation.
/// - `unwrap` of a tampered blob, or with different associated data, fails.
#[async_trait]
pub trait KeyProvider: Send + Sync + Debug {
    /// The id of the key new wraps use.
    fn current_key_id(&self) -> String;
    /// Wraps `plaintext` (a data key), binding `aad`.
    async fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>>;
    /// Unwraps a blob produced by `wrap`.
    async fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Vec<u8>>;
}
