//! Widget authentication — guarantee G15.
//!
//! - **Public mode**: the App's `pub_` key plus an exact [`OriginAllowlist`]
//!   match. Origins are parsed into scheme / host / port (default ports made
//!   explicit, host lower-cased) and compared as tuples, never as strings, so
//!   `https://acme.com.evil.com`, `null`, a scheme or a port mismatch all fail.
//! - **Private mode**: the integrator's backend signs an HS256 JWT with the
//!   App's signing secret ([`mint_user_token`], behind `POST /v1/tokens/mint`)
//!   and the widget sends it in `X-Userz-User-Token`;
//!   [`UserTokenVerifier::verify`] checks it. The header's `alg` is read and
//!   checked by us *before* any signature check (only `HS256`; `none` and every
//!   other algorithm are refused with their own code), then `jsonwebtoken`
//!   verifies the HMAC, then we check the claims against a caller-supplied
//!   `now`: `sub`, `app` (must equal the App id), `iat`, `exp` required;
//!   `exp − iat ≤ 24 h`; optional `nbf`; optional `ctx` ≤ 2 KB serialised;
//!   30 s leeway on time comparisons.
//!
//! Every refusal carries a stable [`TokenError::code`]; the HTTP layer answers
//! `invalid_user_token` with that code in `details`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::secret::{SecretBytes, SecretString};
use userz_core::ids::AppId;
use userz_core::sensitive::Sensitive;
use userz_core::time::Timestamp;

// ---------------------------------------------------------------- origins

/// Origin check failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    /// No `Origin` header was sent.
    #[error("missing Origin header")]
    Missing,
    /// The value is not a `scheme://host[:port]` origin.
    #[error("malformed origin: {0}")]
    Malformed(&'static str),
    /// Well-formed, but not in the App's allowlist (includes the opaque `null` origin).
    #[error("origin not allowed")]
    NotAllowed,
}

impl OriginError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OriginError::Missing => "origin_missing",
            OriginError::Malformed(_) => "origin_malformed",
            OriginError::NotAllowed => "origin_not_allowed",
        }
    }
}

/// `http` or `https`; nothing else can be a widget origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http` (default port 80).
    Http,
    /// `https` (default port 443).
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed, normalised web origin: scheme, lower-case host, explicit port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Scheme,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses an `Origin` header value: exactly `scheme://host[:port]`.
    pub fn parse(s: &str) -> Result<Self, OriginError> {
        Self::parse_inner(s, false)
    }

    /// Parses an allowlist entry: like [`parse`](Self::parse) but tolerates one
    /// trailing `/`, since people paste `https://acme.com/`.
    pub fn parse_allowlist_entry(s: &str) -> Result<Self, OriginError> {
        Self::parse_inner(s, true)
    }

    fn parse_inner(s: &str, allow_trailing_slash: bool) -> Result<Self, OriginError> {
        if s.eq_ignore_ascii_case("null") {
            return Err(OriginError::NotAllowed);
        }
        if s.len() > 300 {
            return Err(OriginError::Malformed("too long"));
        }
        let (scheme, rest) = s.split_once("://").ok_or(OriginError::Malformed("scheme"))?;
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else {
            return Err(OriginError::Malformed("scheme"));
        };
        let rest = match rest.strip_suffix('/') {
            Some(r) if allow_trailing_slash => r,
            _ => rest,
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', '\\']) {
            return Err(OriginError::Malformed("authority"));
        }
        let (host, port) = split_host_port(rest)?;
        let host = normalise_host(host)?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => parse_port(p)?,
        };
        Ok(Self { scheme, host, port })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The lower-cased host (IPv6 literals keep their brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, with the scheme's default made explicit.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        if self.port == self.scheme.default_port() {
            write!(f, "{scheme}://{}", self.host)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), OriginError> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(OriginError::Malformed("ipv6"))?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => rest.strip_prefix(':').map(|p| (host, Some(p))).ok_or(OriginError::Malformed("port")),
        };
    }
    Ok(match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

fn normalise_host(host: &str) -> Result<String, OriginError> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ok = !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return if ok { Ok(host.to_ascii_lowercase()) } else { Err(OriginError::Malformed("ipv6")) };
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(OriginError::Malformed("host"))
    }
}

fn parse_port(p: &str) -> Result<u16, OriginError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OriginError::Malformed("port"));
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(OriginError::Malformed("port")),
        Ok(n) => Ok(n),
    }
}

/// An App's `allowedOrigins`, compared exactly after normalisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginAllowlist {
    origins: HashSet<Origin>,
}

impl OriginAllowlist {
    /// Parses every entry; one bad entry fails the whole list.
    pub fn new<I, S>(entries: I) -> Result<Self, OriginError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let origins =
            entries.into_iter().map(|e| Origin::parse_allowlist_entry(e.as_ref().trim())).collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    /// Checks a request's `Origin` header value.
    pub fn check(&self, origin_header: Option<&str>) -> Result<Origin, OriginError> {
        let origin = Origin::parse(origin_header.ok_or(OriginError::Missing)?)?;
        if self.origins.contains(&origin) {
            Ok(origin)
        } else {
            Err(OriginError::NotAllowed)
        }
    }
}

// ---------------------------------------------------------------- tokens

/// The only accepted JWT algorithm.
pub const ALLOWED_ALG: &str = "HS256";
/// Longest accepted `exp − iat`.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Shortest lifetime [`mint_user_token`] issues.
pub const MIN_MINT_LIFETIME: Duration = Duration::from_secs(60);
/// Lifetime [`mint_user_token`] issues when none is asked for.
pub const DEFAULT_MINT_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Default clock-skew leeway on time comparisons.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest accepted serialised `ctx` claim, in bytes.
pub const MAX_CTX_BYTES: usize = 2048;
/// Largest accepted token, in bytes (checked before any decoding).
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Shortest accepted App signing secret, in bytes (the HS256 key size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a user token was refused (or could not be minted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a three-part JWS with a JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is `none`.
    #[error("alg none is not accepted")]
    AlgNone,
    /// `alg` is anything but HS256.
    #[error("algorithm {0} is not allowed")]
    AlgNotAllowed(String),
    /// The HMAC does not verify with the App's secret.
    #[error("bad signature")]
    BadSignature,
    /// A required claim is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an impossible value.
    #[error("invalid claim {0}")]
    InvalidClaim(&'static str),
    /// `app` names another App.
    #[error("token is for another app")]
    WrongApp,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `iat` or `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `exp − iat` exceeds 24 h.
    #[error("token lifetime exceeds 24h")]
    LifetimeTooLong,
    /// `ctx` serialises to more than 2 KB.
    #[error("ctx claim exceeds {MAX_CTX_BYTES} bytes")]
    CtxTooLarge,
    /// Mint: requested lifetime outside 60 s – 24 h.
    #[error("lifetime must be between 60s and 24h")]
    LifetimeOutOfRange,
    /// The App secret is shorter than 32 bytes.
    #[error("signing secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    /// Signing failed.
    #[error("signing failed")]
    SigningFailed,
}

impl TokenError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgNone => "alg_none",
            TokenError::AlgNotAllowed(_) => "alg_not_allowed",
            TokenError::BadSignature => "bad_signature",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::InvalidClaim(_) => "invalid_claim",
            TokenError::WrongApp => "wrong_app",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::LifetimeTooLong => "lifetime_too_long",
            TokenError::CtxTooLarge => "ctx_too_large",
            TokenError::LifetimeOutOfRange => "lifetime_out_of_range",
            TokenError::WeakSecret => "weak_secret",
            TokenError::SigningFailed => "signing_failed",
        }
    }
}

/// The claims of a verified user token.
#[derive(Debug, Clone, PartialEq)]
pub struct UserTokenClaims {
    /// The end user's id in the integrator's system (personal data).
    pub sub: Sensitive<String>,
    /// The App the token is for (equals the verifier's App).
    pub app: AppId,
    /// Issued at.
    pub iat: Timestamp,
    /// Expires at.
    pub exp: Timestamp,
    /// Optional integrator context (≤ 2 KB serialised; personal data).
    pub ctx: Option<Sensitive<Value>>,
}

/// Reads the JOSE header and applies the algorithm policy, before any
/// signature work. Public so the fuzz target can drive it directly.
pub fn check_header(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed("not three parts"));
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed("header base64"))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed("header json"))?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or(TokenError::Malformed("header alg"))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    if alg != ALLOWED_ALG {
        return Err(TokenError::AlgNotAllowed(alg.chars().take(32).collect()));
    }
    if header.contains_key("crit") {
        // RFC 7515 §4.1.11: unknown critical extensions must be refused.
        return Err(TokenError::Malformed("crit header"));
    }
    Ok(())
}

/// Verifies private-mode user tokens for one App.
pub struct UserTokenVerifier {
    app: AppId,
    key: DecodingKey,
    leeway: Duration,
}

impl fmt::Debug for UserTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTokenVerifier")
            .field("app", &self.app)
            .field("secret", &"<redacted>")
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl UserTokenVerifier {
    /// A verifier for `app` with its signing secret (≥ 32 bytes) and the default leeway.
    pub fn new(app: AppId, secret: &SecretBytes) -> Result<Self, TokenError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::WeakSecret);
        }
        Ok(Self { app, key: DecodingKey::from_secret(secret.expose_secret()), leeway: DEFAULT_LEEWAY })
    }

    /// Changes the clock-skew leeway.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Verifies `token` at time `now`.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<UserTokenClaims, TokenError> {
        check_header(token)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Time and claim checks are ours (against `now`, not the system clock).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        validation.leeway = 0;
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed("claims"),
            })?;
        self.check_claims(&data.claims, now)
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: Timestamp) -> Result<UserTokenClaims, TokenError> {
        let sub = required(claims, "sub")?.as_str().filter(|s| !s.is_empty()).ok_or(TokenError::InvalidClaim("sub"))?;
        let app = required(claims, "app")?.as_str().ok_or(TokenError::InvalidClaim("app"))?;
        let iat = seconds(required(claims, "iat")?, "iat")?;
        let exp = seconds(required(claims, "exp")?, "exp")?;
        let nbf = claims.get("nbf").map(|v| seconds(v, "nbf")).transpose()?;

        if app.parse::<AppId>().ok() != Some(self.app) {
            return Err(TokenError::WrongApp);
        }
        if exp <= iat {
            return Err(TokenError::InvalidClaim("exp"));
        }
        if exp - iat > secs_i64(MAX_TOKEN_LIFETIME) {
            return Err(TokenError::LifetimeTooLong);
        }
        let now_s = now.as_secs();
        let leeway = secs_i64(self.leeway);
        if iat > now_s.saturating_add(leeway) || nbf.is_some_and(|n| n > now_s.saturating_add(leeway)) {
            return Err(TokenError::NotYetValid);
        }
        if exp <= now_s.saturating_sub(leeway) {
            return Err(TokenError::Expired);
        }
        let ctx = match claims.get("ctx") {
            None | Some(Value::Null) => None,
            Some(v) => {
                check_ctx(v)?;
                Some(Sensitive::new(v.clone()))
            }
        };
        Ok(UserTokenClaims {
            sub: Sensitive::new(sub.to_owned()),
            app: self.app,
            iat: Timestamp::from_millis(iat.saturating_mul(1000)),
            exp: Timestamp::from_millis(exp.saturating_mul(1000)),
            ctx,
        })
    }
}

fn required<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a Value, TokenError> {
    claims.get(name).ok_or(TokenError::MissingClaim(name))
}

fn seconds(v: &Value, name: &'static str) -> Result<i64, TokenError> {
    v.as_i64()
        .filter(|s| (0..=253_402_300_799).contains(s)) // up to year 9999
        .ok_or(TokenError::InvalidClaim(name))
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn check_ctx(ctx: &Value) -> Result<(), TokenError> {
    let len = serde_json::to_vec(ctx).map_err(|_| TokenError::InvalidClaim("ctx"))?.len();
    if len > MAX_CTX_BYTES {
        Err(TokenError::CtxTooLarge)
    } else {
        Ok(())
    }
}

/// What `POST /v1/tokens/mint` asks for.
#[derive(Debug, Clone, Default)]
pub struct MintRequest {
    /// The end user's id.
    pub sub: String,
    /// Optional context (≤ 2 KB serialised).
    pub ctx: Option<Value>,
    /// Lifetime, 60 s – 24 h; default 1 h.
    pub lifetime: Option<Duration>,
}

/// A minted user token.
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The compact JWT (a bearer credential: redacted in `Debug`).
    pub token: SecretString,
    /// `iat`.
    pub issued_at: Timestamp,
    /// `exp`.
    pub expires_at: Timestamp,
}

#[derive(Serialize)]
struct MintClaims<'a> {
    sub: &'a str,
    app: String,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx: Option<&'a Value>,
}

/// Mints an HS256 user token for `app` at `now`. Refuses lifetimes outside
/// 60 s – 24 h, an empty `sub`, an oversized `ctx` and a short secret.
pub fn mint_user_token(
    app: AppId,
    secret: &SecretBytes,
    request: &MintRequest,
    now: Timestamp,
) -> Result<MintedToken, TokenError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(TokenError::WeakSecret);
    }
    let lifetime = request.lifetime.unwrap_or(DEFAULT_MINT_LIFETIME);
    if !(MIN_MINT_LIFETIME..=MAX_TOKEN_LIFETIME).contains(&lifetime) {
        return Err(TokenError::LifetimeOutOfRange);
    }
    if request.sub.is_empty() {
        return Err(TokenError::MissingClaim("sub"));
    }
    if let Some(ctx) = &request.ctx {
        check_ctx(ctx)?;
    }
    let iat = now.as_secs();
    let exp = iat.saturating_add(secs_i64(lifetime));
    let claims = MintClaims {
        sub: &request.sub,
        app: app.to_string(),
        iat,
        exp,
        ctx: request.ctx.as_ref().filter(|c| !c.is_null()),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret()),
    )
    .map_err(|_| TokenError::SigningFailed)?;
    Ok(MintedToken {
        token: SecretString::new(token),
        issued_at: Timestamp::from_millis(iat.saturating_mul(1000)),
        expires_at: Timestamp::from_millis(exp.saturating_mul(1000)),
    })
}

/// Fuzz entry point (`fuzz/fuzz_targets/jwt.rs`): feeds arbitrary bytes to the
/// header policy, the verifier and the Origin parser, and also signs arbitrary
/// header/claims bytes with the right key so the claim checks behind the
/// signature get exercised. Panics only if an invariant breaks.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";
    let app = AppId(uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
    let now = Timestamp::from_millis(1_700_000_000_000);
    let Ok(verifier) = UserTokenVerifier::new(app, &SecretBytes::copy_from(SECRET)) else {
        return;
    };

    if let Ok(text) = std::str::from_utf8(data) {
        let header_ok = check_header(text).is_ok();
        if verifier.verify(text, now).is_ok() {
            assert!(header_ok, "accepted a token whose header was refused");
        }
        if let Ok(origin) = Origin::parse(text) {
            // Display must re-parse to the same origin.
            assert_eq!(Origin::parse(&origin.to_string()).ok(), Some(origin));
        }
    }

    // Split at the first 0xff: left = header JSON, right = claims JSON; sign them.
    let (header, claims) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&br#"{"alg":"HS256"}"#[..], data),
    };
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let tag = crate::mac::hmac_sha256(SECRET, &[signing_input.as_bytes()]);
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag));
    if let Ok(claims) = verifier.verify(&token, now) {
        assert_eq!(claims.app, app);
        assert!(claims.exp > claims.iat);
        assert!(claims.exp.as_millis() - claims.iat.as_millis() <= 24 * 3600 * 1000);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW_S: i64 = 1_700_000_000;

    fn now() -> Timestamp {
        Timestamp::from_millis(NOW_S * 1000)
    }

    fn secret() -> SecretBytes {
        SecretBytes::copy_from(b"0123456789abcdef0123456789abcdef-app-secret")
    }

    /// Hand-assembles a JWS so tests can put any header on it.
    fn forge(header: Value, claims: Value, key: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let signing_input = format!("{h}.{c}");
        let sig = URL_SAFE_NO_PAD.encode(crate::mac::hmac_sha256(key, &[signing_input.as_bytes()]));
        format!("{signing_input}.{sig}")
    }

    fn claims(app: AppId) -> Value {
        json!({"sub": "user-42", "app": app.to_string(), "iat": NOW_S - 10, "exp": NOW_S + 3600})
    }

    fn hs256(claims: Value) -> String {
        forge(json!({"alg": "HS256", "typ": "JWT"}), claims, secret().expose_secret())
    }

    fn verify(app: AppId, token: &str) -> Result<UserTokenClaims, TokenError> {
        UserTokenVerifier::new(app, &secret()).unwrap().verify(token, now())
    }

    fn code(app: AppId, token: &str) -> &'static str {
        verify(app, token).unwrap_err().code()
    }

    #[test]
    fn valid_token_verifies() {
        let app = AppId::new();
        let mut c = claims(app);
        c["ctx"] = json!({"plan": "pro"});
        let got = verify(app, &hs256(c)).unwrap();
        assert_eq!(got.sub.expose(), "user-42");
        assert_eq!(got.app, app);
        assert_eq!(got.exp, Timestamp::from_millis((NOW_S + 3600) * 1000));
        assert_eq!(got.ctx.unwrap().expose()["plan"], "pro");
    }

    #[test]
    fn minted_token_verifies_and_lifetime_is_bounded() {
        let app = AppId::new();
        let req = MintRequest { sub: "u1".into(), ..Default::default() };
        let minted = mint_user_token(app, &secret(), &req, now()).unwrap();
        assert_eq!(minted.expires_at, now() + DEFAULT_MINT_LIFETIME);
        let got = verify(app, minted.token.expose_secret()).unwrap();
        assert_eq!(got.sub.expose(), "u1");
        for bad in [Duration::from_secs(59), Duration::from_secs(24 * 3600 + 1)] {
            let req = MintRequest { sub: "u1".into(), lifetime: Some(bad), ..Default::default() };
            assert_eq!(mint_user_token(app, &secret(), &req, now()).unwrap_err().code(), "lifetime_out_of_range");
        }
        for ok in [MIN_MINT_LIFETIME, MAX_TOKEN_LIFETIME] {
            let req = MintRequest { sub: "u1".into(), lifetime: Some(ok), ..Default::default() };
            assert!(mint_user_token(app, &secret(), &req, now()).is_ok());
        }
        let big = MintRequest { sub: "u1".into(), ctx: Some(json!("x".repeat(MAX_CTX_BYTES))), ..Default::default() };
        assert_eq!(mint_user_token(app, &secret(), &big, now()).unwrap_err().code(), "ctx_too_large");
        let short = SecretBytes::copy_from(b"short");
        assert_eq!(mint_user_token(app, &short, &req, now()).unwrap_err().code(), "weak_secret");
        assert!(!format!("{minted:?}").contains(minted.token.expose_secret()));
    }

    #[test]
    fn alg_confusion_rs256_header_with_hmac_secret_refused() {
        let app = AppId::new();
        // Classic confusion: RS256 header, HMAC'd with the shared secret as if it were a public key.
        let token = forge(json!({"alg": "RS256", "typ": "JWT"}), claims(app), secret().expose_secret());
        assert_eq!(code(app, &token), "alg_not_allowed");
        for alg in ["ES256", "PS256", "EdDSA", "hs256"] {
            let token = forge(json!({"alg": alg}), claims(app), secret().expose_secret());
            assert_eq!(code(app, &token), "alg_not_allowed", "{alg}");
        }
    }

    #[test]
    fn hs512_refused() {
        let app = AppId::new();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(app),
            &EncodingKey::from_secret(secret().expose_secret()),
        )
        .unwrap();
        assert_eq!(code(app, &token), "alg_not_allowed");
    }

    #[test]
    fn alg_none_refused() {
        let app = AppId::new();
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(app)).unwrap());
        assert_eq!(code(app, &format!("{h}.{c}.")), "alg_none");
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"NoNe"}"#);
        assert_eq!(code(app, &format!("{h}.{c}.")), "alg_none");
    }

    #[test]
    fn expired_refused_after_leeway_only() {
        let app = AppId::new();
        let mut c = claims(app);
        c["iat"] = json!(NOW_S - 7200);
        c["exp"] = json!(NOW_S - 31);
        assert_eq!(code(app, &hs256(c.clone())), "expired");
        c["exp"] = json!(NOW_S - 29);
        assert!(verify(app, &hs256(c)).is_ok(), "within the 30 s leeway");
    }

    #[test]
    fn not_yet_valid_refused() {
        let app = AppId::new();
        let mut c = claims(app);
        c["iat"] = json!(NOW_S + 120);
        c["exp"] = json!(NOW_S + 3600);
        assert_eq!(code(app, &hs256(c)), "not_yet_valid");
        let mut c = claims(app);
        c["nbf"] = json!(NOW_S + 120);
        assert_eq!(code(app, &hs256(c)), "not_yet_valid");
    }

    #[test]
    fn wrong_app_refused() {
        let app = AppId::new();
        assert_eq!(code(app, &hs256(claims(AppId::new()))), "wrong_app");
        let mut c = claims(app);
        c["app"] = json!("not-an-app");
        assert_eq!(code(app, &hs256(c)), "wrong_app");
    }

    #[test]
    fn missing_claims_refused() {
        let app = AppId::new();
        for name in ["sub", "app", "iat", "exp"] {
            let mut c = claims(app);
            c.as_object_mut().unwrap().remove(name);
            assert_eq!(verify(app, &hs256(c)).unwrap_err(), TokenError::MissingClaim(name));
        }
        let mut c = claims(app);
        c["iat"] = json!("yesterday");
        assert_eq!(code(app, &hs256(c)), "invalid_claim");
    }

    #[test]
    fn over_long_lifetime_refused() {
        let app = AppId::new();
        let mut c = claims(app);
        c["iat"] = json!(NOW_S - 10);
        c["exp"] = json!(NOW_S - 10 + 24 * 3600 + 1);
        assert_eq!(code(app, &hs256(c)), "lifetime_too_long");
    }

    #[test]
    fn bad_signature_refused() {
        let app = AppId::new();
        let other = forge(json!({"alg": "HS256"}), claims(app), b"another-secret-another-secret-xx");
        assert_eq!(code(app, &other), "bad_signature");
        // Claims edited after signing.
        let token = hs256(claims(app));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut c = claims(app);
        c["sub"] = json!("admin");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert_eq!(code(app, &parts.join(".")), "bad_signature");
    }

    #[test]
    fn oversized_ctx_refused() {
        let app = AppId::new();
        let mut c = claims(app);
        c["ctx"] = json!({"blob": "x".repeat(MAX_CTX_BYTES)});
        assert_eq!(code(app, &hs256(c)), "ctx_too_large");
    }

    #[test]
    fn malformed_tokens_refused() {
        let app = AppId::new();
        for bad in ["", "a.b", "a.b.c.d", "!!!.b.c", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(code(app, bad), "malformed", "{bad:.20}");
        }
        let token = forge(json!({"alg": "HS256", "crit": ["b64"]}), claims(app), secret().expose_secret());
        assert_eq!(code(app, &token), "malformed");
    }

    #[test]
    fn weak_secret_refused() {
        let err = UserTokenVerifier::new(AppId::new(), &SecretBytes::copy_from(b"short")).unwrap_err();
        assert_eq!(err.code(), "weak_secret");
    }

    #[test]
    fn every_error_code_is_distinct() {
        let all = [
            TokenError::Malformed("x"),
            TokenError::AlgNone,
            TokenError::AlgNotAllowed("x".into()),
            TokenError::BadSignature,
            TokenError::MissingClaim("x"),
            TokenError::InvalidClaim("x"),
            TokenError::WrongApp,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::LifetimeTooLong,
            TokenError::CtxTooLarge,
            TokenError::LifetimeOutOfRange,
            TokenError::WeakSecret,
            TokenError::SigningFailed,
        ];
        let codes: HashSet<_> = all.iter().map(TokenError::code).collect();
        assert_eq!(codes.len(), all.len());
    }

    // ------------------------------------------------------------ origins

    fn allowlist() -> OriginAllowlist {
        OriginAllowlist::new(["https://acme.com", "http://localhost:3000", "https://App.Example.org:8443/"]).unwrap()
    }

    #[test]
    fn exact_origins_allowed_with_normalisation() {
        let list = allowlist();
        for ok in [
            "https://acme.com",
            "https://ACME.com",
            "HTTPS://acme.com:443",
            "http://localhost:3000",
            "https://app.example.org:8443",
        ] {
            assert!(list.check(Some(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn look_alike_origins_refused() {
        let list = allowlist();
        for (bad, code) in [
            ("https://acme.com.evil.com", "origin_not_allowed"),
            ("https://evil-acme.com", "origin_not_allowed"),
            ("https://sub.acme.com", "origin_not_allowed"),
            ("null", "origin_not_allowed"),
            ("http://acme.com", "origin_not_allowed"),
            ("https://acme.com:8443", "origin_not_allowed"),
            ("http://localhost:3001", "origin_not_allowed"),
            ("https://localhost:3000", "origin_not_allowed"),
            ("https://acme.com/", "origin_malformed"),
            ("https://acme.com@evil.com", "origin_malformed"),
            ("https://acme.com.", "origin_malformed"),
            ("ftp://acme.com", "origin_malformed"),
            ("acme.com", "origin_malformed"),
            ("https://acme.com:0", "origin_malformed"),
            ("https://acme.com:99999", "origin_malformed"),
            ("https://acme.com:+443", "origin_malformed"),
            ("https://аcme.com", "origin_malformed"), // Cyrillic 'а'
        ] {
            assert_eq!(list.check(Some(bad)).unwrap_err().code(), code, "{bad}");
        }
        assert_eq!(list.check(None).unwrap_err().code(), "origin_missing");
    }

    #[test]
    fn ipv6_origins_parse() {
        let list = OriginAllowlist::new(["http://[::1]:8080"]).unwrap();
        assert!(list.check(Some("http://[::1]:8080")).is_ok());
        assert!(list.check(Some("http://[::1]")).is_err());
        assert_eq!(Origin::parse("http://[::1]:8080").unwrap().to_string(), "http://[::1]:8080");
    }

    #[test]
    fn bad_allowlist_entry_rejected() {
        assert!(OriginAllowlist::new(["https://acme.com/path"]).is_err());
        assert!(OriginAllowlist::new(["*.acme.com"]).is_err());
    }
}
