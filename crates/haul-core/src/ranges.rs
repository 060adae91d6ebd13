//! A set of byte ranges already downloaded, kept normalised so resume bookkeeping stays simple.
//!
//! Ranges are half-open `[start, end)` pairs of byte offsets. The set keeps them sorted, disjoint and
//! non-adjacent: two ranges that touch are merged, so there is exactly one way to represent any set
//! of bytes, and equality of two sets is plain equality of their vectors.

use serde::{Deserialize, Deserializer, Serialize};

/// The byte ranges of a file that are already on disk.
///
/// It serialises as `[[start, end], ...]` so resume files stay readable. Deserialising normalises the
/// list, because a resume file may have been edited by hand or truncated by a crash, and a set with
/// overlapping or inverted ranges would make the planner re-download or skip bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RangeSet {
    #[serde(deserialize_with = "deserialize_normalised")]
    ranges: Vec<(u64, u64)>,
}

/// Reads any list of pairs and normalises it, dropping inverted and empty pairs rather than failing,
/// since losing a bogus entry only costs a re-download while refusing the file loses all progress.
fn deserialize_normalised<'de, D>(deserializer: D) -> Result<Vec<(u64, u64)>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = Vec::<(u64, u64)>::deserialize(deserializer)?;
    Ok(RangeSet::from_ranges(raw).ranges)
}

impl RangeSet {
    /// An empty set: nothing downloaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from arbitrary pairs, ignoring empty or inverted ones and merging overlapping or
    /// adjacent ones.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut pairs: Vec<(u64, u64)> = ranges.into_iter().filter(|&(s, e)| s < e).collect();
        // Sorting once and merging in a single pass is O(n log n), cheaper than n inserts.
        pairs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(pairs.len());
        for (start, end) in pairs {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Self { ranges: merged }
    }

    /// Records `[start, end)` as downloaded. Empty or inverted ranges are ignored.
    ///
    /// Two binary searches find the run of existing ranges that overlap or touch the new one, so the
    /// cost is O(log n) plus the number of ranges merged away (and one vector shift).
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // First range that ends at or after `start`: anything earlier neither overlaps nor touches.
        let lo = self.ranges.partition_point(|&(_, e)| e < start);
        // One past the last range that starts at or before `end`: anything later is strictly after.
        let hi = self.ranges.partition_point(|&(s, _)| s <= end);
        if lo >= hi {
            self.ranges.insert(lo, (start, end));
            return;
        }
        let merged = (start.min(self.ranges[lo].0), end.max(self.ranges[hi - 1].1));
        self.ranges[lo] = merged;
        self.ranges.drain(lo + 1..hi);
    }

    /// Total number of bytes covered.
    pub fn covered(&self) -> u64 {
        self.ranges.iter().map(|&(s, e)| e - s).sum()
    }

    /// Whether every byte of `[start, end)` is covered. An empty range is trivially covered.
    pub fn contains_range(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        // Because ranges are merged, a covered range must sit inside a single stored range: the
        // first one that ends after `start`.
        let idx = self.ranges.partition_point(|&(_, e)| e <= start);
        self.ranges.get(idx).is_some_and(|&(s, e)| s <= start && end <= e)
    }

    /// Whether all of `[0, total)` is covered. A zero-length file is always complete.
    pub fn is_complete(&self, total: u64) -> bool {
        self.contains_range(0, total)
    }

    /// The gaps in `[0, total)`, sorted, as half-open ranges.
    pub fn missing(&self, total: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut cursor = 0;
        for &(s, e) in &self.ranges {
            if s >= total {
                break;
            }
            if s > cursor {
                gaps.push((cursor, s));
            }
            cursor = e;
        }
        if cursor < total {
            gaps.push((cursor, total));
        }
        gaps
    }

    /// The normalised ranges, sorted by start.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Drops everything at or after `total`, for when the server reports a smaller file than a resume
    /// file remembers; bytes past the end cannot belong to the file.
    pub fn clamp(&mut self, total: u64) {
        let keep = self.ranges.partition_point(|&(s, _)| s < total);
        self.ranges.truncate(keep);
        if let Some(last) = self.ranges.last_mut() {
            last.1 = last.1.min(total);
        }
    }

    /// Whether nothing is covered.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts each pair in order and compares the normalised result, then checks that building the
    /// same set in one go (and in reverse order) agrees, so insert and from_ranges cannot drift apart.
    fn check(inserts: &[(u64, u64)], expected: &[(u64, u64)]) {
        let mut set = RangeSet::new();
        for &(s, e) in inserts {
            set.insert(s, e);
        }
        assert_eq!(set.ranges(), expected, "inserting {inserts:?}");
        assert_eq!(RangeSet::from_ranges(inserts.iter().copied()), set);
        let mut reversed = RangeSet::new();
        for &(s, e) in inserts.iter().rev() {
            reversed.insert(s, e);
        }
        assert_eq!(reversed, set, "reverse order of {inserts:?}");
        let covered: u64 = expected.iter().map(|&(s, e)| e - s).sum();
        assert_eq!(set.covered(), covered);
        assert_eq!(set.is_empty(), expected.is_empty());
    }

    #[test]
    fn insert_normalises() {
        // (inserted pairs, normalised result)
        type Ranges = &'static [(u64, u64)];
        let cases: &[(Ranges, Ranges)] = &[
            (&[], &[]),
            (&[(5, 5)], &[]),
            (&[(7, 3)], &[]),
            (&[(0, 10)], &[(0, 10)]),
            (&[(0, 10), (10, 20)], &[(0, 20)]),
            (&[(0, 10), (11, 20)], &[(0, 10), (11, 20)]),
            (&[(0, 10), (5, 15)], &[(0, 15)]),
            (&[(2, 3), (0, 10)], &[(0, 10)]),
            (&[(0, 1), (4, 5), (8, 9), (1, 8)], &[(0, 9)]),
            (&[(0, 1), (4, 5), (8, 9), (2, 3)], &[(0, 1), (2, 3), (4, 5), (8, 9)]),
            (&[(10, 20), (30, 40), (15, 35)], &[(10, 40)]),
            (&[(10, 20), (30, 40), (20, 30)], &[(10, 40)]),
            (&[(10, 20), (30, 40), (0, 50)], &[(0, 50)]),
            (&[(10, 20), (30, 40), (25, 26)], &[(10, 20), (25, 26), (30, 40)]),
            (&[(0, u64::MAX), (5, 6)], &[(0, u64::MAX)]),
        ];
        for (inserts, expected) in cases {
            check(inserts, expected);
        }
    }

    #[test]
    fn queries() {
        let set = RangeSet::from_ranges([(0, 10), (20, 30), (40, 50)]);
        // (start, end, contained)
        let cases = [
            (0, 10, true),
            (2, 8, true),
            (0, 11, false),
            (9, 21, false),
            (10, 20, false),
            (20, 30, true),
            (25, 25, true),
            (45, 50, true),
            (45, 51, false),
            (60, 70, false),
            (35, 36, false),
        ];
        for (s, e, want) in cases {
            assert_eq!(set.contains_range(s, e), want, "contains_range({s}, {e})");
        }
        assert!(set.is_complete(0));
        assert!(set.is_complete(10));
        assert!(!set.is_complete(11));
        assert!(RangeSet::new().is_complete(0));
        assert!(!RangeSet::new().is_complete(1));
    }

    #[test]
    fn missing() {
        let set = RangeSet::from_ranges([(10, 20), (30, 40)]);
        // (total, gaps)
        let cases: &[(u64, &[(u64, u64)])] = &[
            (0, &[]),
            (5, &[(0, 5)]),
            (10, &[(0, 10)]),
            (15, &[(0, 10)]),
            (25, &[(0, 10), (20, 25)]),
            (40, &[(0, 10), (20, 30)]),
            (50, &[(0, 10), (20, 30), (40, 50)]),
        ];
        for (total, gaps) in cases {
            assert_eq!(set.missing(*total), *gaps, "missing({total})");
        }
        assert_eq!(RangeSet::new().missing(7), vec![(0, 7)]);
        assert_eq!(RangeSet::from_ranges([(0, 7)]).missing(7), vec![]);
    }

    #[test]
    fn clamp() {
        // (total, remaining)
        let cases: &[(u64, &[(u64, u64)])] = &[
            (100, &[(0, 10), (20, 30)]),
            (30, &[(0, 10), (20, 30)]),
            (25, &[(0, 10), (20, 25)]),
            (20, &[(0, 10)]),
            (15, &[(0, 10)]),
            (5, &[(0, 5)]),
            (0, &[]),
        ];
        for (total, want) in cases {
            let mut set = RangeSet::from_ranges([(0, 10), (20, 30)]);
            set.clamp(*total);
            assert_eq!(set.ranges(), *want, "clamp({total})");
        }
    }

    #[test]
    fn serde_round_trip_and_repair() {
        let set = RangeSet::from_ranges([(0, 10), (20, 30)]);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, "[[0,10],[20,30]]");
        assert_eq!(serde_json::from_str::<RangeSet>(&json).unwrap(), set);

        // (stored text, what loading must produce)
        let cases: &[(&str, &[(u64, u64)])] = &[
            ("[]", &[]),
            ("[[20,30],[0,10]]", &[(0, 10), (20, 30)]),
            ("[[0,10],[5,15]]", &[(0, 15)]),
            ("[[0,10],[10,20]]", &[(0, 20)]),
            ("[[30,20],[0,10]]", &[(0, 10)]),
            ("[[5,5]]", &[]),
        ];
        for (text, want) in cases {
            let loaded: RangeSet = serde_json::from_str(text).unwrap();
            assert_eq!(loaded.ranges(), *want, "loading {text}");
        }
        for bad in ["[[1]]", "[[-1,2]]", "{}", "[[1,2,3]]"] {
            assert!(serde_json::from_str::<RangeSet>(bad).is_err(), "{bad}");
        }
    }
}
