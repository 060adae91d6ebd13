//! Bandwidth at runtime: a limit for the whole server, limits per host, a schedule that switches the server's
//! limit or holds the queue by the time of day, and each job's own limit, all changeable while downloads run.
//!
//! Every running download takes from three buckets (see [`Limits`]): its own, its host's and the server's.
//! Changing a setting changes the buckets' rates, so running downloads slow down or speed up at their next
//! chunk. The settings are stored (`settings` row `bandwidth`), so they outlive a restart and reach every node
//! on a shared store, which reads them again every second.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use haul_core::job::{AccountId, DownloadId};
use haul_core::schedule::{Action, Schedule, WeekTime};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Engine;
use super::error::ServiceError;
use super::scheduler::StopReason;
use crate::limiter::{Limits, RateLimiter};

/// The settings row holding [`BandwidthSettings`].
const SETTING: &str = "bandwidth";
/// How often the schedule is looked at (and, with other nodes, the stored settings read again).
const TICK: Duration = Duration::from_secs(1);

/// What the operator set: stored, and shown by `GET /v1/settings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandwidthSettings {
    /// Bytes per second for every download of this server together; `None` is no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_limit: Option<u64>,
    /// Bytes per second for all downloads from one host (by the host of the URL added, lower case).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_limits: BTreeMap<String, u64>,
    /// Rules that switch the server's limit or hold the queue by the time of day (local time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// A change to the settings: a field left out is kept; `Some(None)` removes a limit or the schedule.
#[derive(Clone, Debug, Default)]
pub struct BandwidthPatch {
    pub speed_limit: Option<Option<u64>>,
    /// Per host: a new limit, or `None` to remove that host's.
    pub host_limits: BTreeMap<String, Option<u64>>,
    pub schedule: Option<Option<String>>,
}

/// The settings and what holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BandwidthView {
    pub settings: BandwidthSettings,
    /// The server-wide limit in force now (the schedule's, else the setting).
    pub speed_limit_now: Option<u64>,
    /// The schedule holds the queue now.
    pub paused_by_schedule: bool,
    /// The schedule's rule in force now, as written back (`mon-fri 08:00-18:00 2.0 MiB/s`), if any.
    pub schedule_now: Option<String>,
}

/// Where the schedule reads the local time: the system's clock and time zone, or a test's.
#[derive(Clone)]
pub struct LocalClock(Arc<dyn Fn() -> WeekTime + Send + Sync>);

impl LocalClock {
    /// The system's clock in its time zone (`TZ`, else `/etc/localtime`).
    pub fn system() -> Self {
        Self(Arc::new(|| {
            let now = jiff::ZonedDateTime::now();
            WeekTime::new(now.weekday().to_monday_zero_offset() as u8, now.hour() as u8, now.minute() as u8)
        }))
    }

    /// A clock that reads `now` (tests walk a schedule through the week with it).
    pub fn from_fn(now: impl Fn() -> WeekTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    fn now(&self) -> WeekTime {
        (self.0)()
    }
}

impl Default for LocalClock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for LocalClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocalClock")
    }
}

/// The buckets and the settings behind them, owned by the engine.
pub(super) struct Bandwidth {
    server: Arc<RateLimiter>,
    /// One bucket per host with a download running or a limit set.
    hosts: Mutex<HashMap<String, Arc<RateLimiter>>>,
    state: Mutex<State>,
    /// The schedule holds the queue: the scheduler claims nothing.
    held: AtomicBool,
    /// One change at a time: each reads the settings, changes them and stores them, and two at once would lose
    /// one of the changes.
    updating: tokio::sync::Mutex<()>,
    clock: LocalClock,
}

struct State {
    settings: BandwidthSettings,
    schedule: Option<Schedule>,
    /// The rule in force at the last look, to log and act on changes only.
    now: Option<Action>,
}

impl Bandwidth {
    pub(super) fn new(clock: LocalClock) -> Self {
        Self {
            server: Arc::new(RateLimiter::unlimited()),
            hosts: Mutex::new(HashMap::new()),
            state: Mutex::new(State { settings: BandwidthSettings::default(), schedule: None, now: None }),
            held: AtomicBool::new(false),
            updating: tokio::sync::Mutex::new(()),
            clock,
        }
    }

    pub(super) fn held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// The buckets a download of `url` takes from, besides its own.
    pub(super) fn shared_limits(&self, url: &str) -> Limits {
        let mut buckets = Vec::with_capacity(2);
        if let Some(host) = host_of(url) {
            let limit = self.state.lock().settings.host_limits.get(&host).copied();
            let mut hosts = self.hosts.lock();
            // Forget buckets no download holds any more and no limit names, so the map stays as small as
            // the hosts in use.
            if hosts.len() > 64 {
                hosts.retain(|_, bucket| Arc::strong_count(bucket) > 1 || bucket.rate().is_some());
            }
            let bucket = hosts.entry(host).or_insert_with(|| Arc::new(RateLimiter::unlimited()));
            bucket.set_rate(limit);
            buckets.push(bucket.clone());
        }
        buckets.push(self.server.clone());
        Limits::new(buckets)
    }

    /// Takes `settings` in and applies them; returns whether the queue is held now and was not before (or the
    /// reverse), for the caller to stop or wake downloads.
    fn install(&self, settings: BandwidthSettings) -> Result<Option<bool>, ServiceError> {
        let schedule = settings
            .schedule
            .as_deref()
            .map(str::parse::<Schedule>)
            .transpose()
            .map_err(|error| ServiceError::Invalid(error.to_string()))?
            .filter(|schedule| !schedule.is_empty());
        {
            let mut state = self.state.lock();
            state.settings = settings;
            state.schedule = schedule;
        }
        Ok(self.look())
    }

    /// Applies what holds now; `Some(held)` when the queue's hold changed.
    fn look(&self) -> Option<bool> {
        let mut state = self.state.lock();
        let action = state.schedule.as_ref().and_then(|schedule| schedule.at(self.clock.now()));
        let server = match action {
            Some(Action::Limit(rate)) => Some(rate),
            Some(Action::Unlimited) => None,
            Some(Action::Pause) | None => state.settings.speed_limit,
        };
        self.server.set_rate(server);
        for (host, bucket) in self.hosts.lock().iter() {
            bucket.set_rate(state.settings.host_limits.get(host).copied());
        }
        if action != state.now {
            match action {
                Some(action) => tracing::info!(%action, "the bandwidth schedule switches"),
                None => tracing::info!("the bandwidth schedule's windows are over; the server's own limit holds"),
            }
            state.now = action;
        }
        let held = action == Some(Action::Pause);
        (self.held.swap(held, Ordering::AcqRel) != held).then_some(held)
    }

    fn view(&self) -> BandwidthView {
        let state = self.state.lock();
        BandwidthView {
            settings: state.settings.clone(),
            speed_limit_now: self.server.rate(),
            paused_by_schedule: self.held(),
            schedule_now: state.now.map(|action| action.to_string()),
        }
    }
}

/// The host a bucket is kept for: the URL's, lower case, without a port.
fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_ascii_lowercase)
}

/// A host as the operator names it in a limit: a bare host name or address, lower case.
fn check_host(host: &str) -> Result<String, ServiceError> {
    let host = host.trim().to_ascii_lowercase();
    let parsed = url::Url::parse(&format!("http://{host}/")).ok();
    match parsed {
        Some(url) if url.host_str() == Some(host.as_str()) && url.port().is_none() && !host.is_empty() => Ok(host),
        _ => Err(ServiceError::Invalid(format!(
            "host_limits: {host:?} is not a host name; give the host alone, as in \"example.com\" (no scheme, port \
             or path)"
        ))),
    }
}

impl Engine {
    /// The bandwidth settings and what holds now.
    pub fn bandwidth(&self) -> BandwidthView {
        self.inner.bandwidth.view()
    }

    /// Changes the bandwidth settings, stores them, and applies them to running downloads at once.
    pub async fn update_bandwidth(&self, patch: BandwidthPatch) -> Result<BandwidthView, ServiceError> {
        let updating = self.inner.bandwidth.updating.lock().await;
        let mut settings = self.inner.bandwidth.view().settings;
        if let Some(limit) = patch.speed_limit {
            settings.speed_limit = limit;
        }
        for (host, limit) in patch.host_limits {
            let host = check_host(&host)?;
            match limit {
                Some(limit) => settings.host_limits.insert(host, limit),
                None => settings.host_limits.remove(&host),
            };
        }
        if let Some(schedule) = patch.schedule {
            settings.schedule = match schedule {
                Some(text) => {
                    let parsed: Schedule = text.parse().map_err(|e: haul_core::schedule::ScheduleError| {
                        ServiceError::Invalid(format!("schedule: {e}"))
                    })?;
                    (!parsed.is_empty()).then(|| parsed.to_string())
                }
                None => None,
            };
        }
        let stored = serde_json::to_string(&settings).map_err(ServiceError::internal)?;
        self.inner.store.put_setting(SETTING, &stored).await?;
        let changed = self.inner.bandwidth.install(settings)?;
        drop(updating);
        self.queue_hold_changed(changed).await;
        Ok(self.bandwidth())
    }

    /// At start: the stored settings, with what the operator gave on the command line put over them (and
    /// stored, so `haul limit` starts from there).
    pub(super) async fn load_bandwidth(&self, given: &BandwidthPatch) -> Result<(), ServiceError> {
        let stored = self.stored_bandwidth().await?;
        self.inner.bandwidth.install(stored)?;
        let nothing_given = given.speed_limit.is_none() && given.host_limits.is_empty() && given.schedule.is_none();
        if !nothing_given {
            self.update_bandwidth(given.clone()).await?;
        } else {
            let changed = self.inner.bandwidth.look();
            self.queue_hold_changed(changed).await;
        }
        Ok(())
    }

    async fn stored_bandwidth(&self) -> Result<BandwidthSettings, ServiceError> {
        match self.inner.store.setting(SETTING).await? {
            None => Ok(BandwidthSettings::default()),
            Some(text) => serde_json::from_str(&text).map_err(|error| {
                ServiceError::Invalid(format!(
                    "the stored bandwidth settings cannot be read ({error}); set them again with PATCH /v1/settings"
                ))
            }),
        }
    }

    /// Every [`TICK`]: the schedule looked at, and with other nodes the stored settings read again.
    pub(super) async fn watch_bandwidth(&self) -> Result<(), std::convert::Infallible> {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.inner.shutdown.cancelled() => return Ok(()),
            }
            let changed = if self.inner.store.shared_by_nodes() {
                match self.stored_bandwidth().await {
                    Ok(settings) if settings != self.inner.bandwidth.view().settings => {
                        self.inner.bandwidth.install(settings).unwrap_or_else(|error| {
                            tracing::warn!(%error, "the stored bandwidth settings are not valid; keeping these");
                            self.inner.bandwidth.look()
                        })
                    }
                    Ok(_) => self.inner.bandwidth.look(),
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the bandwidth settings");
                        self.inner.bandwidth.look()
                    }
                }
            } else {
                self.inner.bandwidth.look()
            };
            self.queue_hold_changed(changed).await;
        }
    }

    /// The schedule held the queue: this node's downloads stop, keeping their bytes, and go back to the queue
    /// until the hold ends. Or it ended: the scheduler looks for work.
    async fn queue_hold_changed(&self, changed: Option<bool>) {
        match changed {
            Some(true) => {
                let ids: Vec<(DownloadId, AccountId)> =
                    self.inner.running.lock().iter().map(|(id, running)| (*id, running.account.clone())).collect();
                tracing::info!(running = ids.len(), "the schedule pauses the queue; running downloads go back to it");
                // All told at once, then waited for: each may take a moment to write its last progress.
                let stopping: Vec<_> =
                    ids.iter().filter_map(|(id, _)| self.inner.running.lock().get(id).cloned()).collect();
                for running in &stopping {
                    running.stop(StopReason::Hold);
                }
                for (id, _) in &ids {
                    self.stop_running(*id, StopReason::Hold).await;
                }
                match self.inner.store.requeue_node(&self.inner.options.node).await {
                    Ok(_) => {
                        for (id, account) in ids {
                            if let Ok(record) = self.inner.store.get(&account, id).await {
                                self.emit(super::EventKind::Queued, &record.into());
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot put the stopped downloads back in the queue; they resume when their leases run out")
                    }
                }
            }
            Some(false) => {
                tracing::info!("the schedule's pause is over; the queue runs again");
                self.inner.wake.notify_one();
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_bare_lower_case_names() {
        assert_eq!(check_host(" Example.COM ").unwrap(), "example.com");
        assert_eq!(check_host("127.0.0.1").unwrap(), "127.0.0.1");
        for bad in ["http://example.com", "example.com:80", "example.com/path", "", "a b"] {
            let error = check_host(bad).unwrap_err().to_string();
            assert!(error.contains("not a host name"), "{bad}: {error}");
        }
        assert_eq!(host_of("https://CDN.Example.com:8443/a").as_deref(), Some("cdn.example.com"));
    }
}
