//! The streaming response body: zero-copy slices of the content block, paced by the rate knobs,
//! counted into the stats as they are yielded, and optionally ended with an error so that hyper
//! aborts the connection mid-body.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::content::ContentBlock;
use crate::pacing::{FAST_CHUNK, Pacer, paced_chunk_len};
use crate::server::{InFlight, Shared};
use crate::stats::RangeSlot;

/// How long a body pauses before erroring out on purpose (see `next_chunk`).
const FLUSH_GRACE: Duration = Duration::from_millis(20);

/// What one response body sends.
#[derive(Debug)]
pub(crate) struct BodyPlan {
    pub content: ContentBlock,
    /// File bytes `[start, end)` the body carries when nothing goes wrong.
    pub start: u64,
    pub end: u64,
    /// Absolute file offset at which the body errors out instead of continuing.
    pub cut_at: Option<u64>,
    /// Error out after `end` (the declared length was a lie and hyper must not think the
    /// response ended cleanly).
    pub fail_after_end: bool,
    /// Per-body pacing rate, bytes/s.
    pub rate: Option<u64>,
}

struct BodyState {
    plan: BodyPlan,
    pos: u64,
    chunk: usize,
    pacer: Option<Pacer>,
    shared: Arc<Shared>,
    slot: Option<RangeSlot>,
    /// Released as soon as the last byte is yielded (or when the client drops the body), so
    /// a client that has read the whole body sees the slot free again.
    guard: Option<InFlight>,
    finished: bool,
}

/// Builds the streaming body for `plan`, holding the in-flight `guard` until it finishes.
pub(crate) fn body(plan: BodyPlan, shared: Arc<Shared>, guard: InFlight) -> Body {
    let limit = plan.rate.into_iter().chain(shared.options.aggregate_rate).min();
    let state = BodyState {
        pos: plan.start,
        chunk: limit.map_or(FAST_CHUNK, paced_chunk_len),
        pacer: plan.rate.map(Pacer::new),
        plan,
        shared,
        slot: None,
        guard: Some(guard),
        finished: false,
    };
    Body::from_stream(futures_util::stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    }))
}

/// Sleeps until `deadline` unless the origin shuts down first.
async fn wait_until(deadline: Instant, shutdown: &CancellationToken) -> io::Result<()> {
    if deadline <= Instant::now() {
        return Ok(());
    }
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => Ok(()),
        () = shutdown.cancelled() => Err(shutting_down()),
    }
}

fn shutting_down() -> io::Error {
    io::Error::other("haul-origin: shutting down")
}

impl BodyState {
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if self.finished {
            return None;
        }
        let limit = self.plan.cut_at.unwrap_or(self.plan.end);
        if self.pos >= limit {
            self.finished = true;
            if self.plan.cut_at.is_some() || self.plan.fail_after_end {
                // hyper drops the connection on a body error without flushing what it has
                // buffered, so give it a moment to write the bytes already yielded: the client
                // must see a partial body, not a missing response.
                let grace = Instant::now() + FLUSH_GRACE;
                let _ = wait_until(grace, &self.shared.shutdown).await;
            }
            self.guard = None;
            if self.plan.cut_at.is_some() {
                self.shared.counters.cut_responses.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(at = self.pos, "cutting body");
                return Some(Err(io::Error::other("haul-origin: body cut on purpose")));
            }
            if self.plan.fail_after_end {
                return Some(Err(io::Error::other("haul-origin: declared Content-Length was a lie")));
            }
            // An empty honest body (a non-empty one finishes right after its last chunk).
            return None;
        }
        let n = (limit - self.pos).min(self.chunk as u64) as usize;
        let shutdown = &self.shared.shutdown;
        let paced = async {
            if let Some(pacer) = &mut self.pacer {
                wait_until(pacer.due(), shutdown).await?;
            }
            if let Some(bucket) = &self.shared.bucket {
                wait_until(bucket.reserve(n), shutdown).await?;
            }
            if shutdown.is_cancelled() {
                return Err(shutting_down());
            }
            Ok(())
        };
        if let Err(e) = paced.await {
            self.finished = true;
            return Some(Err(e));
        }
        let bytes = self.plan.content.slice(self.pos, n);
        if let Some(pacer) = &mut self.pacer {
            pacer.record(n);
        }
        let from = self.pos;
        self.pos += n as u64;
        self.shared.counters.record_body(&mut self.slot, from, self.pos);
        if self.pos == self.plan.end && self.plan.cut_at.is_none() && !self.plan.fail_after_end {
            self.finished = true;
            self.guard = None;
        }
        Some(Ok(bytes))
    }
}
