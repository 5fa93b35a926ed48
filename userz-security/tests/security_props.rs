//! Property tests for the security parsers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use userz_security::api_key::{ApiKey, PublicKey};
use userz_security::webhooks::{discord, github, outbound, slack, standard, stripe};
use userz_security::widget_auth::{check_header, Origin};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// CRC32 catches every single-character substitution, so a typo in a
    /// public key is refused at parse time.
    #[test]
    fn any_single_char_typo_in_public_key_is_refused(pos in 0usize..43, replacement in "[0-9A-Za-z_]") {
        let key = PublicKey::generate();
        let s = key.as_str();
        prop_assume!(pos < s.len());
        let mut chars: Vec<char> = s.chars().collect();
        let new = replacement.chars().next().unwrap();
        prop_assume!(chars[pos] != new);
        chars[pos] = new;
        let typo: String = chars.into_iter().collect();
        prop_assert!(PublicKey::parse(&typo).is_err());
    }

    /// Parsers never panic and never accept what they should not.
    #[test]
    fn header_parsers_total(s in "\\PC{0,200}") {
        let _ = stripe::parse_signature_header(&s);
        let _ = github::parse_signature_header(&s);
        let _ = slack::parse_signature_header(&s);
        let _ = standard::parse_signature_list(&s);
        let _ = discord::parse_signature_header(&s);
        let _ = outbound::parse_signature_header(&s);
        let _ = check_header(&s);
        prop_assert!(ApiKey::parse(&s).is_err() || s.starts_with("sk_"));
    }

    /// A parsed origin prints in canonical form and re-parses to itself.
    #[test]
    fn origin_display_round_trips(
        https in any::<bool>(),
        host in "[a-zA-Z0-9]{1,10}(\\.[a-zA-Z0-9]{1,10}){0,3}",
        port in proptest::option::of(1u16..),
    ) {
        let scheme = if https { "https" } else { "http" };
        let text = match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        let origin = Origin::parse(&text).unwrap();
        prop_assert_eq!(origin.host(), host.to_ascii_lowercase());
        prop_assert_eq!(Origin::parse(&origin.to_string()).unwrap(), origin);
    }
}
