//! Org secrets: the decider's rules, and sealing/opening through the engine
//! helpers with the events holding ciphertext only (G13).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use userz_core::domain::common::Actor;
use userz_core::domain::secrets::{SecretsCommand, SecretsDecider, SecretsEvent, SecretsState};
use userz_core::ids::{OrgId, UserId};
use userz_core::ports::EventStore;
use userz_core::Timestamp;
use userz_engine::secrets::{open_secret, put_secret};
use userz_engine::CommandBus;
use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};
use userz_store_memory::MemoryStores;
use userz_testkit::spec::Spec;
use userz_testkit::ManualClock;

type S = Spec<SecretsDecider>;

fn envelope() -> Envelope {
    Envelope::new(Arc::new(StaticKeyProvider::generate("master-1").unwrap()))
}

#[tokio::test]
async fn sealed_on_put_opened_on_demand_and_never_stored_in_plaintext() {
    let clock = Arc::new(ManualClock::at_2026());
    let stores = MemoryStores::new(clock.clone());
    let bus = CommandBus::new(stores.events.clone(), stores.read_models.clone());
    let env = envelope();
    let (org, other) = (OrgId::new(), OrgId::new());
    let by = Actor::User { user: UserId::new() };
    let plaintext = "sk-org-own-key-1f2e3d4c5b6a";
    let now = Timestamp::from_millis(1);
    put_secret(&bus, &env, org, SecretKind::AiProviderKey, "openai", plaintext.as_bytes(), by.clone(), now)
        .await
        .unwrap();
    let opened = open_secret(&bus, &env, org, SecretKind::AiProviderKey, "openai").await.unwrap().unwrap();
    assert_eq!(opened.expose_secret(), plaintext);
    // Another slot, another kind, another org: nothing.
    assert!(open_secret(&bus, &env, org, SecretKind::AiProviderKey, "anthropic").await.unwrap().is_none());
    assert!(open_secret(&bus, &env, org, SecretKind::RepoToken, "openai").await.unwrap().is_none());
    assert!(open_secret(&bus, &env, other, SecretKind::AiProviderKey, "openai").await.unwrap().is_none());
    // A second put reuses the org key (one OrgKeyCreated) and replaces the value.
    put_secret(&bus, &env, org, SecretKind::AiProviderKey, "openai", b"sk-rotated-0000000", by, now).await.unwrap();
    let opened = open_secret(&bus, &env, org, SecretKind::AiProviderKey, "openai").await.unwrap().unwrap();
    assert_eq!(opened.expose_secret(), "sk-rotated-0000000");
    let all = stores.events.read_all(0, 100).await.unwrap();
    let types: Vec<_> = all.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["OrgKeyCreated", "SecretStored", "SecretStored"]);
    for e in &all {
        let payload = String::from_utf8_lossy(&e.payload);
        assert!(!payload.contains(plaintext) && !payload.contains("sk-rotated"), "plaintext stored: {payload}");
    }
    // A master key that did not wrap the org key cannot open anything.
    let stranger = envelope();
    assert!(open_secret(&bus, &stranger, org, SecretKind::AiProviderKey, "openai").await.is_err());
}

#[tokio::test]
async fn decider_rules() {
    let env = envelope();
    let org = OrgId::new();
    let (key, wrapped) = env.generate_org_key(org, 1, Timestamp::from_millis(0)).await.unwrap();
    let by = Actor::User { user: UserId::new() };
    let sealed = key.seal(SecretKind::RepoToken, "repo-1", b"glpat-xyz").unwrap();
    S::new().when(SecretsCommand::Put { sealed: sealed.clone(), by: by.clone() }).then_rejects("no_key");
    let created = SecretsEvent::OrgKeyCreated { wrapped: wrapped.clone() };
    S::new().given(vec![created.clone()]).when(SecretsCommand::CreateKey { wrapped: wrapped.clone() }).then(vec![]);
    let (_, other_wrapped) = env.generate_org_key(org, 1, Timestamp::from_millis(0)).await.unwrap();
    S::new()
        .given(vec![created.clone()])
        .when(SecretsCommand::CreateKey { wrapped: other_wrapped })
        .then_rejects("key_exists");
    let state = S::new()
        .given(vec![created.clone()])
        .when(SecretsCommand::Put { sealed: sealed.clone(), by: by.clone() })
        .then(vec![SecretsEvent::SecretStored { sealed: sealed.clone(), by: by.clone() }]);
    assert!(matches!(state, SecretsState::Keyed(ref s) if s.get(SecretKind::RepoToken, "repo-1") == Some(&sealed)));
    // Sealed under another org's key: refused.
    let (foreign, foreign_wrapped) = env.generate_org_key(OrgId::new(), 1, Timestamp::from_millis(0)).await.unwrap();
    let _ = foreign_wrapped;
    let alien = foreign.seal(SecretKind::RepoToken, "repo-1", b"x").unwrap();
    S::new()
        .given(vec![created.clone()])
        .when(SecretsCommand::Put { sealed: alien, by: by.clone() })
        .then_rejects("wrong_org_key");
    let bad_slot = key.seal(SecretKind::RepoToken, "a/b", b"x").unwrap();
    S::new()
        .given(vec![created.clone()])
        .when(SecretsCommand::Put { sealed: bad_slot, by: by.clone() })
        .then_rejects("invalid_input");
    let stored = SecretsEvent::SecretStored { sealed, by: by.clone() };
    S::new()
        .given(vec![created.clone(), stored])
        .when(SecretsCommand::Remove { kind: SecretKind::RepoToken, secret_id: "repo-1".into(), by: by.clone() })
        .then(vec![SecretsEvent::SecretRemoved { kind: SecretKind::RepoToken, secret_id: "repo-1".into(), by }]);
    // Re-wrap keeps org and version.
    let rewrapped = env.rewrap(&wrapped).await.unwrap();
    S::new().given(vec![created.clone()]).when(SecretsCommand::Rewrap { wrapped: rewrapped.clone() }).then(vec![]);
    let (_, v2) = env.generate_org_key(org, 2, Timestamp::from_millis(0)).await.unwrap();
    S::new().given(vec![created]).when(SecretsCommand::Rewrap { wrapped: v2 }).then_rejects("wrong_org_key");
}
