//! The origin's fault knobs, and the small parsers the `haul-origin` binary needs for them.

use std::time::Duration;

use crate::tls::TlsMode;

/// Without a per-connection rate, "slow" responses are paced at this rate divided by
/// `slow_factor` (1 MiB/s / 10 = 100 KiB/s by default): slow enough to be a straggler next to an
/// unlimited loopback stream, fast enough that tests with small files still finish.
pub const SLOW_BASE_RATE: u64 = 1024 * 1024;

/// How the origin misbehaves. `Default` is a fast, honest host.
#[derive(Clone, Debug, PartialEq)]
pub struct OriginOptions {
    /// Mixed into every file's seed (content and ETag).
    pub seed: u64,
    /// Bytes/s for each response body.
    pub per_connection_rate: Option<u64>,
    /// Delay before the response headers of every GET/HEAD.
    pub first_byte_latency: Duration,
    /// Bytes/s shared by all response bodies together.
    pub aggregate_rate: Option<u64>,
    /// Cap on concurrent in-flight responses; beyond it requests get `503` + `Retry-After: 1`.
    pub max_connections: Option<usize>,
    /// Cap on concurrent in-flight responses to one client address (the TCP peer's IP), as a host that limits
    /// each client does; beyond it that address's requests get `503` + `Retry-After: 1` while others are served.
    pub max_connections_per_ip: Option<usize>,
    /// Fraction (0..=1) of TCP connections whose bodies are paced at the slow rate.
    pub slow_fraction: f64,
    /// Slow rate = `per_connection_rate` (or [`SLOW_BASE_RATE`]) / `slow_factor`.
    pub slow_factor: f64,
    /// Fraction (0..=1) of bodies (of at least 2 bytes) that are cut mid-body.
    pub cut_fraction: f64,
    /// Ignore `Range`/`If-Range`, never advertise `Accept-Ranges`.
    pub no_range: bool,
    /// Answer HEAD with 405.
    pub reject_head: bool,
    /// If > 0, HEAD and 200 responses declare `size + length_lie` bytes but send only `size`.
    pub length_lie: u64,
    /// Serve HTTPS (rustls, ALPN `http/1.1`) with a certificate of this kind; `None` serves plain HTTP.
    pub tls: Option<TlsMode>,
}

impl Default for OriginOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            per_connection_rate: None,
            first_byte_latency: Duration::ZERO,
            aggregate_rate: None,
            max_connections: None,
            max_connections_per_ip: None,
            slow_fraction: 0.0,
            slow_factor: 10.0,
            cut_fraction: 0.0,
            no_range: false,
            reject_head: false,
            length_lie: 0,
            tls: None,
        }
    }
}

impl OriginOptions {
    /// Rejects knob values that would make the origin's behaviour meaningless.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, f) in [("slow_fraction", self.slow_fraction), ("cut_fraction", self.cut_fraction)] {
            anyhow::ensure!((0.0..=1.0).contains(&f), "{name} must be within 0..=1, got {f}");
        }
        anyhow::ensure!(
            self.slow_factor.is_finite() && self.slow_factor > 0.0,
            "slow_factor must be > 0, got {}",
            self.slow_factor
        );
        anyhow::ensure!(self.per_connection_rate != Some(0), "per_connection_rate must be > 0");
        anyhow::ensure!(self.aggregate_rate != Some(0), "aggregate_rate must be > 0");
        anyhow::ensure!(self.max_connections_per_ip != Some(0), "max_connections_per_ip must be > 0");
        Ok(())
    }

    /// The rate for a body on a "slow" connection.
    pub(crate) fn slow_rate(&self) -> u64 {
        let base = self.per_connection_rate.unwrap_or(SLOW_BASE_RATE) as f64;
        ((base / self.slow_factor) as u64).max(1)
    }
}

/// Deterministic "every 1/f-th" selection: item `k` is picked if `floor((k+1)f) > floor(kf)`,
/// so exactly `floor(n * f)` of the first `n` items are picked, evenly spread.
pub(crate) fn pick(k: u64, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    if fraction >= 1.0 {
        return true;
    }
    ((k + 1) as f64 * fraction).floor() > (k as f64 * fraction).floor()
}

/// Parses a byte count or rate such as `1500`, `64K`, `1.5M`, `2G` or `4MiB` (suffixes are
/// powers of 1024, case-insensitive, an optional trailing `B`/`iB` and `/s` are accepted).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let lower = t.to_ascii_lowercase();
    let lower = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let num = num.trim();
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"));
    }
    let f: f64 = num.parse().map_err(|_| format!("{s:?} is not a byte count like 1500, 64K, 1.5M or 2G"))?;
    if !f.is_finite() || f < 0.0 {
        return Err(format!("{s:?} must be a non-negative number"));
    }
    Ok((f * mult as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_spreads_evenly() {
        let n = (0..100).filter(|&k| pick(k, 0.25)).count();
        assert_eq!(n, 25);
        assert!(!pick(0, 0.25) && !pick(1, 0.25) && !pick(2, 0.25) && pick(3, 0.25));
        assert!((0..10).all(|k| pick(k, 1.0)));
        assert!((0..10).all(|k| !pick(k, 0.0)));
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_byte_size("1500"), Ok(1500));
        assert_eq!(parse_byte_size("64K"), Ok(64 * 1024));
        assert_eq!(parse_byte_size("1M"), Ok(1 << 20));
        assert_eq!(parse_byte_size("1.5m"), Ok(3 << 19));
        assert_eq!(parse_byte_size("2G"), Ok(2 << 30));
        assert_eq!(parse_byte_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_byte_size("40MB/s"), Ok(40 << 20));
        assert!(parse_byte_size("fast").is_err());
        assert!(parse_byte_size("-1K").is_err());
    }
}
