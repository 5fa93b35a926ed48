//! The plain-HTTP route to the model provider, on which the proxy adds the key.

use std::str::FromStr;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Uri};
use userz_core::security::secret::SecretString;

use crate::error::{Error, Result};
use crate::policy::{normalise_host, Target};

/// The Anthropic API version sent when the sandbox sends none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// How the provider expects its key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderAuth {
    /// `Authorization: Bearer <key>` (OpenAI and compatible servers).
    OpenAiCompatible,
    /// `x-api-key: <key>` plus `anthropic-version` (kept from the request
    /// when present, else `version`).
    Anthropic {
        /// Default `anthropic-version`.
        version: String,
    },
}

/// Headers by which a client could pass its own credentials; the proxy
/// removes every one of them before adding the provider key.
const CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"];

/// Maps requests for `http://<route host>/…` to `<upstream base>/…` with the
/// provider key added. The key lives only here, in the host's proxy.
///
/// ```
/// use userz_egress::ModelRoute;
/// let route = ModelRoute::openai_compatible(
///     "model.egress.internal",
///     "http://127.0.0.1:11434/v1-base",
///     "sk-test".into(),
/// )
/// .unwrap();
/// assert!(!format!("{route:?}").contains("sk-"));
/// ```
#[derive(Debug, Clone)]
pub struct ModelRoute {
    host: Target,
    upstream_authority: Authority,
    upstream_target: Target,
    upstream_base: String,
    auth: ProviderAuth,
    key: SecretString,
}

impl ModelRoute {
    /// A route for an OpenAI-compatible provider.
    pub fn openai_compatible(route_host: &str, upstream_base: &str, key: SecretString) -> Result<Self> {
        Self::new(route_host, upstream_base, ProviderAuth::OpenAiCompatible, key)
    }

    /// A route for Anthropic's API.
    pub fn anthropic(route_host: &str, upstream_base: &str, key: SecretString) -> Result<Self> {
        Self::new(
            route_host,
            upstream_base,
            ProviderAuth::Anthropic { version: DEFAULT_ANTHROPIC_VERSION.to_owned() },
            key,
        )
    }

    /// A route served at `route_host` (`host` or `host:port`, port 80 by
    /// default) forwarding to `upstream_base` (`http://host[:port][/base]`).
    ///
    /// An `https` upstream is refused for now: this crate carries no TLS
    /// client yet (TODO: add one, e.g. rustls, before pointing a route at a
    /// public provider directly; until then front it with an on-host
    /// forwarder listed through `allow_socket_addr`).
    pub fn new(route_host: &str, upstream_base: &str, auth: ProviderAuth, key: SecretString) -> Result<Self> {
        let host = if route_host.contains(':') && !route_host.ends_with(']') {
            Target::parse(route_host)?
        } else {
            Target::parse(&format!("{route_host}:80"))?
        };
        let uri = Uri::from_str(upstream_base)
            .map_err(|e| Error::config("model_route.upstream", format!("{upstream_base:?}: {e}")))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| Error::config("model_route.upstream", "scheme required"))?;
        if scheme == Scheme::HTTPS {
            return Err(Error::config(
                "model_route.upstream",
                "https upstreams are not supported yet (no TLS client in userz-egress)",
            ));
        }
        if scheme != Scheme::HTTP {
            return Err(Error::config("model_route.upstream", "scheme must be http"));
        }
        let authority =
            uri.authority().cloned().ok_or_else(|| Error::config("model_route.upstream", "host required"))?;
        if authority.as_str().contains('@') {
            return Err(Error::config("model_route.upstream", "userinfo is not allowed"));
        }
        if uri.query().is_some() {
            return Err(Error::config("model_route.upstream", "query is not allowed in the base"));
        }
        let upstream_target = Target::from_authority(&authority)
            .or_else(|| Target::parse(&format!("{}:80", authority.host())).ok())
            .ok_or_else(|| Error::config("model_route.upstream", "bad host"))?;
        if HeaderValue::from_str(key.expose_secret()).is_err() {
            return Err(Error::config("model_route.key", "not a valid header value"));
        }
        Ok(Self {
            host,
            upstream_authority: authority,
            upstream_target,
            upstream_base: uri.path().trim_end_matches('/').to_owned(),
            auth,
            key,
        })
    }

    /// The route's `host:port` as the sandbox addresses it.
    pub fn route_target(&self) -> &Target {
        &self.host
    }

    /// The upstream `host:port` the proxy resolves, checks and connects to.
    pub fn upstream_target(&self) -> &Target {
        &self.upstream_target
    }

    /// Whether a request addressed to `authority` (absolute-form URI or `Host`
    /// header) is for this route.
    pub(crate) fn matches(&self, authority: &str) -> bool {
        let Ok(authority) = Authority::from_str(authority) else {
            return false;
        };
        normalise_host(authority.host()) == self.host.host() && authority.port_u16().unwrap_or(80) == self.host.port()
    }

    /// The origin-form request target for the client's path and query, under
    /// the upstream base path (the HTTP/1 client writes the URI as given, and
    /// origin servers expect origin-form).
    pub(crate) fn upstream_uri(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let pq = path_and_query.map_or("/", PathAndQuery::as_str);
        Uri::builder().path_and_query(format!("{}{}", self.upstream_base, pq)).build()
    }

    /// Removes the client's credentials and adds the provider's.
    pub(crate) fn apply_auth(&self, headers: &mut HeaderMap) -> Result<(), http::header::InvalidHeaderValue> {
        let kept_version = headers.get("anthropic-version").cloned();
        for name in CREDENTIAL_HEADERS {
            headers.remove(*name);
        }
        match &self.auth {
            ProviderAuth::OpenAiCompatible => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", self.key.expose_secret()))?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            ProviderAuth::Anthropic { version } => {
                let mut value = HeaderValue::from_str(self.key.expose_secret())?;
                value.set_sensitive(true);
                headers.insert(HeaderName::from_static("x-api-key"), value);
                let version = match kept_version {
                    Some(v) => v,
                    None => HeaderValue::from_str(version)?,
                };
                headers.insert(HeaderName::from_static("anthropic-version"), version);
            }
        }
        Ok(())
    }

    /// The `Host` header for the upstream request.
    pub(crate) fn upstream_host_header(&self) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
        HeaderValue::from_str(self.upstream_authority.as_str())
    }
}
