//! The HTTP client haul downloads with, and the header parsing every fetch path shares.

use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};

use crate::error::EngineError;

/// Settings for [`HttpClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// A connection that delivers nothing for this long is treated as dead and its range retried elsewhere.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            user_agent: concat!("haul/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// One connection pool for every download of a process; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    pub(crate) inner: reqwest::Client,
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
        let inner = reqwest::Client::builder()
            .default_headers(headers)
            // Separate HTTP/1.1 connections are what beats a per-connection speed cap; HTTP/2 would multiplex
            // every segment onto one TCP connection.
            .http1_only()
            .tcp_nodelay(true)
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| EngineError::InvalidRequest(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { inner })
    }
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
        401 | 403 => "; the link may need credentials (--header) or may have expired",
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
}
