//! Every verifier against the same battery: accepts a genuine delivery, then
//! refuses its replay, a tampered body, a wrong secret, timestamps outside the
//! tolerance on both sides, and missing headers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use ed25519_dalek::{Signer, SigningKey};
use http::{HeaderName, HeaderValue};

use super::*;
use crate::secret::SecretBytes;

/// Tiny in-test [`Cache`]: a map honouring TTLs against a manual clock.
#[derive(Debug, Default)]
struct ManualCache {
    now_ms: AtomicI64,
    entries: Mutex<HashMap<String, (Bytes, Option<i64>)>>,
}

impl ManualCache {
    fn advance(&self, d: Duration) {
        self.now_ms.fetch_add(i64::try_from(d.as_millis()).unwrap(), Ordering::SeqCst);
    }

    fn live<'a>(&self, map: &'a mut HashMap<String, (Bytes, Option<i64>)>, key: &str) -> Option<&'a Bytes> {
        let now = self.now_ms.load(Ordering::SeqCst);
        if map.get(key).is_some_and(|(_, exp)| exp.is_some_and(|e| e <= now)) {
            map.remove(key);
        }
        map.get(key).map(|(v, _)| v)
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<i64> {
        ttl.map(|t| self.now_ms.load(Ordering::SeqCst) + i64::try_from(t.as_millis()).unwrap())
    }
}

#[async_trait]
impl Cache for ManualCache {
    async fn get(&self, key: &str) -> userz_core::Result<Option<Bytes>> {
        let mut map = self.entries.lock().unwrap();
        Ok(self.live(&mut map, key).cloned())
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> userz_core::Result<()> {
        let exp = self.expiry(ttl);
        self.entries.lock().unwrap().insert(key.to_owned(), (value, exp));
        Ok(())
    }
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> userz_core::Result<bool> {
        let mut map = self.entries.lock().unwrap();
        if self.live(&mut map, key).is_some() {
            return Ok(false);
        }
        let exp = self.expiry(ttl);
        map.insert(key.to_owned(), (value, exp));
        Ok(true)
    }
    async fn incr(&self, _key: &str, _delta: i64, _ttl: Option<Duration>) -> userz_core::Result<i64> {
        Err(userz_core::Error::Unsupported("incr".into()))
    }
    async fn delete(&self, key: &str) -> userz_core::Result<bool> {
        let mut map = self.entries.lock().unwrap();
        let live = self.live(&mut map, key).is_some();
        map.remove(key);
        Ok(live)
    }
}

const NOW_S: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_millis(NOW_S * 1000)
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
    }
    map
}

/// Builds the headers a provider would send for (`body`, timestamp seconds, delivery id).
type Sign = Box<dyn Fn(&[u8], i64, &str) -> HeaderMap>;

struct Case {
    verifier: Box<dyn WebhookVerifier>,
    wrong_secret: Box<dyn WebhookVerifier>,
    sign: Sign,
    timed: bool,
    /// False only for token-only GitLab: `X-Gitlab-Token` is a bearer secret
    /// that does not cover the body (the signed GitLab mode does).
    body_signed: bool,
}

async fn exercise(case: Case) {
    let cache = Arc::new(ManualCache::default());
    let guard = ReplayGuard::new(cache.clone());
    let v = case.verifier.as_ref();
    let body = br#"{"event":"push","n":1}"#;

    let genuine = (case.sign)(body, NOW_S - 5, "delivery-1");
    let delivery = guard.verify(v, &genuine, body, now()).await.unwrap();
    assert_eq!(delivery.provider, v.provider());

    let replay = guard.verify(v, &genuine, body, now()).await.unwrap_err();
    assert_eq!(replay.code(), "replayed", "{}", v.provider());

    let other = (case.sign)(body, NOW_S - 4, "delivery-2");
    if case.body_signed {
        let tampered = guard.verify(v, &other, br#"{"event":"push","n":2}"#, now()).await.unwrap_err();
        assert_eq!(tampered.code(), "bad_signature", "{}", v.provider());
    }

    let wrong = guard.verify(case.wrong_secret.as_ref(), &other, body, now()).await.unwrap_err();
    assert_eq!(wrong.code(), "bad_signature", "{}", v.provider());

    // Refusals recorded nothing: the same delivery still goes through once.
    assert!(guard.verify(v, &other, body, now()).await.is_ok(), "{}", v.provider());

    if case.timed {
        for (offset, id) in [(-301, "old"), (301, "future")] {
            let h = (case.sign)(body, NOW_S + offset, id);
            let err = guard.verify(v, &h, body, now()).await.unwrap_err();
            assert_eq!(err.code(), "timestamp_out_of_tolerance", "{} {offset}", v.provider());
        }
        for (offset, id) in [(-299, "edge-old"), (299, "edge-future")] {
            let h = (case.sign)(body, NOW_S + offset, id);
            assert!(guard.verify(v, &h, body, now()).await.is_ok(), "{} {offset}", v.provider());
        }
        assert!(v.replay_ttl() >= Duration::from_secs(600));
    }

    let missing = guard.verify(v, &HeaderMap::new(), body, now()).await.unwrap_err();
    assert_eq!(missing.code(), "missing_header", "{}", v.provider());

    // Once the TTL has passed the key is forgotten (the tolerance check is
    // what protects timed schemes from then on).
    cache.advance(v.replay_ttl() + Duration::from_secs(1));
    let again = guard.verify(v, &genuine, body, now()).await;
    assert!(again.is_ok(), "{} after ttl: {again:?}", v.provider());
}

fn secret(s: &str) -> SecretBytes {
    SecretBytes::copy_from(s.as_bytes())
}

#[tokio::test]
async fn stripe_battery() {
    let signer = StripeVerifier::new(secret("whsec_test_secret"));
    exercise(Case {
        verifier: Box::new(signer.clone()),
        wrong_secret: Box::new(StripeVerifier::new(secret("whsec_other"))),
        sign: Box::new(move |body, ts, _| headers(&[("stripe-signature", signer.sign(body, ts))])),
        timed: true,
        body_signed: true,
    })
    .await;
}

#[test]
fn stripe_accepts_any_of_several_v1_and_ignores_v0() {
    let ours = StripeVerifier::new(secret("whsec_new"));
    let old = StripeVerifier::new(secret("whsec_old"));
    let body = b"{}";
    let old_sig = old.sign(body, NOW_S);
    let new_sig = ours.sign(body, NOW_S);
    let new_v1 = new_sig.split_once(",v1=").unwrap().1;
    let value = format!("{old_sig},v1={new_v1},v0=deadbeef");
    let d = ours.authenticate(&headers(&[("stripe-signature", value)]), body, now()).unwrap();
    assert!(d.delivery_id.ends_with(new_v1));
    let only_old = headers(&[("stripe-signature", old_sig)]);
    assert_eq!(ours.authenticate(&only_old, body, now()).unwrap_err().code(), "bad_signature");
}

#[test]
fn stripe_header_parser_refuses_junk() {
    for bad in ["", "t=1", "v1=00", "t=abc,v1=00", "t=1,t=2,v1=00", "garbage", "t=-5,v1=00"] {
        assert_eq!(stripe::parse_signature_header(bad).unwrap_err().code(), "malformed_header", "{bad}");
    }
}

#[tokio::test]
async fn github_battery() {
    let signer = GitHubVerifier::new(secret("gh-secret"));
    exercise(Case {
        verifier: Box::new(signer.clone()),
        wrong_secret: Box::new(GitHubVerifier::new(secret("gh-other"))),
        sign: Box::new(move |body, _, id| {
            headers(&[("x-hub-signature-256", signer.sign(body)), ("x-github-delivery", id.to_owned())])
        }),
        timed: false,
        body_signed: true,
    })
    .await;
}

#[tokio::test]
async fn github_dedups_on_delivery_header() {
    let v = GitHubVerifier::new(secret("gh-secret"));
    let guard = ReplayGuard::new(Arc::new(ManualCache::default()));
    let body = b"payload";
    let h = headers(&[("x-hub-signature-256", v.sign(body)), ("x-github-delivery", "guid-1".into())]);
    guard.verify(&v, &h, body, now()).await.unwrap();
    // Same delivery id, even an hour later: still a replay (no timestamp to lean on).
    let later = now() + Duration::from_secs(3600);
    assert_eq!(guard.verify(&v, &h, body, later).await.unwrap_err().code(), "replayed");
    let no_delivery = headers(&[("x-hub-signature-256", v.sign(body))]);
    assert_eq!(
        v.authenticate(&no_delivery, body, now()).unwrap_err(),
        WebhookError::MissingHeader("x-github-delivery")
    );
}

fn whsec() -> StandardWebhookSecret {
    StandardWebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
}

fn standard_headers(secret: &StandardWebhookSecret, body: &[u8], ts: i64, id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", secret.sign(id, &ts.to_string(), body)),
    ]
}

#[tokio::test]
async fn standard_webhooks_battery() {
    let other = StandardWebhookSecret::parse("whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCE=").unwrap();
    exercise(Case {
        verifier: Box::new(StandardWebhooksVerifier::new(whsec())),
        wrong_secret: Box::new(StandardWebhooksVerifier::new(other)),
        sign: Box::new(|body, ts, id| headers(&standard_headers(&whsec(), body, ts, id))),
        timed: true,
        body_signed: true,
    })
    .await;
}

#[test]
fn standard_signature_list_accepts_any_v1_and_ignores_others() {
    let body = b"x";
    let good = whsec().sign("msg_1", &NOW_S.to_string(), body);
    let list = format!("v1a,abcd v1,AAAA {good} v2,zzz");
    let h = headers(&[
        ("webhook-id", "msg_1".into()),
        ("webhook-timestamp", NOW_S.to_string()),
        ("webhook-signature", list),
    ]);
    assert!(StandardWebhooksVerifier::new(whsec()).authenticate(&h, body, now()).is_ok());
    assert_eq!(standard::parse_signature_list("v1a,abc v2,x").unwrap_err().code(), "malformed_header");
}

#[tokio::test]
async fn gitlab_token_battery() {
    exercise(Case {
        verifier: Box::new(GitLabVerifier::new(Some(secret("gl-token")), None).unwrap()),
        wrong_secret: Box::new(GitLabVerifier::new(Some(secret("gl-other")), None).unwrap()),
        sign: Box::new(|_, _, id| {
            headers(&[("x-gitlab-token", "gl-token".into()), ("idempotency-key", id.to_owned())])
        }),
        timed: false,
        body_signed: false,
    })
    .await;
}

#[tokio::test]
async fn gitlab_signed_battery() {
    let other = StandardWebhookSecret::parse("whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCE=").unwrap();
    exercise(Case {
        verifier: Box::new(GitLabVerifier::new(Some(secret("gl-token")), Some(whsec())).unwrap()),
        wrong_secret: Box::new(GitLabVerifier::new(Some(secret("gl-token")), Some(other)).unwrap()),
        sign: Box::new(|body, ts, id| {
            let mut h = standard_headers(&whsec(), body, ts, id);
            h.push(("x-gitlab-token", "gl-token".into()));
            h.push(("x-gitlab-event-uuid", id.to_owned()));
            headers(&h)
        }),
        timed: true,
        body_signed: true,
    })
    .await;
}

#[test]
fn gitlab_wrong_token_missing_signature_and_uuid_fallback() {
    let v = GitLabVerifier::new(Some(secret("gl-token")), None).unwrap();
    let wrong = headers(&[("x-gitlab-token", "gl-tokem".into()), ("idempotency-key", "k".into())]);
    assert_eq!(v.authenticate(&wrong, b"", now()).unwrap_err().code(), "bad_signature");
    let shorter = headers(&[("x-gitlab-token", "gl".into()), ("idempotency-key", "k".into())]);
    assert_eq!(v.authenticate(&shorter, b"", now()).unwrap_err().code(), "bad_signature");
    let via_uuid = headers(&[("x-gitlab-token", "gl-token".into()), ("x-gitlab-event-uuid", "uuid-1".into())]);
    assert_eq!(v.authenticate(&via_uuid, b"", now()).unwrap().delivery_id, "uuid-1");
    let both = headers(&[
        ("x-gitlab-token", "gl-token".into()),
        ("idempotency-key", "idem-1".into()),
        ("x-gitlab-event-uuid", "uuid-1".into()),
    ]);
    assert_eq!(v.authenticate(&both, b"", now()).unwrap().delivery_id, "idem-1");
    // Signing configured: the signature cannot be dropped.
    let signed = GitLabVerifier::new(Some(secret("gl-token")), Some(whsec())).unwrap();
    assert_eq!(signed.authenticate(&via_uuid, b"", now()).unwrap_err().code(), "missing_header");
    assert!(GitLabVerifier::new(None, None).is_err());
}

#[tokio::test]
async fn slack_battery() {
    let signer = SlackVerifier::new(secret("slack-signing-secret"));
    exercise(Case {
        verifier: Box::new(signer.clone()),
        wrong_secret: Box::new(SlackVerifier::new(secret("slack-other"))),
        sign: Box::new(move |body, ts, _| {
            let ts = ts.to_string();
            headers(&[("x-slack-signature", signer.sign(&ts, body)), ("x-slack-request-timestamp", ts)])
        }),
        timed: true,
        body_signed: true,
    })
    .await;
}

fn discord_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

#[tokio::test]
async fn discord_battery() {
    let key = discord_key(7);
    let verifier = DiscordVerifier::from_hex(&hex::encode(key.verifying_key().to_bytes())).unwrap();
    let wrong = DiscordVerifier::from_bytes(&discord_key(8).verifying_key().to_bytes()).unwrap();
    exercise(Case {
        verifier: Box::new(verifier),
        wrong_secret: Box::new(wrong),
        sign: Box::new(move |body, ts, _| {
            let ts = ts.to_string();
            let mut msg = ts.as_bytes().to_vec();
            msg.extend_from_slice(body);
            let sig = hex::encode(key.sign(&msg).to_bytes());
            headers(&[("x-signature-ed25519", sig), ("x-signature-timestamp", ts)])
        }),
        timed: true,
        body_signed: true,
    })
    .await;
}

#[tokio::test]
async fn userz_outbound_battery() {
    let signer = UserzWebhookSigner::new(secret("userz-endpoint-secret"));
    exercise(Case {
        verifier: Box::new(UserzWebhookVerifier::new(secret("userz-endpoint-secret"))),
        wrong_secret: Box::new(UserzWebhookVerifier::new(secret("userz-other"))),
        sign: Box::new(move |body, ts, _| {
            let at = Timestamp::from_millis(ts * 1000 + 123);
            headers(&[("x-userz-signature", signer.sign(body, at))])
        }),
        timed: true,
        body_signed: true,
    })
    .await;
}

#[test]
fn userz_outbound_rotation_signs_with_both_secrets() {
    let signer = UserzWebhookSigner::new(secret("new")).with_additional_secret(secret("old"));
    let value = signer.sign(b"b", now());
    let parsed = outbound::parse_signature_header(&value).unwrap();
    assert_eq!(parsed.timestamp_ms, now().as_millis());
    assert_eq!(parsed.v1.len(), 2);
    let old_receiver = UserzWebhookVerifier::new(secret("old"));
    assert!(old_receiver.authenticate(&headers(&[("x-userz-signature", value)]), b"b", now()).is_ok());
}

#[tokio::test]
async fn replay_scopes_are_independent() {
    let cache = Arc::new(ManualCache::default());
    let v = GitHubVerifier::new(secret("s"));
    let h = headers(&[("x-hub-signature-256", v.sign(b"a")), ("x-github-delivery", "d".into())]);
    let org_a = ReplayGuard::new(cache.clone()).with_scope("endpoint-a");
    let org_b = ReplayGuard::new(cache).with_scope("endpoint-b");
    org_a.verify(&v, &h, b"a", now()).await.unwrap();
    org_b.verify(&v, &h, b"a", now()).await.unwrap();
    assert_eq!(org_a.verify(&v, &h, b"a", now()).await.unwrap_err().code(), "replayed");
}

#[test]
fn repeated_signature_header_is_malformed() {
    let v = GitHubVerifier::new(secret("s"));
    let h = headers(&[
        ("x-hub-signature-256", v.sign(b"a")),
        ("x-hub-signature-256", v.sign(b"a")),
        ("x-github-delivery", "d".into()),
    ]);
    assert_eq!(v.authenticate(&h, b"a", now()).unwrap_err().code(), "malformed_header");
}

#[tokio::test]
async fn cache_failure_refuses_rather_than_accepts() {
    #[derive(Debug)]
    struct DownCache;
    #[async_trait]
    impl Cache for DownCache {
        async fn get(&self, _: &str) -> userz_core::Result<Option<Bytes>> {
            Err(userz_core::Error::Unavailable("down".into()))
        }
        async fn set(&self, _: &str, _: Bytes, _: Option<Duration>) -> userz_core::Result<()> {
            Err(userz_core::Error::Unavailable("down".into()))
        }
        async fn set_if_absent(&self, _: &str, _: Bytes, _: Option<Duration>) -> userz_core::Result<bool> {
            Err(userz_core::Error::Unavailable("down".into()))
        }
        async fn incr(&self, _: &str, _: i64, _: Option<Duration>) -> userz_core::Result<i64> {
            Err(userz_core::Error::Unavailable("down".into()))
        }
        async fn delete(&self, _: &str) -> userz_core::Result<bool> {
            Err(userz_core::Error::Unavailable("down".into()))
        }
    }
    let v = GitHubVerifier::new(secret("s"));
    let h = headers(&[("x-hub-signature-256", v.sign(b"a")), ("x-github-delivery", "d".into())]);
    let err = ReplayGuard::new(Arc::new(DownCache)).verify(&v, &h, b"a", now()).await.unwrap_err();
    assert_eq!(err.code(), "replay_guard_unavailable");
}

#[test]
fn verifier_debug_shows_no_secret() {
    let shown = format!(
        "{:?} {:?} {:?} {:?} {:?}",
        StripeVerifier::new(secret("whsec_PLAINTEXT")),
        GitHubVerifier::new(secret("PLAINTEXT")),
        SlackVerifier::new(secret("PLAINTEXT")),
        GitLabVerifier::new(Some(secret("PLAINTEXT")), Some(whsec())).unwrap(),
        UserzWebhookSigner::new(secret("PLAINTEXT")),
    );
    assert!(!shown.contains("PLAINTEXT"), "{shown}");
    assert!(!shown.contains("MfKQ9r8"), "{shown}");
}

#[tokio::test]
async fn was_seen_peeks_without_recording() {
    let v = GitHubVerifier::new(secret("gh-secret"));
    let guard = ReplayGuard::new(Arc::new(ManualCache::default())).with_scope("peek");
    let body = b"payload";
    let h = headers(&[("x-hub-signature-256", v.sign(body)), ("x-github-delivery", "guid-peek".into())]);
    let delivery = v.authenticate(&h, body, now()).unwrap();
    assert!(!guard.was_seen(&delivery).await.unwrap());
    assert!(!guard.was_seen(&delivery).await.unwrap(), "peeking records nothing");
    guard.first_seen(&delivery, v.replay_ttl()).await.unwrap();
    assert!(guard.was_seen(&delivery).await.unwrap());
    // Another scope has not seen it.
    let other = ReplayGuard::new(Arc::new(ManualCache::default())).with_scope("peek");
    assert!(!other.was_seen(&delivery).await.unwrap());
}
