//! The swarm's decisions as plain functions of what its monitor measured: how many connections to run (the
//! start, the growth while it pays, the host's refusals and the recovery after them) and which connections are
//! too slow to keep. No I/O and no locks: the tests below drive the policy on tokio's paused clock against a
//! simulated host, so the timing rules are checked without timing flakiness.

use std::time::Duration;

use tokio::time::Instant;

/// How long the monitor measures throughput before deciding whether more connections paid.
pub(super) const WINDOW: Duration = Duration::from_millis(300);
/// A connection slower than this fraction of the median is replaced.
const SLOW_RATIO: f64 = 0.3;
/// A connection is judged once it has streamed this long. Two of the monitor's ticks: long enough that a
/// connection 10x slower than its peers stands out (a 4 MiB/s connection has 800 KiB by then, a 400 KiB/s one
/// 80 KiB), short enough that a one-second transfer still gains from replacing it.
pub(super) const SLOW_GRACE: Duration = Duration::from_millis(200);
/// Before the host's answer time is known, a slow connection is replaced only when it would need at least this
/// long for what it has left; a nearly finished range is cheaper to let run than to ask for again.
const SLOW_WORTH_SECS: f64 = 0.5;
/// After the last refusal, the ceiling is probed upwards by one connection this often.
const RECOVER_EVERY: Duration = Duration::from_secs(2);
/// Doubling the count must raise throughput by this factor to count as paying: below it, the added connections
/// got under half of what each of the others had, so the host (or the link) is near its cap.
const GROWTH_PAYS: f64 = 1.5;

/// What a download learned about its host's connection count, kept per host for the next download there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Learned {
    /// The count the download ran with at its end.
    pub count: usize,
    /// Whether the count settled (more connections stopped paying, or the host refused more), rather than the
    /// download ending while it still grew.
    pub settled: bool,
}

/// How many connections run now, the most the host is believed to accept, and the ramp between them.
#[derive(Debug)]
pub(super) struct Count {
    /// Connections to run now.
    pub target: usize,
    /// The most the host is believed to accept: lowered by refusals, probed upwards after them.
    pub ceiling: usize,
    /// The most the user allows (a fixed `--connections`, else `--max-connections`).
    most: usize,
    last_refusal: Option<Instant>,
    /// The most connections seen streaming at once: the host accepted that many.
    accepted: usize,
    /// When a refusal was last taken for a moment's overlap rather than a limit (see [`Count::refused`]).
    last_overlap: Option<Instant>,
    /// Throughput measured before the last increase; `None` before the first.
    before: Option<f64>,
    last_change: Option<Instant>,
    /// Whether the count may still grow by measurement (adaptive and not settled).
    growing: bool,
    /// Whether some window measured every wanted connection streaming: only then is the count worth remembering.
    measured: bool,
}

/// One window's measurement, as the ramp sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Measure {
    /// Bytes per second over the window, all connections together.
    pub rate: f64,
    /// Connections whose response has begun.
    pub streaming: usize,
    /// Bytes not yet written.
    pub remaining: u64,
    /// The smallest piece worth a connection of its own.
    pub min_segment: u64,
}

impl Count {
    /// A count the user fixed: `n` connections (fewer when the file has fewer useful pieces), never grown.
    pub(super) fn fixed(n: usize, useful: usize) -> Self {
        let n = n.max(1);
        Self::new(n.min(useful).max(1), n, n, false)
    }

    /// The adaptive count: start at what this host's last download settled on, else at `initial`, and grow
    /// while growth pays, up to `most`.
    pub(super) fn adaptive(initial: usize, most: usize, useful: usize, learned: Option<Learned>) -> Self {
        let most = most.max(1);
        match learned {
            Some(learned) => {
                let start = learned.count.clamp(1, most);
                Self::new(start.min(useful).max(1), most, most, !learned.settled)
            }
            None => Self::new(initial.min(useful).max(1), most, most, true),
        }
    }

    fn new(target: usize, ceiling: usize, most: usize, growing: bool) -> Self {
        Self {
            target,
            ceiling,
            most,
            last_refusal: None,
            accepted: 0,
            last_overlap: None,
            before: None,
            last_change: None,
            growing,
            measured: false,
        }
    }

    /// Connections streaming now; the host has accepted at least that many at once.
    pub(super) fn streaming(&mut self, n: usize) {
        self.accepted = self.accepted.max(n);
    }

    /// The host refused a connection while `open` were open: lower the ceiling by one below that. Returns
    /// whether it did; `false` means the refusal is taken for a moment's overlap and the connection should ask
    /// again after the host's wait.
    ///
    /// A host counts a finished or dropped connection for a moment after it is gone, so a connection that
    /// takes over a range (a replacement, a thief whose last response just ended) is sometimes refused although
    /// no more are open than the host accepted before. The first such refusal in [`RECOVER_EVERY`] leaves the
    /// ceiling alone; otherwise every download would end one below the host's limit and, remembered, start
    /// the next one lower still. Above what was accepted, it is one step per refusal, not straight down to the
    /// connections that were streaming: N refusals from a burst of N connections above the limit land exactly
    /// on it.
    pub(super) fn refused(&mut self, open: usize, now: Instant) -> bool {
        let recent = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) <= RECOVER_EVERY);
        if open <= self.accepted && !recent(self.last_overlap) {
            self.last_overlap = Some(now);
            return false;
        }
        self.ceiling = self.ceiling.min(open).saturating_sub(1).max(1);
        self.target = self.target.min(self.ceiling);
        self.last_refusal = Some(now);
        self.growing = false;
        true
    }

    /// After refusals stop, probe upwards one connection every [`RECOVER_EVERY`]: a refusal may have been
    /// momentary, and at a real limit this costs one refused request per probe.
    pub(super) fn recover(&mut self, now: Instant) {
        if self.last_refusal.is_some_and(|at| now.duration_since(at) > RECOVER_EVERY) && self.ceiling < self.most {
            self.ceiling += 1;
            self.target = (self.target + 1).min(self.ceiling);
            self.last_refusal = Some(now);
        }
    }

    /// One window's decision: double the count while doubling raised throughput by [`GROWTH_PAYS`], hold once
    /// it did not. The first doubling is a measurement of its own, made without a figure to compare. Waits while connections are still starting, and when what is left would not give each of
    /// twice as many connections two pieces.
    pub(super) fn step(&mut self, measure: Measure, now: Instant) {
        self.streaming(measure.streaming);
        if measure.streaming < self.target {
            return;
        }
        self.measured = true;
        if !self.growing || self.last_change.is_some_and(|at| now.duration_since(at) < WINDOW) {
            return;
        }
        if measure.remaining < (self.target as u64) * measure.min_segment * 2 {
            return;
        }
        if self.before.is_some_and(|before| measure.rate <= before * GROWTH_PAYS) {
            self.growing = false;
            tracing::debug!(target = self.target, rate = measure.rate, "more connections stopped paying; holding");
            return;
        }
        let next = (self.target * 2).min(self.ceiling);
        if next > self.target {
            tracing::debug!(from = self.target, to = next, rate = measure.rate, "adding connections");
            self.target = next;
            self.before = Some(measure.rate);
            self.last_change = Some(now);
        }
    }

    /// What to remember about the host once the download ends; `None` when no window measured the count (a
    /// transfer too short to tell anything).
    pub(super) fn learned(&self) -> Option<Learned> {
        self.measured.then_some(Learned { count: self.target, settled: !self.growing })
    }
}

/// One connection as the slow-connection check sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Conn {
    pub id: u64,
    /// How long its current response has been streaming.
    pub streaming_for: Duration,
    /// Bytes per second over that time.
    pub rate: f64,
    /// Bytes of its range not yet claimed.
    pub remaining: u64,
}

/// The connections to replace: those that streamed at least [`SLOW_GRACE`] at under [`SLOW_RATIO`] of the
/// median of such connections, when at least four can be compared and a new connection would finish the rest
/// sooner with time to spare: it waits `answer_secs` (the host's answer time) and then runs at the median; the
/// slow one must need more than that plus another answer time. At most a quarter at once: a host that is slow
/// everywhere is not fixed by churn. Also returns that median, the speed a new connection can expect.
///
/// At the end of a download too few connections are left to compare; then `known_median`, the median of an
/// earlier look, judges the last ones (one at a time), so a slow connection is not left alone with the tail.
pub(super) fn slow_connections(
    conns: &[Conn],
    answer_secs: Option<f64>,
    known_median: Option<f64>,
) -> (Option<f64>, Vec<u64>) {
    let mut judged: Vec<&Conn> = conns.iter().filter(|conn| conn.streaming_for >= SLOW_GRACE).collect();
    judged.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let (fresh, median) = match (judged.len(), known_median) {
        (0, _) => return (None, Vec::new()),
        (n, _) if n >= 4 => (true, judged[n / 2].rate),
        (_, Some(known)) if known > 0.0 => (false, known),
        _ => return (None, Vec::new()),
    };
    let budget = (judged.len() / 4).max(1);
    let slow = judged
        .iter()
        .filter(|conn| {
            let left = conn.remaining as f64 / conn.rate.max(1.0);
            let worth = match answer_secs {
                Some(answer) => left > 2.0 * answer + conn.remaining as f64 / median.max(1.0),
                None => left > SLOW_WORTH_SECS,
            };
            conn.rate < SLOW_RATIO * median && worth
        })
        .take(budget)
        .map(|conn| conn.id)
        .collect();
    (fresh.then_some(median), slow)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    /// A host for the ramp: each connection gets `per_connection` bytes/s, all together at most `aggregate`,
    /// and it refuses connections beyond `limit`.
    struct Host {
        per_connection: f64,
        aggregate: f64,
        limit: usize,
    }

    impl Host {
        fn rate(&self, connections: usize) -> f64 {
            (connections.min(self.limit) as f64 * self.per_connection).min(self.aggregate)
        }
    }

    /// Runs a download of `size` bytes from `host` window by window on the paused clock, as the monitor does:
    /// connections above the host's limit are refused (one refusal each), every other wanted connection
    /// streams. Returns the count after each window.
    async fn simulate(host: &Host, count: &mut Count, size: u64) -> Vec<usize> {
        let mut remaining = size;
        let mut counts = Vec::new();
        while remaining > 0 && counts.len() < 100 {
            let now = Instant::now();
            for open in (host.limit + 1..=count.target).rev() {
                count.refused(open, now);
            }
            tokio::time::advance(WINDOW).await;
            let now = Instant::now();
            let rate = host.rate(count.target);
            remaining = remaining.saturating_sub((rate * WINDOW.as_secs_f64()) as u64);
            let measure = Measure { rate, streaming: count.target, remaining, min_segment: 1 << 20 };
            count.step(measure, now);
            count.recover(now);
            counts.push(count.target);
        }
        counts
    }

    #[tokio::test(start_paused = true)]
    async fn grows_while_it_pays_and_holds_at_the_aggregate_cap() {
        // 1 MiB/s per connection, 40 MiB/s in all: 32 connections give 32 MiB/s, 64 give 40 (+25%, paid), and
        // no more is allowed.
        let host = Host { per_connection: MIB, aggregate: 40.0 * MIB, limit: 1000 };
        let counts = simulate(&host, &mut Count::adaptive(32, 64, 1000, None), 1 << 30).await;
        assert_eq!(counts[0], 64, "the first window doubles: {counts:?}");
        assert!(counts.iter().all(|&n| n <= 64), "never above --max-connections: {counts:?}");
        // With room to grow but no gain, the count holds instead of doubling again.
        let mut count = Count::adaptive(32, 256, 1000, None);
        let counts = simulate(&host, &mut count, 1 << 30).await;
        assert_eq!(&counts[..3], &[64, 64, 64], "held where 128 would not pay: {counts:?}");
        // A host that gives every connection its rate: doubling pays each time, up to --max-connections.
        let open = Host { per_connection: MIB, aggregate: 1000.0 * MIB, limit: 1000 };
        let counts = simulate(&open, &mut Count::adaptive(32, 256, 1000, None), 1 << 30).await;
        assert_eq!(&counts[..4], &[64, 128, 256, 256], "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn one_connection_filling_the_link_holds_where_it_started() {
        // A host where one connection already fills the link: doubling never pays after the first try.
        let host = Host { per_connection: 500.0 * MIB, aggregate: 500.0 * MIB, limit: 1000 };
        let counts = simulate(&host, &mut Count::adaptive(32, 64, 1000, None), 4 << 30).await;
        assert_eq!(counts.first(), Some(&64), "{counts:?}");
        assert!(counts.iter().all(|&n| n == 64), "no growth past a step that did not pay: {counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_land_on_the_hosts_limit_and_recovery_probes_slowly() {
        let host = Host { per_connection: MIB, aggregate: 100.0 * MIB, limit: 20 };
        let mut count = Count::adaptive(32, 64, 1000, None);
        let start = Instant::now();
        for open in (21..=32).rev() {
            count.refused(open, start);
        }
        assert_eq!((count.target, count.ceiling), (20, 20), "12 refusals from 32 land on 20");
        // A refusal stops the growth: the ramp does not try 40 next window.
        tokio::time::advance(WINDOW).await;
        count.step(
            Measure { rate: host.rate(20), streaming: 20, remaining: 1 << 30, min_segment: 1 << 20 },
            Instant::now(),
        );
        assert_eq!(count.target, 20);
        // Two seconds without a refusal: one more connection is tried, and no sooner.
        tokio::time::advance(Duration::from_millis(1500)).await;
        count.recover(Instant::now());
        assert_eq!(count.target, 20, "no probe within two seconds of the last refusal");
        tokio::time::advance(Duration::from_millis(600)).await;
        count.recover(Instant::now());
        assert_eq!(count.target, 21, "one probe after two quiet seconds");
        // The probe is refused: back to 20, and the next probe waits again.
        assert!(count.refused(21, Instant::now()));
        assert_eq!(count.target, 20);
        tokio::time::advance(Duration::from_secs(1)).await;
        count.recover(Instant::now());
        assert_eq!(count.target, 20);
        // In a whole simulated download, the count never stays above the limit for more than a probe.
        let counts = simulate(&host, &mut Count::adaptive(32, 64, 1000, None), 256 << 20).await;
        assert!(counts.iter().all(|&n| n <= 21), "{counts:?}");
        assert_eq!(counts[0], 20, "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn remembered_count_is_where_the_next_download_starts() {
        let host = Host { per_connection: MIB, aggregate: 40.0 * MIB, limit: 1000 };
        let mut count = Count::adaptive(32, 256, 1000, None);
        assert_eq!(count.learned(), None, "nothing measured, nothing to remember");
        let counts = simulate(&host, &mut count, 1 << 30).await;
        assert_eq!(counts.last(), Some(&64));
        let first = count.learned().expect("a measured download has something to remember");
        assert_eq!(first, Learned { count: 64, settled: true });
        // The next download from the host starts at 64 and does not try 128 again.
        let counts = simulate(&host, &mut Count::adaptive(32, 256, 1000, Some(first)), 1 << 30).await;
        assert!(counts.iter().all(|&n| n == 64), "{counts:?}");
        // A count that was still growing keeps growing from where it was.
        let unsettled = Learned { count: 16, settled: false };
        let counts = simulate(&host, &mut Count::adaptive(32, 64, 1000, Some(unsettled)), 1 << 30).await;
        assert_eq!(&counts[..2], &[32, 64], "{counts:?}");
        // A refused download remembers the host's limit as settled.
        let mut count = Count::adaptive(32, 64, 1000, None);
        count.refused(31, Instant::now());
        count.step(Measure { rate: MIB, streaming: 30, remaining: 1 << 30, min_segment: 1 << 20 }, Instant::now());
        assert_eq!(count.learned(), Some(Learned { count: 30, settled: true }));
    }

    #[tokio::test(start_paused = true)]
    async fn short_remainders_do_not_grow_the_count() {
        // 40 MiB left over 32 connections of 1 MiB pieces: twice as many would not each get two pieces.
        let mut count = Count::adaptive(32, 64, 1000, None);
        tokio::time::advance(WINDOW).await;
        count.step(
            Measure { rate: 32.0 * MIB, streaming: 32, remaining: 40 << 20, min_segment: 1 << 20 },
            Instant::now(),
        );
        assert_eq!(count.target, 32);
        // Connections still starting: no decision yet, and nothing measured.
        let mut count = Count::adaptive(32, 64, 1000, None);
        count.step(Measure { rate: 1.0, streaming: 10, remaining: 1 << 30, min_segment: 1 << 20 }, Instant::now());
        assert_eq!((count.target, count.learned()), (32, None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_within_what_the_host_accepted_is_taken_once_for_overlap() {
        let mut count = Count::adaptive(8, 8, 1000, None);
        count.streaming(8);
        // A thief's request meets the host still counting the response that just ended: not a limit.
        assert!(!count.refused(8, Instant::now()), "the first refusal at an accepted count is an overlap");
        assert_eq!((count.target, count.ceiling), (8, 8));
        // Again within two seconds: the host means it.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(count.refused(8, Instant::now()));
        assert_eq!((count.target, count.ceiling), (7, 7));
        // Above what was ever accepted, every refusal counts.
        let mut count = Count::adaptive(32, 64, 1000, None);
        count.streaming(6);
        assert!(count.refused(32, Instant::now()));
        assert_eq!(count.ceiling, 31);
    }

    #[test]
    fn fixed_counts_never_move_but_respect_refusals() {
        let mut count = Count::fixed(8, 1000);
        count.step(Measure { rate: 1.0, streaming: 8, remaining: 1 << 30, min_segment: 1 << 20 }, Instant::now());
        assert_eq!(count.target, 8);
        assert_eq!(Count::fixed(8, 3).target, 3, "no more connections than useful pieces");
        // The first refusal at the count the host accepted is taken for overlap; the second lowers it.
        assert!(!count.refused(8, Instant::now()));
        assert!(count.refused(8, Instant::now()));
        assert_eq!(count.target, 7);
    }

    fn conn(id: u64, ms: u64, mib_per_s: f64, remaining_mib: f64) -> Conn {
        Conn {
            id,
            streaming_for: Duration::from_millis(ms),
            rate: mib_per_s * MIB,
            remaining: (remaining_mib * MIB) as u64,
        }
    }

    #[test]
    fn slow_connections_are_the_ones_far_below_the_median() {
        // Eight connections at 4 MiB/s and two at 0.4 MiB/s, all past the grace time.
        let mut conns: Vec<Conn> = (0..8).map(|id| conn(id, 250, 4.0, 1.5)).collect();
        conns.push(conn(8, 250, 0.4, 1.9));
        conns.push(conn(9, 250, 0.4, 1.9));
        let (median, slow) = slow_connections(&conns, None, None);
        assert_eq!(median, Some(4.0 * MIB));
        assert_eq!(slow, vec![8, 9]);

        // Too young to judge: nothing yet.
        let young: Vec<Conn> = conns.iter().map(|c| Conn { streaming_for: Duration::from_millis(150), ..*c }).collect();
        assert_eq!(slow_connections(&young, None, None), (None, vec![]));

        // A slow connection that is nearly done is left to finish: without the host's answer time, 0.1 MiB at
        // 0.4 MiB/s (0.25 s) is too little to ask for again.
        conns[8].remaining = (0.1 * MIB) as u64;
        assert_eq!(slow_connections(&conns, None, None).1, vec![9]);
        // A host that answers in 50 ms: a new connection has it in 0.075 s, well under 0.25 s.
        assert_eq!(slow_connections(&conns, Some(0.05), None).1, vec![8, 9]);
        // 16 KiB (0.04 s at 0.4 MiB/s) is not worth a new request even then.
        conns[8].remaining = 16 * 1024;
        assert_eq!(slow_connections(&conns, Some(0.05), None).1, vec![9]);

        // Fewer than four to compare: no judgement, unless an earlier look knew the median; then the slowest of
        // the last ones is replaced, and the old median is not reported as new.
        assert_eq!(slow_connections(&conns[6..9], None, None).1, Vec::<u64>::new());
        assert_eq!(slow_connections(&conns[7..10], Some(0.05), Some(4.0 * MIB)), (None, vec![9]));

        // Everyone slow alike: nobody is replaced.
        let even: Vec<Conn> = (0..8).map(|id| conn(id, 500, 0.3, 4.0)).collect();
        assert!(slow_connections(&even, Some(0.05), None).1.is_empty());

        // Half the connections slow: at most a quarter are replaced at once.
        let mut half: Vec<Conn> = (0..4).map(|id| conn(id, 500, 4.0, 4.0)).collect();
        half.extend((4..8).map(|id| conn(id, 500, 0.2, 4.0)));
        half.push(conn(8, 500, 4.0, 4.0));
        assert_eq!(slow_connections(&half, None, None).1.len(), 2);
    }
}
