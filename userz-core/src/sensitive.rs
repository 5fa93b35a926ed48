//! [`Sensitive<T>`]: personal data inside events.
//!
//! Feedback text, console logs, reporter identity and e-mail addresses are typed as
//! sensitive so that (a) they never appear in `Debug` output or logs and (b) a later
//! change can seal them per organization and erase them by deleting the org key
//! (crypto-shredding) without changing any event type: the serialised form is the
//! only thing that changes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Personal data. `Debug` prints `Sensitive(<redacted>)`; serialisation is
/// transparent today.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// Borrows the inner value. Call sites that need plaintext say so explicitly.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Takes the inner value out.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Maps the inner value, keeping it sensitive.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Sensitive<U> {
        Sensitive(f(self.0))
    }
}

impl<T> From<T> for Sensitive<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(<redacted>)")
    }
}

impl<T: Serialize> Serialize for Sensitive<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sensitive<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Sensitive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_value() {
        let s = Sensitive::new(String::from("alice@example.com"));
        let shown = format!("{s:?} {:?}", vec![s.clone()]);
        assert!(!shown.contains("alice"), "{shown}");
        assert_eq!(s.expose(), "alice@example.com");
    }

    #[test]
    fn serialises_transparently() {
        let s = Sensitive::new(String::from("text"));
        assert_eq!(serde_json::to_string(&s).unwrap_or_default(), "\"text\"");
    }
}
