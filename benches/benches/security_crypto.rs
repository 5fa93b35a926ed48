//! Cost of the security primitives against the raw primitive underneath:
//! API key verify vs. one raw Argon2id hash with the same parameters,
//! envelope seal/open of a 64-byte secret vs. raw AES-SIV with a fixed key,
//! webhook verify vs. one raw HMAC-SHA256.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use argon2::{Algorithm, Argon2, Params, Version};
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use userz_core::ids::OrgId;
use userz_core::Timestamp;
use userz_security::api_key::{ApiKey, HashParams, VerifyApiKey};
use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};
use userz_security::secret::SecretBytes;
use userz_security::webhooks::{GitHubVerifier, WebhookVerifier};

fn api_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("api_key_verify");
    g.sample_size(10);
    let (plain, stored) = ApiKey::generate(HashParams::default()).unwrap().into_parts();
    let key = ApiKey::parse(plain.expose_secret()).unwrap();
    g.bench_function("userz_verify_owasp", |b| b.iter(|| stored.verify(black_box(&key)).unwrap()));
    let p = HashParams::OWASP;
    g.bench_function("raw_argon2id_same_params", |b| {
        b.iter(|| {
            let argon = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(32)).unwrap(),
            );
            let mut out = [0u8; 32];
            argon.hash_password_into(black_box(plain.expose_secret().as_bytes()), &stored.salt, &mut out).unwrap();
            out
        })
    });
    g.finish();
}

fn envelope(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let env = Envelope::new(Arc::new(StaticKeyProvider::generate("master-1").unwrap()));
    let (key, _) = rt.block_on(env.generate_org_key(OrgId::new(), 1, Timestamp::from_millis(0))).unwrap();
    let secret = [0x5au8; 64];
    let sealed = key.seal(SecretKind::AiProviderKey, "openai", &secret).unwrap();

    let mut g = c.benchmark_group("envelope_64b");
    g.bench_function("userz_seal", |b| {
        b.iter(|| key.seal(SecretKind::AiProviderKey, "openai", black_box(&secret)).unwrap())
    });
    g.bench_function("userz_open", |b| {
        b.iter(|| key.open(black_box(&sealed), SecretKind::AiProviderKey, "openai").unwrap())
    });
    let mut raw = Aes256Siv::new_from_slice(&[7u8; 64]).unwrap();
    let raw_ct = raw.encrypt([b"nonce-0123456789"], &secret).unwrap();
    g.bench_function("raw_aes_siv_encrypt", |b| {
        b.iter(|| raw.encrypt([b"nonce-0123456789"], black_box(&secret)).unwrap())
    });
    g.bench_function("raw_aes_siv_decrypt", |b| {
        b.iter(|| raw.decrypt([b"nonce-0123456789"], black_box(&raw_ct)).unwrap())
    });
    g.finish();
}

fn webhook(c: &mut Criterion) {
    let body = vec![b'x'; 1024];
    let v = GitHubVerifier::new(SecretBytes::copy_from(b"webhook-secret"));
    let mut headers = HeaderMap::new();
    headers.insert("x-hub-signature-256", HeaderValue::from_str(&v.sign(&body)).unwrap());
    headers.insert("x-github-delivery", HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
    let now = Timestamp::from_millis(0);
    let tag = {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"webhook-secret").unwrap();
        mac.update(&body);
        mac.finalize().into_bytes()
    };

    let mut g = c.benchmark_group("webhook_verify_1kib");
    g.bench_function("userz_github_authenticate", |b| {
        b.iter(|| v.authenticate(black_box(&headers), black_box(&body), now).unwrap())
    });
    g.bench_function("raw_hmac_sha256_verify", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"webhook-secret").unwrap();
            mac.update(black_box(&body));
            mac.verify_slice(&tag).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, api_key, envelope, webhook);
criterion_main!(benches);
