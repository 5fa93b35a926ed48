//! Dashboard sessions and email sign-in tokens — guarantee G17.
//!
//! - The browser holds an opaque [`SessionId`]: 256 random bits, base64url.
//!   The server stores only [`SessionKey`] = SHA-256 of the id, so a leaked
//!   session store (the ephemeral cache) yields no usable cookies.
//! - [`SessionRecord`] keeps `created_at`, `refreshed_at` and `expires_at`
//!   (30 days after the last refresh, capped by an optional absolute
//!   lifetime). [`SessionRecord::touch`] refreshes at most once per 24 h and
//!   says whether the record must be rewritten, so an active user costs one
//!   write a day, not one per request.
//! - [`sign_in`] always issues a **new** id and names the previous session's
//!   key for deletion (session-fixation defence); [`SessionRecord::revoke`]
//!   marks a record dead.
//! - [`SessionConfig::cookie`] builds the `Set-Cookie` value: `HttpOnly`,
//!   `SameSite=Lax`, `Path=/`, `Max-Age`, and `Secure` unless configured off
//!   for local development.
//! - [`EmailSignInToken`]: a single-use, short-lived (15 min) token mailed to
//!   the user, hashed at rest and consumed once ([`consume_email_token`] on
//!   the [`Cache`] port: whoever deletes the key first wins).
//!
//! Everything here is pure logic with `now` passed in; storage goes through
//! [`SessionStore`] (an implementation over the [`Cache`] port is provided).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::SecretString;
use userz_core::ids::UserId;
use userz_core::ports::cache::Cache;
use userz_core::sensitive::Sensitive;
use userz_core::time::Timestamp;

/// Random bytes in a session id or email token.
pub const TOKEN_BYTES: usize = 32;
/// Default cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "userz_session";
/// Idle expiry: 30 days after the last refresh.
pub const DEFAULT_IDLE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Refresh at most once per 24 h.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Email sign-in token lifetime.
pub const DEFAULT_EMAIL_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Why a session or sign-in token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Not a token we issued (shape).
    #[error("malformed session token")]
    Malformed,
    /// No such session / token (or already consumed).
    #[error("unknown session")]
    Unknown,
    /// Past its idle or absolute expiry.
    #[error("session expired")]
    Expired,
    /// Explicitly revoked.
    #[error("session revoked")]
    Revoked,
    /// Email token already used.
    #[error("sign-in token already used")]
    AlreadyUsed,
    /// Storage failed.
    #[error("session store: {0}")]
    Store(String),
}

impl SessionError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::Malformed => "malformed",
            SessionError::Unknown => "unknown_session",
            SessionError::Expired => "expired",
            SessionError::Revoked => "revoked",
            SessionError::AlreadyUsed => "already_used",
            SessionError::Store(_) => "store_unavailable",
        }
    }
}

fn random_token() -> SecretString {
    let mut bytes = zeroize::Zeroizing::new([0u8; TOKEN_BYTES]);
    OsRng.fill_bytes(bytes.as_mut());
    SecretString::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn parse_token(s: &str) -> Result<SecretString, SessionError> {
    // 32 bytes base64url without padding = 43 chars.
    let ok = s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(SecretString::new(s.to_owned()))
    } else {
        Err(SessionError::Malformed)
    }
}

fn hash_key(token: &SecretString) -> String {
    hex::encode(Sha256::digest(token.expose_secret().as_bytes()))
}

/// The opaque id in the browser's cookie. Redacted in `Debug`, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(SecretString);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

impl SessionId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(random_token())
    }

    /// Parses a cookie value (shape only; existence is the store's job).
    pub fn parse(cookie_value: &str) -> Result<Self, SessionError> {
        parse_token(cookie_value).map(Self)
    }

    /// The server-side storage key: SHA-256 of the id.
    pub fn key(&self) -> SessionKey {
        SessionKey(hash_key(&self.0))
    }

    /// The cookie value. Call sites that need it say so explicitly.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// SHA-256 (hex) of a [`SessionId`]: what the store is keyed by. Not secret on
/// its own — it cannot be turned back into a cookie.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionKey(String);

impl SessionKey {
    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Session policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Cookie name.
    pub cookie_name: String,
    /// Whether the cookie carries `Secure` (true in production).
    pub secure: bool,
    /// Expiry after the last refresh (30 days).
    pub idle_expiry: Duration,
    /// Minimum time between refreshes (24 h).
    pub refresh_interval: Duration,
    /// Optional hard cap from creation, whatever the activity.
    pub absolute_lifetime: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            secure: true,
            idle_expiry: DEFAULT_IDLE_EXPIRY,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            absolute_lifetime: None,
        }
    }
}

impl SessionConfig {
    /// `Set-Cookie` value carrying `id`, valid until `expires_at` (seen at `now`).
    pub fn cookie(&self, id: &SessionId, expires_at: Timestamp, now: Timestamp) -> SecretString {
        let max_age = expires_at.saturating_since(now).as_secs();
        SecretString::new(self.cookie_with(id.expose_secret(), max_age))
    }

    /// `Set-Cookie` value that deletes the cookie (sign-out).
    pub fn clear_cookie(&self) -> String {
        self.cookie_with("", 0)
    }

    fn cookie_with(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}", self.cookie_name)
    }
}

/// A session as stored (keyed by [`SessionKey`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Storage key.
    pub key: SessionKey,
    /// Who is signed in.
    pub user: UserId,
    /// Sign-in time.
    pub created_at: Timestamp,
    /// Last refresh.
    pub refreshed_at: Timestamp,
    /// Idle expiry (capped by `absolute_expires_at`).
    pub expires_at: Timestamp,
    /// Hard cap, if configured.
    pub absolute_expires_at: Option<Timestamp>,
    /// Set by [`revoke`](Self::revoke).
    pub revoked: bool,
}

/// What [`SessionRecord::touch`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Valid and refreshed: write the record back and re-send the cookie.
    Refreshed,
    /// Valid, refreshed less than the interval ago: nothing to write.
    Unchanged,
}

impl SessionRecord {
    fn new(key: SessionKey, user: UserId, now: Timestamp, config: &SessionConfig) -> Self {
        let absolute_expires_at = config.absolute_lifetime.map(|d| now + d);
        let mut record = Self {
            key,
            user,
            created_at: now,
            refreshed_at: now,
            expires_at: now,
            absolute_expires_at,
            revoked: false,
        };
        record.expires_at = record.capped(now + config.idle_expiry);
        record
    }

    fn capped(&self, t: Timestamp) -> Timestamp {
        self.absolute_expires_at.map_or(t, |abs| t.min(abs))
    }

    /// Whether the session is usable at `now`.
    pub fn check(&self, now: Timestamp) -> Result<(), SessionError> {
        if self.revoked {
            Err(SessionError::Revoked)
        } else if now >= self.expires_at {
            Err(SessionError::Expired)
        } else {
            Ok(())
        }
    }

    /// Validates and, if the last refresh is at least `refresh_interval` old,
    /// slides `expires_at` to `now + idle_expiry` (capped by the absolute lifetime).
    pub fn touch(&mut self, now: Timestamp, config: &SessionConfig) -> Result<Touch, SessionError> {
        self.check(now)?;
        if now.saturating_since(self.refreshed_at) < config.refresh_interval {
            return Ok(Touch::Unchanged);
        }
        self.refreshed_at = now;
        self.expires_at = self.capped(now + config.idle_expiry);
        Ok(Touch::Refreshed)
    }

    /// Marks the session revoked (the store should also delete it).
    pub fn revoke(&mut self) {
        self.revoked = true;
    }
}

/// A new session after sign-in.
#[derive(Debug)]
pub struct NewSession {
    /// The id for the cookie (only here, once).
    pub id: SessionId,
    /// The record to store.
    pub record: SessionRecord,
    /// The pre-sign-in session to delete, if there was one.
    pub replaces: Option<SessionKey>,
}

/// Starts a session for `user`: always a fresh id, never the one the browser
/// came with (session-fixation defence).
pub fn sign_in(user: UserId, previous: Option<&SessionId>, now: Timestamp, config: &SessionConfig) -> NewSession {
    let id = SessionId::generate();
    let record = SessionRecord::new(id.key(), user, now, config);
    NewSession { id, record, replaces: previous.map(SessionId::key) }
}

// ------------------------------------------------------------ storage

/// Where session records live (the ephemeral cache in the reference server).
///
/// # Contract
/// - `put` replaces any record with the same key; the record is gone (reads
///   `None`) after `ttl`.
/// - `delete` returns whether a record was removed.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Reads a record.
    async fn get(&self, key: &SessionKey) -> Result<Option<SessionRecord>, SessionError>;
    /// Writes a record for `ttl`.
    async fn put(&self, record: &SessionRecord, ttl: Duration) -> Result<(), SessionError>;
    /// Deletes a record.
    async fn delete(&self, key: &SessionKey) -> Result<bool, SessionError>;
}

/// [`SessionStore`] over the [`Cache`] port (JSON values, TTL = time to expiry).
#[derive(Debug, Clone)]
pub struct CacheSessionStore {
    cache: Arc<dyn Cache>,
}

impl CacheSessionStore {
    /// Stores sessions in `cache`.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }

    fn cache_key(key: &SessionKey) -> String {
        format!("userz:session:{}", key.as_str())
    }
}

fn store_err(e: impl fmt::Display) -> SessionError {
    SessionError::Store(e.to_string())
}

#[async_trait]
impl SessionStore for CacheSessionStore {
    async fn get(&self, key: &SessionKey) -> Result<Option<SessionRecord>, SessionError> {
        match self.cache.get(&Self::cache_key(key)).await.map_err(store_err)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(store_err),
        }
    }

    async fn put(&self, record: &SessionRecord, ttl: Duration) -> Result<(), SessionError> {
        let json = serde_json::to_vec(record).map_err(store_err)?;
        self.cache.set(&Self::cache_key(&record.key), Bytes::from(json), Some(ttl)).await.map_err(store_err)
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool, SessionError> {
        self.cache.delete(&Self::cache_key(key)).await.map_err(store_err)
    }
}

// ------------------------------------------------------------ email sign-in

/// A single-use email sign-in token: plaintext goes in the email link only.
#[derive(Debug)]
pub struct EmailSignInToken {
    /// The token for the link (redacted in `Debug`).
    pub token: SecretString,
    /// What to store (hashed; keyed by [`EmailTokenRecord::key`]).
    pub record: EmailTokenRecord,
}

/// An email sign-in token at rest: SHA-256 of the token, never the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTokenRecord {
    /// Hex SHA-256 of the token.
    pub key: String,
    /// Address the link was sent to.
    pub email: Sensitive<String>,
    /// Issue time.
    pub created_at: Timestamp,
    /// Expiry (15 minutes by default).
    pub expires_at: Timestamp,
    /// Set once consumed.
    pub consumed: bool,
}

impl EmailSignInToken {
    /// Issues a token for `email` valid for `lifetime` from `now`.
    pub fn issue(email: &str, now: Timestamp, lifetime: Duration) -> Self {
        let token = random_token();
        let record = EmailTokenRecord {
            key: hash_key(&token),
            email: Sensitive::new(email.to_owned()),
            created_at: now,
            expires_at: now + lifetime,
            consumed: false,
        };
        Self { token, record }
    }

    /// The storage key for a presented token.
    pub fn key_for(presented: &str) -> Result<String, SessionError> {
        parse_token(presented).map(|t| hash_key(&t))
    }
}

impl EmailTokenRecord {
    /// Consumes the token at `now`: refuses an expired or already-used one.
    pub fn consume(&mut self, now: Timestamp) -> Result<(), SessionError> {
        if self.consumed {
            return Err(SessionError::AlreadyUsed);
        }
        if now >= self.expires_at {
            return Err(SessionError::Expired);
        }
        self.consumed = true;
        Ok(())
    }
}

fn email_cache_key(key: &str) -> String {
    format!("userz:email-signin:{key}")
}

/// Stores an issued email token in `cache` until it expires.
pub async fn store_email_token(
    cache: &dyn Cache,
    record: &EmailTokenRecord,
    now: Timestamp,
) -> Result<(), SessionError> {
    let json = serde_json::to_vec(record).map_err(store_err)?;
    let ttl = record.expires_at.saturating_since(now);
    cache.set(&email_cache_key(&record.key), Bytes::from(json), Some(ttl)).await.map_err(store_err)
}

/// Consumes a presented email token exactly once. The record is deleted
/// before it is trusted, and only the caller whose delete removed it wins, so
/// two concurrent uses of one link cannot both sign in.
pub async fn consume_email_token(
    cache: &dyn Cache,
    presented: &str,
    now: Timestamp,
) -> Result<EmailTokenRecord, SessionError> {
    let key = email_cache_key(&EmailSignInToken::key_for(presented)?);
    let bytes = cache.get(&key).await.map_err(store_err)?.ok_or(SessionError::Unknown)?;
    let mut record: EmailTokenRecord = serde_json::from_slice(&bytes).map_err(store_err)?;
    if !cache.delete(&key).await.map_err(store_err)? {
        return Err(SessionError::AlreadyUsed);
    }
    record.consume(now)?;
    Ok(record)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn t0() -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000)
    }

    fn session(config: &SessionConfig) -> NewSession {
        sign_in(UserId::new(), None, t0(), config)
    }

    #[test]
    fn idle_25h_refreshes_and_slides_expiry() {
        let cfg = SessionConfig::default();
        let mut s = session(&cfg).record;
        let later = t0() + 25 * HOUR;
        assert_eq!(s.touch(later, &cfg), Ok(Touch::Refreshed));
        assert_eq!(s.refreshed_at, later);
        assert_eq!(s.expires_at, later + 30 * DAY);
    }

    #[test]
    fn within_24h_no_rewrite() {
        let cfg = SessionConfig::default();
        let mut s = session(&cfg).record;
        let before = s.clone();
        assert_eq!(s.touch(t0() + 23 * HOUR, &cfg), Ok(Touch::Unchanged));
        assert_eq!(s, before);
    }

    #[test]
    fn idle_31_days_refused() {
        let cfg = SessionConfig::default();
        let mut s = session(&cfg).record;
        assert_eq!(s.touch(t0() + 31 * DAY, &cfg), Err(SessionError::Expired));
        // Exactly 30 days is already past the expiry instant.
        assert_eq!(s.check(t0() + 30 * DAY), Err(SessionError::Expired));
    }

    #[test]
    fn activity_keeps_session_alive_past_30_days_unless_absolute_cap() {
        let cfg = SessionConfig::default();
        let mut s = session(&cfg).record;
        for day in 1..=40 {
            assert_eq!(s.touch(t0() + day * DAY, &cfg), Ok(Touch::Refreshed), "day {day}");
        }
        let capped = SessionConfig { absolute_lifetime: Some(7 * DAY), ..SessionConfig::default() };
        let mut s = session(&capped).record;
        assert_eq!(s.expires_at, t0() + 7 * DAY);
        assert_eq!(s.touch(t0() + 6 * DAY, &capped), Ok(Touch::Refreshed));
        assert_eq!(s.expires_at, t0() + 7 * DAY);
        assert_eq!(s.touch(t0() + 7 * DAY, &capped), Err(SessionError::Expired));
    }

    #[test]
    fn sign_in_rotates_id_and_names_old_session() {
        let cfg = SessionConfig::default();
        let first = session(&cfg);
        let second = sign_in(first.record.user, Some(&first.id), t0(), &cfg);
        assert_ne!(second.id, first.id);
        assert_ne!(second.record.key, first.record.key);
        assert_eq!(second.replaces, Some(first.record.key.clone()));
    }

    #[test]
    fn revoked_session_refused() {
        let cfg = SessionConfig::default();
        let mut s = session(&cfg).record;
        s.revoke();
        assert_eq!(s.touch(t0() + HOUR, &cfg).unwrap_err().code(), "revoked");
    }

    #[test]
    fn ids_are_256_bit_and_stored_hashed() {
        let s = session(&SessionConfig::default());
        let id = s.id.expose_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(id).unwrap().len(), 32);
        assert_eq!(SessionId::parse(id).unwrap().key(), s.record.key);
        let json = serde_json::to_string(&s.record).unwrap();
        assert!(!json.contains(id), "record must not contain the id");
        assert!(!format!("{s:?}").contains(id));
        assert_eq!(SessionId::parse("short").unwrap_err().code(), "malformed");
    }

    #[test]
    fn cookie_has_required_attributes() {
        let cfg = SessionConfig::default();
        let s = session(&cfg);
        let cookie = cfg.cookie(&s.id, s.record.expires_at, t0());
        let c = cookie.expose_secret();
        assert!(c.starts_with(&format!("userz_session={}", s.id.expose_secret())));
        for attr in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure", "; Max-Age=2592000"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        let dev = SessionConfig { secure: false, ..SessionConfig::default() };
        assert!(!dev.cookie(&s.id, s.record.expires_at, t0()).expose_secret().contains("Secure"));
        assert!(cfg.clear_cookie().contains("Max-Age=0"));
    }

    #[derive(Debug, Default)]
    struct MapCache(std::sync::Mutex<std::collections::HashMap<String, Bytes>>);

    #[async_trait]
    impl Cache for MapCache {
        async fn get(&self, key: &str) -> userz_core::Result<Option<Bytes>> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn set(&self, key: &str, value: Bytes, _: Option<Duration>) -> userz_core::Result<()> {
            self.0.lock().unwrap().insert(key.into(), value);
            Ok(())
        }
        async fn set_if_absent(&self, key: &str, value: Bytes, _: Option<Duration>) -> userz_core::Result<bool> {
            let mut m = self.0.lock().unwrap();
            if m.contains_key(key) {
                return Ok(false);
            }
            m.insert(key.into(), value);
            Ok(true)
        }
        async fn incr(&self, _: &str, _: i64, _: Option<Duration>) -> userz_core::Result<i64> {
            Err(userz_core::Error::Unsupported("incr".into()))
        }
        async fn delete(&self, key: &str) -> userz_core::Result<bool> {
            Ok(self.0.lock().unwrap().remove(key).is_some())
        }
    }

    #[tokio::test]
    async fn email_token_is_single_use() {
        let cache = MapCache::default();
        let issued = EmailSignInToken::issue("ada@example.com", t0(), DEFAULT_EMAIL_TOKEN_LIFETIME);
        store_email_token(&cache, &issued.record, t0()).await.unwrap();
        let stored = format!("{:?}", cache.0.lock().unwrap());
        assert!(!stored.contains(issued.token.expose_secret()), "hashed at rest");
        let used = consume_email_token(&cache, issued.token.expose_secret(), t0() + 60 * Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(used.email.expose(), "ada@example.com");
        let again = consume_email_token(&cache, issued.token.expose_secret(), t0()).await;
        assert_eq!(again.unwrap_err().code(), "unknown_session");
    }

    #[tokio::test]
    async fn email_token_expires_after_15_minutes() {
        let cache = MapCache::default();
        let issued = EmailSignInToken::issue("ada@example.com", t0(), DEFAULT_EMAIL_TOKEN_LIFETIME);
        store_email_token(&cache, &issued.record, t0()).await.unwrap();
        let late = t0() + Duration::from_secs(15 * 60);
        let err = consume_email_token(&cache, issued.token.expose_secret(), late).await;
        assert_eq!(err.unwrap_err().code(), "expired");
    }

    #[test]
    fn email_record_consumes_once() {
        let mut r = EmailSignInToken::issue("a@b.c", t0(), DEFAULT_EMAIL_TOKEN_LIFETIME).record;
        assert_eq!(r.consume(t0()), Ok(()));
        assert_eq!(r.consume(t0()), Err(SessionError::AlreadyUsed));
    }

    #[tokio::test]
    async fn cache_store_round_trips_records() {
        let store = CacheSessionStore::new(Arc::new(MapCache::default()));
        let s = session(&SessionConfig::default());
        store.put(&s.record, 30 * DAY).await.unwrap();
        assert_eq!(store.get(&s.id.key()).await.unwrap(), Some(s.record.clone()));
        assert!(store.delete(&s.id.key()).await.unwrap());
        assert_eq!(store.get(&s.id.key()).await.unwrap(), None);
    }
}
