//! Small encoding helpers shared by the security modules: base62 for
//! human-facing key strings.

use rand::rngs::OsRng;
use rand::Rng;

/// The base62 alphabet (digits, upper, lower), as GitHub's token format uses.
pub(crate) const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` uniformly random base62 characters from the OS generator.
pub(crate) fn random_base62(len: usize) -> String {
    let mut rng = OsRng;
    (0..len).map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())])).collect()
}

/// Fixed-width (6 chars, enough for any `u32`) base62 encoding of a checksum.
pub(crate) fn base62_u32(mut n: u32) -> String {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Whether every byte of `s` is in the base62 alphabet.
pub(crate) fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn base62_u32_is_fixed_width_and_ordered() {
        assert_eq!(base62_u32(0), "000000");
        assert_eq!(base62_u32(61), "00000z");
        assert_eq!(base62_u32(62), "000010");
        assert_eq!(base62_u32(u32::MAX).len(), 6);
    }

    #[test]
    fn random_base62_has_requested_length_and_alphabet() {
        let s = random_base62(44);
        assert_eq!(s.len(), 44);
        assert!(is_base62(&s));
    }
}
