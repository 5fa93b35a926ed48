//! The [`Resolver`] port: how the proxy turns an allowlisted name into addresses.

use std::collections::HashMap;
use std::fmt::Debug;
use std::io;
use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;

/// Resolves a host name to socket addresses.
///
/// # Contract
///
/// - Returns every address the name currently resolves to, with `port` set;
///   an unknown name is an `Err` (or an empty list, which the proxy treats the same).
/// - The proxy checks each returned address against its address policy and
///   then connects to exactly those addresses: it never resolves the name a
///   second time, so a name that rebinds between the check and the connect
///   cannot redirect the connection.
/// - Only names already on the allowlist are ever passed in, so a resolver is
///   never used as a DNS side channel for arbitrary names.
#[async_trait]
pub trait Resolver: Send + Sync + Debug {
    /// Addresses of `host` at `port`.
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The host's resolver (`getaddrinfo` through [`tokio::net::lookup_host`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// A fixed name → addresses table; names not in it fail to resolve.
///
/// For tests and for deployments that pin a provider's addresses.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    names: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `host` (case-insensitive) to `ips`, replacing any previous entry.
    pub fn with_host(mut self, host: &str, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        self.names.insert(crate::policy::normalise_host(host), ips.into_iter().collect());
        self
    }
}

#[async_trait]
impl Resolver for StaticResolver {
    async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match self.names.get(&crate::policy::normalise_host(host)) {
            Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "name not in static resolver")),
        }
    }
}
