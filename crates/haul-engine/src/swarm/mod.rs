//! The multi-connection fetch of a file whose size is known and whose host honours Range.
//!
//! One task per connection ("worker") fetches an assigned byte range with one long request and writes it
//! with positional writes. A monitor task owns the policy:
//! - **work stealing**: a worker that runs out of work takes part of the range of the connection that would
//!   finish last (its remainder over its measured speed), cut in proportion to the two speeds so both finish
//!   together; a range is only split when its owner would need longer than a new request costs;
//! - **slow connections**: a connection far below the median (< 0.3x) is dropped and its remainder re-fetched
//!   on a new connection;
//! - **adaptive connection count**: connections are added while they raise total throughput, and the ceiling
//!   drops when the host refuses connections (503, 429, connection refused); the count a download settled on
//!   is remembered for the host's next download;
//! - **persistence**: the completed ranges are saved every second for resume.
//!
//! The decisions themselves (how many connections, which are too slow) are plain functions in [`policy`],
//! tested on tokio's paused clock. All shared state sits in one `parking_lot::Mutex<State>`; every critical
//! section is a few field updates and none spans an `.await`.

mod policy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use haul_core::plan;
use haul_core::ranges::RangeSet;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::EngineError;
use crate::http::{self, HttpClient};
use crate::limiter::Limits;
use crate::part_file::PartFile;
use crate::probe::FIRST_REQUEST;
use crate::probe::{Validators, backoff};
use crate::progress::{Progress, RetryCause};
pub(crate) use policy::Learned;
use policy::{Conn, Count, Measure, WINDOW};

/// Smallest piece worth a connection of its own when stealing; also the alignment of split points.
const MIN_STEAL: u64 = 128 * 1024;
/// Connections a download starts with when the user did not fix the count (at most half its host's budget, so a
/// second download from the host starts too). 32 reaches a host that caps each connection within one round trip
/// (a 64 MiB file at 32 x 4 MiB/s: 0.69 s against 0.88 s from 16); where one connection alone can fill the
/// link, the ramp holds and the extra connections cost some CPU.
const INITIAL_AUTO_CONNECTIONS: usize = 32;
/// How often the monitor looks at the connections (slow ones, work to hand out, new connections to start).
const TICK: Duration = Duration::from_millis(100);
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// A range is split only if its connection would need longer than this to finish it alone, until the host's
/// answer time is measured; then twice that time (a new request pays once its owner would need longer than
/// the request takes to answer), but never less than a tick.
const STEAL_WORTH_SECS: f64 = 0.3;

pub(crate) struct SwarmOptions {
    /// The primary URL (after redirects) followed by its mirrors; connections are spread over them.
    pub urls: Vec<Url>,
    pub headers: HeaderMap,
    pub size: u64,
    pub validators: Validators,
    /// A fixed connection count, or `None` for the adaptive default up to `max_connections`.
    pub connections: Option<usize>,
    pub max_connections: usize,
    pub min_segment: u64,
    pub max_attempts: u32,
    /// A fixed wait between attempts (`--retry-wait`); growing backoff when `None`.
    pub retry_wait: Option<Duration>,
    pub limits: Limits,
}

/// How a swarm run ended, when it did not fail outright.
#[derive(Debug)]
pub(crate) enum SwarmEnd {
    Complete,
    Cancelled,
    /// The remote file is not the one probed (size or validator changed): start over from a fresh probe.
    RemoteChanged(String),
    /// The host answered a ranged request with the whole file: fall back to one streaming connection.
    RangeIgnored,
}

enum Stop {
    Fatal(EngineError),
    Changed(String),
    RangeIgnored,
}

struct Slot {
    /// Bytes up to `pos` are written; up to `claimed` are being written; the assignment ends at `end`.
    pos: u64,
    claimed: u64,
    end: u64,
    assigned: bool,
    /// Set once response headers arrived, so the monitor knows which connections the host accepted.
    streaming_since: Option<Instant>,
    /// Where and when the current assignment began, for the connection's current speed.
    assigned_start: u64,
    assigned_at: Instant,
    cancel: CancellationToken,
}

impl Slot {
    /// This connection's speed since its response began, once it has streamed long enough to tell.
    fn current_rate(&self, now: Instant) -> Option<f64> {
        let elapsed = now.duration_since(self.streaming_since?).as_secs_f64();
        (elapsed >= 0.05).then(|| (self.pos - self.assigned_start) as f64 / elapsed)
    }

    /// Seconds until this connection finishes its range. Before its own speed is known (no answer yet, or too
    /// short to measure), the typical connection's speed and answer time stand in for it; `None` when those are
    /// not known either.
    fn time_left(&self, now: Instant, pace: &Pace) -> Option<f64> {
        let remaining = (self.end - self.claimed) as f64;
        if let Some(rate) = self.current_rate(now) {
            return Some(remaining / rate.max(1.0));
        }
        if pace.typical_rate <= 0.0 {
            return None;
        }
        let waiting = match (self.streaming_since, pace.answer_secs) {
            (None, Some(answer)) => (answer - now.duration_since(self.assigned_at).as_secs_f64()).max(0.0),
            _ => 0.0,
        };
        Some(waiting + remaining / pace.typical_rate)
    }

    /// Whether a new connection should take part of this range: only when this one would need longer than
    /// a new request costs. With nothing to estimate its time by, only a large remainder that has waited that
    /// long qualifies.
    ///
    /// Stealing is not free: the robbed connection asked for its whole range, so what the host already
    /// pushed past the cut is thrown away when it stops. On a fast host every connection finishes in moments
    /// and stealing would only waste bytes.
    fn stealable(&self, now: Instant, pace: &Pace) -> bool {
        let remaining = self.end - self.claimed;
        self.assigned
            && remaining >= MIN_STEAL / 4
            && match self.time_left(now, pace) {
                Some(seconds) => seconds > pace.steal_worth,
                None => {
                    remaining >= 2 * MIN_STEAL && now.duration_since(self.assigned_at).as_secs_f64() > pace.steal_worth
                }
            }
    }
}

/// What the monitor knows of the host's pace, for judging how long a connection still needs.
struct Pace {
    typical_rate: f64,
    answer_secs: Option<f64>,
    /// How long a connection must still need for its range to be worth splitting.
    steal_worth: f64,
}

struct State {
    done: RangeSet,
    pending: Vec<(u64, u64)>,
    slots: HashMap<u64, Slot>,
    next_worker: u64,
    /// How many connections to run now, and the most the host is believed to accept.
    count: Count,
    dead_urls: Vec<bool>,
    stop: Option<Stop>,
    /// The median connection throughput at the last look, for estimating when a connection will finish.
    typical_rate: f64,
    /// How long the host takes to answer a range request (from asking to the response headers), smoothed.
    answer_secs: Option<f64>,
    /// The first request's answer for `[0, FIRST_REQUEST)`, its body unread: the connection assigned that range
    /// streams it instead of asking again.
    first_bytes: Option<reqwest::Response>,
}

struct Shared {
    client: HttpClient,
    options: SwarmOptions,
    file: Arc<PartFile>,
    progress: Arc<Progress>,
    state: parking_lot::Mutex<State>,
    /// Signalled when a connection ends, so the monitor starts its replacement at once instead of a tick later.
    ended: tokio::sync::Notify,
}

enum FetchError {
    Cancelled,
    Busy {
        message: String,
        wait: Option<Duration>,
    },
    Transient(String),
    /// The URL itself is bad (404 on a mirror, say): fatal unless another URL remains.
    BadUrl(EngineError),
    Fatal(EngineError),
    Changed(String),
    RangeIgnored,
}

impl State {
    fn pace(&self) -> Pace {
        Pace {
            typical_rate: self.typical_rate,
            answer_secs: self.answer_secs,
            steal_worth: self.answer_secs.map_or(STEAL_WORTH_SECS, |answer| (2.0 * answer).max(TICK.as_secs_f64())),
        }
    }
}

impl Shared {
    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The next range for `worker`: an unassigned piece, else a cut of the range that would finish last, else
    /// nothing.
    fn assign(&self, worker: u64) -> Option<(u64, u64)> {
        let mut state = self.lock();
        if state.stop.is_some() {
            return None;
        }
        let assigned = state.slots.values().filter(|slot| slot.assigned).count();
        if assigned >= state.count.target {
            return None;
        }
        let range = if let Some(index) = (0..state.pending.len()).min_by_key(|&i| state.pending[i].0) {
            Some(state.pending.swap_remove(index))
        } else {
            // Rob the connection that would finish last, not merely the one with most left: half of a slow
            // connection's remainder is worth more than half of a fast one's.
            let now = Instant::now();
            let pace = state.pace();
            let victim = state
                .slots
                .iter()
                .filter(|(_, slot)| slot.stealable(now, &pace))
                .max_by(|(_, a), (_, b)| {
                    let left = |slot: &Slot| slot.time_left(now, &pace).unwrap_or(f64::INFINITY);
                    left(a).total_cmp(&left(b))
                })
                .map(|(&id, slot)| (id, slot.claimed, slot.end, slot.current_rate(now)));
            let thief_rate = state.typical_rate;
            victim.map(|(victim, claimed, end, victim_rate)| {
                let mid = plan::proportional_split(claimed, end, victim_rate, thief_rate, 16 * 1024)
                    .expect("a stealable range has at least MIN_STEAL / 4 bytes");
                state.slots.get_mut(&victim).expect("victim exists").end = mid;
                tracing::trace!(victim, thief = worker, kib = (end - mid) >> 10, "steal");
                (mid, end)
            })
        };
        let (start, end) = range?;
        let slot = state.slots.get_mut(&worker).expect("worker registered");
        slot.pos = start;
        slot.claimed = start;
        slot.end = end;
        slot.assigned = true;
        slot.streaming_since = None;
        slot.assigned_start = start;
        slot.assigned_at = Instant::now();
        Some((start, end))
    }

    /// Reserve up to `len` bytes at the worker's position; `None` once the (possibly stolen-from) range is done.
    fn claim(&self, worker: u64, len: usize) -> Option<(u64, usize)> {
        let mut state = self.lock();
        let slot = state.slots.get_mut(&worker)?;
        let n = (slot.end - slot.claimed).min(len as u64);
        if n == 0 {
            return None;
        }
        let offset = slot.claimed;
        slot.claimed += n;
        Some((offset, n as usize))
    }

    fn commit(&self, worker: u64, offset: u64, n: usize) {
        let mut state = self.lock();
        let end = offset + n as u64;
        state.done.insert(offset, end);
        if let Some(slot) = state.slots.get_mut(&worker) {
            slot.pos = end;
        }
        self.progress.add_done(n as u64);
    }

    fn streaming(&self, worker: u64) {
        let mut state = self.lock();
        let now = Instant::now();
        let Some(slot) = state.slots.get_mut(&worker) else { return };
        slot.streaming_since = Some(now);
        let answer = now.duration_since(slot.assigned_at).as_secs_f64();
        state.answer_secs = Some(state.answer_secs.map_or(answer, |typical| 0.8 * typical + 0.2 * answer));
    }

    /// Give back what the worker did not write, so another connection fetches it.
    fn release(&self, worker: u64) {
        let mut state = self.lock();
        let Some(slot) = state.slots.get_mut(&worker) else { return };
        let (pos, end) = (slot.pos, slot.end);
        slot.assigned = false;
        slot.streaming_since = None;
        slot.claimed = pos;
        slot.end = pos;
        if pos < end {
            state.pending.push((pos, end));
        }
    }

    /// The host refused a connection: lower the ceiling below what was open, unless the refusal is taken
    /// for a moment's overlap (see [`Count::refused`]).
    fn refused(&self) {
        let mut state = self.lock();
        let open = state.slots.len();
        state.count.refused(open, Instant::now());
    }

    fn over_target(&self) -> bool {
        let state = self.lock();
        state.slots.len() > state.count.target
    }

    fn stop(&self, stop: Stop) {
        let mut state = self.lock();
        if state.stop.is_none() {
            state.stop = Some(stop);
        }
        for slot in state.slots.values() {
            slot.cancel.cancel();
        }
    }

    /// The URL this worker should use, skipping mirrors that failed for good; `None` when none is left.
    fn url_for(&self, worker: u64) -> Option<(usize, Url)> {
        let state = self.lock();
        let n = self.options.urls.len();
        (0..n)
            .map(|k| (worker as usize + k) % n)
            .find(|&i| !state.dead_urls[i])
            .map(|i| (i, self.options.urls[i].clone()))
    }

    fn mark_dead(&self, index: usize) -> bool {
        let mut state = self.lock();
        state.dead_urls[index] = true;
        state.dead_urls.iter().all(|&dead| dead)
    }
}

/// Fetch every missing byte of `done` into `file` over many connections.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    client: HttpClient,
    options: SwarmOptions,
    file: Arc<PartFile>,
    done: RangeSet,
    first_bytes: Option<reqwest::Response>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    mut persist: impl FnMut(&RangeSet) -> Result<(), EngineError>,
) -> Result<SwarmEnd, EngineError> {
    let missing = done.missing(options.size);
    let useful = plan::useful_connections(
        missing.iter().map(|(s, e)| e - s).sum(),
        options.min_segment,
        options.max_connections,
    );
    let host = options.urls[0].clone();
    let count = match options.connections {
        Some(n) => Count::fixed(n, useful),
        None => {
            let initial = client.hosts().share(INITIAL_AUTO_CONNECTIONS);
            let learned = client
                .hosts()
                .learned(&host)
                .map(|learned| Learned { count: client.hosts().share(learned.count), ..learned });
            Count::adaptive(initial, options.max_connections, useful, learned)
        }
    };
    let target = count.target;
    // The first request's answer covers [0, first_end): a piece of its own, the rest planned over the other
    // connections (one piece each, so none waits for a connection to come free).
    let first_bytes =
        first_bytes.filter(|_| missing.first().is_some_and(|&(start, end)| start == 0 && end > FIRST_REQUEST));
    let pending = if first_bytes.is_some() {
        let mut rest = missing.clone();
        rest[0].0 = FIRST_REQUEST;
        let mut pending = vec![(0, FIRST_REQUEST)];
        pending.extend(plan::split(&rest, target.saturating_sub(1).max(1), options.min_segment));
        pending
    } else {
        plan::split(&missing, target, options.min_segment)
    };
    let adaptive = options.connections.is_none();
    let n_urls = options.urls.len();
    let shared = Arc::new(Shared {
        client,
        file,
        progress: progress.clone(),
        state: parking_lot::Mutex::new(State {
            done,
            pending,
            slots: HashMap::new(),
            next_worker: 0,
            count,
            dead_urls: vec![false; n_urls],
            stop: None,
            typical_rate: 0.0,
            answer_secs: None,
            first_bytes,
        }),
        ended: tokio::sync::Notify::new(),
        options,
    });

    let mut workers = JoinSet::new();
    let mut last_persist = Instant::now();
    let mut last_look = Instant::now();
    let mut window_start = Instant::now();
    let mut window_done = progress.snapshot().done;
    let mut speed = 0.0f64;
    loop {
        // Reap finished workers without blocking.
        while let Some(joined) = workers.try_join_next() {
            if let Err(error) = joined
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
        let (complete, stopped, to_spawn) = {
            let state = shared.lock();
            let complete = state.done.is_complete(shared.options.size);
            let now = Instant::now();
            let pace = state.pace();
            let has_work = !state.pending.is_empty() || state.slots.values().any(|s| s.stealable(now, &pace));
            let to_spawn = if has_work { state.count.target.saturating_sub(state.slots.len()) } else { 0 };
            (complete, state.stop.is_some(), to_spawn)
        };
        if complete || stopped || cancel.is_cancelled() {
            if complete {
                // Connections still waiting out a backoff or Retry-After have nothing left to fetch.
                for slot in shared.lock().slots.values() {
                    slot.cancel.cancel();
                }
            }
            break;
        }
        // Each connection holds a slot of its host's budget, shared with the process's other downloads: with
        // none free, this download runs with the connections it has (and, with none, waits for one).
        for _ in 0..to_spawn {
            let slot = match shared.client.hosts().try_take(&host) {
                Some(slot) => slot,
                None if shared.lock().slots.is_empty() => tokio::select! {
                    slot = shared.client.hosts().take(&host) => slot,
                    _ = cancel.cancelled() => break,
                },
                None => break,
            };
            spawn_worker(&shared, &mut workers, &cancel, slot);
        }

        tokio::select! {
            _ = tokio::time::sleep_until(last_look + TICK) => {}
            _ = shared.ended.notified() => continue,
            _ = cancel.cancelled() => {}
        }

        let now = Instant::now();
        last_look = now;
        if tracing::enabled!(tracing::Level::TRACE) {
            let state = shared.lock();
            let streaming = state.slots.values().filter(|s| s.streaming_since.is_some()).count();
            let left: Vec<u64> =
                state.slots.values().filter(|s| s.assigned).map(|s| (s.end - s.claimed) >> 10).collect();
            tracing::trace!(streaming, open = state.slots.len(), target = state.count.target, done = state.done.covered(), pending = state.pending.len(), ?left, answer = ?state.answer_secs, "tick");
        }
        // Under a speed limit that binds, connections are as slow as the limiter makes them: none is replaced.
        let limit_binds =
            shared.options.limits.binding().is_some_and(|limit| speed == 0.0 || speed >= 0.8 * limit as f64);
        if !limit_binds {
            for _ in 0..drop_slow_connections(&shared, now) {
                progress.count_replaced_connection();
            }
        }
        if now.duration_since(window_start) >= WINDOW {
            let done_now = progress.snapshot().done;
            let elapsed = now.duration_since(window_start).as_secs_f64();
            let rate = (done_now - window_done) as f64 / elapsed;
            speed = if speed == 0.0 { rate } else { 0.5 * speed + 0.5 * rate };
            progress.set_speed(speed as u64);
            {
                let mut state = shared.lock();
                let measure = Measure {
                    rate,
                    streaming: state.slots.values().filter(|s| s.streaming_since.is_some()).count(),
                    remaining: shared.options.size - state.done.covered(),
                    min_segment: shared.options.min_segment,
                };
                state.count.step(measure, now);
                state.count.recover(now);
            }
            window_start = now;
            window_done = done_now;
        }
        {
            let mut state = shared.lock();
            let streaming = state.slots.values().filter(|s| s.streaming_since.is_some()).count();
            state.count.streaming(streaming);
            progress.set_connections(streaming);
        }
        if now.duration_since(last_persist) >= PERSIST_EVERY {
            let snapshot = shared.lock().done.clone();
            if let Err(error) = persist(&snapshot) {
                shared.stop(Stop::Fatal(error));
            }
            last_persist = now;
        }
    }

    while let Some(joined) = workers.join_next().await {
        if let Err(error) = joined
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
    progress.set_connections(0);
    let (done, stop, learned) = {
        let mut state = shared.lock();
        (state.done.clone(), state.stop.take(), state.count.learned())
    };
    if adaptive && let Some(learned) = learned {
        shared.client.hosts().remember(&host, learned);
    }
    // A complete file needs no record: the caller puts it in place and removes the record at once.
    if done.is_complete(shared.options.size) {
        return Ok(SwarmEnd::Complete);
    }
    persist(&done)?;
    match stop {
        Some(Stop::Fatal(error)) => Err(error),
        Some(Stop::Changed(why)) => Ok(SwarmEnd::RemoteChanged(why)),
        Some(Stop::RangeIgnored) => Ok(SwarmEnd::RangeIgnored),
        None => Ok(SwarmEnd::Cancelled),
    }
}

fn spawn_worker(shared: &Arc<Shared>, workers: &mut JoinSet<()>, cancel: &CancellationToken, slot: crate::hosts::Slot) {
    let token = cancel.child_token();
    let id = {
        let mut state = shared.lock();
        let id = state.next_worker;
        state.next_worker += 1;
        state.slots.insert(
            id,
            Slot {
                pos: 0,
                claimed: 0,
                end: 0,
                assigned: false,
                streaming_since: None,
                assigned_start: 0,
                assigned_at: Instant::now(),
                cancel: token.clone(),
            },
        );
        id
    };
    let shared = shared.clone();
    let span = tracing::debug_span!("connection", worker = id);
    workers.spawn(tracing::Instrument::instrument(
        async move {
            worker(&shared, id, &token).await;
            shared.release(id);
            shared.lock().slots.remove(&id);
            drop(slot);
            shared.ended.notify_one();
        },
        span,
    ));
}

/// One connection's life: take a range, fetch it, repeat; on failure give the range back and decide.
async fn worker(shared: &Shared, id: u64, cancel: &CancellationToken) {
    let mut failures = 0u32;
    loop {
        let Some((start, end)) = shared.assign(id) else { return };
        let Some((url_index, url)) = shared.url_for(id) else { return };
        let result = fetch_range(shared, id, &url, start, end, cancel).await;
        let progressed = shared.lock().slots.get(&id).is_some_and(|slot| slot.pos > start);
        shared.release(id);
        if progressed {
            failures = 0;
            // A connection that broke after delivering bytes is a flaky path, not a struggling host:
            // ask again at once for what is left.
            if let Err(FetchError::Transient(message)) = &result {
                tracing::debug!(%message, "connection broke mid-range; continuing at once");
                shared.progress.count_retry(RetryCause::Interrupted);
                continue;
            }
        }
        let (message, wait, cause) = match result {
            Ok(()) => continue,
            Err(FetchError::Cancelled) => return,
            Err(FetchError::Fatal(error)) => return shared.stop(Stop::Fatal(error)),
            Err(FetchError::Changed(why)) => return shared.stop(Stop::Changed(why)),
            Err(FetchError::RangeIgnored) => return shared.stop(Stop::RangeIgnored),
            Err(FetchError::BadUrl(error)) => {
                if shared.options.urls.len() > 1 && !shared.mark_dead(url_index) {
                    tracing::warn!(%url, %error, "dropping this mirror; the others continue");
                    continue;
                }
                return shared.stop(Stop::Fatal(error));
            }
            Err(FetchError::Busy { message, wait }) => {
                shared.refused();
                if shared.over_target() {
                    tracing::debug!(%message, "host refused a connection; running with fewer");
                    return;
                }
                (message, wait, RetryCause::Busy)
            }
            Err(FetchError::Transient(message)) => (message, None, RetryCause::Failed),
        };
        failures += 1;
        if failures >= shared.options.max_attempts {
            let error = EngineError::Network { url: url.to_string(), message, attempts: failures };
            return shared.stop(Stop::Fatal(error));
        }
        let wait = wait.or(shared.options.retry_wait).unwrap_or_else(|| backoff(failures));
        tracing::debug!(%message, ?wait, failures, "range failed; retrying");
        shared.progress.count_retry(cause);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// Fetch `[start, end)` with one request; stops early (and drops the connection) when a thief shortens the range.
async fn fetch_range(
    shared: &Shared,
    id: u64,
    url: &Url,
    start: u64,
    end: u64,
    cancel: &CancellationToken,
) -> Result<(), FetchError> {
    let options = &shared.options;
    // The first request's answer, for the range it was asked for.
    let first = if start == 0 && end == FIRST_REQUEST && url == &options.urls[0] {
        shared.lock().first_bytes.take()
    } else {
        None
    };
    let mut extra = HeaderMap::new();
    extra.insert(header::RANGE, http::header_value(format!("bytes={start}-{}", end - 1)));
    if let Some(if_range) = options.validators.if_range() {
        extra.insert(header::IF_RANGE, if_range);
    }
    let mut response = if let Some(first) = first {
        first
    } else {
        tokio::select! {
            result = shared.client.send(Method::GET, url, &options.headers, &extra) => result.map_err(|error| {
                if let Some(fatal) = error.fatal(url) {
                    return FetchError::BadUrl(fatal);
                }
                let message = error.describe();
                if error.is_connect() { FetchError::Busy { message, wait: None } } else { FetchError::Transient(message) }
            })?,
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
        }
    };
    check_status(&response, options, url, start)?;
    shared.streaming(id);

    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = cancel.cancelled() => return Err(FetchError::Cancelled),
        };
        let bytes = match chunk {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                let (pos, end) = shared.lock().slots.get(&id).map_or((end, end), |slot| (slot.pos, slot.end));
                if pos >= end {
                    // The body ended exactly where the (possibly shortened) range does.
                    return Ok(());
                }
                return Err(FetchError::Transient(format!(
                    "connection closed early at byte {pos} of a range ending at {end}"
                )));
            }
            Err(error) => return Err(FetchError::Transient(http::describe(&error))),
        };
        for piece in options.limits.pieces(&bytes) {
            // A low limit shared by many connections can mean seconds of waiting: a pause must not wait them out.
            tokio::select! {
                () = options.limits.acquire(piece.len()) => {}
                _ = cancel.cancelled() => return Err(FetchError::Cancelled),
            }
            let mut rest = piece;
            while !rest.is_empty() {
                let Some((offset, n)) = shared.claim(id, rest.len()) else { return Ok(()) };
                shared.file.write_at(&rest[..n], offset).map_err(FetchError::Fatal)?;
                shared.commit(id, offset, n);
                rest = &rest[n..];
            }
        }
    }
}

fn check_status(response: &reqwest::Response, options: &SwarmOptions, url: &Url, start: u64) -> Result<(), FetchError> {
    let status = response.status();
    let headers = response.headers();
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = http::header_str(headers, header::CONTENT_RANGE).and_then(http::parse_content_range);
            match range {
                Some(http::ContentRange { total: Some(total), .. }) if total != options.size => {
                    Err(FetchError::Changed(format!(
                        "the file is now {total} bytes, not the {} bytes announced first",
                        options.size
                    )))
                }
                Some(http::ContentRange { range: Some((first, _)), .. }) if first == start => Ok(()),
                other => Err(FetchError::Fatal(EngineError::Protocol {
                    url: url.to_string(),
                    message: format!("asked for bytes from {start}, server answered Content-Range {other:?}"),
                })),
            }
        }
        StatusCode::OK => {
            let now = Validators::from_headers(headers);
            let differs = |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
            if differs(&now.etag, &options.validators.etag)
                || differs(&now.last_modified, &options.validators.last_modified)
            {
                Err(FetchError::Changed(
                    "the server has a new version of the file (its ETag or Last-Modified changed)".into(),
                ))
            } else {
                Err(FetchError::RangeIgnored)
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let total = http::header_str(headers, header::CONTENT_RANGE)
                .and_then(http::parse_content_range)
                .and_then(|r| r.total);
            Err(FetchError::Changed(format!(
                "the server refused bytes from {start} (416; it reports {} bytes) although it announced {} bytes",
                total.map_or_else(|| "an unknown number of".to_owned(), |t| t.to_string()),
                options.size
            )))
        }
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
            Err(FetchError::Busy { message: format!("server answered {status}"), wait: http::retry_after(headers) })
        }
        status if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT => {
            Err(FetchError::Transient(format!("server answered {status}")))
        }
        status => Err(FetchError::BadUrl(EngineError::Remote {
            url: url.to_string(),
            status: status.as_u16(),
            hint: http::status_hint(status),
        })),
    }
}

/// Replace connections running far below the median: their remainder goes back to the pool and a new
/// connection (likely on a better path) fetches it. Returns how many were dropped.
fn drop_slow_connections(shared: &Shared, now: Instant) -> usize {
    let mut state = shared.lock();
    let conns: Vec<Conn> = state
        .slots
        .iter()
        .filter(|(_, slot)| slot.assigned)
        .filter_map(|(&id, slot)| {
            let streaming_for = now.duration_since(slot.streaming_since?);
            Some(Conn { id, streaming_for, rate: slot.current_rate(now)?, remaining: slot.end - slot.claimed })
        })
        .collect();
    let known = (state.typical_rate > 0.0).then_some(state.typical_rate);
    let (median, slow) = policy::slow_connections(&conns, state.answer_secs, known);
    if let Some(median) = median {
        state.typical_rate = median;
    }
    for id in &slow {
        tracing::debug!(worker = id, median, "replacing a slow connection");
        state.slots[id].cancel.cancel();
    }
    slow.len()
}
