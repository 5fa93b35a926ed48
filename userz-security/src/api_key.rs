//! Org API keys (`sk_…`) and App public keys (`pub_…`) — guarantee G14.
//!
//! Format (both kinds): `<kind>_<prefix>_<body><checksum>`
//! - `prefix`: 12 random base62 chars, stored in clear as the lookup index;
//! - `body`: random base62 — 44 chars (≈262 bits) for `sk_`, 16 for `pub_`;
//! - `checksum`: CRC32 of everything before it, 6 base62 chars, as in
//!   GitHub's token format, so typos are caught without a database round trip
//!   and secret scanners can tell a real key from noise.
//!
//! [`ApiKey::parse`] checks shape and checksum **before** any hashing, so junk
//! cannot make the server burn Argon2 time. At rest an `sk_` key is a
//! [`StoredApiKey`]: prefix + random salt + Argon2id hash (OWASP parameters
//! m = 19456 KiB, t = 2, p = 1 by default, [`HashParams`] to change them).
//! Verification recomputes the hash and compares with `subtle`'s constant-time
//! equality. The plaintext exists once, in [`IssuedApiKey`], and zeroizes on
//! drop. [`ApiKeyIndex`] shows the O(1) lookup: a hash map keyed by prefix, so
//! a presented key costs exactly one Argon2 evaluation whatever the number of
//! keys.
//!
//! ```
//! use userz_security::api_key::{ApiKeyIndex, ApiKey, HashParams};
//!
//! # let params = HashParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 }; // doc-test speed
//! // Production: HashParams::default() (OWASP).
//! let (plaintext, stored) = ApiKey::generate(params)?.into_parts();
//! // Show `plaintext` to the user once; persist `stored`.
//! let mut index = ApiKeyIndex::new();
//! index.insert(stored, "org_123")?;
//! assert_eq!(index.verify(plaintext.expose_secret())?, &"org_123");
//! # Ok::<(), userz_security::api_key::ApiKeyError>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::encoding::{base62_u32, is_base62, random_base62};
use crate::secret::SecretString;

pub use userz_core::credentials::{HashParams, StoredApiKey, PREFIX_LEN};

/// Kind tag of org secret keys.
pub const SECRET_KEY_KIND: &str = "sk";
/// Kind tag of App public keys.
pub const PUBLIC_KEY_KIND: &str = "pub";
/// Random body length of an `sk_` key (62^44 > 2^261).
pub const SECRET_BODY_LEN: usize = 44;
/// Random body length of a `pub_` key.
pub const PUBLIC_BODY_LEN: usize = 16;
/// Length of the base62 CRC32 checksum.
pub const CHECKSUM_LEN: usize = 6;
/// Salt length for the Argon2id hash.
pub const SALT_LEN: usize = 16;
/// Argon2id output length.
pub const HASH_LEN: usize = 32;

/// Errors of key parsing and verification, each with a stable [`code`](ApiKeyError::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// Not shaped like a key of the expected kind.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// Shape is right but the checksum does not match (typo or forgery).
    #[error("key checksum does not match")]
    BadChecksum,
    /// No key with this prefix is known.
    #[error("unknown key")]
    UnknownKey,
    /// The prefix is known but the key does not verify.
    #[error("invalid key")]
    InvalidKey,
    /// The stored hash parameters are unusable.
    #[error("hash parameters rejected: {0}")]
    HashParams(String),
    /// A key with the same prefix is already indexed.
    #[error("duplicate key prefix")]
    DuplicatePrefix,
}

impl ApiKeyError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiKeyError::Malformed(_) => "malformed",
            ApiKeyError::BadChecksum => "bad_checksum",
            ApiKeyError::UnknownKey => "unknown_key",
            ApiKeyError::InvalidKey => "invalid_key",
            ApiKeyError::HashParams(_) => "hash_params",
            ApiKeyError::DuplicatePrefix => "duplicate_prefix",
        }
    }
}

fn checksum(head: &str) -> String {
    base62_u32(crc32fast::hash(head.as_bytes()))
}

fn build(kind: &str, body_len: usize) -> String {
    let head = format!("{kind}_{}_{}", random_base62(PREFIX_LEN), random_base62(body_len));
    let sum = checksum(&head);
    head + &sum
}

/// Splits and checks `<kind>_<prefix>_<body><checksum>`; returns the prefix.
fn check_shape<'a>(kind: &str, body_len: usize, s: &'a str) -> Result<&'a str, ApiKeyError> {
    let expected_len = kind.len() + 2 + PREFIX_LEN + body_len + CHECKSUM_LEN;
    if s.len() != expected_len {
        return Err(ApiKeyError::Malformed("length"));
    }
    let rest = s.strip_prefix(kind).and_then(|r| r.strip_prefix('_')).ok_or(ApiKeyError::Malformed("kind"))?;
    let (prefix, tail) = rest.split_once('_').ok_or(ApiKeyError::Malformed("separator"))?;
    if prefix.len() != PREFIX_LEN || !is_base62(prefix) || !is_base62(tail) {
        return Err(ApiKeyError::Malformed("alphabet"));
    }
    // All ASCII from here on, so byte indexing is on char boundaries.
    let split = s.len() - CHECKSUM_LEN;
    let (head, sum) = s.split_at(split);
    if checksum(head) != sum {
        return Err(ApiKeyError::BadChecksum);
    }
    Ok(prefix)
}

fn argon2(params: &HashParams) -> Result<Argon2<'static>, ApiKeyError> {
    let params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(HASH_LEN))
        .map_err(|e| ApiKeyError::HashParams(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash(params: &HashParams, key: &str, salt: &[u8]) -> Result<Zeroizing<[u8; HASH_LEN]>, ApiKeyError> {
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    argon2(params)?
        .hash_password_into(key.as_bytes(), salt, out.as_mut())
        .map_err(|e| ApiKeyError::HashParams(e.to_string()))?;
    Ok(out)
}

/// A presented `sk_` key whose shape and checksum are valid. Holds the
/// plaintext (zeroized on drop, redacted in `Debug`).
pub struct ApiKey {
    plaintext: SecretString,
    prefix: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("prefix", &self.prefix).field("secret", &"<redacted>").finish()
    }
}

impl ApiKey {
    /// Parses a presented key: shape, alphabet and checksum — no hashing.
    pub fn parse(s: &str) -> Result<Self, ApiKeyError> {
        let prefix = check_shape(SECRET_KEY_KIND, SECRET_BODY_LEN, s)?.to_owned();
        Ok(Self { plaintext: SecretString::new(s.to_owned()), prefix })
    }

    /// Generates a new key and its stored form. The plaintext is in the
    /// returned [`IssuedApiKey`] only: show it once, store only `stored`.
    pub fn generate(params: HashParams) -> Result<IssuedApiKey, ApiKeyError> {
        let key = Self::parse(&build(SECRET_KEY_KIND, SECRET_BODY_LEN))?;
        let mut salt = vec![0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let hash = hash(&params, key.plaintext.expose_secret(), &salt)?;
        let stored = StoredApiKey { prefix: key.prefix.clone(), salt, hash: hash.to_vec(), params };
        Ok(IssuedApiKey { key, stored })
    }

    /// The public lookup prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full key. Call sites that need it say so explicitly.
    pub fn expose_secret(&self) -> &str {
        self.plaintext.expose_secret()
    }
}

/// A freshly generated key: the plaintext (to show once) and its stored form.
#[derive(Debug)]
pub struct IssuedApiKey {
    key: ApiKey,
    stored: StoredApiKey,
}

impl IssuedApiKey {
    /// The stored form (prefix, salt, hash, params).
    pub fn stored(&self) -> &StoredApiKey {
        &self.stored
    }

    /// Consumes the issued key: plaintext to show once, and the record to store.
    pub fn into_parts(self) -> (SecretString, StoredApiKey) {
        (self.key.plaintext, self.stored)
    }
}

/// Verification of a presented key against its [`StoredApiKey`].
pub trait VerifyApiKey {
    /// Verifies a presented key: one Argon2id evaluation, constant-time compare.
    fn verify(&self, key: &ApiKey) -> Result<(), ApiKeyError>;
}

impl VerifyApiKey for StoredApiKey {
    fn verify(&self, key: &ApiKey) -> Result<(), ApiKeyError> {
        if key.prefix != self.prefix {
            return Err(ApiKeyError::InvalidKey);
        }
        let computed = hash(&self.params, key.plaintext.expose_secret(), &self.salt)?;
        if bool::from(computed.as_slice().ct_eq(&self.hash)) {
            Ok(())
        } else {
            Err(ApiKeyError::InvalidKey)
        }
    }
}

/// An App's public key (`pub_…`): not secret, never hashed, checksummed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicKey(String);

impl PublicKey {
    /// A new random public key.
    pub fn generate() -> Self {
        Self(build(PUBLIC_KEY_KIND, PUBLIC_BODY_LEN))
    }

    /// Parses and checksums a presented public key.
    pub fn parse(s: &str) -> Result<Self, ApiKeyError> {
        check_shape(PUBLIC_KEY_KIND, PUBLIC_BODY_LEN, s)?;
        Ok(Self(s.to_owned()))
    }

    /// The lookup prefix.
    pub fn prefix(&self) -> &str {
        let start = PUBLIC_KEY_KIND.len() + 1;
        &self.0[start..start + PREFIX_LEN]
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PublicKey {
    type Error = ApiKeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PublicKey> for String {
    fn from(k: PublicKey) -> Self {
        k.0
    }
}

/// In-memory index of stored keys by prefix, with the value each key maps to
/// (an org id, a key id…). Lookup is one hash-map probe and one Argon2id
/// evaluation, never a scan; [`hash_evaluations`](Self::hash_evaluations)
/// counts the slow hashes computed (a metric, and what the tests check).
#[derive(Debug, Default)]
pub struct ApiKeyIndex<V> {
    by_prefix: HashMap<String, (StoredApiKey, V)>,
    hash_evaluations: AtomicU64,
}

impl<V> ApiKeyIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        Self { by_prefix: HashMap::new(), hash_evaluations: AtomicU64::new(0) }
    }

    /// Adds a stored key. Prefixes are random, so a duplicate is refused rather
    /// than overwritten.
    pub fn insert(&mut self, stored: StoredApiKey, value: V) -> Result<(), ApiKeyError> {
        if self.by_prefix.contains_key(&stored.prefix) {
            return Err(ApiKeyError::DuplicatePrefix);
        }
        self.by_prefix.insert(stored.prefix.clone(), (stored, value));
        Ok(())
    }

    /// Removes a key (revocation / rotation); returns its value.
    pub fn remove(&mut self, prefix: &str) -> Option<V> {
        self.by_prefix.remove(prefix).map(|(_, v)| v)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// Parses (checksum first), looks up by prefix, verifies; returns the value.
    pub fn verify(&self, presented: &str) -> Result<&V, ApiKeyError> {
        let key = ApiKey::parse(presented)?;
        let (stored, value) = self.by_prefix.get(key.prefix()).ok_or(ApiKeyError::UnknownKey)?;
        self.hash_evaluations.fetch_add(1, Ordering::Relaxed);
        stored.verify(&key)?;
        Ok(value)
    }

    /// How many Argon2id hashes [`verify`](Self::verify) has computed.
    pub fn hash_evaluations(&self) -> u64 {
        self.hash_evaluations.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Cheap parameters so debug-build tests stay fast; production uses OWASP.
    const TEST_PARAMS: HashParams = HashParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

    fn tamper_body(key: &str) -> String {
        // Change one body char and recompute the checksum: well-formed, wrong secret.
        let head_len = key.len() - CHECKSUM_LEN;
        let mut head = key[..head_len].to_owned();
        let last = head.pop().unwrap();
        head.push(if last == 'a' { 'b' } else { 'a' });
        let sum = checksum(&head);
        head + &sum
    }

    #[test]
    fn default_params_are_owasp() {
        assert_eq!(HashParams::default(), HashParams { m_cost_kib: 19_456, t_cost: 2, p_cost: 1 });
    }

    #[test]
    fn generated_key_has_documented_shape() {
        let issued = ApiKey::generate(TEST_PARAMS).unwrap();
        let (plain, stored) = issued.into_parts();
        let s = plain.expose_secret();
        assert!(s.starts_with("sk_"));
        assert_eq!(s.len(), 3 + PREFIX_LEN + 1 + SECRET_BODY_LEN + CHECKSUM_LEN);
        assert_eq!(&s[3..3 + PREFIX_LEN], stored.prefix);
        assert_eq!(stored.hash.len(), HASH_LEN);
        assert_eq!(stored.salt.len(), SALT_LEN);
    }

    #[test]
    fn right_key_verifies_wrong_key_with_right_prefix_fails() {
        let (plain, stored) = ApiKey::generate(TEST_PARAMS).unwrap().into_parts();
        let key = ApiKey::parse(plain.expose_secret()).unwrap();
        assert_eq!(stored.verify(&key), Ok(()));
        let wrong = ApiKey::parse(&tamper_body(plain.expose_secret())).unwrap();
        assert_eq!(wrong.prefix(), stored.prefix);
        assert_eq!(stored.verify(&wrong), Err(ApiKeyError::InvalidKey));
    }

    #[test]
    fn tampered_checksum_refused_at_parse() {
        let (plain, _) = ApiKey::generate(TEST_PARAMS).unwrap().into_parts();
        let s = plain.expose_secret();
        let mut bad = s[..s.len() - 1].to_owned();
        bad.push(if s.ends_with('0') { '1' } else { '0' });
        assert_eq!(ApiKey::parse(&bad).unwrap_err().code(), "bad_checksum");
        // A typo in the body is caught the same way.
        let mut typo: Vec<char> = s.chars().collect();
        typo[20] = if typo[20] == 'x' { 'y' } else { 'x' };
        let typo: String = typo.into_iter().collect();
        assert_eq!(ApiKey::parse(&typo).unwrap_err().code(), "bad_checksum");
    }

    #[test]
    fn malformed_keys_refused() {
        for bad in ["", "sk_", "pk_abc", "sk_short_x", &"sk_".repeat(30)] {
            assert_eq!(ApiKey::parse(bad).unwrap_err().code(), "malformed", "{bad}");
        }
        let (plain, _) = ApiKey::generate(TEST_PARAMS).unwrap().into_parts();
        let pubbed = plain.expose_secret().replacen("sk_", "pub", 1);
        assert!(ApiKey::parse(&pubbed).is_err());
    }

    #[test]
    fn index_looks_up_by_prefix_with_one_hash() {
        let mut index = ApiKeyIndex::new();
        let mut wanted = None;
        for i in 0..50 {
            let (plain, stored) = ApiKey::generate(TEST_PARAMS).unwrap().into_parts();
            index.insert(stored, i).unwrap();
            if i == 37 {
                wanted = Some(plain);
            }
        }
        let wanted = wanted.unwrap();
        assert_eq!(index.verify(wanted.expose_secret()), Ok(&37));
        assert_eq!(index.hash_evaluations(), 1, "lookup must not scan other keys");
        assert_eq!(index.verify(&tamper_body(wanted.expose_secret())), Err(ApiKeyError::InvalidKey));
        assert_eq!(index.hash_evaluations(), 2);
    }

    #[test]
    fn index_refuses_bad_checksum_and_unknown_prefix_without_hashing() {
        let mut index = ApiKeyIndex::new();
        let (plain, stored) = ApiKey::generate(TEST_PARAMS).unwrap().into_parts();
        index.insert(stored, ()).unwrap();
        let s = plain.expose_secret();
        let bad_sum = format!("{}{}", &s[..s.len() - 1], if s.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(index.verify(&bad_sum).unwrap_err().code(), "bad_checksum");
        let (other, _) = ApiKey::generate(TEST_PARAMS).unwrap().into_parts();
        assert_eq!(index.verify(other.expose_secret()).unwrap_err().code(), "unknown_key");
        assert_eq!(index.hash_evaluations(), 0);
    }

    #[test]
    fn public_keys_checksum_and_round_trip() {
        let k = PublicKey::generate();
        assert!(k.as_str().starts_with("pub_"));
        assert_eq!(PublicKey::parse(k.as_str()), Ok(k.clone()));
        assert_eq!(k.prefix().len(), PREFIX_LEN);
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), k);
        let s = k.as_str();
        let bad = format!("{}{}", &s[..s.len() - 1], if s.ends_with('q') { 'r' } else { 'q' });
        assert_eq!(PublicKey::parse(&bad).unwrap_err().code(), "bad_checksum");
        assert!(serde_json::from_str::<PublicKey>(&format!("\"{bad}\"")).is_err());
    }

    #[test]
    fn debug_shows_no_plaintext() {
        let issued = ApiKey::generate(TEST_PARAMS).unwrap();
        let shown = format!("{issued:?}");
        let (plain, stored) = issued.into_parts();
        let key = ApiKey::parse(plain.expose_secret()).unwrap();
        let body = &plain.expose_secret()[3 + PREFIX_LEN + 1..];
        let shown = format!("{shown} {plain:?} {plain} {key:?} {stored:?}");
        assert!(!shown.contains(body), "{shown}");
    }
}
