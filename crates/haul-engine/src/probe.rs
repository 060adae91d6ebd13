//! Learning about a remote file before fetching it: size, Range support, validators and the name it offers.

use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::error::EngineError;
use crate::http::{self, HttpClient};

/// What identifies one version of a remote file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            etag: http::header_str(headers, header::ETAG).map(str::to_owned),
            last_modified: http::header_str(headers, header::LAST_MODIFIED).map(str::to_owned),
        }
    }

    /// The value for `If-Range`: a strong ETag, else the date. Weak ETags are not allowed there (RFC 9110).
    pub fn if_range(&self) -> Option<HeaderValue> {
        let value = match &self.etag {
            Some(etag) if !etag.starts_with("W/") => etag,
            _ => self.last_modified.as_ref()?,
        };
        HeaderValue::from_str(value).ok()
    }
}

/// The answer to a probe.
#[derive(Debug)]
pub struct Probe {
    /// Where redirects led; segments are fetched from here directly.
    pub final_url: Url,
    pub size: Option<u64>,
    pub ranges: bool,
    pub validators: Validators,
    pub content_disposition: Option<String>,
    /// A GET probe that already holds the whole body (a host without Range support, or a file no larger than
    /// [`FIRST_REQUEST`]): the single-stream path continues from it instead of asking again.
    pub(crate) body: Option<reqwest::Response>,
    /// The answer to a first request for the first [`FIRST_REQUEST`] bytes of a larger file, its body not read:
    /// the first connection of the download streams it instead of asking again.
    pub(crate) first_bytes: Option<reqwest::Response>,
}

impl Probe {
    fn from_response(response: &reqwest::Response, size: Option<u64>, ranges: bool) -> Self {
        let headers = response.headers();
        Self {
            final_url: response.url().clone(),
            size,
            ranges,
            validators: Validators::from_headers(headers),
            content_disposition: http::header_str(headers, header::CONTENT_DISPOSITION).map(str::to_owned),
            body: None,
            first_bytes: None,
        }
    }

    fn with_body(response: reqwest::Response, size: Option<u64>, ranges: bool) -> Self {
        let probe = Self::from_response(&response, size, ranges);
        Self { body: Some(response), ..probe }
    }
}

/// The bytes the first request of a download asks for when it asks with GET: a file no larger arrives whole in
/// the answer that tells its size, in one round trip instead of two.
pub const FIRST_REQUEST: u64 = 1 << 20;

/// How the first request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeWith {
    /// HEAD, then a `Range: bytes=0-0` GET where HEAD is refused or leaves size or Range support unclear: no
    /// body is sent, for when the file may already be here (`-N`, a complete copy) and nothing is to be fetched.
    Head,
    /// A GET of the first [`FIRST_REQUEST`] bytes: a small file is then fetched by the probe itself; for a larger
    /// one the first connection of the download streams the answer.
    Get,
}

/// Learns size, Range support, validators and the offered name of `url`.
pub async fn probe(
    client: &HttpClient,
    url: &Url,
    headers: &HeaderMap,
    max_attempts: u32,
    retry_wait: Option<Duration>,
    with: ProbeWith,
) -> Result<Probe, EngineError> {
    if with == ProbeWith::Get {
        return probe_range(client, url, headers, max_attempts, retry_wait, FIRST_REQUEST).await;
    }
    match client.send(Method::HEAD, url, headers, &HeaderMap::new()).await {
        Ok(response) if response.status().is_success() => {
            let size = http::content_length(response.headers());
            let ranges = http::header_str(response.headers(), header::ACCEPT_RANGES)
                .is_some_and(|v| v.split(',').any(|unit| unit.trim().eq_ignore_ascii_case("bytes")));
            if ranges && size.is_some() {
                return Ok(Probe::from_response(&response, size, ranges));
            }
            tracing::debug!(%url, ?size, ranges, "HEAD left size or Range support unclear; probing with GET");
        }
        Ok(response) => tracing::debug!(%url, status = %response.status(), "HEAD refused; probing with GET"),
        Err(error) if let Some(fatal) = error.fatal_at_first_contact(url) => return Err(fatal),
        Err(error) => tracing::debug!(%url, error = %error.describe(), "HEAD failed; probing with GET"),
    }
    probe_with_get(client, url, headers, max_attempts, retry_wait).await
}

/// `GET` with `Range: bytes=0-0`: a 206 tells the size and proves Range support; a 200 means the host ignores Range.
pub async fn probe_with_get(
    client: &HttpClient,
    url: &Url,
    headers: &HeaderMap,
    max_attempts: u32,
    retry_wait: Option<Duration>,
) -> Result<Probe, EngineError> {
    probe_range(client, url, headers, max_attempts, retry_wait, 1).await
}

/// `GET` of the first `asked` bytes: a 206 tells the size and proves Range support, and keeps its body when that
/// is the whole file; a 200 means the host ignores Range (its body is the whole file, kept).
async fn probe_range(
    client: &HttpClient,
    url: &Url,
    headers: &HeaderMap,
    max_attempts: u32,
    retry_wait: Option<Duration>,
    asked: u64,
) -> Result<Probe, EngineError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut range = HeaderMap::new();
        range.insert(header::RANGE, http::header_value(format!("bytes=0-{}", asked - 1)));
        let result = client.send(Method::GET, url, headers, &range).await;
        let (message, wait) = match result {
            Ok(response) => {
                let status = response.status();
                let response_headers = response.headers();
                if status == StatusCode::PARTIAL_CONTENT {
                    let content_range =
                        http::header_str(response_headers, header::CONTENT_RANGE).and_then(http::parse_content_range);
                    let total = content_range.as_ref().and_then(|range| range.total);
                    // The whole file in this answer: it is the download.
                    let whole = matches!((total, content_range.as_ref().and_then(|r| r.range)),
                        (Some(total), Some((0, last))) if total > 1 && last + 1 == total);
                    if whole {
                        return Ok(Probe::with_body(response, total, true));
                    }
                    let first_part = content_range.and_then(|range| range.range) == Some((0, asked - 1)) && asked > 1;
                    let mut probe = Probe::from_response(&response, total, total.is_some());
                    if first_part && total.is_some() {
                        probe.first_bytes = Some(response);
                    }
                    return Ok(probe);
                }
                if status.is_success() {
                    let size = http::content_length(response_headers);
                    return Ok(Probe::with_body(response, size, false));
                }
                if status == StatusCode::RANGE_NOT_SATISFIABLE {
                    // An empty file cannot satisfy bytes=0-0; anything else answering 416 here is unusable.
                    let total = http::header_str(response_headers, header::CONTENT_RANGE)
                        .and_then(http::parse_content_range)
                        .and_then(|range| range.total);
                    if total == Some(0) {
                        return Ok(Probe::from_response(&response, Some(0), true));
                    }
                }
                let retryable = status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT;
                if !retryable {
                    return Err(EngineError::Remote {
                        url: url.to_string(),
                        status: status.as_u16(),
                        hint: http::status_hint(status),
                    });
                }
                (format!("server answered {status}"), http::retry_after(response_headers))
            }
            Err(error) if let Some(fatal) = error.fatal_at_first_contact(url) => return Err(fatal),
            Err(error) => (error.describe(), None),
        };
        if attempt >= max_attempts {
            return Err(EngineError::Network { url: url.to_string(), message, attempts: attempt });
        }
        let wait = wait.or(retry_wait).unwrap_or_else(|| backoff(attempt));
        tracing::info!(%url, %message, ?wait, attempt, "probe failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Exponential backoff: 250 ms, 500 ms, 1 s, ... capped at 8 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.saturating_sub(1).min(5))).min(Duration::from_secs(8))
}
