//! Splitting the bytes still missing from a file into pieces that parallel connections can fetch.
//!
//! The planner works on half-open `[start, end)` ranges, normally the output of
//! [`RangeSet::missing`](crate::ranges::RangeSet::missing). It only decides where to cut; scheduling
//! and work stealing at run time live in the engine, which asks [`proportional_split`] where to cut a
//! segment that is already in flight.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Split the missing ranges into at most `n_segments` pieces, each at least `min_segment` bytes
/// (except where a missing range itself is smaller), balanced so pieces are about equal in size.
/// Pieces never cross a gap. Result sorted by start. `n_segments == 0` is treated as 1.
///
/// A piece can never span two missing ranges, so when there are more missing ranges than
/// `n_segments` the result has one piece per missing range: covering every missing byte matters
/// more than the piece count, and the engine queues the surplus. Empty ranges are ignored and
/// `min_segment == 0` is treated as 1.
pub fn split(missing: &[(u64, u64)], n_segments: usize, min_segment: u64) -> Vec<(u64, u64)> {
    let n_segments = n_segments.max(1);
    let min_segment = min_segment.max(1);
    let mut ranges: Vec<(u64, u64)> = missing.iter().copied().filter(|&(s, e)| s < e).collect();
    ranges.sort_unstable();

    // Every range starts with one piece. Extra pieces then go, one at a time, to the range whose
    // pieces are currently the largest, which greedily minimises the largest piece overall. A range
    // can take at most len / min_segment pieces, which keeps each of its pieces >= min_segment.
    let mut counts = vec![1u64; ranges.len()];
    let mut heap: BinaryHeap<Candidate> = ranges
        .iter()
        .enumerate()
        .map(|(index, &(s, e))| Candidate { len: e - s, pieces: 1, index })
        .filter(|c| c.can_split(min_segment))
        .collect();
    let mut spare = n_segments.saturating_sub(ranges.len());
    while spare > 0 {
        let Some(mut best) = heap.pop() else { break };
        best.pieces += 1;
        counts[best.index] = best.pieces;
        spare -= 1;
        if best.can_split(min_segment) {
            heap.push(best);
        }
    }

    let mut pieces = Vec::with_capacity(n_segments.max(ranges.len()));
    for (&(start, end), &count) in ranges.iter().zip(&counts) {
        // Spread the remainder one byte at a time over the first pieces, so sizes differ by at most 1.
        let len = end - start;
        let base = len / count;
        let extra = len % count;
        let mut cursor = start;
        for i in 0..count {
            let size = base + u64::from(i < extra);
            pieces.push((cursor, cursor + size));
            cursor += size;
        }
    }
    pieces
}

/// A missing range competing for one more piece; ordered by its current piece size so the heap
/// hands out the next piece to the range whose pieces are largest.
#[derive(Debug, PartialEq, Eq)]
struct Candidate {
    len: u64,
    pieces: u64,
    index: usize,
}

impl Candidate {
    /// Whether one more piece would still leave every piece at least `min_segment` bytes.
    fn can_split(&self, min_segment: u64) -> bool {
        self.len / (self.pieces + 1) >= min_segment
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // Compare len/pieces exactly by cross-multiplying in u128, so huge files cannot overflow
        // and no float rounding can make the order inconsistent. Ties go to the earlier range so
        // the plan is deterministic.
        let lhs = u128::from(self.len) * u128::from(other.pieces);
        let rhs = u128::from(other.len) * u128::from(self.pieces);
        lhs.cmp(&rhs).then_with(|| other.index.cmp(&self.index))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a thief should cut the unclaimed remainder `[claimed, end)` of a running connection so that
/// both finish together: the owner keeps the share its speed earns (`owner_rate / (owner_rate +
/// thief_rate)`), so a connection ten times slower than the thief keeps a tenth. Unknown or zero rates
/// count as equal (a halving). The cut is rounded up to a multiple of `align` (when `align > 1`) where that
/// stays inside, and is always strictly inside `(claimed, end)`. `None` when the remainder has fewer than
/// 2 bytes.
pub fn proportional_split(claimed: u64, end: u64, owner_rate: Option<f64>, thief_rate: f64, align: u64) -> Option<u64> {
    let remainder = end.checked_sub(claimed)?;
    if remainder < 2 {
        return None;
    }
    let share = match owner_rate {
        Some(owner) if owner > 0.0 && thief_rate > 0.0 && owner.is_finite() && thief_rate.is_finite() => {
            owner / (owner + thief_rate)
        }
        _ => 0.5,
    };
    let keep = ((remainder as f64 * share) as u64).clamp(1, remainder - 1);
    let cut = claimed + keep;
    let aligned = if align > 1 { cut.checked_next_multiple_of(align).unwrap_or(cut) } else { cut };
    Some(if aligned < end { aligned } else { cut })
}

/// How many connections a file of `size` bytes deserves: `ceil(size / min_segment)` capped to
/// `max`, at least 1. `min_segment == 0` is treated as 1.
pub fn useful_connections(size: u64, min_segment: u64, max: usize) -> usize {
    let wanted = size.div_ceil(min_segment.max(1));
    let cap = max.max(1);
    usize::try_from(wanted).unwrap_or(usize::MAX).clamp(1, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `split` and checks both the exact answer and the invariants every plan must satisfy:
    /// sorted, disjoint, covering exactly the missing bytes, and no piece crossing a gap.
    fn check(missing: &[(u64, u64)], n: usize, min: u64, expected: &[(u64, u64)]) {
        let got = split(missing, n, min);
        assert_eq!(got, expected, "split({missing:?}, {n}, {min})");
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].0), "sorted and disjoint: {got:?}");
        let want_bytes: u64 = missing.iter().filter(|r| r.0 < r.1).map(|r| r.1 - r.0).sum();
        let got_bytes: u64 = got.iter().map(|r| r.1 - r.0).sum();
        assert_eq!(got_bytes, want_bytes, "coverage of {missing:?}");
        for &(s, e) in &got {
            assert!(s < e, "empty piece in {got:?}");
            assert!(
                missing.iter().any(|&(ms, me)| ms <= s && e <= me),
                "piece ({s}, {e}) crosses a gap in {missing:?}"
            );
        }
    }

    #[test]
    fn split_cases() {
        // (missing, n_segments, min_segment, expected)
        type Case = (&'static [(u64, u64)], usize, u64, &'static [(u64, u64)]);
        let cases: &[Case] = &[
            (&[], 4, 1, &[]),
            (&[(0, 100)], 1, 1, &[(0, 100)]),
            (&[(0, 100)], 0, 1, &[(0, 100)]),
            (&[(0, 100)], 4, 1, &[(0, 25), (25, 50), (50, 75), (75, 100)]),
            (&[(0, 10)], 3, 1, &[(0, 4), (4, 7), (7, 10)]),
            // min_segment limits the number of pieces.
            (&[(0, 100)], 8, 30, &[(0, 34), (34, 67), (67, 100)]),
            (&[(0, 100)], 8, 100, &[(0, 100)]),
            // A range smaller than min_segment is still fetched, as one piece.
            (&[(0, 10)], 8, 100, &[(0, 10)]),
            (&[(0, 100)], 8, 0, &[(0, 13), (13, 26), (26, 39), (39, 52), (52, 64), (64, 76), (76, 88), (88, 100)]),
            // Extra pieces go to the bigger range.
            (&[(0, 10), (100, 400)], 4, 1, &[(0, 10), (100, 200), (200, 300), (300, 400)]),
            (&[(0, 200), (300, 400)], 3, 1, &[(0, 100), (100, 200), (300, 400)]),
            (&[(0, 200), (300, 500)], 4, 1, &[(0, 100), (100, 200), (300, 400), (400, 500)]),
            // More gaps than segments: one piece per gap.
            (&[(0, 1), (2, 3), (4, 5)], 2, 1, &[(0, 1), (2, 3), (4, 5)]),
            // Unsorted input and empty ranges are tolerated.
            (&[(50, 60), (0, 10), (20, 20)], 2, 1, &[(0, 10), (50, 60)]),
            (&[(0, u64::MAX)], 2, 1, &[(0, u64::MAX / 2 + 1), (u64::MAX / 2 + 1, u64::MAX)]),
        ];
        for (missing, n, min, expected) in cases {
            check(missing, *n, *min, expected);
        }
    }

    #[test]
    fn split_respects_min_segment_and_count() {
        for n in 1..12 {
            for min in [1, 7, 50, 333] {
                let missing = [(0, 1000), (1500, 1600), (2000, 2003)];
                let got = split(&missing, n, min);
                assert!(got.len() <= n.max(missing.len()), "n={n} min={min}: {got:?}");
                for &(s, e) in &got {
                    let whole = missing.iter().any(|&(ms, me)| (ms, me) == (s, e));
                    assert!(whole || e - s >= min, "n={n} min={min}: {got:?}");
                }
            }
        }
    }

    #[test]
    fn proportional_split_cases() {
        // (claimed, end, owner_rate, thief_rate, align, expected)
        let cases = [
            (0, 100, None, 5.0, 1, Some(50)),
            (0, 100, Some(1.0), 1.0, 1, Some(50)),
            (0, 110, Some(1.0), 10.0, 1, Some(10)),
            (0, 100, Some(10.0), 1.0, 1, Some(90)),
            (0, 100, Some(0.0), 1.0, 1, Some(50)),
            (0, 100, Some(f64::NAN), 1.0, 1, Some(50)),
            (0, 100, Some(1.0), 0.0, 1, Some(50)),
            (0, 1, None, 1.0, 1, None),
            (0, 2, None, 1.0, 1, Some(1)),
            (100, 100, None, 1.0, 1, None),
            (200, 100, None, 1.0, 1, None),
            // A slow owner with a tiny share still keeps at least one byte.
            (0, 100, Some(1e-9), 1.0, 1, Some(1)),
            // Rounded up to the alignment when that stays inside...
            (0, 3000, None, 1.0, 1024, Some(2048)),
            // ...and left unaligned when it would not.
            (0, 3000, None, 1.0, 4096, Some(1500)),
            (u64::MAX - 10, u64::MAX, None, 1.0, 1 << 63, Some(u64::MAX - 5)),
        ];
        for (claimed, end, owner, thief, align, want) in cases {
            let got = proportional_split(claimed, end, owner, thief, align);
            assert_eq!(got, want, "proportional_split({claimed}, {end}, {owner:?}, {thief}, {align})");
            if let Some(cut) = got {
                assert!(claimed < cut && cut < end);
            }
        }
    }

    #[test]
    fn useful_connections_cases() {
        // (size, min_segment, max, expected)
        let cases = [
            (0, 100, 8, 1),
            (1, 100, 8, 1),
            (100, 100, 8, 1),
            (101, 100, 8, 2),
            (800, 100, 8, 8),
            (10_000, 100, 8, 8),
            (10_000, 100, 0, 1),
            (10, 0, 4, 4),
            (u64::MAX, 1, usize::MAX, usize::try_from(u64::MAX).unwrap_or(usize::MAX)),
        ];
        for (size, min, max, want) in cases {
            assert_eq!(useful_connections(size, min, max), want, "useful_connections({size}, {min}, {max})");
        }
    }
}
