//! Rate limiting of response bodies: a per-response pacer and a token bucket shared by all
//! responses. Both schedule against absolute times so late timer wake-ups (tokio's timer has
//! millisecond granularity) are caught up instead of accumulating as drift.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Chunk size when nothing limits the rate: big enough that per-chunk overhead vanishes and
/// hyper can write with few syscalls, small enough to stay cache friendly.
pub(crate) const FAST_CHUNK: usize = 256 * 1024;

/// Chunk size under a rate limit: about 10 ms worth of data, between 1 KiB and 16 KiB, so that
/// pacing looks smooth to the client even at 100 KiB/s and costs few wake-ups at 100 MiB/s.
pub(crate) fn paced_chunk_len(rate: u64) -> usize {
    (rate / 100).clamp(1024, 16 * 1024) as usize
}

/// Paces one body at a fixed rate: chunk `k` may go out at `start + bytes_before_k / rate`.
#[derive(Debug)]
pub(crate) struct Pacer {
    rate: f64,
    /// Set on the first chunk, so the time spent before the body is polled does not count.
    start: Option<Instant>,
    sent: u64,
}

impl Pacer {
    pub fn new(rate: u64) -> Self {
        Self { rate: rate as f64, start: None, sent: 0 }
    }

    /// When the next chunk may be sent.
    pub fn due(&mut self) -> Instant {
        let start = *self.start.get_or_insert_with(Instant::now);
        start + Duration::from_secs_f64(self.sent as f64 / self.rate)
    }

    pub fn record(&mut self, n: usize) {
        self.sent += n as u64;
    }
}

/// A token bucket shared by all responses, kept as a "virtual clock": each chunk reserves the
/// next free slot of `n / rate` seconds. Reservations are served in arrival order and every
/// body reserves one equal-sized chunk at a time, so concurrent bodies share the rate roughly
/// equally.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    next_free: Mutex<Instant>,
}

impl TokenBucket {
    /// How far back an idle bucket may let the clock lag: absorbs timer lateness of a single
    /// stream (which would otherwise lose its slot time) while bounding bursts after idling.
    const SLACK: Duration = Duration::from_millis(10);

    pub fn new(rate: u64) -> Self {
        Self { rate: rate as f64, next_free: Mutex::new(Instant::now()) }
    }

    /// Reserves `n` bytes and returns when they may be sent.
    pub fn reserve(&self, n: usize) -> Instant {
        let now = Instant::now();
        let floor = now.checked_sub(Self::SLACK).unwrap_or(now);
        let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let start = (*next).max(floor);
        *next = start + Duration::from_secs_f64(n as f64 / self.rate);
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(paced_chunk_len(100 * 1024), 1024);
        assert_eq!(paced_chunk_len(1024 * 1024), 10_485);
        assert_eq!(paced_chunk_len(100 * 1024 * 1024), 16 * 1024);
    }

    #[test]
    fn bucket_reserves_back_to_back() {
        let bucket = TokenBucket::new(1000);
        let t0 = bucket.reserve(100);
        let t1 = bucket.reserve(100);
        let t2 = bucket.reserve(300);
        let t3 = bucket.reserve(1);
        assert_eq!(t1 - t0, Duration::from_millis(100));
        assert_eq!(t2 - t1, Duration::from_millis(100));
        assert_eq!(t3 - t2, Duration::from_millis(300));
    }
}
