//! Published test vectors (kept in `tests/data/`): RFC 5297 AES-SIV, RFC 5869
//! HKDF-SHA256, RFC 8032 Ed25519, and the webhook examples GitHub, Slack and
//! Standard Webhooks publish. A failure here is a transcription or code error,
//! never a reason to loosen the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aes_siv::siv::Aes128Siv;
use aes_siv::KeyInit;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use sha2::Sha256;
use userz_core::Timestamp;
use userz_security::secret::SecretBytes;
use userz_security::webhooks::{
    self, DiscordVerifier, GitHubVerifier, SlackVerifier, StandardWebhookSecret, StandardWebhooksVerifier,
    WebhookVerifier,
};

fn data(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    ::hex::decode(v.as_str().unwrap()).unwrap()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
    }
    map
}

#[test]
fn rfc5297_a1_deterministic_aes_siv() {
    let d = &data(include_str!("data/rfc5297_aes_siv.json"))["deterministic_a1"];
    let mut siv = Aes128Siv::new_from_slice(&hex(&d["key"])).unwrap();
    let ad: Vec<Vec<u8>> = d["ad"].as_array().unwrap().iter().map(hex).collect();
    let out = siv.encrypt(&ad, &hex(&d["plaintext"])).unwrap();
    assert_eq!(out, hex(&d["output"]));
    let back = siv.decrypt(&ad, &out).unwrap();
    assert_eq!(back, hex(&d["plaintext"]));
}

#[test]
fn rfc5297_a2_nonce_based_aes_siv_with_several_ad_components() {
    let d = &data(include_str!("data/rfc5297_aes_siv.json"))["nonce_based_a2"];
    let mut siv = Aes128Siv::new_from_slice(&hex(&d["key"])).unwrap();
    // The nonce is the last associated-data component (RFC 5297 §3).
    let mut headers: Vec<Vec<u8>> = d["ad"].as_array().unwrap().iter().map(hex).collect();
    headers.push(hex(&d["nonce"]));
    let out = siv.encrypt(&headers, &hex(&d["plaintext"])).unwrap();
    assert_eq!(out, hex(&d["output"]));
    assert_eq!(siv.decrypt(&headers, &out).unwrap(), hex(&d["plaintext"]));
    headers.swap(0, 1);
    assert!(siv.decrypt(&headers, &out).is_err(), "AD order is bound");
}

#[test]
fn rfc5869_hkdf_sha256_a1_to_a3() {
    let d = data(include_str!("data/rfc5869_hkdf_sha256.json"));
    let cases = d["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let salt = hex(&case["salt"]);
        let salt = (!salt.is_empty()).then_some(salt.as_slice());
        let (prk, hk) = Hkdf::<Sha256>::extract(salt, &hex(&case["ikm"]));
        assert_eq!(prk.to_vec(), hex(&case["prk"]), "{}", case["name"]);
        let mut okm = vec![0u8; usize::try_from(case["length"].as_u64().unwrap()).unwrap()];
        hk.expand(&hex(&case["info"]), &mut okm).unwrap();
        assert_eq!(okm, hex(&case["okm"]), "{}", case["name"]);
    }
}

#[test]
fn rfc8032_ed25519_test_1() {
    let d = data(include_str!("data/rfc8032_ed25519.json"));
    let sk: [u8; 32] = hex(&d["secret_key"]).try_into().unwrap();
    let pk: [u8; 32] = hex(&d["public_key"]).try_into().unwrap();
    let sig: [u8; 64] = hex(&d["signature"]).try_into().unwrap();
    let msg = hex(&d["message"]);
    let signing = SigningKey::from_bytes(&sk);
    assert_eq!(signing.verifying_key().to_bytes(), pk);
    assert_eq!(signing.sign(&msg).to_bytes(), sig);
    let verifying = VerifyingKey::from_bytes(&pk).unwrap();
    verifying.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&sig)).unwrap();
    // The Discord verifier accepts the published key and signature encodings.
    DiscordVerifier::from_hex(text(&d["public_key"])).unwrap();
    let parsed = webhooks::discord::parse_signature_header(text(&d["signature"])).unwrap();
    assert_eq!(parsed.to_bytes(), sig);
}

#[test]
fn github_documented_x_hub_signature_256() {
    let d = &data(include_str!("data/webhook_vectors.json"))["github"];
    let v = GitHubVerifier::new(SecretBytes::copy_from(text(&d["secret"]).as_bytes()));
    let payload = text(&d["payload"]).as_bytes();
    assert_eq!(v.sign(payload), text(&d["signature"]));
    let h = headers(&[
        ("x-hub-signature-256", text(&d["signature"])),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ]);
    v.authenticate(&h, payload, Timestamp::from_millis(0)).unwrap();
}

#[test]
fn slack_documented_signing_example() {
    let d = &data(include_str!("data/webhook_vectors.json"))["slack"];
    let v = SlackVerifier::new(SecretBytes::copy_from(text(&d["signing_secret"]).as_bytes()));
    let body = text(&d["body"]).as_bytes();
    let ts = text(&d["timestamp"]);
    assert_eq!(v.sign(ts, body), text(&d["signature"]));
    let h = headers(&[("x-slack-signature", text(&d["signature"])), ("x-slack-request-timestamp", ts)]);
    let now = Timestamp::from_millis(ts.parse::<i64>().unwrap() * 1000);
    v.authenticate(&h, body, now).unwrap();
}

#[test]
fn standard_webhooks_reference_vector() {
    let d = &data(include_str!("data/webhook_vectors.json"))["standard_webhooks"];
    let secret = StandardWebhookSecret::parse(text(&d["secret"])).unwrap();
    let payload = text(&d["payload"]).as_bytes();
    let (id, ts) = (text(&d["msg_id"]), text(&d["timestamp"]));
    assert_eq!(secret.sign(id, ts, payload), text(&d["signature"]));
    let h = headers(&[("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", text(&d["signature"]))]);
    let now = Timestamp::from_millis(ts.parse::<i64>().unwrap() * 1000);
    StandardWebhooksVerifier::new(secret).authenticate(&h, payload, now).unwrap();
}

#[test]
fn rfc4231_hmac_sha256_through_the_one_mac_helper() {
    use userz_security::mac::{hmac_sha256, verify_hmac_sha256};
    let d = data(include_str!("data/rfc4231_hmac_sha256.json"));
    let cases = d["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for c in cases {
        let (key, msg, want) = (hex(&c["key"]), hex(&c["data"]), hex(&c["hmac_sha256"]));
        assert_eq!(hmac_sha256(&key, &[&msg]).to_vec(), want, "case {}", c["case"]);
        // Parts are authenticated as their concatenation.
        let (a, b) = msg.split_at(msg.len() / 2);
        assert!(verify_hmac_sha256(&key, &[a, b], &want), "case {}", c["case"]);
        let mut wrong = want.clone();
        wrong[31] ^= 1;
        assert!(!verify_hmac_sha256(&key, &[&msg], &wrong));
        assert!(!verify_hmac_sha256(&key, &[&msg], &want[..31]), "a short tag is refused");
    }
}
