//! A token bucket shared by all connections of one download, for `--limit-rate`.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Bytes per second shared by every connection of a download.
///
/// Callers take tokens *after* receiving a chunk: the balance may go negative (a debt), and the caller
/// sleeps until it is paid off. Sleeping stops reading the socket, so TCP flow control slows the sender;
/// nothing is buffered beyond the chunk already in hand.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    // A parking_lot Mutex (never poisoned): the critical section is a few arithmetic operations and never spans an await.
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second.max(1) as f64;
        // A tenth of a second of burst keeps pacing smooth without letting a fresh connection spike.
        let burst = (rate / 10.0).max(16.0 * 1024.0);
        Self { rate, burst, state: Mutex::new(Bucket { tokens: burst, last: Instant::now() }) }
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.rate as u64
    }

    /// Take `n` tokens and wait until the bucket is no longer in debt.
    pub async fn acquire(&self, n: usize) {
        let wait = {
            let mut bucket = self.state.lock();
            let now = Instant::now();
            let refill = now.duration_since(bucket.last).as_secs_f64() * self.rate;
            bucket.tokens = (bucket.tokens + refill).min(self.burst) - n as f64;
            bucket.last = now;
            if bucket.tokens < 0.0 { Some(Duration::from_secs_f64(-bucket.tokens / self.rate)) } else { None }
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
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
}
