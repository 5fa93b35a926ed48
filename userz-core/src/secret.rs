//! Plaintext secret types: [`SecretBytes`] and [`SecretString`].
//!
//! Every plaintext the security primitives hand out (decrypted secrets, data
//! keys, freshly minted API keys and tokens) is one of these. They zeroize
//! their buffer on drop, print `<redacted>` in both `Debug` and `Display`, and
//! only give the plaintext through an explicit `expose_secret()` call, so a
//! stray `{:?}` or `tracing` field cannot leak it. They deliberately do not
//! implement `Serialize`.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Secret bytes: zeroized on drop, redacted in `Debug`/`Display`.
pub struct SecretBytes(SecretBox<[u8]>);

impl SecretBytes {
    /// Takes ownership of `bytes`. The plaintext is moved into an exact-size
    /// buffer and the vector's whole capacity is wiped at once (a plain
    /// `into_boxed_slice` could reallocate and leave an unwiped copy behind).
    pub fn new(mut bytes: Vec<u8>) -> Self {
        let boxed: Box<[u8]> = bytes.as_slice().into();
        bytes.zeroize();
        Self(SecretBox::new(boxed))
    }

    /// Copies `bytes` into a new secret (the caller still owns and must wipe the source).
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// The plaintext. Call sites that need it say so explicitly.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::copy_from(self.expose_secret())
    }
}

/// Constant-time comparison (length is not hidden).
impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret().ct_eq(other.expose_secret()).into()
    }
}

impl Eq for SecretBytes {}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret UTF-8 string: zeroized on drop, redacted in `Debug`/`Display`.
pub struct SecretString(secrecy::SecretString);

impl SecretString {
    /// Takes ownership of `s`. As with [`SecretBytes::new`], the text is moved
    /// into an exact-size buffer and the string's whole capacity is wiped.
    pub fn new(mut s: String) -> Self {
        let boxed: Box<str> = s.as_str().into();
        s.zeroize();
        Self(SecretBox::new(boxed))
    }

    /// The plaintext. Call sites that need it say so explicitly.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl Clone for SecretString {
    fn clone(&self) -> Self {
        Self::new(self.expose_secret().to_owned())
    }
}

/// Constant-time comparison (length is not hidden).
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret().as_bytes().ct_eq(other.expose_secret().as_bytes()).into()
    }
}

impl Eq for SecretString {}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_plaintext() {
        let b = SecretBytes::copy_from(b"hunter2-bytes");
        let s = SecretString::from("hunter2-string");
        let shown = format!("{b:?} {b} {s:?} {s} {:?}", vec![s.clone()]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(b.expose_secret(), b"hunter2-bytes");
        assert_eq!(s.expose_secret(), "hunter2-string");
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(SecretBytes::copy_from(b"a"), SecretBytes::copy_from(b"a"));
        assert_ne!(SecretString::from("a"), SecretString::from("b"));
    }
}
