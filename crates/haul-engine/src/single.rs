//! One streaming connection, for hosts without Range support or files of unknown size, and for output that must
//! be written in order (stdout).
//!
//! Resumes with `Range: bytes=N-` where the host allows it; otherwise a broken transfer starts again from zero,
//! since bytes from two responses of a host that ignores Range cannot be trusted to line up. Output written in
//! order cannot start again, so there such a break is an error.

use std::time::Duration;

use haul_core::ranges::RangeSet;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::EngineError;
use crate::http::{self, HttpClient};
use crate::limiter::Limits;
use crate::part_file::PartFile;
use crate::probe::{Validators, backoff};
use crate::progress::{Progress, RetryCause};

pub(crate) struct SingleOptions {
    pub url: Url,
    pub headers: HeaderMap,
    pub size: Option<u64>,
    pub ranges: bool,
    pub validators: Validators,
    pub max_attempts: u32,
    /// A fixed wait between attempts (`--retry-wait`); growing backoff when `None`.
    pub retry_wait: Option<Duration>,
    pub limits: Limits,
    /// The probe's response when it already carries the whole body (a host without Range).
    pub first_response: Option<reqwest::Response>,
}

impl SingleOptions {
    /// One stream of what `probe` found at `url`: its final URL (the user's headers only if it is on `url`'s
    /// origin), size, Range support and validators, and its response when that already carries the body.
    pub(crate) fn after_probe(
        url: &Url,
        headers: &HeaderMap,
        probe: &mut crate::probe::Probe,
        max_attempts: u32,
        retry_wait: Option<Duration>,
        limits: Limits,
    ) -> Self {
        Self {
            url: probe.final_url.clone(),
            headers: crate::http::headers_after_redirect(url, &probe.final_url, headers),
            size: probe.size,
            ranges: probe.ranges,
            validators: probe.validators.clone(),
            max_attempts,
            retry_wait,
            limits,
            first_response: probe.body.take(),
        }
    }
}

/// Where one stream's bytes go: the part file (positional writes; it can start over) or an output such as stdout
/// (bytes in order; what was written cannot be taken back).
pub(crate) trait Sink {
    /// Writes `bytes` at `offset`; an output in order only ever gets the next bytes.
    async fn write(&mut self, bytes: &[u8], offset: u64) -> Result<(), EngineError>;

    /// Drops what was written, to start again from byte 0; `Ok(false)` when that is impossible (an output in
    /// order that already wrote bytes).
    fn start_over(&mut self) -> Result<bool, EngineError>;
}

impl Sink for &PartFile {
    async fn write(&mut self, bytes: &[u8], offset: u64) -> Result<(), EngineError> {
        self.write_at(bytes, offset)
    }

    fn start_over(&mut self) -> Result<bool, EngineError> {
        self.set_len(0).map(|()| true)
    }
}

pub(crate) enum SingleEnd {
    /// Done; the size is what arrived (the only way to learn it when the server did not say).
    Complete(u64),
    Cancelled,
}

pub(crate) async fn run(
    client: &HttpClient,
    mut options: SingleOptions,
    sink: &mut impl Sink,
    done: &RangeSet,
    progress: &Progress,
    cancel: &CancellationToken,
    mut persist: impl FnMut(&RangeSet) -> Result<(), EngineError>,
) -> Result<SingleEnd, EngineError> {
    // Only a prefix can be resumed over one stream.
    let mut pos = match done.ranges().first() {
        Some(&(0, end)) if options.ranges => end,
        _ => 0,
    };
    if pos == 0 && !sink.start_over()? {
        return Err(cannot_start_over(&options.url, "the output already has bytes"));
    }
    // One slot of the host's budget for the whole stream (the probe's response, when there is one, is already
    // this connection).
    let _slot = tokio::select! {
        slot = client.hosts().take(&options.url) => slot,
        _ = cancel.cancelled() => return Ok(SingleEnd::Cancelled),
    };
    let mut failures = 0u32;
    loop {
        let response = match options.first_response.take() {
            Some(response) if pos == 0 => Ok(response),
            _ => {
                let mut extra = HeaderMap::new();
                if pos > 0 {
                    extra.insert(header::RANGE, http::header_value(format!("bytes={pos}-")));
                    if let Some(if_range) = options.validators.if_range() {
                        extra.insert(header::IF_RANGE, if_range);
                    }
                }
                tokio::select! {
                    result = client.send(Method::GET, &options.url, &options.headers, &extra) => result,
                    _ = cancel.cancelled() => return Ok(SingleEnd::Cancelled),
                }
            }
        };
        let attempt_start = pos;
        let outcome = match response {
            Ok(response) => stream(response, &options, sink, &mut pos, progress, cancel, &mut persist).await,
            Err(error) => match error.fatal(&options.url) {
                Some(fatal) => Err(Attempt::Fatal(fatal)),
                None => Err(Attempt::Transient(error.describe(), None)),
            },
        };
        let (message, wait, cause) = match outcome {
            // A complete file needs no record: the caller puts it in place and removes the record at once.
            Ok(Some(size)) => return Ok(SingleEnd::Complete(size)),
            Ok(None) => {
                persist(&RangeSet::from_ranges([(0, pos)]))?;
                return Ok(SingleEnd::Cancelled);
            }
            Err(Attempt::Fatal(error)) => return Err(error),
            Err(Attempt::Transient(message, wait)) => (message, wait, RetryCause::Failed),
            Err(Attempt::Busy(message, wait)) => (message, wait, RetryCause::Busy),
        };
        // Progress only counts when it survives the failure: a host that cannot resume loses it all.
        let cause = if pos > attempt_start { RetryCause::Interrupted } else { cause };
        if pos > attempt_start && options.ranges {
            failures = 0;
        }
        failures += 1;
        // A host that cannot resume gets twice the budget, since every attempt starts from zero.
        let budget = if options.ranges { options.max_attempts } else { options.max_attempts * 2 };
        if failures >= budget {
            return Err(EngineError::Network { url: options.url.to_string(), message, attempts: failures });
        }
        if !options.ranges && pos > 0 {
            if !sink.start_over()? {
                let why = format!("connection broke at byte {pos} ({message}) and the host cannot resume");
                return Err(cannot_start_over(&options.url, &why));
            }
            tracing::info!(url = %options.url, pos, "host cannot resume; starting this file again from zero");
            progress.note(format!("connection broke at byte {pos} ({message}); the host cannot resume, restarting"));
            pos = 0;
            progress.set_done(0);
        }
        persist(&RangeSet::from_ranges([(0, pos)]))?;
        progress.count_retry(cause);
        let wait = wait.or(options.retry_wait).unwrap_or_else(|| backoff(failures));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => return Ok(SingleEnd::Cancelled),
        }
    }
}

enum Attempt {
    Transient(String, Option<Duration>),
    /// The host refused for now (429, 503): tried again after its Retry-After, if it gave one.
    Busy(String, Option<Duration>),
    Fatal(EngineError),
}

/// The download would have to start again from byte 0, and the output already took the bytes before.
fn cannot_start_over(url: &Url, why: &str) -> EngineError {
    EngineError::Protocol {
        url: url.to_string(),
        message: format!("{why}; what was already written out cannot be taken back, so the download stops here"),
    }
}

/// Stream one response to disk from `pos`. `Ok(Some(size))` when complete, `Ok(None)` when cancelled.
async fn stream(
    mut response: reqwest::Response,
    options: &SingleOptions,
    sink: &mut impl Sink,
    pos: &mut u64,
    progress: &Progress,
    cancel: &CancellationToken,
    persist: &mut impl FnMut(&RangeSet) -> Result<(), EngineError>,
) -> Result<Option<u64>, Attempt> {
    let status = response.status();
    match status {
        // From `pos`, or from 0 in the answer of a probe that asked for the first bytes of a small file.
        StatusCode::PARTIAL_CONTENT => {
            let first = http::header_str(response.headers(), header::CONTENT_RANGE)
                .and_then(http::parse_content_range)
                .and_then(|range| range.range)
                .map(|(first, _)| first);
            if first != Some(*pos) {
                return Err(Attempt::Fatal(EngineError::Protocol {
                    url: options.url.to_string(),
                    message: format!("asked for bytes from {}, server answered from {first:?}", *pos),
                }));
            }
        }
        StatusCode::OK => {
            if *pos > 0 {
                // The host ignored Range (or the file changed under If-Range): take the whole body from zero.
                if !sink.start_over().map_err(Attempt::Fatal)? {
                    let why = "the server sent the whole file again instead of the rest (it changed, or ignores Range)";
                    return Err(Attempt::Fatal(cannot_start_over(&options.url, why)));
                }
                tracing::info!(url = %options.url, "server sent the whole file instead of the rest; starting from zero");
                *pos = 0;
                progress.set_done(0);
            }
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
            return Err(Attempt::Busy(format!("server answered {status}"), http::retry_after(response.headers())));
        }
        status if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT => {
            return Err(Attempt::Transient(format!("server answered {status}"), None));
        }
        status => {
            return Err(Attempt::Fatal(EngineError::Remote {
                url: options.url.to_string(),
                status: status.as_u16(),
                hint: http::status_hint(status),
            }));
        }
    }
    let expected_end = match status {
        StatusCode::OK => http::content_length(response.headers()).or(options.size),
        _ => options.size,
    };
    progress.set_total(expected_end);
    let mut last_persist = Instant::now();
    let mut window = (Instant::now(), *pos);
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = cancel.cancelled() => return Ok(None),
        };
        match chunk {
            Ok(Some(bytes)) => {
                for piece in options.limits.pieces(&bytes) {
                    tokio::select! {
                        () = options.limits.acquire(piece.len()) => {}
                        _ = cancel.cancelled() => return Ok(None),
                    }
                    sink.write(piece, *pos).await.map_err(Attempt::Fatal)?;
                    *pos += piece.len() as u64;
                    progress.set_done(*pos);
                }
                let now = Instant::now();
                if now.duration_since(window.0) >= Duration::from_millis(500) {
                    progress.set_speed(((*pos - window.1) as f64 / now.duration_since(window.0).as_secs_f64()) as u64);
                    window = (now, *pos);
                }
                if now.duration_since(last_persist) >= Duration::from_secs(1) && options.ranges {
                    persist(&RangeSet::from_ranges([(0, *pos)])).map_err(Attempt::Fatal)?;
                    last_persist = now;
                }
            }
            Ok(None) => {
                return match expected_end {
                    Some(end) if *pos < end => {
                        Err(Attempt::Transient(format!("connection closed at byte {} of {end}", *pos), None))
                    }
                    _ => Ok(Some(*pos)),
                };
            }
            Err(error) => {
                let message = match expected_end {
                    Some(end) => format!("{} at byte {} of {end}", http::describe(&error), *pos),
                    None => format!("{} at byte {}", http::describe(&error), *pos),
                };
                return Err(Attempt::Transient(message, None));
            }
        }
    }
}
