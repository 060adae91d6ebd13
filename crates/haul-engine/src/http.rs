//! The HTTP client haul downloads with, and the header parsing every fetch path shares.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::destination::{DestinationPolicy, PolicyResolver, Refused, refusal_in};
use crate::error::EngineError;

/// Redirects followed for one request before giving up.
const MAX_REDIRECTS: usize = 10;

/// Settings for [`HttpClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// A connection that delivers nothing for this long is treated as dead and its range retried elsewhere.
    pub read_timeout: Duration,
    /// Which addresses may be connected to; everything by default (`haul get`), public only for a server.
    pub destinations: DestinationPolicy,
    /// Connections to one host across every download of this client; unlimited when `None`.
    pub max_connections_per_host: Option<usize>,
    /// A proxy for every request (`--proxy`), instead of the environment's (`http_proxy`, `https_proxy`,
    /// `all_proxy`, `no_proxy`), which apply otherwise. Neither applies under a restricting destination policy.
    pub proxy: Option<String>,
    /// PEM files of certificate authorities to trust beside the system's (`--ca-cert`).
    pub ca_certs: Vec<std::path::PathBuf>,
    /// Accept any TLS certificate (`haul get --insecure`): for a host whose certificate is known to be broken.
    pub insecure: bool,
    /// The local address outgoing connections come from (`--local-address`, curl's `--interface`): one of
    /// several uplinks, or one address per node where a host limits each client address.
    pub local_address: Option<std::net::IpAddr>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            user_agent: concat!("haul/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            destinations: DestinationPolicy::allow_all(),
            max_connections_per_host: None,
            proxy: None,
            ca_certs: Vec::new(),
            insecure: false,
            local_address: None,
        }
    }
}

/// One connection pool for every download of a process; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    destinations: DestinationPolicy,
    hosts: crate::hosts::HostBudget,
    /// Which proxy a request goes through, to name it when the request fails.
    proxies: Proxies,
    /// An account's cookie jar ([`with_cookies`](Self::with_cookies)): each request, and each redirect hop, gets
    /// the cookies whose domain, path and scheme match its URL.
    cookies: Option<Arc<[haul_core::credentials::Cookie]>>,
}

/// The proxies in use, as reqwest applies them: the one given, else the environment's by scheme, except for
/// the hosts `no_proxy` names.
#[derive(Clone, Debug, Default)]
struct Proxies {
    all: Option<String>,
    http: Option<String>,
    https: Option<String>,
    no_proxy: Vec<String>,
}

impl Proxies {
    fn from_environment() -> Self {
        let var =
            |names: &[&str]| names.iter().find_map(|name| std::env::var(name).ok()).filter(|v| !v.trim().is_empty());
        let no_proxy = var(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
        Self {
            all: var(&["ALL_PROXY", "all_proxy"]),
            http: var(&["HTTP_PROXY", "http_proxy"]),
            https: var(&["HTTPS_PROXY", "https_proxy"]),
            no_proxy: no_proxy
                .split(',')
                .map(|entry| entry.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|entry| !entry.is_empty())
                .collect(),
        }
    }

    /// The proxy a request to `url` goes through, credentials masked, if any.
    fn for_url(&self, url: &Url) -> Option<String> {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let bypassed =
            self.no_proxy.iter().any(|entry| entry == "*" || host == *entry || host.ends_with(&format!(".{entry}")));
        if bypassed {
            return None;
        }
        let by_scheme = if url.scheme() == "https" { &self.https } else { &self.http };
        by_scheme.as_ref().or(self.all.as_ref()).map(|proxy| haul_core::redact::secrets(proxy).into_owned())
    }
}

/// Why [`HttpClient::send`] got no response.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The connection or the exchange failed; may work on another try. With the proxy it went through.
    Http(reqwest::Error, Option<String>),
    /// The destination (or a redirect's) is one the policy keeps out of reach; never retried.
    Refused(Refused),
    /// A redirect without a usable `Location`, or more than [`MAX_REDIRECTS`] of them.
    Redirect(String),
}

impl SendError {
    /// For logs and retry messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Http(error, None) => describe(error),
            Self::Http(error, Some(proxy)) => format!("{} (through the proxy {proxy})", describe(error)),
            Self::Refused(refused) => refused.to_string(),
            Self::Redirect(message) => message.clone(),
        }
    }

    /// True for failures to reach the host at all (refused or unreachable), which the swarm reads as "busy".
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Self::Http(error, _) if error.is_connect())
    }

    /// The engine's error for a failure no retry fixes, `None` for one that may pass.
    pub(crate) fn fatal(&self, url: &Url) -> Option<EngineError> {
        match self {
            Self::Http(..) => None,
            Self::Refused(refused) => Some(EngineError::Refused(refused.clone())),
            Self::Redirect(message) => Some(EngineError::Protocol { url: url.to_string(), message: message.clone() }),
        }
    }

    /// As [`fatal`](Self::fatal), for the first contact with a host, where failing to reach it at all is
    /// permanent too: a name that does not exist, a port nothing listens on (on every address), a TLS
    /// certificate that is not valid for the host. (Later, a refused extra connection means the host is busy.)
    pub(crate) fn fatal_at_first_contact(&self, url: &Url) -> Option<EngineError> {
        if let Some(fatal) = self.fatal(url) {
            return Some(fatal);
        }
        let Self::Http(error, proxy) = self else { return None };
        let host = url.host_str().unwrap_or_default();
        let unreachable = |message: String| Some(EngineError::Unreachable { url: url.to_string(), message });
        // Through a proxy, every connection is to the proxy: what fails to resolve or refuses is the proxy.
        if let Some(proxy) = proxy {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
            while let Some(current) = cause {
                let refused = current
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
                if refused || current.downcast_ref::<crate::destination::UnknownHost>().is_some() {
                    return unreachable(format!(
                        "cannot reach the proxy {proxy} ({}); check --proxy or the http_proxy / https_proxy \
                         variables (no_proxy lists the hosts reached directly)",
                        describe(error)
                    ));
                }
                cause = current.source();
            }
            return None;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = cause {
            if current.downcast_ref::<crate::destination::UnknownHost>().is_some() {
                return unreachable(format!("cannot resolve the host name {host:?}: no such host; check the URL"));
            }
            if let Some(io) = current.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                let port = url.port_or_known_default().unwrap_or_default();
                return unreachable(format!(
                    "connection refused by {host} port {port}: nothing accepts connections there; check the URL and \
                     that the server is running"
                ));
            }
            if let Some(reason) = certificate_problem(current) {
                return Some(EngineError::Certificate { url: url.to_string(), host: host.to_owned(), reason });
            }
            cause = current.source();
        }
        None
    }
}

/// What is wrong with a peer's certificate, said plainly, when `error` is rustls refusing it.
fn certificate_problem(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::{CertificateError, Error as TlsError};
    // rustls's error reaches here inside an io::Error, itself inside another (whose `source` skips the inner one).
    let mut inner: &(dyn std::error::Error + 'static) = error;
    while let Some(io) = inner.downcast_ref::<std::io::Error>() {
        inner = io.get_ref()?;
    }
    let tls = inner.downcast_ref::<TlsError>()?;
    let TlsError::InvalidCertificate(problem) = tls else { return None };
    Some(match problem {
        CertificateError::UnknownIssuer => {
            "signed by an authority this machine does not trust, or self-signed".to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "issued for another name".to_owned()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".to_owned(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "not valid yet".to_owned(),
        CertificateError::Revoked => "revoked".to_owned(),
        other => format!("{other:?}"),
    })
}

/// The certificate authorities of `--ca-cert` files (PEM, one or more certificates each), trusted beside the
/// system's.
pub(crate) fn extra_roots(files: &[std::path::PathBuf]) -> Result<Vec<reqwest::Certificate>, EngineError> {
    let mut roots = Vec::new();
    for file in files {
        let shown = file.display();
        let pem = std::fs::read(file)
            .map_err(|error| EngineError::InvalidRequest(format!("--ca-cert {shown}: cannot read it: {error}")))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            EngineError::InvalidRequest(format!("--ca-cert {shown}: not PEM certificates ({error})"))
        })?;
        if certificates.is_empty() {
            return Err(EngineError::InvalidRequest(format!(
                "--ca-cert {shown}: no certificate in it (expected -----BEGIN CERTIFICATE----- blocks)"
            )));
        }
        roots.extend(certificates);
    }
    Ok(roots)
}

impl HttpClient {
    pub fn new(options: &ClientOptions) -> Result<Self, EngineError> {
        let user_agent = HeaderValue::from_str(&options.user_agent).map_err(|_| {
            EngineError::InvalidRequest(format!("user agent is not a valid header value: {:?}", options.user_agent))
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, user_agent);
        // Byte ranges only make sense on the identity encoding.
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            // Separate HTTP/1.1 connections are what beats a per-connection speed cap; HTTP/2 would multiplex
            // every segment onto one TCP connection.
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            // `send` follows redirects itself, checking each hop and dropping the user's headers across origins.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .dns_resolver(Arc::new(PolicyResolver { policy: options.destinations.clone() }))
            // The system's authorities (SSL_CERT_FILE and SSL_CERT_DIR where set), Mozilla's beside them, and the
            // --ca-cert files.
            .tls_built_in_native_certs(true)
            .tls_built_in_webpki_certs(true)
            .local_address(options.local_address);
        for root in extra_roots(&options.ca_certs)? {
            builder = builder.add_root_certificate(root);
        }
        if options.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let mut proxies = Proxies::default();
        if !options.destinations.allows_everything() {
            // Through a proxy the connection is to the proxy, and the policy could not see where it leads.
            builder = builder.no_proxy();
        } else if let Some(proxy) = &options.proxy {
            let parsed = reqwest::Proxy::all(proxy.as_str()).map_err(|error| {
                EngineError::InvalidRequest(format!(
                    "--proxy {proxy:?} is not a proxy URL ({error}); give http://HOST:PORT"
                ))
            })?;
            builder = builder.proxy(parsed);
            proxies.all = Some(proxy.clone());
        } else {
            proxies = Proxies::from_environment();
        }
        let inner =
            builder.build().map_err(|e| EngineError::InvalidRequest(format!("cannot build the HTTP client: {e}")))?;
        let hosts = crate::hosts::HostBudget::new(options.max_connections_per_host);
        Ok(Self { inner, destinations: options.destinations.clone(), hosts, proxies, cookies: None })
    }

    pub fn destinations(&self) -> &DestinationPolicy {
        &self.destinations
    }

    /// This client (the same connections, host budget and policy) sending `cookies` with every request: to each
    /// URL, redirect hops included, only the cookies whose domain, path, scheme and expiry match it
    /// (`haul_core::credentials::Cookie::matches`). A cookie whose name the request's own `Cookie` header
    /// already carries (the job's header, or one yt-dlp named for a format) is not sent twice.
    pub(crate) fn with_cookies(&self, cookies: Vec<haul_core::credentials::Cookie>) -> Self {
        Self { cookies: (!cookies.is_empty()).then(|| cookies.into()), ..self.clone() }
    }

    /// The per-host connection budget every download of this client shares.
    pub(crate) fn hosts(&self) -> &crate::hosts::HostBudget {
        &self.hosts
    }

    /// Sends `method url` with the user's `headers` and the engine's own `extra` ones (`Range`, `If-Range`),
    /// following redirects itself. Every hop is checked against the destination policy (a literal address
    /// here, a name when it is resolved), and a hop to another origin (scheme, host or port) carries only
    /// the engine's headers: the user's cookies, tokens and other headers were meant for the first host.
    /// `response.url()` is where the answer came from.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        extra: &HeaderMap,
    ) -> Result<reqwest::Response, SendError> {
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            self.destinations.check_url(&current).map_err(SendError::Refused)?;
            let mut request = self.inner.request(method.clone(), current.clone());
            let mut sent = if current.origin() == url.origin() { headers.clone() } else { HeaderMap::new() };
            if let Some(jar) = &self.cookies
                && let Some(cookie) = jar_cookies(jar, &current, header_str(&sent, header::COOKIE))
            {
                sent.insert(header::COOKIE, cookie);
            }
            if !sent.is_empty() {
                request = request.headers(sent);
            }
            let response = request.headers(extra.clone()).send().await.map_err(|error| match refusal_in(&error) {
                Some(refused) => SendError::Refused(refused),
                None => SendError::Http(error, self.proxies.for_url(&current)),
            })?;
            if !response.status().is_redirection() || response.status() == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(response);
            }
            let location = http_location(&response, &current).map_err(SendError::Redirect)?;
            current = location;
        }
        Err(SendError::Redirect(format!("{url}: more than {MAX_REDIRECTS} redirects")))
    }
}

/// The `Cookie` value for `url` from an account's `jar` and the request's own `given` one: the given cookies
/// first, then the jar's that match `url` and are not named there already. `None` when the jar has none for it
/// (the given header, if any, is then sent as it is).
fn jar_cookies(jar: &[haul_core::credentials::Cookie], url: &Url, given: Option<&str>) -> Option<HeaderValue> {
    let now = haul_core::clock::unix_secs(std::time::SystemTime::now());
    let named: Vec<&str> = given
        .unwrap_or_default()
        .split(';')
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim()))
        .collect();
    let fresh: Vec<haul_core::credentials::Cookie> =
        jar.iter().filter(|cookie| !named.contains(&cookie.name.as_str())).cloned().collect();
    let from_jar = haul_core::credentials::cookie_header(&fresh, url, now)?;
    let value = match given {
        Some(given) if !given.trim().is_empty() => format!("{given}; {from_jar}"),
        _ => from_jar,
    };
    // A jar's cookies were checked on the way in (`Cookie::check`); this cannot fail for them.
    HeaderValue::from_str(&value).ok()
}

/// The user's `headers` for fetching `next`, where a request for `first` led: all of them on the same origin,
/// none on another (the probe followed a redirect there, and the user's cookies and credentials were meant
/// for the first host), as [`HttpClient::send`] does on each hop.
pub(crate) fn headers_after_redirect(first: &Url, next: &Url, headers: &HeaderMap) -> HeaderMap {
    if first.origin() == next.origin() { headers.clone() } else { HeaderMap::new() }
}

/// A header value the engine builds itself (a range, a validator); such values are always valid.
pub(crate) fn header_value(text: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(text.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Where a redirect points, resolved against the URL that answered it; only http(s).
fn http_location(response: &reqwest::Response, from: &Url) -> Result<Url, String> {
    let status = response.status();
    let location = header_str(response.headers(), header::LOCATION)
        .ok_or_else(|| format!("{from}: the server answered {status} without a Location"))?;
    let next = from.join(location).map_err(|error| format!("{from}: redirect to {location:?}: {error}"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!("{from}: redirect to {next}, which is not http or https"));
    }
    Ok(next)
}

/// One request header from its name and value, or what is wrong with it. The one check every way a header
/// enters haul goes through (`-H`, the API's `headers`, what yt-dlp says a format needs).
pub fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = name.trim();
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| format!("invalid value for header {name}"))?;
    Ok((header, value))
}

/// A `Name: value` line as curl's and wget's `-H` take it, checked, as (name, value).
pub fn parse_header_line(line: &str) -> Result<(String, String), String> {
    let Some((name, value)) = line.split_once(':') else {
        return Err(format!("header must look like 'Name: Value', got {line:?}"));
    };
    parse_header(name, value).map_err(|error| format!("{error} in {line:?}"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// A request's headers from (name, value) pairs, in order; a repeated name is sent once per value.
pub fn header_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let (name, value) = parse_header(name, value)?;
        map.append(name, value);
    }
    Ok(map)
}

/// `Content-Range: bytes START-END/TOTAL` (END inclusive) or `bytes */TOTAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub range: Option<(u64, u64)>,
    pub total: Option<u64>,
}

pub fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let range = match range.trim() {
        "*" => None,
        r => {
            let (start, end) = r.split_once('-')?;
            let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
            if end < start {
                return None;
            }
            Some((start, end))
        }
    };
    Some(ContentRange { range, total })
}

pub fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH)?.trim().parse().ok()
}

/// `Retry-After` as seconds or as an HTTP date, capped so a hostile value cannot stall a download for hours.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = header_str(headers, header::RETRY_AFTER)?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            httpdate::parse_http_date(value).ok()?.duration_since(std::time::SystemTime::now()).unwrap_or_default()
        }
    };
    Some(wait.min(Duration::from_secs(60)))
}

/// A short human reading of an HTTP status, with advice where there is some.
pub fn status_hint(status: reqwest::StatusCode) -> String {
    let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
    let advice = match status.as_u16() {
        401 | 403 => "; the link may need credentials (a request header) or may have expired",
        404 | 410 => "; check the URL",
        416 => "; the file is shorter than the range asked for",
        _ => "",
    };
    format!("{reason}{advice}")
}

/// Describe a reqwest error by its root cause ("connection refused", "operation timed out"), not its wrapper.
pub fn describe(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    let root = source.to_string();
    if error.is_timeout() {
        format!("timed out ({root})")
    } else if error.is_connect() {
        format!("cannot connect ({root})")
    } else if error.is_body() || error.is_decode() {
        format!("connection broke mid-body ({root})")
    } else {
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        let check =
            |text: &str, expected: Option<ContentRange>| assert_eq!(parse_content_range(text), expected, "{text}");
        check("bytes 0-0/100", Some(ContentRange { range: Some((0, 0)), total: Some(100) }));
        check("bytes 10-19/*", Some(ContentRange { range: Some((10, 19)), total: None }));
        check("bytes */100", Some(ContentRange { range: None, total: Some(100) }));
        check("bytes 5-4/100", None);
        check("items 0-1/2", None);
        check("bytes x-1/2", None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// A hostile Retry-After never stalls a download for more than a minute, and never panics.
        #[test]
        fn retry_after_is_bounded(value in "[ -~]{0,60}") {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(header::RETRY_AFTER, value);
            }
            if let Some(wait) = retry_after(&headers) {
                proptest::prop_assert!(wait <= Duration::from_secs(60));
            }
        }

        /// Content-Range is read into a range whose start is at most its end, or refused.
        #[test]
        fn content_ranges_are_ordered(value in "(bytes)? ?[-0-9*/ ]{0,50}") {
            if let Some(ContentRange { range: Some((start, end)), .. }) = parse_content_range(&value) {
                proptest::prop_assert!(start <= end, "{value:?}");
            }
        }
    }

    #[test]
    fn header_lines_are_checked_and_trimmed() {
        assert_eq!(parse_header_line("X-Token:  abc "), Ok(("X-Token".to_owned(), "abc".to_owned())));
        assert_eq!(parse_header_line("Referer: http://a/b"), Ok(("Referer".to_owned(), "http://a/b".to_owned())));
        assert!(parse_header_line("no colon").unwrap_err().contains("Name: Value"));
        assert!(parse_header_line("Bad Name: x").unwrap_err().contains("invalid header name"));
        assert!(parse_header_line("X: a\nb").unwrap_err().contains("invalid value for header X"));
        let map = header_map([("A", "1"), ("a", "2")]).unwrap();
        assert_eq!(map.get_all("a").iter().collect::<Vec<_>>(), ["1", "2"]);
    }
}
