//! Two-layer envelope encryption for org secrets (guarantee G13).
//!
//! ```text
//! master key (KeyProvider, never in the store)
//!   └─ wraps ─► org data key (512 random bits, one per org and version) = WrappedOrgKey in the store
//!                 └─ HKDF-SHA256 ─► purpose subkeys (see KeyPurpose)
//!                                     └─ SecretSealing key ─► AES-SIV ─► SealedSecret in the store
//! ```
//!
//! - Each secret is sealed with AES-SIV (RFC 5297, `Aes256Siv`) using the
//!   org's *sealing subkey*, a fresh random 128-bit nonce, and associated data
//!   components that bind the org id, the [`SecretKind`], the secret id and the
//!   org-key version. A sealed secret copied to another org, kind or slot does
//!   not open ([`EnvelopeError::OpenFailed`]).
//! - The org data key is never used directly: [`OrgDataKey::subkey`] derives
//!   one key per [`KeyPurpose`] with HKDF-SHA256 (salt: a fixed domain string;
//!   info: the purpose label plus the org id), so a key used for sealing secrets
//!   is never also used as, say, a blind-index MAC key.
//! - The org data key is wrapped by the [`KeyProvider`]'s current master key;
//!   the wrapped form records the master key id, so rotating the master key
//!   only needs [`Envelope::rewrap`] on each [`WrappedOrgKey`] — sealed
//!   secrets are untouched — and keys wrapped with an older master key stay
//!   readable while the provider still holds it.
//! - Plaintext comes back as [`SecretBytes`] / [`SecretString`] (zeroized on
//!   drop, redacted in `Debug`).
//!
//! ```
//! use std::sync::Arc;
//! use userz_core::ids::OrgId;
//! use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};
//! use userz_core::Timestamp;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let provider = StaticKeyProvider::generate("master-1")?;
//! let envelope = Envelope::new(Arc::new(provider));
//! let org = OrgId::new();
//! // Store `wrapped`; keep `key` only in memory.
//! let (key, wrapped) = envelope.generate_org_key(org, 1, Timestamp::from_millis(0)).await?;
//! let sealed = key.seal(SecretKind::AiProviderKey, "openai", b"sk-live-123")?;
//!
//! // Later, possibly in another process:
//! let key = envelope.open_org_key(&wrapped).await?;
//! let plaintext = key.open(&sealed, SecretKind::AiProviderKey, "openai")?;
//! assert_eq!(plaintext.expose_secret(), b"sk-live-123");
//! // Moved to another slot, it does not open.
//! assert!(key.open(&sealed, SecretKind::AiProviderKey, "anthropic").is_err());
//! # Ok::<(), userz_security::envelope::EnvelopeError>(())
//! # }).unwrap();
//! ```

mod static_provider;

use std::fmt;
use std::sync::Arc;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

use crate::secret::{SecretBytes, SecretString};
use userz_core::ids::OrgId;
use userz_core::ports::key_provider::KeyProvider;
use userz_core::time::Timestamp;

pub use static_provider::{StaticKeyProvider, MASTER_KEYS_ENV};
pub use userz_core::credentials::{SealedSecret, SecretKind, WrappedOrgKey, SEALED_FORMAT_V1};

/// Length of an org data key in bytes (512 bits).
pub const ORG_DATA_KEY_LEN: usize = 64;
/// Length of an AES-SIV (`Aes256Siv`) key in bytes: two 256-bit halves.
pub const SIV_KEY_LEN: usize = 64;
/// Length of the random nonce added to every sealed secret.
pub const NONCE_LEN: usize = 16;

const WRAP_AAD_DOMAIN: &[u8] = b"userz/org-key/v1";
const SEAL_AAD_DOMAIN: &[u8] = b"userz/secret/v1";
const HKDF_SALT: &[u8] = b"userz/org-key/hkdf-salt/v1";

/// What a subkey derived from an org data key is for. Each purpose yields an
/// independent key (HKDF-SHA256 with a distinct `info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyPurpose {
    /// The AES-SIV key that seals [`SealedSecret`]s (64 bytes).
    SecretSealing,
    /// An AES-SIV key for sealing personal-data fields of events
    /// (crypto-shredding by deleting the org key; 64 bytes).
    FieldSealing,
    /// An HMAC-SHA256 key for blind indexes over sealed values (32 bytes).
    BlindIndex,
}

impl KeyPurpose {
    fn info(self) -> &'static [u8] {
        match self {
            KeyPurpose::SecretSealing => b"userz/subkey/secret-sealing/v1",
            KeyPurpose::FieldSealing => b"userz/subkey/field-sealing/v1",
            KeyPurpose::BlindIndex => b"userz/subkey/blind-index/v1",
        }
    }

    /// Output length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            KeyPurpose::SecretSealing | KeyPurpose::FieldSealing => SIV_KEY_LEN,
            KeyPurpose::BlindIndex => 32,
        }
    }
}

/// Errors of envelope encryption, each with a stable [`code`](EnvelopeError::code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Decryption failed: tampered ciphertext, or the secret was sealed for
    /// another org, kind or secret id.
    #[error("sealed secret did not open (tampered, or bound to another org/kind/id)")]
    OpenFailed,
    /// The sealed record names another org or org-key version than the key given.
    #[error("sealed secret belongs to {what} other than the key given")]
    KeyMismatch {
        /// `org` or `org_key_version`.
        what: &'static str,
    },
    /// A sealed record has an unknown format version or a malformed field.
    #[error("malformed sealed data: {0}")]
    Malformed(&'static str),
    /// A key had the wrong length or a key id was invalid.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The key provider failed.
    #[error("key provider: {0}")]
    Provider(#[from] userz_core::Error),
    /// Decrypted bytes were not UTF-8 where a string was expected.
    #[error("secret is not valid UTF-8")]
    NotUtf8,
}

impl EnvelopeError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::OpenFailed => "open_failed",
            EnvelopeError::KeyMismatch { .. } => "key_mismatch",
            EnvelopeError::Malformed(_) => "malformed",
            EnvelopeError::InvalidKey(_) => "invalid_key",
            EnvelopeError::Provider(_) => "key_provider_failed",
            EnvelopeError::NotUtf8 => "not_utf8",
        }
    }
}

impl From<EnvelopeError> for userz_core::Error {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Provider(inner) => inner,
            other => userz_core::Error::Rejected { rule: other.code(), message: other.to_string() },
        }
    }
}

/// Associated data of an org key's wrap: binds org and version.
fn wrap_aad(org: OrgId, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_DOMAIN.len() + 20);
    aad.extend_from_slice(WRAP_AAD_DOMAIN);
    aad.extend_from_slice(org.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// An unwrapped org data key. Holds only derived subkeys in memory; all of
/// them zeroize on drop. Obtain one from [`Envelope::generate_org_key`] or
/// [`Envelope::open_org_key`].
pub struct OrgDataKey {
    org: OrgId,
    version: u32,
    root: SecretBytes,
    sealing: SecretBytes,
}

impl fmt::Debug for OrgDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrgDataKey")
            .field("org", &self.org)
            .field("version", &self.version)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl OrgDataKey {
    fn from_root(org: OrgId, version: u32, root: SecretBytes) -> Result<Self, EnvelopeError> {
        if root.len() != ORG_DATA_KEY_LEN {
            return Err(EnvelopeError::InvalidKey(format!("org data key must be {ORG_DATA_KEY_LEN} bytes")));
        }
        let sealing = derive_subkey(&root, org, KeyPurpose::SecretSealing);
        Ok(Self { org, version, root, sealing })
    }

    /// The org this key belongs to.
    pub fn org(&self) -> OrgId {
        self.org
    }

    /// The org-key version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Derives the subkey for `purpose` (HKDF-SHA256; see the module docs).
    pub fn subkey(&self, purpose: KeyPurpose) -> SecretBytes {
        derive_subkey(&self.root, self.org, purpose)
    }

    /// Seals `plaintext` for (`kind`, `secret_id`) in this org.
    pub fn seal(&self, kind: SecretKind, secret_id: &str, plaintext: &[u8]) -> Result<SealedSecret, EnvelopeError> {
        let mut nonce = vec![0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut cipher = siv(&self.sealing)?;
        let ciphertext = cipher
            .encrypt(seal_headers(self.org, kind, secret_id, self.version, &nonce), plaintext)
            .map_err(|_| EnvelopeError::Malformed("plaintext too long"))?;
        Ok(SealedSecret {
            format: SEALED_FORMAT_V1,
            org: self.org,
            kind,
            secret_id: secret_id.to_owned(),
            org_key_version: self.version,
            nonce,
            ciphertext,
        })
    }

    /// Opens a secret the caller expects to be (`kind`, `secret_id`) of this
    /// key's org. The binding comes from the caller (where the record was
    /// read from), not from the record itself, so a record moved to another
    /// slot fails even if its descriptive fields were edited to match.
    pub fn open(&self, sealed: &SealedSecret, kind: SecretKind, secret_id: &str) -> Result<SecretBytes, EnvelopeError> {
        if sealed.format != SEALED_FORMAT_V1 {
            return Err(EnvelopeError::Malformed("unknown sealed format"));
        }
        if sealed.org != self.org {
            return Err(EnvelopeError::KeyMismatch { what: "org" });
        }
        if sealed.org_key_version != self.version {
            return Err(EnvelopeError::KeyMismatch { what: "org_key_version" });
        }
        if sealed.nonce.len() != NONCE_LEN {
            return Err(EnvelopeError::Malformed("nonce length"));
        }
        let mut cipher = siv(&self.sealing)?;
        let plaintext = cipher
            .decrypt(seal_headers(self.org, kind, secret_id, self.version, &sealed.nonce), &sealed.ciphertext)
            .map_err(|_| EnvelopeError::OpenFailed)?;
        Ok(SecretBytes::new(plaintext))
    }

    /// [`open`](Self::open) for secrets that are UTF-8 strings.
    pub fn open_string(
        &self,
        sealed: &SealedSecret,
        kind: SecretKind,
        secret_id: &str,
    ) -> Result<SecretString, EnvelopeError> {
        let bytes = self.open(sealed, kind, secret_id)?;
        let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| EnvelopeError::NotUtf8)?;
        Ok(SecretString::new(text.to_owned()))
    }
}

fn derive_subkey(root: &SecretBytes, org: OrgId, purpose: KeyPurpose) -> SecretBytes {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), root.expose_secret());
    let mut okm = vec![0u8; purpose.key_len()];
    // Invariant: every purpose length is at most 64 bytes, far below the
    // HKDF-SHA256 output limit of 255 × 32 bytes, so expansion cannot fail.
    #[allow(clippy::expect_used)]
    hk.expand_multi_info(&[purpose.info(), org.as_uuid().as_bytes()], &mut okm)
        .expect("HKDF output length within limit");
    SecretBytes::new(okm)
}

fn siv(key: &SecretBytes) -> Result<Aes256Siv, EnvelopeError> {
    Aes256Siv::new_from_slice(key.expose_secret())
        .map_err(|_| EnvelopeError::InvalidKey(format!("AES-SIV key must be {SIV_KEY_LEN} bytes")))
}

/// AES-SIV takes a vector of associated-data strings (S2V), so the fields need
/// no length-prefixing to stay unambiguous.
fn seal_headers(org: OrgId, kind: SecretKind, secret_id: &str, version: u32, nonce: &[u8]) -> [Vec<u8>; 6] {
    [
        SEAL_AAD_DOMAIN.to_vec(),
        org.as_uuid().as_bytes().to_vec(),
        kind.as_str().as_bytes().to_vec(),
        secret_id.as_bytes().to_vec(),
        version.to_be_bytes().to_vec(),
        nonce.to_vec(),
    ]
}

/// Generates, wraps, unwraps and re-wraps org data keys through a [`KeyProvider`].
#[derive(Debug, Clone)]
pub struct Envelope {
    provider: Arc<dyn KeyProvider>,
}

impl Envelope {
    /// Uses `provider` for the master key.
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        Self { provider }
    }

    /// Generates a fresh random org data key and its wrapped form (to store).
    pub async fn generate_org_key(
        &self,
        org: OrgId,
        version: u32,
        now: Timestamp,
    ) -> Result<(OrgDataKey, WrappedOrgKey), EnvelopeError> {
        let mut root = vec![0u8; ORG_DATA_KEY_LEN];
        OsRng.fill_bytes(&mut root);
        let root = SecretBytes::new(root);
        let wrapped = self.provider.wrap(&root, &wrap_aad(org, version)).await?;
        let key = OrgDataKey::from_root(org, version, root)?;
        Ok((key, WrappedOrgKey { org, version, wrapped, created_at: now }))
    }

    /// Unwraps a stored org key (with whichever master key version wrapped it).
    pub async fn open_org_key(&self, wrapped: &WrappedOrgKey) -> Result<OrgDataKey, EnvelopeError> {
        let root = self.provider.unwrap(&wrapped.wrapped, &wrap_aad(wrapped.org, wrapped.version)).await?;
        OrgDataKey::from_root(wrapped.org, wrapped.version, root)
    }

    /// Whether `wrapped` was wrapped with another master key than the current one.
    pub fn needs_rewrap(&self, wrapped: &WrappedOrgKey) -> bool {
        wrapped.wrapped.master_key_id != self.provider.current_key_id()
    }

    /// Re-wraps an org key with the provider's current master key. The org data
    /// key itself (and so every secret sealed with it) is unchanged.
    pub async fn rewrap(&self, wrapped: &WrappedOrgKey) -> Result<WrappedOrgKey, EnvelopeError> {
        let aad = wrap_aad(wrapped.org, wrapped.version);
        let root = self.provider.unwrap(&wrapped.wrapped, &aad).await?;
        let rewrapped = self.provider.wrap(&root, &aad).await?;
        Ok(WrappedOrgKey { wrapped: rewrapped, ..wrapped.clone() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn envelope(provider: StaticKeyProvider) -> Envelope {
        Envelope::new(Arc::new(provider))
    }

    async fn org_key(env: &Envelope) -> (OrgDataKey, WrappedOrgKey) {
        env.generate_org_key(OrgId::new(), 1, Timestamp::from_millis(1)).await.unwrap()
    }

    #[tokio::test]
    async fn seal_then_open_round_trips() {
        let env = envelope(StaticKeyProvider::generate("master-1").unwrap());
        let (key, _) = org_key(&env).await;
        let sealed = key.seal(SecretKind::AiProviderKey, "openai", b"sk-live-123").unwrap();
        let opened = key.open(&sealed, SecretKind::AiProviderKey, "openai").unwrap();
        assert_eq!(opened.expose_secret(), b"sk-live-123");
        // Random nonce: sealing twice gives different ciphertexts.
        let again = key.seal(SecretKind::AiProviderKey, "openai", b"sk-live-123").unwrap();
        assert_ne!(sealed.ciphertext, again.ciphertext);
    }

    #[tokio::test]
    async fn org_a_ciphertext_does_not_open_for_org_b() {
        let env = envelope(StaticKeyProvider::generate("master-1").unwrap());
        let (a, _) = org_key(&env).await;
        let (b, _) = org_key(&env).await;
        let sealed = a.seal(SecretKind::RepoToken, "repo-1", b"glpat-xyz").unwrap();
        let err = b.open(&sealed, SecretKind::RepoToken, "repo-1").unwrap_err();
        assert_eq!(err.code(), "key_mismatch");
        // Even relabelled as org B's record, B's key cannot open it.
        let mut moved = sealed.clone();
        moved.org = b.org();
        let err = b.open(&moved, SecretKind::RepoToken, "repo-1").unwrap_err();
        assert_eq!(err.code(), "open_failed");
    }

    #[tokio::test]
    async fn ciphertext_moved_to_another_kind_or_slot_does_not_open() {
        let env = envelope(StaticKeyProvider::generate("master-1").unwrap());
        let (key, _) = org_key(&env).await;
        let sealed = key.seal(SecretKind::ChatBotToken, "slack", b"xoxb-1").unwrap();
        let wrong_kind = key.open(&sealed, SecretKind::WebhookSecret, "slack").unwrap_err();
        assert_eq!(wrong_kind.code(), "open_failed");
        let wrong_id = key.open(&sealed, SecretKind::ChatBotToken, "discord").unwrap_err();
        assert_eq!(wrong_id.code(), "open_failed");
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.ciphertext.last_mut() {
            *last ^= 1;
        }
        let err = key.open(&tampered, SecretKind::ChatBotToken, "slack").unwrap_err();
        assert_eq!(err.code(), "open_failed");
    }

    #[tokio::test]
    async fn master_rotation_rewraps_and_keeps_old_secrets_readable() {
        let v1 = StaticKeyProvider::generate("master-1").unwrap();
        let env1 = envelope(v1.clone());
        let (key, wrapped_v1) = org_key(&env1).await;
        let sealed = key.seal(SecretKind::AppSigningSecret, "app-1", b"s3cret").unwrap();

        let v2 = v1.with_generated_current("master-2").unwrap();
        let env2 = envelope(v2);
        assert!(env2.needs_rewrap(&wrapped_v1));
        // Old wrap still opens under the rotated provider.
        let reopened = env2.open_org_key(&wrapped_v1).await.unwrap();
        assert_eq!(reopened.open(&sealed, SecretKind::AppSigningSecret, "app-1").unwrap().expose_secret(), b"s3cret");
        // Re-wrapping changes only the wrap, not the data key.
        let wrapped_v2 = env2.rewrap(&wrapped_v1).await.unwrap();
        assert_eq!(wrapped_v2.wrapped.master_key_id, "master-2");
        assert!(!env2.needs_rewrap(&wrapped_v2));
        let after = env2.open_org_key(&wrapped_v2).await.unwrap();
        assert_eq!(after.open(&sealed, SecretKind::AppSigningSecret, "app-1").unwrap().expose_secret(), b"s3cret");
    }

    #[tokio::test]
    async fn wrapped_key_bound_to_org_and_version() {
        let env = envelope(StaticKeyProvider::generate("master-1").unwrap());
        let (_, wrapped) = org_key(&env).await;
        let mut other_org = wrapped.clone();
        other_org.org = OrgId::new();
        assert_eq!(env.open_org_key(&other_org).await.unwrap_err().code(), "key_provider_failed");
        let mut other_version = wrapped.clone();
        other_version.version = 2;
        assert!(env.open_org_key(&other_version).await.is_err());
        let mut other_master = wrapped;
        other_master.wrapped.master_key_id = "master-9".into();
        assert!(matches!(
            env.open_org_key(&other_master).await,
            Err(EnvelopeError::Provider(userz_core::Error::NotFound(_)))
        ));
    }

    #[test]
    fn subkeys_are_purpose_separated() {
        let org = OrgId::new();
        let key = OrgDataKey::from_root(org, 1, SecretBytes::new(vec![7u8; ORG_DATA_KEY_LEN])).unwrap();
        let sealing = key.subkey(KeyPurpose::SecretSealing);
        let field = key.subkey(KeyPurpose::FieldSealing);
        let index = key.subkey(KeyPurpose::BlindIndex);
        assert_ne!(sealing, field);
        assert_eq!(index.len(), 32);
        assert_ne!(&sealing.expose_secret()[..32], index.expose_secret());
        let other = OrgDataKey::from_root(OrgId::new(), 1, SecretBytes::new(vec![7u8; ORG_DATA_KEY_LEN])).unwrap();
        assert_ne!(other.subkey(KeyPurpose::SecretSealing), sealing);
    }

    #[test]
    fn env_value_parses_keys_and_last_is_current() {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        let k1 = STANDARD.encode([1u8; 64]);
        let k2 = STANDARD.encode([2u8; 64]);
        let p = StaticKeyProvider::from_env_value(&format!("master-1:{k1}, master-2:{k2}")).unwrap();
        assert_eq!(p.current_key_id(), "master-2");
        assert_eq!(p.key_ids().collect::<Vec<_>>(), ["master-1", "master-2"]);
        assert!(StaticKeyProvider::from_env_value("").is_err());
        assert!(StaticKeyProvider::from_env_value("m:AAAA").is_err());
        assert!(StaticKeyProvider::from_env_value(&format!("bad id:{k1}")).is_err());
    }

    #[tokio::test]
    async fn debug_of_every_secret_type_shows_no_plaintext() {
        let master = [0x42u8; 64];
        let provider = StaticKeyProvider::from_bytes("master-1", &master).unwrap();
        let env = envelope(provider.clone());
        let (key, wrapped) = org_key(&env).await;
        let sealed = key.seal(SecretKind::Other, "x", b"PLAINTEXT-MARKER").unwrap();
        let opened = key.open(&sealed, SecretKind::Other, "x").unwrap();
        let opened_s = key.open_string(&sealed, SecretKind::Other, "x").unwrap();
        let shown =
            format!("{provider:?} {env:?} {key:?} {wrapped:?} {sealed:?} {opened:?} {opened} {opened_s:?} {opened_s}");
        assert!(!shown.contains("PLAINTEXT-MARKER"), "{shown}");
        // The master key bytes (0x42 = 'B') must not appear in any encoding.
        assert!(!shown.contains("BBBBBBBB"), "{shown}");
        assert!(!shown.contains("66, 66, 66"), "{shown}");
        assert!(!shown.contains("424242"), "{shown}");
    }

    #[test]
    fn sealed_secret_serialises_round_trip() {
        let key = OrgDataKey::from_root(OrgId::new(), 3, SecretBytes::new(vec![9u8; 64])).unwrap();
        let sealed = key.seal(SecretKind::GithubAppPrivateKey, "gh", b"pem").unwrap();
        let json = serde_json::to_string(&sealed).unwrap();
        assert!(json.contains("\"kind\":\"github_app_private_key\""), "{json}");
        let back: SealedSecret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sealed);
    }
}
