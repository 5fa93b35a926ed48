//! The [`KeyProvider`] port: the master key that wraps each org's data key.
//!
//! Implementations: `userz_security::envelope::StaticKeyProvider` (master
//! keys given as bytes or one env-var value, for single-node deployments); a
//! KMS adapter implements the same trait outside the core.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::secret::SecretBytes;

/// A data key wrapped by a master key, tagged with the master key's id/version.
///
/// Serialisable so it can be stored next to what it protects; the ciphertext is
/// base64 in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Id (including version) of the master key that wrapped this blob.
    pub master_key_id: String,
    /// Provider-specific wrapped bytes.
    #[serde(with = "crate::encoding::b64")]
    pub ciphertext: Vec<u8>,
}

/// Wraps and unwraps org data keys with a master key held outside the store.
///
/// # Contract
/// - The master key never leaves the provider through this interface and is
///   never written to the primary store.
/// - `wrap` uses the key named by `current_key_id()` and records that id in
///   [`WrappedKey::master_key_id`]; `unwrap` uses the id recorded in the blob,
///   so blobs wrapped with an older master key stay readable after rotation
///   for as long as the provider still holds that key.
/// - `unwrap` of a tampered blob, of a blob whose recorded key id was changed,
///   or with different associated data fails with
///   [`crate::Error::Rejected`] (rule `unwrap_failed`); an unknown key id fails
///   with [`crate::Error::NotFound`].
/// - Unwrapped plaintext is returned as [`SecretBytes`] (zeroized on drop).
/// - Transient backend failures (a remote KMS) are `Unavailable`, retryable.
#[async_trait]
pub trait KeyProvider: Send + Sync + Debug {
    /// The id (with version) of the master key new wraps use.
    fn current_key_id(&self) -> String;
    /// Wraps `data_key` with the current master key, binding `aad`.
    async fn wrap(&self, data_key: &SecretBytes, aad: &[u8]) -> Result<WrappedKey>;
    /// Unwraps a blob produced by `wrap` (with any master key version still held).
    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<SecretBytes>;
}
