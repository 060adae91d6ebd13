//! Where the engine may connect: the destination policy applied to the resolved address of every connection
//! it makes, so that a server fetching URLs for other people cannot be turned into a proxy into its own network.
//!
//! The check is made at two points, and nowhere else is needed:
//! - a host name is resolved by [`PolicyResolver`], which hands reqwest only allowed addresses; reqwest then
//!   connects to exactly those, so a DNS answer cannot change between the check and the connection;
//! - a literal address in a URL (which reqwest connects to without resolving) is checked before each request
//!   and each redirect hop by [`DestinationPolicy::check_url`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use haul_core::net::{Cidr, special_range};
use url::{Host, Url};

/// Which destinations may be fetched. Cheap to clone.
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationPolicy {
    inner: Arc<Policy>,
}

#[derive(Debug, PartialEq)]
struct Policy {
    /// Every address, special or not (`haul get`, `haul serve --allow-private`).
    everything: bool,
    /// Special ranges the operator opened.
    allowed: Vec<Cidr>,
}

/// A destination the policy refuses: what was asked for, the address it is, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} is not fetched: {address} is a {kind} address, which this server keeps out of reach of the \
     downloads it runs (its operator can open {range} with haul serve --allow-net, or all such ranges with \
     --allow-private)"
)]
pub struct Refused {
    pub host: String,
    pub address: IpAddr,
    pub kind: &'static str,
    /// The special range the address is in, for the operator to allow.
    pub range: Cidr,
}

impl Default for DestinationPolicy {
    /// Everything allowed: the policy of a program a person runs for themselves.
    fn default() -> Self {
        Self::allow_all()
    }
}

impl DestinationPolicy {
    /// Every destination, the special ranges included (`haul get`, where the user fetches for themselves).
    pub fn allow_all() -> Self {
        Self { inner: Arc::new(Policy { everything: true, allowed: Vec::new() }) }
    }

    /// Public addresses only, plus the `allowed` ranges: what a server shared with other people's keys needs.
    pub fn public_only(allowed: Vec<Cidr>) -> Self {
        Self { inner: Arc::new(Policy { everything: false, allowed }) }
    }

    /// True when nothing is refused.
    pub fn allows_everything(&self) -> bool {
        self.inner.everything
    }

    /// Whether `address` may be connected to; `host` is what was asked for, for the message.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Refused> {
        if self.inner.everything || self.inner.allowed.iter().any(|range| range.contains(address)) {
            return Ok(());
        }
        match special_range(address) {
            None => Ok(()),
            Some((kind, range)) => Err(Refused { host: host.to_owned(), address, kind, range }),
        }
    }

    /// Checks a URL whose host is a literal address (`http://127.0.0.1/`, `http://[::1]/`; the URL parser
    /// has already read `2130706433`, `0x7f000001` and `127.1` as `127.0.0.1`). Names pass here: they are
    /// checked when resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let address = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        self.check(url.host_str().unwrap_or_default(), address)
    }

    /// One line for the start-up banner.
    pub fn describe(&self) -> String {
        if self.inner.everything {
            return "every address, private ranges included (--allow-private)".to_owned();
        }
        let mut line =
            "public addresses only; loopback, private, link-local and other special ranges refused".to_owned();
        if !self.inner.allowed.is_empty() {
            let ranges: Vec<String> = self.inner.allowed.iter().map(Cidr::to_string).collect();
            line.push_str(&format!(", except {}", ranges.join(", ")));
        }
        line
    }

    /// The allowed ones of `addresses`, or the refusal of the first when none is.
    pub fn filter(&self, host: &str, addresses: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|address| match self.check(host, address.ip()) {
                Ok(()) => true,
                Err(error) => {
                    refused.get_or_insert(error);
                    false
                }
            })
            .collect();
        match refused {
            Some(refused) if allowed.is_empty() => Err(refused),
            _ => Ok(allowed),
        }
    }
}

/// reqwest's resolver, answering only with addresses the policy allows. A name with some allowed and some
/// refused addresses is connected to on the allowed ones only.
pub(crate) struct PolicyResolver {
    pub(crate) policy: DestinationPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(found) => found.collect(),
                Err(error) if no_such_host(&error) => return Err(UnknownHost(host.clone()).into()),
                Err(error) => return Err(error.into()),
            };
            let allowed = policy.filter(&host, found)?;
            let addresses: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

/// A name the resolver says does not exist (not a lookup that failed for now, which is retried).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no such host {0:?}")]
pub(crate) struct UnknownHost(pub(crate) String);

/// Whether a failed lookup means the name does not exist (EAI_NONAME, EAI_NODATA in their platforms' words),
/// rather than a resolver that could not answer now (EAI_AGAIN, a timeout).
fn no_such_host(error: &std::io::Error) -> bool {
    let text = error.to_string();
    [
        "Name or service not known",
        "No address associated with hostname",
        "nodename nor servname",
        "No such host is known",
    ]
    .iter()
    .any(|words| text.contains(words))
}

/// The refusal somewhere in an error's causes (a connection the resolver refused surfaces as a reqwest error).
pub(crate) fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_in_urls_in_every_spelling() {
        let policy = DestinationPolicy::public_only(Vec::new());
        for url in [
            "http://127.0.0.1:8080/secret",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[fe80::1]/",
        ] {
            let url: Url = url.parse().unwrap();
            let refused = policy.check_url(&url).expect_err(url.as_str());
            assert!(refused.to_string().contains("--allow-net"), "{refused}");
        }
        for url in ["http://8.8.8.8/", "http://[2606:4700::1111]/", "http://localhost/", "http://example.com/"] {
            assert_eq!(policy.check_url(&url.parse().unwrap()), Ok(()), "{url}: names are checked when resolved");
        }
        assert_eq!(DestinationPolicy::allow_all().check_url(&"http://127.0.0.1/".parse().unwrap()), Ok(()));
    }

    #[test]
    fn opened_ranges_and_mixed_answers() {
        let policy = DestinationPolicy::public_only(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(policy.check("h", "127.0.0.2".parse().unwrap()), Ok(()));
        assert_eq!(policy.check("h", "::ffff:127.0.0.2".parse().unwrap()), Ok(()));
        assert!(policy.check("h", "10.0.0.1".parse().unwrap()).is_err());
        assert!(policy.describe().contains("except 127.0.0.0/8"));

        let strict = DestinationPolicy::public_only(Vec::new());
        let answer = |list: &[&str]| list.iter().map(|ip| SocketAddr::new(ip.parse().unwrap(), 80)).collect();
        let mixed = strict.filter("rebind.example", answer(&["127.0.0.1", "8.8.8.8"])).unwrap();
        assert_eq!(mixed, answer(&["8.8.8.8"]), "only the public address is connected to");
        let refused = strict.filter("rebind.example", answer(&["127.0.0.1", "::1"])).unwrap_err();
        assert_eq!((refused.host.as_str(), refused.kind), ("rebind.example", "loopback"));
    }
}
