//! Addresses of the real services the test command starts (`scripts/services.sh`).

/// The value of `var` (a service address exported by `scripts/services.sh`).
///
/// Returns `None` (the caller skips) only when `USERZ_ALLOW_SKIP=1` is set;
/// otherwise a missing service fails the test loudly, as CI requires.
///
/// # Panics
/// When `var` is unset and skipping is not allowed.
pub fn require(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("USERZ_ALLOW_SKIP").as_deref() == Ok("1") => {
            eprintln!("skipping: {var} is not set (USERZ_ALLOW_SKIP=1)");
            None
        }
        _ => panic!(
            "{var} is not set: run the tests through ./scripts/test.sh, which starts the services, \
             or set USERZ_ALLOW_SKIP=1 to skip tests that need them"
        ),
    }
}
