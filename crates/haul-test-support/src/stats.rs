//! Counters of what the origin actually did, so tests can assert on server-side behaviour
//! (e.g. that a resumed download did not fetch completed ranges again).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of the origin's counters (also served as JSON at `GET /stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OriginStats {
    /// Requests to `/data` and `/redirect` (including HEAD and rejected ones; not `/stats`).
    pub requests: u64,
    pub head_requests: u64,
    /// Bytes yielded into response bodies (counted as the body stream hands them to hyper).
    pub body_bytes_sent: u64,
    pub responses_503: u64,
    /// Highest number of concurrently admitted in-flight responses.
    pub peak_concurrent: u64,
    /// Bodies deliberately cut by `cut_fraction` (counted when the cut happens).
    pub cut_responses: u64,
    /// `[start, end)` file offsets actually yielded, one entry per GET body that yielded at
    /// least one byte, in the order the bodies started.
    pub ranges_served: Vec<(u64, u64)>,
    /// HTTPS only: TLS handshakes that completed (one per connection a client kept).
    pub tls_handshakes: u64,
    /// HTTPS only: TLS handshakes that failed: the client refused the certificate (or spoke no TLS, or closed
    /// the connection, or took longer than 10 s).
    pub tls_handshake_failures: u64,
}

/// Where one body's entry lives in the range log. The generation detects a `reset_stats` in the
/// middle of a body, after which the body starts a fresh entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RangeSlot {
    generation: u64,
    index: usize,
}

#[derive(Default)]
struct RangeLog {
    generation: u64,
    entries: Vec<(u64, u64)>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub head_requests: AtomicU64,
    pub body_bytes_sent: AtomicU64,
    pub responses_503: AtomicU64,
    pub peak_concurrent: AtomicU64,
    pub cut_responses: AtomicU64,
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Live gauge, never reset: responses admitted and not yet finished.
    pub in_flight: AtomicU64,
    ranges: Mutex<RangeLog>,
}

impl Counters {
    /// Records that a body yielded file bytes `[from, to)`. One short lock per chunk (≥ 256 KiB
    /// on the fast path) is negligible next to the socket write.
    pub fn record_body(&self, slot: &mut Option<RangeSlot>, from: u64, to: u64) {
        self.body_bytes_sent.fetch_add(to - from, Ordering::Relaxed);
        let mut log = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        match *slot {
            Some(s) if s.generation == log.generation => log.entries[s.index].1 = to,
            _ => {
                log.entries.push((from, to));
                *slot = Some(RangeSlot { generation: log.generation, index: log.entries.len() - 1 });
            }
        }
    }

    pub fn snapshot(&self) -> OriginStats {
        let ranges_served = self.ranges.lock().unwrap_or_else(|e| e.into_inner()).entries.clone();
        OriginStats {
            requests: self.requests.load(Ordering::Relaxed),
            head_requests: self.head_requests.load(Ordering::Relaxed),
            body_bytes_sent: self.body_bytes_sent.load(Ordering::Relaxed),
            responses_503: self.responses_503.load(Ordering::Relaxed),
            peak_concurrent: self.peak_concurrent.load(Ordering::Relaxed),
            cut_responses: self.cut_responses.load(Ordering::Relaxed),
            ranges_served,
            tls_handshakes: self.tls_handshakes.load(Ordering::Relaxed),
            tls_handshake_failures: self.tls_handshake_failures.load(Ordering::Relaxed),
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.head_requests,
            &self.body_bytes_sent,
            &self.responses_503,
            &self.cut_responses,
            &self.tls_handshakes,
            &self.tls_handshake_failures,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        // Responses still in flight are the new baseline for the peak.
        self.peak_concurrent.store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
        let mut log = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        log.generation += 1;
        log.entries.clear();
    }
}
