//! Token buckets for speed limits: one per download (`--limit-rate`, a job's `speed_limit`), and on a server
//! also one per host and one for the whole server, each changeable while downloads run.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Bytes per second shared by every connection that takes from it; no limit while its rate is `None`.
///
/// A reader pays for each piece of what it read ([`Limits::pieces`]) before it writes it: the balance may go
/// negative (a debt), and the reader sleeps until it is paid off. Sleeping stops reading the socket, so TCP
/// flow control slows the sender; what a connection holds beyond the limit is the one chunk in its hands. A
/// new rate applies from the next piece; a debt keeps the time it takes to pay, so a lowered limit binds at
/// once and a raised one frees at once.
#[derive(Debug)]
pub struct RateLimiter {
    // A parking_lot Mutex (never poisoned): the critical section is a few arithmetic operations and never spans an await.
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes per second; `None` is no limit.
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

/// A tenth of a second of burst keeps pacing smooth without letting a fresh connection spike.
fn burst(rate: f64) -> f64 {
    (rate / 10.0).max(16.0 * 1024.0)
}

impl RateLimiter {
    pub fn new(bytes_per_second: u64) -> Self {
        Self::with_rate(Some(bytes_per_second))
    }

    /// A limiter that limits nothing until [`set_rate`](Self::set_rate) gives it a rate.
    pub fn unlimited() -> Self {
        Self::with_rate(None)
    }

    fn with_rate(rate: Option<u64>) -> Self {
        let rate = rate.map(|rate| rate.max(1) as f64);
        let tokens = rate.map_or(0.0, burst);
        Self { state: Mutex::new(Bucket { rate, tokens, last: Instant::now() }) }
    }

    /// The limit now, in bytes per second.
    pub fn rate(&self) -> Option<u64> {
        self.state.lock().rate.map(|rate| rate as u64)
    }

    /// Changes the limit for every connection taking from this bucket, from their next chunk on.
    pub fn set_rate(&self, bytes_per_second: Option<u64>) {
        let mut bucket = self.state.lock();
        let rate = bytes_per_second.map(|rate| rate.max(1) as f64);
        if rate == bucket.rate {
            return;
        }
        let now = Instant::now();
        bucket.tokens = match (bucket.rate, rate) {
            // Settle up to now at the old rate, then keep the debt's time to pay, and at most the new burst.
            (Some(old), Some(new)) => {
                let tokens = (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * old).min(burst(old));
                if tokens < 0.0 { tokens * new / old } else { tokens.min(burst(new)) }
            }
            (_, rate) => rate.map_or(0.0, burst),
        };
        bucket.rate = rate;
        bucket.last = now;
    }

    /// Take `n` tokens and wait until the bucket is no longer in debt.
    pub async fn acquire(&self, n: usize) {
        let wait = {
            let mut bucket = self.state.lock();
            let Some(rate) = bucket.rate else { return };
            let now = Instant::now();
            let refill = now.duration_since(bucket.last).as_secs_f64() * rate;
            bucket.tokens = (bucket.tokens + refill).min(burst(rate)) - n as f64;
            bucket.last = now;
            if bucket.tokens < 0.0 { Some(Duration::from_secs_f64(-bucket.tokens / rate)) } else { None }
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Every bucket one download takes from (its own, its host's, the server's): a chunk waits for each in turn, so
/// the lowest limit binds. Cheap to clone; empty means no limit.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    buckets: Vec<Arc<RateLimiter>>,
}

impl Limits {
    pub fn new(buckets: Vec<Arc<RateLimiter>>) -> Self {
        Self { buckets }
    }

    /// One bucket of `rate` bytes per second, or no limit.
    pub fn rate(rate: Option<u64>) -> Self {
        Self { buckets: rate.map(|rate| Arc::new(RateLimiter::new(rate))).into_iter().collect() }
    }

    /// These limits and `other`'s.
    pub fn and(mut self, other: Limits) -> Self {
        self.buckets.extend(other.buckets);
        self
    }

    /// The limit that binds now: the lowest rate set.
    pub fn binding(&self) -> Option<u64> {
        self.buckets.iter().filter_map(|bucket| bucket.rate()).min()
    }

    pub async fn acquire(&self, n: usize) {
        for bucket in &self.buckets {
            bucket.acquire(n).await;
        }
    }
}

/// How much of a chunk is paid for at a time under a limit. A read can bring half a megabyte at once (what the
/// socket gathered while the reader slept); paying and writing it in pieces keeps progress smooth at the limit
/// instead of lurching a chunk at a time.
pub const SLICE: usize = 16 * 1024;

impl Limits {
    /// The pieces `chunk` is paid for in: [`SLICE`]s under a limit, the whole chunk without one.
    pub fn pieces<'a>(&self, chunk: &'a [u8]) -> std::slice::Chunks<'a, u8> {
        let size = if self.binding().is_some() { SLICE } else { chunk.len().max(1) };
        chunk.chunks(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn debt_is_paid_by_sleeping() {
        let limiter = RateLimiter::new(100 * 1024);
        let start = tokio::time::Instant::now();
        // 16 KiB of burst, then 84 KiB of debt... then more: 200 KiB total needs about 1.84 s at 100 KiB/s.
        for _ in 0..20 {
            limiter.acquire(10 * 1024).await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        assert!((1.7..2.1).contains(&elapsed), "took {elapsed}s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_rate_applies_to_the_next_chunk_and_none_lifts_the_limit() {
        let limiter = Arc::new(RateLimiter::new(100 * 1024));
        let limits = Limits::new(vec![limiter.clone()]);
        let timed = |bytes: usize| {
            let limits = limits.clone();
            async move {
                let start = Instant::now();
                for _ in 0..bytes / (10 * 1024) {
                    limits.acquire(10 * 1024).await;
                }
                start.elapsed().as_secs_f64()
            }
        };
        // 1 MiB at 100 KiB/s: about 10 s.
        let slow = timed(1024 * 1024).await;
        assert!((9.5..10.5).contains(&slow), "took {slow}s");
        limiter.set_rate(Some(1024 * 1024));
        assert_eq!(limits.binding(), Some(1024 * 1024));
        // The same at 1 MiB/s: about 1 s.
        let fast = timed(1024 * 1024).await;
        assert!((0.8..1.1).contains(&fast), "took {fast}s");
        limiter.set_rate(None);
        assert_eq!(limits.binding(), None);
        assert_eq!(timed(100 * 1024 * 1024).await, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lowest_of_several_limits_binds() {
        let server = Arc::new(RateLimiter::new(200 * 1024));
        let host = Arc::new(RateLimiter::unlimited());
        let limits = Limits::rate(Some(1024 * 1024)).and(Limits::new(vec![host.clone(), server.clone()]));
        assert_eq!(limits.binding(), Some(200 * 1024));
        let start = Instant::now();
        for _ in 0..200 {
            limits.acquire(10 * 1024).await;
        }
        // 2000 KiB at 200 KiB/s.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((9.5..10.5).contains(&elapsed), "took {elapsed}s");
        host.set_rate(Some(100 * 1024));
        assert_eq!(limits.binding(), Some(100 * 1024));
    }
}
