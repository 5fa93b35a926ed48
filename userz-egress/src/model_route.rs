//! The plain-HTTP route to the model provider, on which the proxy adds the key.

use std::str::FromStr;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Uri};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use userz_security::secret::SecretString;

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
    tls: Option<UpstreamTls>,
    auth: ProviderAuth,
    key: SecretString,
}

/// TLS settings of an `https` upstream.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

/// A TLS client on the `ring` provider, chosen explicitly so the process-wide
/// default provider does not matter.
fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config("model_route.tls", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl ModelRoute {
    /// The same route with another provider key (e.g. an org's own key,
    /// decrypted for one run); the key given before is dropped (zeroized).
    pub fn with_key(mut self, key: SecretString) -> Self {
        self.key = key;
        self
    }

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
    /// default) forwarding to `upstream_base` (`http(s)://host[:port][/base]`).
    ///
    /// An `https` upstream is verified against the Mozilla root set
    /// (`webpki-roots`) unless [`with_root_certificates`](Self::with_root_certificates)
    /// replaces it; the server name is the upstream host.
    pub fn new(route_host: &str, upstream_base: &str, auth: ProviderAuth, key: SecretString) -> Result<Self> {
        let host = if route_host.contains(':') && !route_host.ends_with(']') {
            Target::parse(route_host)?
        } else {
            Target::parse(&format!("{route_host}:80"))?
        };
        let uri = Uri::from_str(upstream_base)
            .map_err(|e| Error::config("model_route.upstream", format!("{upstream_base:?}: {e}")))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| Error::config("model_route.upstream", "scheme required"))?;
        let default_port = if scheme == Scheme::HTTPS {
            443
        } else if scheme == Scheme::HTTP {
            80
        } else {
            return Err(Error::config("model_route.upstream", "scheme must be http or https"));
        };
        let authority =
            uri.authority().cloned().ok_or_else(|| Error::config("model_route.upstream", "host required"))?;
        if authority.as_str().contains('@') {
            return Err(Error::config("model_route.upstream", "userinfo is not allowed"));
        }
        if uri.query().is_some() {
            return Err(Error::config("model_route.upstream", "query is not allowed in the base"));
        }
        let upstream_target = Target::from_authority(&authority)
            .or_else(|| Target::parse(&format!("{}:{default_port}", authority.host())).ok())
            .ok_or_else(|| Error::config("model_route.upstream", "bad host"))?;
        if HeaderValue::from_str(key.expose_secret()).is_err() {
            return Err(Error::config("model_route.key", "not a valid header value"));
        }
        let tls = if scheme == Scheme::HTTPS {
            let server_name = ServerName::try_from(upstream_target.host().to_owned())
                .map_err(|e| Error::config("model_route.upstream", format!("not a TLS server name: {e}")))?;
            let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            Some(UpstreamTls { config: tls_config(roots)?, server_name })
        } else {
            None
        };
        Ok(Self {
            host,
            tls,
            upstream_authority: authority,
            upstream_target,
            upstream_base: uri.path().trim_end_matches('/').to_owned(),
            auth,
            key,
        })
    }

    /// Trusts exactly `certs` (instead of the Mozilla roots) for an `https`
    /// upstream: for a private CA, or a test server on loopback.
    pub fn with_root_certificates(mut self, certs: impl IntoIterator<Item = CertificateDer<'static>>) -> Result<Self> {
        let Some(tls) = self.tls.as_mut() else {
            return Err(Error::config("model_route.tls", "root certificates need an https upstream"));
        };
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| Error::config("model_route.tls", e.to_string()))?;
        }
        tls.config = tls_config(roots)?;
        Ok(self)
    }

    pub(crate) fn tls(&self) -> Option<&UpstreamTls> {
        self.tls.as_ref()
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
