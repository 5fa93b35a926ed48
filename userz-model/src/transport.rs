//! The model providers' use of the shared outbound client (`userz-rest`):
//! one JSON POST, the key as a sensitive credential, plain TCP, TLS or the
//! Unix socket to the egress proxy, a whole-request timeout and a cap on the
//! response body. Nothing HTTP-specific lives here any more.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue, ACCEPT};
use rustls_pki_types::CertificateDer;
use userz_core::error::{Error, Result};
use userz_rest::{ApiBase, Call, Credential, RawResponse, RestClient, RestError};

pub use userz_rest::Transport;

/// Default whole-request timeout (connect, send, wait, read).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on a response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// The `User-Agent` of model calls.
const USER_AGENT: &str = concat!("userz-model/", env!("CARGO_PKG_VERSION"));

/// `Error::Invalid` naming the model setting a configuration error is about.
fn invalid(e: RestError) -> Error {
    match e {
        RestError::Config { field, message } => {
            let field = match field {
                userz_rest::FIELD_BASE => "base_url",
                other => other,
            };
            Error::Invalid(format!("model `{field}`: {message}"))
        }
        other => Error::Invalid(format!("model: {other}")),
    }
}

/// The shared client for `base_url` (`http(s)://host[:port][/path]`, no
/// query, no userinfo) over `transport`.
pub(crate) fn client(base_url: &str, transport: Transport) -> Result<RestClient> {
    let base = ApiBase::parse(base_url, "").map_err(invalid)?;
    RestClient::new(base, USER_AGENT, vec![])
        .and_then(|c| c.with_transport(transport))
        .map(|c| c.with_timeout(DEFAULT_TIMEOUT).with_max_body(DEFAULT_MAX_RESPONSE_BYTES))
        .map_err(invalid)
}

/// Trusts exactly `certs` for an `https` base URL.
pub(crate) fn with_roots(client: RestClient, certs: Vec<CertificateDer<'static>>) -> Result<RestClient> {
    client.with_root_certificates(certs).map_err(invalid)
}

/// Whether `credential` makes a valid header (checked when a provider is built).
pub(crate) fn check_key(credential: Option<Credential<'_>>) -> Result<()> {
    match credential {
        Some(c) if !c.is_valid() => Err(Error::Invalid("model `key`: not a valid header value".to_owned())),
        _ => Ok(()),
    }
}

/// POSTs `body` (JSON) to `{base path}{path}` with `headers` and the key.
pub(crate) async fn post_json(
    client: &RestClient,
    provider: &str,
    path: &str,
    credential: Option<Credential<'_>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
) -> Result<RawResponse> {
    let mut call = Call::post("model", path)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .credential_opt(credential)
        .json(body);
    for (name, value) in headers {
        call = call.header(name, value);
    }
    client.execute(call).await.map_err(|e| send_error(provider, e))
}

/// The adapter-side error for a failure before a response arrived.
fn send_error(provider: &str, e: RestError) -> Error {
    use crate::common::effect;
    match e {
        RestError::Transport { message, .. } => effect(format!("{provider}: connection failed: {message}"), true),
        RestError::Timeout { after, .. } => {
            effect(format!("{provider}: no complete response within {} ms", after.as_millis()), true)
        }
        RestError::TooLarge { cap, .. } => {
            effect(format!("{provider}: response body exceeds the {cap}-byte cap (max_response_bytes)"), false)
        }
        other @ RestError::Config { .. } => invalid(other),
        other => effect(format!("{provider}: {other}"), true),
    }
}
