//! The operator functions: clear errors, keys shown once and stored hashed,
//! repos linked, secrets write-only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use userz_core::domain::app::{AppDecider, AppState};
use userz_core::domain::common::Actor;
use userz_core::domain::org::{OrgDecider, OrgEvent};
use userz_core::domain::repo::Provider;
use userz_core::ids::{AppId, OrgId, UserId};
use userz_engine::admin::{Admin, AdminError, NewApp, NewRepo};
use userz_engine::CommandBus;
use userz_security::api_key::{ApiKey, VerifyApiKey};
use userz_security::secret::SecretString;
use userz_testkit::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_tenants_and_refuses_with_clear_errors() {
    let h = common::start().await;
    let a = &h.admin;
    let err = a.create_org("Acme", UserId::new(), "not-an-email").await.unwrap_err();
    assert!(matches!(err, AdminError::Invalid { ref field, .. } if field == "owner_email"), "{err}");
    let err = a.create_app(OrgId::new(), NewApp::named("x")).await.unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("organization"), "{err}");

    let org = a.create_org("Acme", UserId::new(), "o@example.test").await.unwrap();
    let mut bad = NewApp::named("web");
    bad.allowed_origins = vec!["https://shop.example/path".into()];
    let err = a.create_app(org, bad).await.unwrap_err();
    assert!(matches!(err, AdminError::Invalid { ref field, .. } if field == "allowed_origins"), "{err}");
    let err = a.create_app(org, NewApp::named("")).await.unwrap_err();
    assert!(matches!(err, AdminError::Invalid { ref field, .. } if field == "name"), "{err}");

    let app = a.create_app(org, NewApp::named("web")).await.unwrap();
    assert!(app.public_key.starts_with("pub_"));
    // A repo is created and linked to the App.
    let repo = a
        .create_repo(
            org,
            app.app,
            NewRepo {
                provider: Provider::Git { remote: "/srv/git/demo.git".into() },
                base_branch: None,
                branch_prefix: None,
                forbidden_paths: vec![],
            },
        )
        .await
        .unwrap();
    let (state, _) = h.bus.load::<AppDecider>(&CommandBus::stream::<AppDecider>(app.app)).await.unwrap();
    let AppState::Active(loaded) = state else { panic!("app missing") };
    assert_eq!(loaded.repo, Some(repo));
    // Another org cannot touch this App.
    let other = a.create_org("Other", UserId::new(), "x@example.test").await.unwrap();
    let err = a
        .create_repo(
            other,
            app.app,
            NewRepo {
                provider: Provider::Git { remote: "r".into() },
                base_branch: None,
                branch_prefix: None,
                forbidden_paths: vec![],
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err}");
    let err = a.set_app_signing_secret(other, app.app, None, Actor::System).await.unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err}");
    let err = a.set_app_signing_secret(org, AppId::new(), None, Actor::System).await.unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err}");
    let err = a
        .set_app_signing_secret(org, app.app, Some(SecretString::new("short".into())), Actor::System)
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::Invalid { ref field, .. } if field == "signing_secret"), "{err}");
    // A given secret is not echoed back; a generated one is returned once.
    let given =
        a.set_app_signing_secret(org, app.app, Some(SecretString::new("s".repeat(40))), Actor::System).await.unwrap();
    assert!(given.is_none());
    let generated = a.set_app_signing_secret(org, app.app, None, Actor::System).await.unwrap().unwrap();
    assert!(generated.expose_secret().len() >= 32);

    // Without an envelope, secrets are refused with a message saying what is missing.
    let no_env = Admin::new(h.bus.clone(), h.read_models.clone(), h.clock.clone(), None);
    let err = no_env.set_app_signing_secret(org, app.app, None, Actor::System).await.unwrap_err();
    assert!(matches!(err, AdminError::NoEnvelope), "{err}");
    assert!(err.to_string().contains("master key"));

    let apps = eventually("apps listed", Duration::from_secs(5), || {
        let a = a.clone();
        async move { a.list_apps(org).await.ok().filter(|v| !v.is_empty()) }
    })
    .await;
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].public_key, app.public_key);
    let orgs = eventually("orgs listed", Duration::from_secs(5), || {
        let a = a.clone();
        async move { a.list_orgs().await.ok().filter(|v| v.len() == 2) }
    })
    .await;
    assert_eq!(orgs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["Acme", "Other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_stored_hashed_listed_and_revocable() {
    let h = common::start().await;
    let a = &h.admin;
    let org = a.create_org("Acme", UserId::new(), "o@example.test").await.unwrap();
    let issued = a.issue_api_key(org, "ci", None).await.unwrap();
    let plaintext = issued.plaintext.expose_secret().to_string();
    assert!(plaintext.starts_with("sk_"));
    assert!(!format!("{issued:?}").contains(&plaintext), "Debug leaks the key");
    let key = ApiKey::parse(&plaintext).unwrap();
    assert_eq!(key.prefix(), issued.prefix);
    // Only the stored form is in the log, and it verifies the plaintext.
    let events = h.bus.read::<OrgDecider>(&CommandBus::stream::<OrgDecider>(org)).await.unwrap();
    let mut found = false;
    for (rec, ev) in &events {
        assert!(!String::from_utf8_lossy(&rec.payload).contains(&plaintext), "plaintext key in the event log");
        if let OrgEvent::ApiKeyIssued { stored, .. } = ev {
            stored.verify(&key).unwrap();
            found = true;
        }
    }
    assert!(found);
    let err = a.issue_api_key(org, "", None).await.unwrap_err();
    assert!(matches!(err, AdminError::Invalid { ref field, .. } if field == "name"), "{err}");
    // A member who is not an admin may not issue keys.
    let err = a.issue_api_key(org, "x", Some(UserId::new())).await.unwrap_err();
    assert!(matches!(err, AdminError::Refused { ref rule, .. } if rule == "not_permitted"), "{err}");

    let keys = a.list_api_keys(org).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].revoked_at, None);
    a.revoke_api_key(org, &issued.prefix, None).await.unwrap();
    a.revoke_api_key(org, &issued.prefix, None).await.unwrap();
    let keys = a.list_api_keys(org).await.unwrap();
    assert!(keys[0].revoked_at.is_some());
    let err = a.revoke_api_key(org, "nosuchprefix", None).await.unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_write_only_for_existing_orgs_only() {
    use userz_engine::secrets::open_secret;
    use userz_security::envelope::SecretKind;
    let h = common::start().await;
    let a = &h.admin;
    let value = SecretString::new("glpat-secret-value".into());
    let stranger = OrgId::new();
    let err = a.set_secret(stranger, SecretKind::RepoToken, "r1", &value, Actor::System).await.unwrap_err();
    assert!(matches!(err, AdminError::NotFound(_)), "{err}");
    let org = a.create_org("Acme", UserId::new(), "o@example.test").await.unwrap();
    for bad in ["", "   ", &"s".repeat(201)] {
        let err = a.set_secret(org, SecretKind::RepoToken, bad, &value, Actor::System).await.unwrap_err();
        assert!(matches!(err, AdminError::Invalid { ref field, .. } if field == "slot"), "{err}");
    }
    // The value's bounds are the same for every caller (CLI, dashboard, API).
    for bad in [String::new(), "v".repeat(userz_engine::admin::MAX_SECRET_BYTES + 1)] {
        let err =
            a.set_secret(org, SecretKind::RepoToken, "r1", &SecretString::new(bad), Actor::System).await.unwrap_err();
        assert!(matches!(err, AdminError::Invalid { ref field, .. } if field == "value"), "{err}");
    }
    let largest = SecretString::new("v".repeat(userz_engine::admin::MAX_SECRET_BYTES));
    a.set_secret(org, SecretKind::RepoToken, "big", &largest, Actor::System).await.unwrap();
    // The slot is trimmed: " r1 " and "r1" are one slot.
    a.set_secret(org, SecretKind::RepoToken, " r1 ", &value, Actor::System).await.unwrap();
    let opened = open_secret(&h.bus, &h.envelope, org, SecretKind::RepoToken, "r1").await.unwrap();
    assert_eq!(opened.unwrap().expose_secret(), "glpat-secret-value");
    // Bound to its kind and slot: nothing under another slot or kind.
    assert!(open_secret(&h.bus, &h.envelope, org, SecretKind::RepoToken, "r2").await.unwrap().is_none());
    assert!(open_secret(&h.bus, &h.envelope, org, SecretKind::AiProviderKey, "r1").await.unwrap().is_none());
    // The unknown org got nothing written.
    assert!(open_secret(&h.bus, &h.envelope, stranger, SecretKind::RepoToken, "r1").await.unwrap().is_none());
}
