//! Every type that holds a secret prints no plaintext through `Debug` (and
//! `Display` where it has one). One marker secret is pushed through each type.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use userz_core::ids::{AppId, OrgId, UserId};
use userz_core::Timestamp;
use userz_security::api_key::{ApiKey, HashParams};
use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};
use userz_security::secret::{SecretBytes, SecretString};
use userz_security::session::{sign_in, EmailSignInToken, SessionConfig};
use userz_security::webhooks::{
    GitHubVerifier, GitLabVerifier, SlackVerifier, StandardWebhookSecret, StripeVerifier, UserzWebhookSigner,
    UserzWebhookVerifier,
};
use userz_security::widget_auth::{mint_user_token, MintRequest, UserTokenVerifier};

const MARKER: &str = "MARKER-7f3a9c-MARKER-7f3a9c-MARKER";

fn assert_hidden(shown: &str, secret: &str) {
    assert!(!shown.contains(secret), "plaintext leaked: {shown}");
}

#[test]
fn secret_bytes_and_string() {
    let b = SecretBytes::copy_from(MARKER.as_bytes());
    let s = SecretString::from(MARKER);
    assert_hidden(&format!("{b:?} {b} {s:?} {s} {:#?}", (b.clone(), s.clone())), MARKER);
}

#[tokio::test]
async fn envelope_types() {
    let provider = StaticKeyProvider::from_bytes("m1", &[0x4d; 64]).unwrap();
    let env = Envelope::new(Arc::new(provider.clone()));
    let (key, wrapped) = env.generate_org_key(OrgId::new(), 1, Timestamp::from_millis(0)).await.unwrap();
    let sealed = key.seal(SecretKind::RepoToken, "r", MARKER.as_bytes()).unwrap();
    let opened = key.open_string(&sealed, SecretKind::RepoToken, "r").unwrap();
    let shown = format!("{provider:?} {env:?} {key:?} {wrapped:?} {sealed:?} {opened:?} {opened}");
    assert_hidden(&shown, MARKER);
    assert_hidden(&shown, "MMMMMMMM"); // 0x4d master key bytes as text
    assert_hidden(&shown, "77, 77, 77");
}

#[test]
fn api_keys() {
    let issued = ApiKey::generate(HashParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 }).unwrap();
    let issued_dbg = format!("{issued:?}");
    let (plain, stored) = issued.into_parts();
    let secret_part = plain.expose_secret()[16..].to_owned();
    let parsed = ApiKey::parse(plain.expose_secret()).unwrap();
    let shown = format!("{issued_dbg} {plain:?} {plain} {parsed:?} {stored:?}");
    assert_hidden(&shown, &secret_part);
}

#[test]
fn widget_tokens() {
    let secret = SecretBytes::copy_from(format!("{MARKER}-signing").as_bytes());
    let app = AppId::new();
    let verifier = UserTokenVerifier::new(app, &secret).unwrap();
    let minted = mint_user_token(
        app,
        &secret,
        &MintRequest { sub: "u".into(), ..Default::default() },
        Timestamp::from_millis(0),
    )
    .unwrap();
    let token = minted.token.expose_secret().to_owned();
    let shown = format!("{verifier:?} {minted:?}");
    assert_hidden(&shown, MARKER);
    assert_hidden(&shown, &token);
}

#[test]
fn sessions_and_email_tokens() {
    let s = sign_in(UserId::new(), None, Timestamp::from_millis(0), &SessionConfig::default());
    let email =
        EmailSignInToken::issue("ada@example.com", Timestamp::from_millis(0), std::time::Duration::from_secs(900));
    let shown = format!("{s:?} {:?} {email:?}", s.id);
    assert_hidden(&shown, s.id.expose_secret());
    assert_hidden(&shown, email.token.expose_secret());
    assert_hidden(&shown, "ada@example.com");
}

#[test]
fn webhook_verifiers_and_signers() {
    let sec = || SecretBytes::copy_from(MARKER.as_bytes());
    let whsec = StandardWebhookSecret::from_bytes(sec()).unwrap();
    let shown = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {whsec:?}",
        StripeVerifier::new(sec()),
        GitHubVerifier::new(sec()),
        SlackVerifier::new(sec()),
        GitLabVerifier::new(Some(sec()), Some(whsec.clone())).unwrap(),
        UserzWebhookSigner::new(sec()),
        UserzWebhookVerifier::new(sec()),
    );
    assert_hidden(&shown, MARKER);
}
