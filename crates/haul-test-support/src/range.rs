//! `Range` and `If-Range` request header handling (RFC 9110 §14), limited to what a download
//! origin needs: one byte range per request.

use std::time::SystemTime;

/// What to answer to a request's `Range` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// 200 with the whole file (no, invalid or multi-range header: all allowed by the RFC).
    Full,
    /// 206 with file bytes `[start, end)`.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

fn parse_u64(s: &str) -> Option<u64> {
    // `u64::from_str` accepts a leading '+', which is not valid in a byte range.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Interprets a `Range` header against a file of `size` bytes.
pub(crate) fn parse_range(header: &str, size: u64) -> RangeOutcome {
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = parse_u64(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 || size == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial { start: size.saturating_sub(n), end: size };
    }
    let Some(start) = parse_u64(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        size
    } else {
        match parse_u64(last) {
            Some(l) if l >= start => l.saturating_add(1).min(size),
            _ => return RangeOutcome::Full,
        }
    };
    if start >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial { start, end }
}

/// Whether an `If-Range` value matches the current validators, i.e. whether the `Range` header
/// may be honoured. Weak ETags never match (the RFC requires a strong comparison).
pub(crate) fn if_range_matches(value: &str, etag: &str, last_modified: SystemTime) -> bool {
    let value = value.trim();
    if value.starts_with("W/") {
        return false;
    }
    if value.starts_with('"') {
        return value == etag;
    }
    httpdate::parse_http_date(value).is_ok_and(|t| t == last_modified)
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    #[test]
    fn ranges() {
        let p = |start, end| Partial { start, end };
        assert_eq!(parse_range("bytes=0-9", 100), p(0, 10));
        assert_eq!(parse_range("bytes=90-200", 100), p(90, 100));
        assert_eq!(parse_range("bytes=10-", 100), p(10, 100));
        assert_eq!(parse_range("bytes=-10", 100), p(90, 100));
        assert_eq!(parse_range("bytes=-1000", 100), p(0, 100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-3", 100), Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full);
        assert_eq!(parse_range("items=0-1", 100), Full);
        assert_eq!(parse_range("bytes=+1-2", 100), Full);
    }

    #[test]
    fn if_range() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
        let date = httpdate::fmt_http_date(t);
        assert!(if_range_matches("\"abc\"", "\"abc\"", t));
        assert!(!if_range_matches("\"abd\"", "\"abc\"", t));
        assert!(!if_range_matches("W/\"abc\"", "\"abc\"", t));
        assert!(if_range_matches(&date, "\"abc\"", t));
        assert!(!if_range_matches(&date, "\"abc\"", t + std::time::Duration::from_secs(1)));
        assert!(!if_range_matches("garbage", "\"abc\"", t));
    }
}
