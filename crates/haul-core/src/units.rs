//! Sizes, rates and durations as people write and read them: parsing "1.5M" and printing "12.3 MiB".
//!
//! Parsing follows curl's `--limit-rate`: K, M, G and T are powers of 1024 whatever their spelling,
//! because users copy limits between tools and expect them to mean the same thing. Printing always
//! uses binary units (KiB, MiB, ...) with one decimal, so columns in a progress display keep a
//! steady shape.

use std::time::Duration;

/// Why a size or rate given by the user could not be understood. `what` is "size" or "rate".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitParseError {
    #[error("{what} is empty; give a number with an optional K, M, G or T suffix, e.g. 500K or 1.5M")]
    Empty { what: &'static str },
    #[error("{what} cannot be negative, got {input:?}")]
    Negative { what: &'static str, input: String },
    #[error(
        "invalid {what} {input:?}: expected a number with an optional K, M, G or T suffix (powers of 1024), e.g. 500K or 1.5M"
    )]
    Invalid { what: &'static str, input: String },
    #[error(
        "unknown unit {suffix:?} in {what} {input:?}; use B, K, M, G or T, optionally followed by B or iB and /s (e.g. 2MiB, 800KB/s)"
    )]
    UnknownSuffix { what: &'static str, input: String, suffix: String },
    #[error("{what} {input:?} is too large; the largest possible value is about 16E (2^64 - 1 bytes)")]
    TooLarge { what: &'static str, input: String },
    #[error("rate must be greater than zero, got {input:?}; leave the limit out to download at full speed")]
    ZeroRate { input: String },
}

/// "5M", "500k", "1.5G", "2MiB", "800KB/s", "1048576" → bytes per second; K/M/G/T are powers of
/// 1024 (like curl's --limit-rate); optional trailing "B", "iB", "/s"; 0, negatives and garbage are
/// rejected with a clear [`UnitParseError`]. Fractions of a byte are rounded down.
pub fn parse_rate(text: &str) -> Result<u64, UnitParseError> {
    let rate = parse_quantity(text, "rate")?;
    if rate == 0 {
        return Err(UnitParseError::ZeroRate { input: text.trim().to_string() });
    }
    Ok(rate)
}

/// A byte count in the same grammar as [`parse_rate`], where 0 is allowed.
pub fn parse_size(text: &str) -> Result<u64, UnitParseError> {
    parse_quantity(text, "size")
}

/// Most fraction digits that affect the result; more cannot change the value by a whole byte
/// even at the T multiplier, and capping them keeps the arithmetic inside u128.
const MAX_FRACTION_DIGITS: usize = 18;

fn parse_quantity(text: &str, what: &'static str) -> Result<u64, UnitParseError> {
    let input = text.trim();
    let invalid = || UnitParseError::Invalid { what, input: input.to_string() };
    let too_large = || UnitParseError::TooLarge { what, input: input.to_string() };
    if input.is_empty() {
        return Err(UnitParseError::Empty { what });
    }
    if input.starts_with('-') {
        return Err(UnitParseError::Negative { what, input: input.to_string() });
    }

    let int_end = input.find(|c: char| !c.is_ascii_digit()).unwrap_or(input.len());
    let (int_digits, rest) = input.split_at(int_end);
    let (frac_digits, rest) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let frac_end = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
            after_dot.split_at(frac_end)
        }
        None => ("", rest),
    };
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(invalid());
    }
    let suffix = rest.trim_start();
    let multiplier = multiplier(suffix).ok_or_else(|| UnitParseError::UnknownSuffix {
        what,
        input: input.to_string(),
        suffix: suffix.to_string(),
    })?;

    // Whole part: exact integer arithmetic, so "1048576" and "1G" are never off by float rounding.
    let whole: u128 = if int_digits.is_empty() { 0 } else { int_digits.parse().map_err(|_| too_large())? };
    let whole = whole.checked_mul(multiplier).ok_or_else(too_large)?;

    // Fraction: digits / 10^len of the unit, truncated to whole bytes.
    let frac_digits = &frac_digits[..frac_digits.len().min(MAX_FRACTION_DIGITS)];
    let fraction = if frac_digits.is_empty() {
        0
    } else {
        let numerator: u128 = frac_digits.parse().map_err(|_| invalid())?;
        let scale = 10u128.pow(u32::try_from(frac_digits.len()).map_err(|_| invalid())?);
        numerator * multiplier / scale
    };

    let total = whole.checked_add(fraction).ok_or_else(too_large)?;
    u64::try_from(total).map_err(|_| too_large())
}

/// The byte multiplier for a unit suffix such as "", "B", "k", "MiB", "GB/s", or `None`.
fn multiplier(suffix: &str) -> Option<u128> {
    let lower = suffix.to_ascii_lowercase();
    let unit = lower.strip_suffix("/s").unwrap_or(&lower);
    let (prefix, tail) = match unit.chars().next() {
        Some(c @ ('k' | 'm' | 'g' | 't')) => (Some(c), &unit[1..]),
        _ => (None, unit),
    };
    let power = match prefix {
        None => 0,
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some(_) => 4,
    };
    let tail_ok = match prefix {
        // A bare number or "B": plain bytes.
        None => matches!(tail, "" | "b"),
        Some(_) => matches!(tail, "" | "b" | "i" | "ib"),
    };
    tail_ok.then(|| 1024u128.pow(power))
}

/// Binary unit names, one per power of 1024; u64 tops out just below 16 EiB.
const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// A byte count for people: "0 B", "1023 B", "1.0 KiB", "12.3 MiB", "1.5 GiB". Whole bytes below
/// 1 KiB, otherwise one decimal in the largest unit that keeps the number below 1024.
pub fn format_bytes(n: u64) -> String {
    // Precision loss converting to f64 is far below the one decimal shown.
    human(n as f64)
}

/// A transfer rate for people: "0 B/s", "512 B/s", "12.3 MiB/s". Non-finite or negative rates (an
/// elapsed time of zero, a clock step) show as "0 B/s" rather than "inf" or "NaN".
pub fn format_rate(bytes_per_sec: f64) -> String {
    let rate = if bytes_per_sec.is_finite() && bytes_per_sec > 0.0 { bytes_per_sec } else { 0.0 };
    format!("{}/s", human(rate))
}

fn human(value: f64) -> String {
    if value.round() < 1024.0 {
        return format!("{} B", value.round() as u64);
    }
    let mut scaled = value / 1024.0;
    let mut unit = 1;
    // Compare the value as it will be printed, so 1023.96 KiB shows as "1.0 MiB", not "1024.0 KiB".
    while (scaled * 10.0).round() >= 10240.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{scaled:.1} {}", UNITS[unit])
}

/// A duration for people, at most two fields: "45s", "3m 05s", "2h 01m". Sub-second parts are
/// dropped, since progress displays update every second anyway.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KI: u64 = 1024;
    const MI: u64 = 1024 * KI;
    const GI: u64 = 1024 * MI;
    const TI: u64 = 1024 * GI;

    /// Parses `text` as a size and as a rate; a rate must agree with the size except that zero is
    /// refused.
    fn check(text: &str, expected: Result<u64, &str>) {
        let size = parse_size(text);
        match expected {
            Ok(bytes) => {
                assert_eq!(size, Ok(bytes), "parse_size({text:?})");
                let rate = parse_rate(text);
                if bytes == 0 {
                    assert!(matches!(rate, Err(UnitParseError::ZeroRate { .. })), "{text:?}");
                } else {
                    assert_eq!(rate, Ok(bytes), "parse_rate({text:?})");
                }
            }
            Err(message) => {
                let err = size.expect_err(text).to_string();
                assert!(err.contains(message), "parse_size({text:?}): {err}");
            }
        }
    }

    #[test]
    fn parsing() {
        let cases: &[(&str, Result<u64, &str>)] = &[
            ("1048576", Ok(MI)),
            ("0", Ok(0)),
            ("5M", Ok(5 * MI)),
            ("500k", Ok(500 * KI)),
            ("500K", Ok(500 * KI)),
            ("1.5G", Ok(3 * GI / 2)),
            ("2MiB", Ok(2 * MI)),
            ("2mib", Ok(2 * MI)),
            ("2Mi", Ok(2 * MI)),
            ("800KB/s", Ok(800 * KI)),
            ("800kb/S", Ok(800 * KI)),
            ("1T", Ok(TI)),
            ("100B", Ok(100)),
            ("100b/s", Ok(100)),
            ("100/s", Ok(100)),
            ("  7 M  ", Ok(7 * MI)),
            (".5K", Ok(512)),
            ("5.K", Ok(5 * KI)),
            ("0.1K", Ok(102)),
            ("1.999999999999999999999999K", Ok(2047)),
            ("0.5", Ok(0)),
            ("0k", Ok(0)),
            ("16383P", Err("unknown unit \"P\"")),
            ("17179869183G", Ok(17_179_869_183 * GI)),
            ("17179869184G", Err("too large")),
            ("18446744073709551615", Ok(u64::MAX)),
            ("18446744073709551616", Err("too large")),
            ("99999999999999999999999999999999999999999999", Err("too large")),
            ("", Err("size is empty")),
            ("   ", Err("size is empty")),
            ("-5M", Err("size cannot be negative, got \"-5M\"")),
            ("abc", Err("invalid size \"abc\": expected a number")),
            ("M", Err("invalid size \"M\"")),
            (".", Err("invalid size")),
            ("+5", Err("invalid size")),
            ("5X", Err("unknown unit \"X\" in size \"5X\"")),
            ("5 MB/h", Err("unknown unit \"MB/h\"")),
            ("5iB", Err("unknown unit \"iB\"")),
            ("5KK", Err("unknown unit")),
            ("1e6", Err("unknown unit \"e6\"")),
            ("1,5M", Err("unknown unit \",5M\"")),
            ("1.2.3", Err("unknown unit \".3\"")),
        ];
        for (text, expected) in cases {
            check(text, *expected);
        }
    }

    #[test]
    fn zero_rate_is_refused_with_advice() {
        for text in ["0", "0M", "0.0001K", "0B/s"] {
            let err = parse_rate(text).unwrap_err().to_string();
            assert!(err.starts_with("rate must be greater than zero"), "{err}");
        }
        let err = parse_rate("-1").unwrap_err().to_string();
        assert_eq!(err, "rate cannot be negative, got \"-1\"");
    }

    #[test]
    fn formatting_bytes_and_rates() {
        let cases = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (MI - 1, "1.0 MiB"),
            (12 * MI + 3 * MI / 10, "12.3 MiB"),
            (1023 * MI, "1023.0 MiB"),
            (3 * GI / 2, "1.5 GiB"),
            (5 * TI, "5.0 TiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (n, want) in cases {
            assert_eq!(format_bytes(n), want, "format_bytes({n})");
            assert_eq!(format_rate(n as f64), format!("{want}/s"), "format_rate({n})");
        }
        let rates = [
            (0.4, "0 B/s"),
            (512.4, "512 B/s"),
            (1023.6, "1.0 KiB/s"),
            (-5.0, "0 B/s"),
            (f64::NAN, "0 B/s"),
            (f64::INFINITY, "0 B/s"),
        ];
        for (rate, want) in rates {
            assert_eq!(format_rate(rate), want, "format_rate({rate})");
        }
    }

    #[test]
    fn formatting_durations() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (59, "59s"),
            (60, "1m 00s"),
            (185, "3m 05s"),
            (3599, "59m 59s"),
            (3600, "1h 00m"),
            (7260, "2h 01m"),
            (7299, "2h 01m"),
            (100 * 3600, "100h 00m"),
        ];
        for (secs, want) in cases {
            assert_eq!(format_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(format_duration(Duration::from_millis(45_999)), "45s");
    }
}
