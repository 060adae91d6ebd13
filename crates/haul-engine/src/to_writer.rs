//! One download written in order to an output stream (stdout for `haul get -o -`) instead of a file.
//!
//! An output taken in order cannot receive the segments of many connections as they arrive, so this is the
//! single-stream path (`single.rs`) writing to the output as it reads: memory stays at one chunk, the reader
//! gets the first bytes at once, and a break resumes with `Range: bytes=N-` and `If-Range` where the host
//! allows it. What cannot continue from byte N (a host without Range, a file that changed) is an error, since
//! what was written cannot be taken back. No `.part` file or resume record is made.

use std::path::PathBuf;
use std::sync::Arc;

use haul_core::ranges::RangeSet;
use reqwest::header::HeaderMap;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::download::check_url;
use crate::error::EngineError;
use crate::http::HttpClient;
use crate::limiter::Limits;
use crate::probe;
use crate::progress::{Phase, Progress};
use crate::single::{self, SingleEnd, SingleOptions, Sink};

/// What a download to an output needs; built by the caller from flags.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    pub url: Url,
    /// Extra request headers (cookies, authorization, referer).
    pub headers: HeaderMap,
    /// Bytes per second.
    pub rate_limit: Option<u64>,
    /// Consecutive failed attempts without progress before giving up.
    pub max_attempts: u32,
    /// A fixed wait between attempts; growing backoff when `None`.
    pub retry_wait: Option<std::time::Duration>,
    /// How errors name the output (`stdout`).
    pub output_name: PathBuf,
}

impl WriterOptions {
    pub fn new(url: Url, output_name: impl Into<PathBuf>) -> Self {
        Self {
            url,
            headers: HeaderMap::new(),
            rate_limit: None,
            max_attempts: 8,
            retry_wait: None,
            output_name: output_name.into(),
        }
    }
}

/// Download `options.url` into `writer`, in order, over one connection; returns the number of bytes written.
///
/// Cancelling `cancel` stops it with `Err(EngineError::Cancelled)`; what was written stays written, and there
/// is nothing to resume. The writer is flushed in every case, so the reader gets every byte that was sent.
pub async fn download_to_writer<W: AsyncWrite + Unpin>(
    client: HttpClient,
    options: WriterOptions,
    writer: &mut W,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<u64, EngineError> {
    check_url(&options.url)?;
    progress.set_phase(Phase::Probing);
    let mut probe = tokio::select! {
        probe = probe::probe(
            &client, &options.url, &options.headers, options.max_attempts, options.retry_wait, probe::ProbeWith::Head,
        ) => probe?,
        _ = cancel.cancelled() => return Err(EngineError::Cancelled),
    };
    tracing::debug!(url = %options.url, final_url = %probe.final_url, size = ?probe.size, ranges = probe.ranges, "probed");
    progress.set_total(probe.size);
    progress.set_phase(Phase::Downloading);
    progress.set_connections(1);
    let limits = Limits::rate(options.rate_limit);
    let single_options = SingleOptions::after_probe(
        &options.url,
        &options.headers,
        &mut probe,
        options.max_attempts,
        options.retry_wait,
        limits,
    );
    let mut sink = WriterSink { writer, written: 0, name: &options.output_name };
    let no_record = |_: &RangeSet| Ok(());
    let end = single::run(&client, single_options, &mut sink, &RangeSet::new(), &progress, &cancel, no_record).await;
    let flushed = sink.writer.flush().await.map_err(|error| EngineError::io(&options.output_name, error));
    progress.set_connections(0);
    match end? {
        SingleEnd::Complete(size) => {
            flushed?;
            progress.set_total(Some(size));
            progress.set_phase(Phase::Done);
            Ok(size)
        }
        SingleEnd::Cancelled => Err(EngineError::Cancelled),
    }
}

/// An output that takes bytes in order.
struct WriterSink<'a, W> {
    writer: &'a mut W,
    written: u64,
    name: &'a PathBuf,
}

impl<W: AsyncWrite + Unpin> Sink for WriterSink<'_, W> {
    async fn write(&mut self, bytes: &[u8], offset: u64) -> Result<(), EngineError> {
        if offset != self.written {
            // The single stream only moves forward or starts over (asked through `start_over`); anything else
            // would put bytes in the wrong place.
            return Err(EngineError::InvalidRequest(format!(
                "{}: bytes for offset {offset} came after {} bytes were written",
                self.name.display(),
                self.written
            )));
        }
        self.writer.write_all(bytes).await.map_err(|error| EngineError::io(self.name, error))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn start_over(&mut self) -> Result<bool, EngineError> {
        Ok(self.written == 0)
    }
}
