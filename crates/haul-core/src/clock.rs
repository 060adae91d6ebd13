//! Wall-clock times as haul stores and sends them: unix milliseconds (rows, leases) and seconds (signed links).
//!
//! Conversions only: callers pass `SystemTime::now()` (or a fixed time in tests), so this crate still reads no
//! clock of its own. A time before 1970 counts as 0 and one past the year 292 million saturates.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch.
pub fn unix_millis(at: SystemTime) -> i64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Whole seconds since the unix epoch.
pub fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn epoch_offsets_in_millis_and_seconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        assert_eq!(unix_millis(at), 1_700_000_000_500);
        assert_eq!(unix_secs(at), 1_700_000_000);
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
