//! What the proxy lets through: the `host:port` allowlist and the address policy.
//!
//! Both are pure and checked before any socket is opened.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::uri::Authority;

use crate::error::{Error, Result};

/// One allowlisted destination: an exact host (compared case-insensitively,
/// one trailing dot ignored) and an exact port. No wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    host: String,
    port: u16,
}

impl Target {
    /// Parses `host:port` (`[v6]:port` for IPv6 literals). The port is required.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::config("allowlist", format!("{s:?}: {reason}"));
        if s.contains(['*', '@', '/']) {
            return Err(bad("expected host:port without wildcards, userinfo or path"));
        }
        let authority = Authority::from_str(s).map_err(|_| bad("not a host:port"))?;
        let port = authority.port_u16().ok_or_else(|| bad("port is required"))?;
        let host = normalise_host(authority.host());
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(Self { host, port })
    }

    /// Builds a target from an authority a client sent; `None` when it has no port.
    pub(crate) fn from_authority(authority: &Authority) -> Option<Self> {
        let port = authority.port_u16()?;
        let host = normalise_host(authority.host());
        (!host.is_empty()).then_some(Self { host, port })
    }

    /// The host, lower-cased, without IPv6 brackets or a trailing dot.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host when it is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        IpAddr::from_str(&self.host).ok()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

pub(crate) fn normalise_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The set of allowlisted [`Target`]s.
#[derive(Debug, Clone, Default)]
pub struct Allowlist(HashSet<Target>);

impl Allowlist {
    /// Adds one target.
    pub fn insert(&mut self, target: Target) {
        self.0.insert(target);
    }

    /// Whether `target` is listed exactly.
    pub fn contains(&self, target: &Target) -> bool {
        self.0.contains(target)
    }
}

/// Refuses every address that leads back into the host or a private network,
/// except socket addresses listed explicitly.
///
/// Denied: unspecified, loopback, private (10/8, 172.16/12, 192.168/16),
/// link-local, CGNAT 100.64/10, multicast, broadcast and the reserved 240/4,
/// documentation and benchmarking ranges, IETF protocol assignments 192.0.0/24;
/// for IPv6 also ULA fc00::/7, link-local fe80::/10, site-local fec0::/10,
/// discard 100::/64, documentation 2001:db8::/32 and 3fff::/20, and any IPv4
/// address embedded through IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96)
/// or 6to4 (2002::/16) forms is judged as the IPv4 address it carries.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    exceptions: HashSet<SocketAddr>,
}

impl AddressPolicy {
    /// Lets exactly `addr` (IP and port) through although its range is denied.
    pub fn allow_socket_addr(&mut self, addr: SocketAddr) {
        self.exceptions.insert(canonical(addr));
    }

    /// `Ok` when the proxy may connect to `addr`, otherwise the name of the
    /// denied range.
    pub fn check(&self, addr: SocketAddr) -> Result<(), &'static str> {
        if self.exceptions.contains(&canonical(addr)) {
            return Ok(());
        }
        match denied_range(addr.ip()) {
            Some(range) => Err(range),
            None => Ok(()),
        }
    }
}

/// An IPv4-mapped IPv6 socket address compares equal to its IPv4 form.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// The name of the denied range `ip` falls in, or `None` for a public address.
pub fn denied_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => denied_v4(v4),
        IpAddr::V6(v6) => denied_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn denied_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified"),
        ([10, 0, 0, 0], 8, "private"),
        ([100, 64, 0, 0], 10, "cgnat"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([169, 254, 0, 0], 16, "link_local"),
        ([172, 16, 0, 0], 12, "private"),
        ([192, 0, 0, 0], 24, "ietf_reserved"),
        ([192, 0, 2, 0], 24, "documentation"),
        ([192, 168, 0, 0], 16, "private"),
        ([198, 18, 0, 0], 15, "benchmarking"),
        ([198, 51, 100, 0], 24, "documentation"),
        ([203, 0, 113, 0], 24, "documentation"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved"),
    ];
    if ip == Ipv4Addr::BROADCAST {
        return Some("broadcast");
    }
    RANGES.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map(|(_, _, name)| *name)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

fn denied_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let seg = ip.segments();
    let bits = u128::from(ip);
    // Forms that carry an IPv4 address are judged by that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return denied_v4(v4);
    }
    // IPv4-compatible ::a.b.c.d (deprecated, still routable on some stacks).
    if bits >> 32 == 0 {
        return denied_v4(Ipv4Addr::from(bits as u32)).or(Some("ipv4_compatible"));
    }
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return denied_v4(Ipv4Addr::from(bits as u32));
    }
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::from(((u32::from(seg[1])) << 16) | u32::from(seg[2]));
        return denied_v4(v4);
    }
    const RANGES: &[(u16, u16, u32, &str)] = &[
        // (first segment, second segment, prefix length, name)
        (0x0100, 0, 64, "discard"),
        (0x2001, 0x0db8, 32, "documentation"),
        (0x3fff, 0, 20, "documentation"),
        (0xfc00, 0, 7, "unique_local"),
        (0xfe80, 0, 10, "link_local"),
        (0xfec0, 0, 10, "site_local"),
        (0xff00, 0, 8, "multicast"),
    ];
    RANGES
        .iter()
        .find(|(a, b, prefix, _)| in_v6(ip, Ipv6Addr::new(*a, *b, 0, 0, 0, 0, 0, 0), *prefix))
        .map(|(_, _, _, name)| *name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn denies_every_listed_range() {
        for (addr, range) in [
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.254", "private"),
            ("192.168.1.1", "private"),
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("169.254.169.254", "link_local"),
            ("100.64.0.1", "cgnat"),
            ("100.127.255.255", "cgnat"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link_local"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::10.0.0.1", "private"),
            ("2002:c0a8:0101::1", "private"),
            ("fc00::1", "unique_local"),
            ("fd12:3456::1", "unique_local"),
            ("fe80::1", "link_local"),
            ("febf::1", "link_local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(denied_range(ip(addr)), Some(range), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert_eq!(denied_range(ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn exception_is_exact_socket_address() {
        let mut policy = AddressPolicy::default();
        policy.allow_socket_addr("127.0.0.1:8080".parse().unwrap());
        assert_eq!(policy.check("127.0.0.1:8080".parse().unwrap()), Ok(()));
        assert_eq!(policy.check("[::ffff:127.0.0.1]:8080".parse().unwrap()), Ok(()));
        assert_eq!(policy.check("127.0.0.1:8081".parse().unwrap()), Err("loopback"));
        assert_eq!(policy.check("127.0.0.2:8080".parse().unwrap()), Err("loopback"));
    }

    #[test]
    fn targets_compare_case_insensitively_and_need_a_port() {
        let a = Target::parse("API.OpenAI.com:443").unwrap();
        let b = Target::parse("api.openai.com.:443").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "api.openai.com:443");
        assert_ne!(a, Target::parse("api.openai.com:444").unwrap());
        assert!(Target::parse("api.openai.com").is_err());
        assert!(Target::parse("*.openai.com:443").is_err());
        assert!(Target::parse("user@host:443").is_err());
        let v6 = Target::parse("[2606:4700::1111]:443").unwrap();
        assert_eq!(v6.ip(), Some(ip("2606:4700::1111")));
        assert_eq!(v6.to_string(), "[2606:4700::1111]:443");
    }
}
