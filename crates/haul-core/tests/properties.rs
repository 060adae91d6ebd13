//! Property tests of the rules that read what the network sends: Content-Disposition names, byte ranges in a
//! resume record, address ranges and special addresses, and log redaction. Each property runs a bounded number
//! of generated cases (`CASES`, or `PROPTEST_CASES` in the environment) so CI time stays flat.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use haul_core::filename::{parse_content_disposition, sanitize};
use haul_core::net::{Cidr, special_range};
use haul_core::ranges::RangeSet;
use haul_core::redact;
use proptest::prelude::*;

const CASES: u32 = 2000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CASES),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Whatever a server sends as Content-Disposition, the name haul keeps is one safe path component.
    #[test]
    fn content_disposition_names_are_one_safe_component(value in ".{0,300}", prefix in prop::sample::select(vec![
        "attachment; filename=", "attachment; filename*=UTF-8''", "inline; filename=\"", "", "attachment;filename*=",
    ])) {
        if let Some(name) = parse_content_disposition(&format!("{prefix}{value}")).and_then(|name| sanitize(&name)) {
            prop_assert!(!name.is_empty());
            prop_assert!(!name.contains('/') && !name.contains('\\'), "{name:?}");
            prop_assert!(name != "." && name != ".." && !name.starts_with('.'), "{name:?}");
            prop_assert!(!name.chars().any(char::is_control), "{name:?}");
        }
    }

    /// A resume record's ranges, however damaged, load as sorted, disjoint, non-empty ranges covering at most
    /// what they claimed, and clamping never claims past the file.
    #[test]
    fn damaged_ranges_normalise(ranges in prop::collection::vec((any::<u64>(), any::<u64>()), 0..40), total in any::<u64>()) {
        let mut set = RangeSet::from_ranges(ranges.iter().copied());
        for pair in set.ranges().windows(2) {
            prop_assert!(pair[0].1 < pair[1].0, "overlapping or touching: {pair:?}");
        }
        prop_assert!(set.ranges().iter().all(|(start, end)| start < end));
        set.clamp(total);
        prop_assert!(set.ranges().iter().all(|&(_, end)| end <= total));
        prop_assert!(set.covered() <= total);
        let missing: u64 = set.missing(total).iter().map(|(start, end)| end - start).sum();
        prop_assert_eq!(missing + set.covered(), total);
    }

    /// An IPv4 address and its IPv4-mapped IPv6 form are judged alike, and every CIDR range holds its own
    /// network address and prints back to what parses to itself.
    #[test]
    fn address_forms_agree(bits in any::<u32>(), prefix in 0u8..=32) {
        let v4 = Ipv4Addr::from(bits);
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        prop_assert_eq!(special_range(IpAddr::V4(v4)).map(|(kind, _)| kind), special_range(mapped).map(|(kind, _)| kind));
        let range = Cidr::new(IpAddr::V4(v4), prefix).unwrap();
        prop_assert!(range.contains(IpAddr::V4(v4)));
        prop_assert!(range.contains(mapped));
        prop_assert_eq!(range.to_string().parse::<Cidr>().unwrap(), range);
    }

    #[test]
    fn v6_ranges_round_trip(bits in any::<u128>(), prefix in 0u8..=128) {
        let address = IpAddr::V6(Ipv6Addr::from(bits));
        let range = Cidr::new(address, prefix).unwrap();
        prop_assert!(range.contains(address));
        prop_assert_eq!(range.to_string().parse::<Cidr>().unwrap(), range);
        let _ = special_range(address);
    }

    /// Any text with a secret in a URL comes out without it, and redaction never panics or loses the text
    /// around it.
    #[test]
    fn redaction_hides_the_secret(before in "[a-z0-9 .,:/]{0,40}", after in "[ )\"&#]?[a-z ]{0,20}", secret in "[A-Za-z0-9_-]{12,40}",
                                  form in 0usize..5) {
        let url = match form {
            0 => format!("http://h/p?token={secret}"),
            1 => format!("http://u:{secret}@h/p"),
            2 => format!("https://h/p?a=1&X-Amz-Signature={secret}"),
            3 => format!("Bearer {secret}"),
            _ => format!("http://h/go?to=http%3A%2F%2Fh2%2F%3Fapi_key%3D{secret}"),
        };
        let text = format!("{before} {url}{after}");
        let masked = redact::secrets(&text);
        prop_assert!(!masked.contains(&secret), "{text:?} -> {masked:?}");
        prop_assert!(masked.starts_with(&before), "{text:?} -> {masked:?}");
    }

    #[test]
    fn redaction_of_anything_is_total(text in "\\PC{0,200}") {
        let _ = redact::secrets(&text);
    }
}
