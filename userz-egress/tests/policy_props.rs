//! Property tests for the allowlist parser and the address policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use userz_egress::{denied_range, AddressPolicy, Target};

proptest! {
    #[test]
    fn target_parse_never_panics(s in "\\PC{0,64}") {
        let _ = Target::parse(&s);
    }

    #[test]
    fn target_host_is_case_insensitive(host in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,20}){0,3}", port in 1u16..) {
        let lower = Target::parse(&format!("{host}:{port}")).unwrap();
        let upper = Target::parse(&format!("{}:{port}", host.to_uppercase())).unwrap();
        prop_assert_eq!(&lower, &upper);
        prop_assert_eq!(lower.to_string(), format!("{host}:{port}"));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_judged_as_its_ipv4(bits in any::<u32>()) {
        let v4 = Ipv4Addr::from(bits);
        prop_assert_eq!(denied_range(IpAddr::V4(v4)), denied_range(IpAddr::V6(v4.to_ipv6_mapped())));
    }

    #[test]
    fn nat64_and_6to4_carry_the_verdict_of_their_ipv4(bits in any::<u32>()) {
        let v4 = Ipv4Addr::from(bits);
        let nat64 = Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(bits));
        let six_to_four = Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(bits) << 80));
        let denied = denied_range(IpAddr::V4(v4)).is_some();
        prop_assert_eq!(denied_range(IpAddr::V6(nat64)).is_some(), denied);
        prop_assert_eq!(denied_range(IpAddr::V6(six_to_four)).is_some(), denied);
    }

    #[test]
    fn every_private_or_loopback_v4_is_denied_without_an_exception(bits in any::<u32>(), port in any::<u16>()) {
        let v4 = Ipv4Addr::from(bits);
        let policy = AddressPolicy::default();
        if v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
            || v4.is_multicast() || v4.is_broadcast() || v4.is_documentation()
        {
            prop_assert!(policy.check(SocketAddr::new(IpAddr::V4(v4), port)).is_err());
        }
    }

    #[test]
    fn an_exception_opens_exactly_one_socket_address(bits in any::<u32>(), port in 1u16.., other in 1u16..) {
        prop_assume!(port != other);
        let ip = IpAddr::V4(Ipv4Addr::from(bits));
        let mut policy = AddressPolicy::default();
        policy.allow_socket_addr(SocketAddr::new(ip, port));
        prop_assert!(policy.check(SocketAddr::new(ip, port)).is_ok());
        prop_assert_eq!(policy.check(SocketAddr::new(ip, other)).is_ok(), denied_range(ip).is_none());
    }
}
