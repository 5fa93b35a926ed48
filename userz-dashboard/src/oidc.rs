//! Google sign-in: OAuth 2.0 authorization-code flow with OpenID Connect.
//!
//! 1. `/auth/google/start` makes a random `state`, `nonce` and PKCE verifier,
//!    keeps them in the cache under the state (10 minutes, single use) and
//!    binds the state to the browser with a short-lived cookie, then
//!    redirects to the authorize endpoint (`response_type=code`,
//!    `scope=openid email profile`, `code_challenge_method=S256`).
//! 2. `/auth/google/callback` checks the state against the cookie, takes the
//!    pending record out of the cache (a replayed callback finds nothing),
//!    posts the code with the verifier to the token endpoint
//!    (`application/x-www-form-urlencoded`, `grant_type=authorization_code`),
//!    checks the `id_token` claims (`iss`, `aud` = client id, `exp`, `nonce`),
//!    reads the userinfo endpoint with the access token and requires
//!    `email_verified: true` and the same `sub`.
//!
//! The `id_token` comes straight from the token endpoint over TLS, which
//! OpenID Connect Core §3.1.3.7 accepts in place of a signature check, so no
//! key set is fetched.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use userz_core::ports::Cache;
use userz_core::Timestamp;
use userz_rest::{ApiBase, Call, Credential, RestClient, RestError};
use userz_security::secret::SecretString;

use crate::error::DashError;

/// The largest token or userinfo answer read.
const OAUTH_MAX_BODY: usize = 256 * 1024;
/// How long one call to the token or userinfo endpoint may take.
const OAUTH_TIMEOUT: Duration = Duration::from_secs(15);

/// Operation names of the two calls (they open their errors).
const TOKEN_ENDPOINT: &str = "google token endpoint";
const USERINFO_ENDPOINT: &str = "google userinfo endpoint";

/// How long a started sign-in may take.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Cookie binding the `state` to the browser that started the flow.
pub const STATE_COOKIE: &str = "userz_oauth_state";

/// Google sign-in settings.
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (redacted in `Debug`).
    pub client_secret: SecretString,
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Userinfo endpoint.
    pub userinfo_url: String,
    /// Accepted `iss` values of the `id_token`.
    pub issuers: Vec<String>,
}

impl GoogleSettings {
    /// Google's published endpoints.
    pub fn google(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: SecretString::new(client_secret.into()),
            authorize_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_url: "https://oauth2.googleapis.com/token".into(),
            userinfo_url: "https://openidconnect.googleapis.com/v1/userinfo".into(),
            issuers: vec!["https://accounts.google.com".into(), "accounts.google.com".into()],
        }
    }

    /// The same endpoint paths under another base (a local fake): authorize at
    /// `{base}/o/oauth2/v2/auth`, token at `{base}/token`, userinfo at
    /// `{base}/v1/userinfo`, issuer `{base}`.
    pub fn with_base(base: &str, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            client_id: client_id.into(),
            client_secret: SecretString::new(client_secret.into()),
            authorize_url: format!("{base}/o/oauth2/v2/auth"),
            token_url: format!("{base}/token"),
            userinfo_url: format!("{base}/v1/userinfo"),
            issuers: vec![base.to_string()],
        }
    }
}

fn random() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// What the callback needs, kept in the cache under the state.
#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    nonce: String,
}

fn pending_key(state: &str) -> String {
    format!("userz:oauth-pending:{}", hex::encode(Sha256::digest(state.as_bytes())))
}

/// A started flow: where to send the browser and the state for the cookie.
pub(crate) struct Started {
    pub(crate) redirect: String,
    pub(crate) state: String,
}

/// The callback URL registered with the provider.
pub(crate) fn redirect_uri(base: &str) -> String {
    format!("{base}/auth/google/callback")
}

pub(crate) async fn start(g: &GoogleSettings, cache: &dyn Cache, base: &str) -> Result<Started, DashError> {
    let state = random();
    let nonce = random();
    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let pending = serde_json::to_vec(&Pending { verifier, nonce: nonce.clone() })
        .map_err(|e| DashError::Unavailable(e.to_string()))?;
    cache
        .set(&pending_key(&state), Bytes::from(pending), Some(PENDING_LIFETIME))
        .await
        .map_err(|e| DashError::Unavailable(e.to_string()))?;
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", g.client_id.as_str()),
        ("redirect_uri", redirect_uri(base).as_str()),
        ("scope", "openid email profile"),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("prompt", "select_account"),
    ])
    .map_err(|e| DashError::Unavailable(e.to_string()))?;
    let sep = if g.authorize_url.contains('?') { '&' } else { '?' };
    Ok(Started { redirect: format!("{}{sep}{query}", g.authorize_url), state })
}

fn fail(code: &'static str, message: impl Into<String>) -> DashError {
    DashError::SignIn { code, message: message.into() }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    aud: serde_json::Value,
    sub: String,
    exp: i64,
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: serde_json::Value,
}

/// The verified e-mail of the Google account that signed in.
pub(crate) async fn finish(
    g: &GoogleSettings,
    cache: &dyn Cache,
    base: &str,
    code: &str,
    state: &str,
    cookie_state: Option<&str>,
    now: Timestamp,
) -> Result<String, DashError> {
    if cookie_state != Some(state) || state.is_empty() {
        return Err(fail("state_mismatch", "the sign-in did not start in this browser; start again"));
    }
    let key = pending_key(state);
    let raw = cache.get(&key).await.map_err(|e| DashError::Unavailable(e.to_string()))?;
    // Delete first and trust only if we removed it: a replayed callback finds nothing.
    let removed = cache.delete(&key).await.map_err(|e| DashError::Unavailable(e.to_string()))?;
    let (Some(raw), true) = (raw, removed) else {
        return Err(fail("state_unknown", "this sign-in expired or was already used; start again"));
    };
    let pending: Pending = serde_json::from_slice(&raw).map_err(|e| DashError::Unavailable(e.to_string()))?;
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri(base).as_str()),
        ("client_id", g.client_id.as_str()),
        ("client_secret", g.client_secret.expose_secret()),
        ("code_verifier", pending.verifier.as_str()),
    ])
    .map_err(|e| DashError::Unavailable(e.to_string()))?;
    let (client, path) = oauth_client(&g.token_url, TOKEN_ENDPOINT)?;
    let answer = client.execute(Call::post(TOKEN_ENDPOINT, &path).form(form)).await.map_err(unavailable)?;
    if answer.status != 200 {
        let error = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("status {}", answer.status.as_u16()));
        return Err(fail("token_refused", format!("Google refused the sign-in ({error})")));
    }
    let tokens: TokenResponse =
        serde_json::from_slice(&answer.body).map_err(|_| fail("token_malformed", "unexpected token response"))?;
    let id_token = tokens.id_token.ok_or_else(|| fail("id_token_missing", "no id_token in the token response"))?;
    let claims = decode_claims(&id_token)?;
    if !g.issuers.contains(&claims.iss) {
        return Err(fail("id_token_issuer", "id_token issuer is not Google"));
    }
    let aud_ok = match &claims.aud {
        serde_json::Value::String(s) => *s == g.client_id,
        serde_json::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(g.client_id.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(fail("id_token_audience", "id_token is for another client"));
    }
    if claims.exp.saturating_mul(1000) <= now.as_millis() {
        return Err(fail("id_token_expired", "id_token expired"));
    }
    if claims.nonce.as_deref() != Some(pending.nonce.as_str()) {
        return Err(fail("nonce_mismatch", "id_token nonce does not match this sign-in"));
    }
    let (client, path) = oauth_client(&g.userinfo_url, USERINFO_ENDPOINT)?;
    let call = Call::get(USERINFO_ENDPOINT, &path).credential(Credential::bearer(&tokens.access_token));
    let answer = client.execute(call).await.map_err(unavailable)?;
    if answer.status != 200 {
        return Err(fail("userinfo_refused", format!("userinfo answered {}", answer.status.as_u16())));
    }
    let info: UserInfo =
        serde_json::from_slice(&answer.body).map_err(|_| fail("userinfo_malformed", "unexpected userinfo"))?;
    if info.sub != claims.sub {
        return Err(fail("subject_mismatch", "userinfo is for another account"));
    }
    let verified =
        matches!(&info.email_verified, serde_json::Value::Bool(true)) || info.email_verified.as_str() == Some("true");
    let email = info.email.filter(|e| !e.is_empty()).ok_or_else(|| fail("email_missing", "no e-mail address"))?;
    if !verified {
        return Err(fail("email_unverified", "the Google account's e-mail address is not verified"));
    }
    Ok(email)
}

/// The shared outbound client for an identity provider's endpoint, and the
/// path to call: TLS (web PKI roots) for `https`, plain TCP for `http`
/// (local fakes), `Accept: application/json`, a body cap and a timeout. The
/// access token travels as a sensitive [`Credential`].
fn oauth_client(url: &str, operation: &'static str) -> Result<(RestClient, String), DashError> {
    let config = |e: RestError| DashError::Unavailable(format!("{operation}: {e}"));
    let (base, path) = ApiBase::split_endpoint(url).map_err(config)?;
    let accept = (ACCEPT, HeaderValue::from_static("application/json"));
    let client = RestClient::new(base, "userz-dashboard", vec![accept])
        .map_err(config)?
        .with_timeout(OAUTH_TIMEOUT)
        .with_max_body(OAUTH_MAX_BODY);
    Ok((client, path))
}

/// A failed call to an identity provider (the error names the endpoint).
fn unavailable(e: RestError) -> DashError {
    DashError::Unavailable(e.to_string())
}

fn decode_claims(jwt: &str) -> Result<IdClaims, DashError> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(fail("id_token_malformed", "id_token is not a JWT"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| fail("id_token_malformed", "id_token payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| fail("id_token_malformed", "id_token claims are incomplete"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Answers one request with `head` and hands back the request it read.
    async fn answer_once(head: String) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/userinfo?alt=json", listener.local_addr().unwrap());
        let seen = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = stream.read(&mut buf).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (url, seen)
    }

    #[tokio::test]
    async fn an_identity_provider_answer_over_the_cap_is_refused_and_the_token_never_shows() {
        let (url, seen) =
            answer_once(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", OAUTH_MAX_BODY + 1)).await;
        let (client, path) = oauth_client(&url, USERINFO_ENDPOINT).unwrap();
        assert_eq!(
            (path.as_str(), client.max_body(), client.timeout()),
            ("/v1/userinfo?alt=json", OAUTH_MAX_BODY, OAUTH_TIMEOUT)
        );
        let call = Call::get(USERINFO_ENDPOINT, &path).credential(Credential::bearer("ya29.secret-token"));
        assert!(!format!("{call:?}").contains("ya29"));
        let err = client.execute(call).await.map_err(unavailable).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("google userinfo endpoint") && shown.contains("262144-byte cap"), "{shown}");
        assert!(!shown.contains("ya29"), "{shown}");
        // The token went on the wire as a bearer credential, and only there.
        let request = seen.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /v1/userinfo?alt=json http/1.1\r\n"), "{request}");
        assert!(request.contains("authorization: bearer ya29.secret-token\r\n"), "{request}");
        assert!(
            request.contains("accept: application/json\r\n") && request.contains("user-agent: userz-dashboard\r\n")
        );
    }

    #[test]
    fn an_unusable_endpoint_url_is_unavailable_naming_the_endpoint() {
        let err = oauth_client("ftp://accounts.example.test/token", TOKEN_ENDPOINT).unwrap_err();
        assert!(format!("{err:?}").contains("google token endpoint"), "{err:?}");
    }
}
