//! An organization's secrets (G13): its wrapped data key and the secrets sealed
//! with it (AI provider keys, repository tokens, bot tokens, signing secrets).
//!
//! Only ciphertext is ever recorded: the org key is stored wrapped by a master
//! key the [`KeyProvider`](crate::ports::KeyProvider) holds, each secret is an
//! AES-SIV [`SealedSecret`] bound to org, kind and slot id. Sealing and opening
//! happen outside the decider (`userz_engine::secrets`).
//!
//! One stream per org: `secrets-<org id>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::credentials::{SealedSecret, SecretKind, WrappedOrgKey};
use crate::decider::{Aggregate, Decider, Rejection};
use crate::domain::common::Actor;
use crate::event_names;

/// Commands on an org's secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsCommand {
    /// Records the org's freshly generated, wrapped data key (once).
    CreateKey {
        /// The wrapped key.
        wrapped: WrappedOrgKey,
    },
    /// Replaces the wrapping of the same org key (master-key rotation).
    Rewrap {
        /// The re-wrapped key (same org and version).
        wrapped: WrappedOrgKey,
    },
    /// Stores (or replaces) a sealed secret.
    Put {
        /// The secret, sealed with the current org key.
        sealed: SealedSecret,
        /// Who set it.
        by: Actor,
    },
    /// Removes a secret.
    Remove {
        /// Kind.
        kind: SecretKind,
        /// Slot id.
        secret_id: String,
        /// Who removed it.
        by: Actor,
    },
}

/// Events of an org's secrets. None holds plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SecretsEvent {
    /// The org key was created.
    OrgKeyCreated {
        /// The wrapped key.
        wrapped: WrappedOrgKey,
    },
    /// The org key was re-wrapped with another master key.
    OrgKeyRewrapped {
        /// The re-wrapped key.
        wrapped: WrappedOrgKey,
    },
    /// A secret was stored (an audit event: who set which slot; never the value).
    SecretStored {
        /// The sealed secret.
        sealed: SealedSecret,
        /// Who.
        by: Actor,
    },
    /// A secret was removed.
    SecretRemoved {
        /// Kind.
        kind: SecretKind,
        /// Slot id.
        secret_id: String,
        /// Who.
        by: Actor,
    },
}
event_names!(SecretsEvent { OrgKeyCreated, OrgKeyRewrapped, SecretStored, SecretRemoved });

/// An org's key and secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSecrets {
    /// The wrapped org key.
    pub key: WrappedOrgKey,
    /// Sealed secrets by [`slot`].
    pub secrets: BTreeMap<String, SealedSecret>,
}

impl OrgSecrets {
    /// The sealed secret of `kind` in slot `secret_id`, if set.
    pub fn get(&self, kind: SecretKind, secret_id: &str) -> Option<&SealedSecret> {
        self.secrets.get(&slot(kind, secret_id))
    }
}

/// The map key of a secret: `<kind>/<slot id>`.
pub fn slot(kind: SecretKind, secret_id: &str) -> String {
    format!("{}/{secret_id}", kind.as_str())
}

/// State of an org's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SecretsState {
    /// No key yet.
    #[default]
    None,
    /// Key created.
    Keyed(OrgSecrets),
}

/// The secrets decider.
#[derive(Debug, Clone, Copy)]
pub struct SecretsDecider;

fn check_slot_id(id: &str) -> Result<(), Rejection> {
    if id.is_empty() || id.len() > 200 || id.chars().any(|c| c.is_control() || c == '/') {
        return Err(Rejection::input("secret_id", "1-200 characters, no '/' or control characters"));
    }
    Ok(())
}

impl Decider for SecretsDecider {
    type Command = SecretsCommand;
    type Event = SecretsEvent;
    type State = SecretsState;

    fn initial_state() -> SecretsState {
        SecretsState::None
    }

    fn decide(command: &SecretsCommand, state: &SecretsState) -> Result<Vec<SecretsEvent>, Rejection> {
        match (command, state) {
            (SecretsCommand::CreateKey { wrapped }, SecretsState::None) => {
                Ok(vec![SecretsEvent::OrgKeyCreated { wrapped: wrapped.clone() }])
            }
            (SecretsCommand::CreateKey { wrapped }, SecretsState::Keyed(s)) if *wrapped == s.key => Ok(vec![]),
            (SecretsCommand::CreateKey { .. }, SecretsState::Keyed(_)) => {
                Err(Rejection::Invariant { rule: "key_exists", message: "the org already has a data key".into() })
            }
            (_, SecretsState::None) => {
                Err(Rejection::Invariant { rule: "no_key", message: "the org has no data key yet".into() })
            }
            (SecretsCommand::Rewrap { wrapped }, SecretsState::Keyed(s)) => {
                if wrapped.org != s.key.org || wrapped.version != s.key.version {
                    return Err(Rejection::Invariant {
                        rule: "wrong_org_key",
                        message: "a re-wrap keeps the org and key version".into(),
                    });
                }
                if *wrapped == s.key {
                    return Ok(vec![]);
                }
                Ok(vec![SecretsEvent::OrgKeyRewrapped { wrapped: wrapped.clone() }])
            }
            (SecretsCommand::Put { sealed, by }, SecretsState::Keyed(s)) => {
                check_slot_id(&sealed.secret_id)?;
                if sealed.org != s.key.org || sealed.org_key_version != s.key.version {
                    return Err(Rejection::Invariant {
                        rule: "wrong_org_key",
                        message: "sealed with another org key".into(),
                    });
                }
                if s.get(sealed.kind, &sealed.secret_id) == Some(sealed) {
                    return Ok(vec![]);
                }
                Ok(vec![SecretsEvent::SecretStored { sealed: sealed.clone(), by: by.clone() }])
            }
            (SecretsCommand::Remove { kind, secret_id, by }, SecretsState::Keyed(s)) => {
                if s.get(*kind, secret_id).is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![SecretsEvent::SecretRemoved { kind: *kind, secret_id: secret_id.clone(), by: by.clone() }])
            }
        }
    }

    fn evolve(state: SecretsState, event: &SecretsEvent) -> SecretsState {
        match (state, event) {
            (SecretsState::None, SecretsEvent::OrgKeyCreated { wrapped }) => {
                SecretsState::Keyed(OrgSecrets { key: wrapped.clone(), secrets: BTreeMap::new() })
            }
            (SecretsState::Keyed(mut s), e) => {
                match e {
                    SecretsEvent::OrgKeyCreated { .. } => {}
                    SecretsEvent::OrgKeyRewrapped { wrapped } => s.key = wrapped.clone(),
                    SecretsEvent::SecretStored { sealed, .. } => {
                        s.secrets.insert(slot(sealed.kind, &sealed.secret_id), sealed.clone());
                    }
                    SecretsEvent::SecretRemoved { kind, secret_id, .. } => {
                        s.secrets.remove(&slot(*kind, secret_id));
                    }
                }
                SecretsState::Keyed(s)
            }
            (s, _) => s,
        }
    }
}

impl Aggregate for SecretsDecider {
    const CATEGORY: &'static str = "secrets";
}
