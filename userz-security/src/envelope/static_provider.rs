//! [`StaticKeyProvider`]: master keys supplied as bytes or one env-var value.

use std::collections::BTreeMap;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;

use super::{EnvelopeError, SIV_KEY_LEN};
use crate::secret::SecretBytes;
use userz_core::ports::key_provider::{KeyProvider, WrappedKey};

const MASTER_WRAP_DOMAIN: &[u8] = b"userz/master-wrap/v1";
const MAX_KEY_ID_LEN: usize = 64;

/// A [`KeyProvider`] holding one or more 512-bit master keys in memory, for
/// single-node deployments. Wraps with deterministic AES-SIV (RFC 5297's key
/// wrap mode; data keys are random, so determinism reveals nothing), binding
/// the master key id and the caller's associated data.
///
/// Rotation: add the new key with [`with_key`](Self::with_key), make it
/// current with [`with_current`](Self::with_current), keep the old ones until
/// every [`super::WrappedOrgKey`] has been passed through
/// [`super::Envelope::rewrap`].
///
/// Env format ([`from_env_value`](Self::from_env_value)):
/// `id:base64key[,id:base64key…]` — the **last** entry is current, so a
/// rotation appends. Key ids are 1–64 chars of `[A-Za-z0-9._-]` and should
/// carry the version (`master-2`).
///
/// Reading the key from a file belongs in the server crate (core opens no
/// files): read the file there and pass its contents to `from_env_value`.
#[derive(Debug, Clone)]
pub struct StaticKeyProvider {
    keys: BTreeMap<String, SecretBytes>,
    current: String,
}

/// Environment variable read by [`StaticKeyProvider::from_env`].
pub const MASTER_KEYS_ENV: &str = "USERZ_MASTER_KEYS";

fn check_key_id(id: &str) -> Result<(), EnvelopeError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EnvelopeError::InvalidKey("master key id must be 1-64 chars of [A-Za-z0-9._-]".into()))
    }
}

fn check_key(key: &[u8]) -> Result<(), EnvelopeError> {
    if key.len() == SIV_KEY_LEN {
        Ok(())
    } else {
        Err(EnvelopeError::InvalidKey(format!("master key must be {SIV_KEY_LEN} bytes")))
    }
}

impl StaticKeyProvider {
    /// One master key, which is current.
    pub fn from_bytes(id: impl Into<String>, key: &[u8]) -> Result<Self, EnvelopeError> {
        let id = id.into();
        check_key_id(&id)?;
        check_key(key)?;
        let mut keys = BTreeMap::new();
        keys.insert(id.clone(), SecretBytes::copy_from(key));
        Ok(Self { keys, current: id })
    }

    /// A fresh random master key (tests and local development).
    pub fn generate(id: impl Into<String>) -> Result<Self, EnvelopeError> {
        let mut key = vec![0u8; SIV_KEY_LEN];
        OsRng.fill_bytes(&mut key);
        let key = SecretBytes::new(key);
        Self::from_bytes(id, key.expose_secret())
    }

    /// Adds (or replaces) a key without changing which one is current.
    pub fn with_key(mut self, id: impl Into<String>, key: &[u8]) -> Result<Self, EnvelopeError> {
        let id = id.into();
        check_key_id(&id)?;
        check_key(key)?;
        self.keys.insert(id, SecretBytes::copy_from(key));
        Ok(self)
    }

    /// Adds a fresh random key and makes it current (tests and local development).
    pub fn with_generated_current(self, id: impl Into<String>) -> Result<Self, EnvelopeError> {
        let id = id.into();
        let fresh = Self::generate(id.clone())?;
        let mut this = self;
        this.keys.extend(fresh.keys);
        this.current = id;
        Ok(this)
    }

    /// Makes `id` (already held) the key new wraps use.
    pub fn with_current(mut self, id: &str) -> Result<Self, EnvelopeError> {
        if !self.keys.contains_key(id) {
            return Err(EnvelopeError::InvalidKey(format!("unknown master key id {id}")));
        }
        self.current = id.to_owned();
        Ok(self)
    }

    /// Parses `id:base64key[,id:base64key…]`; the last entry is current.
    pub fn from_env_value(value: &str) -> Result<Self, EnvelopeError> {
        let mut provider: Option<Self> = None;
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) =
                entry.split_once(':').ok_or_else(|| EnvelopeError::InvalidKey("expected id:base64key".into()))?;
            let key = SecretBytes::new(
                STANDARD
                    .decode(b64.trim())
                    .map_err(|_| EnvelopeError::InvalidKey("master key is not base64".into()))?,
            );
            let id = id.trim();
            provider = Some(match provider {
                None => Self::from_bytes(id, key.expose_secret())?,
                Some(p) => p.with_key(id, key.expose_secret())?.with_current(id)?,
            });
        }
        provider.ok_or_else(|| EnvelopeError::InvalidKey("no master key given".into()))
    }

    /// Reads [`MASTER_KEYS_ENV`] and parses it with [`from_env_value`](Self::from_env_value).
    pub fn from_env() -> Result<Self, EnvelopeError> {
        let value = std::env::var(MASTER_KEYS_ENV)
            .map(crate::secret::SecretString::new)
            .map_err(|_| EnvelopeError::InvalidKey(format!("{MASTER_KEYS_ENV} is not set")))?;
        Self::from_env_value(value.expose_secret())
    }

    /// The ids of every key held (not secret).
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    fn cipher(&self, id: &str) -> userz_core::Result<Aes256Siv> {
        let key = self.keys.get(id).ok_or_else(|| userz_core::Error::NotFound(format!("master key {id}")))?;
        Aes256Siv::new_from_slice(key.expose_secret())
            .map_err(|_| userz_core::Error::Invalid("master key length".into()))
    }
}

fn unwrap_failed() -> userz_core::Error {
    userz_core::Error::Rejected {
        rule: "unwrap_failed",
        message: "wrapped key did not open (tampered or other associated data)".into(),
    }
}

#[async_trait]
impl KeyProvider for StaticKeyProvider {
    fn current_key_id(&self) -> String {
        self.current.clone()
    }

    async fn wrap(&self, data_key: &SecretBytes, aad: &[u8]) -> userz_core::Result<WrappedKey> {
        let mut cipher = self.cipher(&self.current)?;
        let ciphertext = cipher
            .encrypt([MASTER_WRAP_DOMAIN, self.current.as_bytes(), aad], data_key.expose_secret())
            .map_err(|_| userz_core::Error::Invalid("data key too long".into()))?;
        Ok(WrappedKey { master_key_id: self.current.clone(), ciphertext })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> userz_core::Result<SecretBytes> {
        let mut cipher = self.cipher(&wrapped.master_key_id)?;
        let plaintext = cipher
            .decrypt([MASTER_WRAP_DOMAIN, wrapped.master_key_id.as_bytes(), aad], &wrapped.ciphertext)
            .map_err(|_| unwrap_failed())?;
        Ok(SecretBytes::new(plaintext))
    }
}
