//! Which network addresses are special: loopback, private, link-local and the other ranges a server that
//! fetches URLs for other people must not reach on their behalf, and CIDR ranges an operator opens.
//!
//! Pure rules over `IpAddr`, so that every form an attacker may write an address in is one table test: the
//! URL parser has already turned `2130706433`, `0x7f000001` and `127.1` into `127.0.0.1`, and the IPv6 forms
//! that carry an IPv4 address inside (`::ffff:127.0.0.1`, 6to4, NAT64) are judged by the address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A range of addresses written as `ADDRESS/PREFIX` (`10.0.0.0/8`, `fd00::/8`); a bare address is the range
/// of that one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a text is not a CIDR range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range; expected ADDRESS/PREFIX such as 10.0.0.0/8 or fd00::/8")]
pub struct CidrError(pub String);

impl Cidr {
    /// The range's first address and prefix length; bits past the prefix are cleared.
    pub fn new(address: IpAddr, prefix: u8) -> Option<Self> {
        let bits = match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (prefix <= bits).then(|| Self { network: mask(address, prefix), prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(address, self.prefix) == self.network
            }
            // An IPv4 range covers the IPv4-mapped form of its addresses too.
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let error = || CidrError(text.to_owned());
        let trimmed = text.trim();
        let (address, prefix) = match trimmed.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (trimmed, None),
        };
        let address: IpAddr = address.trim_matches(['[', ']']).parse().map_err(|_| error())?;
        let prefix = match prefix {
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix.parse().map_err(|_| error())?
            }
            Some(_) => return Err(error()),
            None if address.is_ipv4() => 32,
            None => 128,
        };
        Self::new(address, prefix).ok_or_else(error)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix))) };
            IpAddr::V4(Ipv4Addr::from(kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix))) };
            IpAddr::V6(Ipv6Addr::from(kept))
        }
    }
}

/// What is special about an address that a public service must not fetch from: `None` for an ordinary
/// public address, else the kind of range it is in (`loopback`, `private`, ...), and the range itself so a
/// message can say what to allow.
pub fn special_range(address: IpAddr) -> Option<(&'static str, Cidr)> {
    match address {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

const V4_RANGES: &[(&str, [u8; 4], u8)] = &[
    ("unspecified (\"this network\")", [0, 0, 0, 0], 8),
    ("private", [10, 0, 0, 0], 8),
    ("shared (carrier-grade NAT)", [100, 64, 0, 0], 10),
    ("loopback", [127, 0, 0, 0], 8),
    ("link-local (cloud metadata lives here)", [169, 254, 0, 0], 16),
    ("private", [172, 16, 0, 0], 12),
    ("IETF protocol assignment", [192, 0, 0, 0], 24),
    ("documentation", [192, 0, 2, 0], 24),
    ("6to4 relay anycast", [192, 88, 99, 0], 24),
    ("private", [192, 168, 0, 0], 16),
    ("benchmarking", [198, 18, 0, 0], 15),
    ("documentation", [198, 51, 100, 0], 24),
    ("documentation", [203, 0, 113, 0], 24),
    ("multicast", [224, 0, 0, 0], 4),
    ("reserved (broadcast included)", [240, 0, 0, 0], 4),
];

fn special_v4(address: Ipv4Addr) -> Option<(&'static str, Cidr)> {
    V4_RANGES.iter().find_map(|&(kind, network, prefix)| {
        let range = Cidr { network: IpAddr::V4(Ipv4Addr::from(network)), prefix };
        range.contains(IpAddr::V4(address)).then_some((kind, range))
    })
}

const V6_RANGES: &[(&str, [u16; 8], u8)] = &[
    ("unspecified", [0, 0, 0, 0, 0, 0, 0, 0], 128),
    ("loopback", [0, 0, 0, 0, 0, 0, 0, 1], 128),
    ("NAT64 local-use", [0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
    ("discard-only", [0x100, 0, 0, 0, 0, 0, 0, 0], 64),
    ("documentation", [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
    ("IETF protocol assignment (Teredo included)", [0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
    ("documentation", [0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
    ("unique local (private)", [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
    ("link-local", [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
    ("site-local", [0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
    ("multicast", [0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
];

fn special_v6(address: Ipv6Addr) -> Option<(&'static str, Cidr)> {
    // Forms that carry an IPv4 address are judged by it: what they reach is that address.
    if let Some(v4) = address.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let segments = address.segments();
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    let within = |network: [u16; 8], prefix: u8| {
        let range = Cidr { network: IpAddr::V6(Ipv6Addr::from(network)), prefix };
        range.contains(IpAddr::V6(address)).then_some(range)
    };
    // IPv4-compatible (deprecated, ::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d): the last 32 bits.
    if let Some(range) = within([0, 0, 0, 0, 0, 0, 0, 0], 96).filter(|_| u128::from(address) > 1) {
        return Some(special_v4(embedded(segments[6], segments[7])).map_or(("IPv4-compatible", range), |found| found));
    }
    if within([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96).is_some() {
        return special_v4(embedded(segments[6], segments[7]));
    }
    // 6to4 (2002:a.b.c.d::/48): bits 16 to 48.
    if within([0x2002, 0, 0, 0, 0, 0, 0, 0], 16).is_some() {
        return special_v4(embedded(segments[1], segments[2]));
    }
    V6_RANGES.iter().find_map(|&(kind, network, prefix)| within(network, prefix).map(|range| (kind, range)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_addresses_in_every_form() {
        let cases = [
            ("127.0.0.1", Some("loopback")),
            ("127.255.255.254", Some("loopback")),
            ("0.0.0.0", Some("unspecified (\"this network\")")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.32.0.1", None),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local (cloud metadata lives here)")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("100.128.0.1", None),
            ("192.0.2.10", Some("documentation")),
            ("198.18.0.1", Some("benchmarking")),
            ("224.0.0.1", Some("multicast")),
            ("255.255.255.255", Some("reserved (broadcast included)")),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.1", Some("private")),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some("loopback")),
            ("::8.8.8.8", Some("IPv4-compatible")),
            ("64:ff9b::7f00:1", Some("loopback")),
            ("64:ff9b::808:808", None),
            ("2002:7f00:1::", Some("loopback")),
            ("2002:a9fe:a9fe::1", Some("link-local (cloud metadata lives here)")),
            ("2002:808:808::1", None),
            ("fc00::1", Some("unique local (private)")),
            ("fd12:3456::1", Some("unique local (private)")),
            ("fe80::1", Some("link-local")),
            ("ff02::1", Some("multicast")),
            ("2001:db8::1", Some("documentation")),
            ("2001::1", Some("IETF protocol assignment (Teredo included)")),
            ("2606:4700::1111", None),
            ("2a00:1450:4001::200e", None),
        ];
        for (text, expected) in cases {
            assert_eq!(special_range(ip(text)).map(|(kind, _)| kind), expected, "{text}");
        }
    }

    #[test]
    fn ranges_parse_contain_and_name_themselves() {
        let range: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(range.contains(ip("10.255.0.1")));
        assert!(!range.contains(ip("11.0.0.1")));
        assert!(range.contains(ip("::ffff:10.0.0.1")), "the mapped form of a covered address");
        assert_eq!("192.168.1.77/24".parse::<Cidr>().unwrap().to_string(), "192.168.1.0/24");
        assert_eq!("127.0.0.1".parse::<Cidr>().unwrap().to_string(), "127.0.0.1/32");
        assert_eq!("[::1]".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert!("fd00::/8".parse::<Cidr>().unwrap().contains(ip("fd12::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "host/8", "::/129", "10.0.0/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let (kind, range) = special_range(ip("127.0.0.1")).unwrap();
        assert_eq!((kind, range.to_string().as_str()), ("loopback", "127.0.0.0/8"));
    }
}
