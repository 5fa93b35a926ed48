//! HMAC-SHA256, the one message-authentication helper of the workspace:
//! webhook signatures (inbound and outbound), upload tickets and the
//! dashboard's CSRF tokens sign and verify through it. (Widget user tokens are
//! HS256 JWTs, checked by `jsonwebtoken` in [`crate::widget_auth`].)
//!
//! Parts are authenticated as their concatenation (callers add their own
//! separators and a context label where they need domain separation).
//! [`verify_hmac_sha256`] compares in constant time.
//!
//! ```
//! use userz_security::mac::{hmac_sha256, verify_hmac_sha256};
//!
//! let tag = hmac_sha256(b"key", &[b"userz/ticket/v1", b".", b"payload"]);
//! assert!(verify_hmac_sha256(b"key", &[b"userz/ticket/v1.", b"payload"], &tag));
//! assert!(!verify_hmac_sha256(b"other key", &[b"userz/ticket/v1.payload"], &tag));
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of an HMAC-SHA256 tag in bytes.
pub const TAG_LEN: usize = 32;

fn keyed(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // Invariant: HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// The HMAC-SHA256 tag of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; TAG_LEN] {
    keyed(key, parts).finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of the concatenation of `parts` under
/// `key`, compared in constant time (a tag of the wrong length is refused).
pub fn verify_hmac_sha256(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    keyed(key, parts).verify_slice(tag).is_ok()
}
