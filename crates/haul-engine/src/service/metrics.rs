//! What the service measures for Prometheus: counters kept as downloads run, and gauges read from the store and
//! the running downloads at each scrape ([`Engine::refresh_metrics`]). The API registers these beside its own
//! (HTTP requests) and serves the text format at `/metrics`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use haul_core::job::JobState;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::progress::RetryCause;

use super::Engine;
use super::error::ServiceError;

/// One label, as a (name, value) pair.
pub type Labels = Vec<(String, String)>;

/// A histogram of store operation times: 0.5 ms to about 4 s.
type StoreTimes = Family<Labels, Histogram, fn() -> Histogram>;

fn store_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// The service's metrics; cheap to clone (each is a shared handle).
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    /// Bytes received from origins by this node's downloads (resumed bytes already on disk not counted).
    pub bytes_fetched: Counter,
    /// The same by origin host (the host of the URL added).
    host_bytes: Family<Labels, Counter>,
    /// Requests tried again, by cause (busy, interrupted, failed).
    retries: Family<Labels, Counter>,
    /// How long the store took, by operation (claim, report_progress, create, list, apply).
    store_seconds: StoreTimes,
    /// Bytes per second of this node's running downloads, by host; set at each scrape.
    host_speed: Family<Labels, Gauge>,
    /// Runs that ended here, by `outcome`: completed, failed, paused, cancelled, removed, lost_lease, stopped
    /// (the server stopping), in_use (another node still held the part file).
    pub finished: Family<Labels, Counter>,
    /// Slow connections this node replaced with fresh ones.
    pub connections_replaced: Counter,
    /// Downloads in each state, in the whole store (every node).
    jobs: Family<Labels, Gauge>,
    /// Downloads running on this node, their open connections and their combined speed.
    running: Gauge,
    connections: Gauge,
    speed: Gauge,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            bytes_fetched: Counter::default(),
            host_bytes: Family::default(),
            retries: Family::default(),
            store_seconds: Family::new_with_constructor(store_histogram),
            host_speed: Family::default(),
            finished: Family::default(),
            connections_replaced: Counter::default(),
            jobs: Family::default(),
            running: Gauge::default(),
            connections: Gauge::default(),
            speed: Gauge::default(),
        }
    }
}

fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_owned(), value.to_owned())]
}

impl EngineMetrics {
    /// Adds every metric to `registry` (names get the registry's `haul_` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("jobs", "Downloads in each state, across every node", self.jobs.clone());
        registry.register("downloads_running", "Downloads running on this node", self.running.clone());
        registry.register("connections_open", "Connections open to origins on this node", self.connections.clone());
        registry.register(
            "download_speed_bytes",
            "Bytes per second over the downloads running on this node",
            self.speed.clone(),
        );
        registry.register("bytes_fetched", "Bytes received from origins by this node", self.bytes_fetched.clone());
        registry.register(
            "downloads_finished",
            "Downloads whose run on this node ended, by outcome",
            self.finished.clone(),
        );
        registry.register(
            "connections_replaced",
            "Slow connections replaced by fresh ones on this node",
            self.connections_replaced.clone(),
        );
        registry.register(
            "host_bytes_fetched",
            "Bytes received from origins by this node, by the host of the URL added",
            self.host_bytes.clone(),
        );
        registry.register(
            "host_download_speed_bytes",
            "Bytes per second over the downloads running on this node, by host",
            self.host_speed.clone(),
        );
        registry.register(
            "retries",
            "Requests tried again on this node, by cause: busy (429, 503, refused connections), interrupted (a \
             connection cut after bytes came), failed (another error before any byte)",
            self.retries.clone(),
        );
        registry.register(
            "store_operation_seconds",
            "How long the database took, by operation",
            self.store_seconds.clone(),
        );
    }

    /// Runs `work` (a store call) and records how long it took as `operation`.
    pub(super) async fn timed<T>(&self, operation: &'static str, work: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let result = work.await;
        self.store_seconds.get_or_create(&label("operation", operation)).observe(start.elapsed().as_secs_f64());
        result
    }

    /// Adds a run's progress since its last count: bytes (in all and by host) and retries by cause.
    pub(super) fn fetched(&self, host: &str, bytes: u64, retries: &[u64; RetryCause::ALL.len()]) {
        self.bytes_fetched.inc_by(bytes);
        if bytes > 0 {
            self.host_bytes.get_or_create(&label("host", host)).inc_by(bytes);
        }
        for (cause, n) in RetryCause::ALL.iter().zip(retries) {
            if *n > 0 {
                self.retries.get_or_create(&label("cause", cause.as_str())).inc_by(*n);
            }
        }
    }

    /// Counts a run that ended with `outcome`.
    pub(super) fn finished(&self, outcome: &str) {
        self.finished.get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())]).inc();
    }
}

impl Engine {
    /// The service's metrics, to register and to serve.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.inner.metrics
    }

    /// Sets the gauges to what is true now: the store's counts and this node's running downloads.
    pub async fn refresh_metrics(&self) -> Result<(), ServiceError> {
        let metrics = &self.inner.metrics;
        let counts = self.inner.store.counts(None).await?;
        for state in JobState::ALL {
            let n = i64::try_from(counts.get(state)).unwrap_or(i64::MAX);
            metrics.jobs.get_or_create(&vec![("state".to_owned(), state.as_str().to_owned())]).set(n);
        }
        let (mut running, mut connections, mut speed) = (0i64, 0i64, 0i64);
        let mut by_host: HashMap<String, i64> = HashMap::new();
        for job in self.inner.running.lock().values() {
            let snapshot = job.progress.snapshot();
            running += 1;
            connections += i64::try_from(snapshot.connections).unwrap_or(0);
            let job_speed = i64::try_from(snapshot.speed).unwrap_or(i64::MAX);
            speed = speed.saturating_add(job_speed);
            let host = by_host.entry(job.host.clone()).or_default();
            *host = host.saturating_add(job_speed);
        }
        // Only the hosts with a download running now: a host's series ends when its downloads do.
        metrics.host_speed.clear();
        for (host, speed) in by_host {
            metrics.host_speed.get_or_create(&label("host", &host)).set(speed);
        }
        metrics.running.set(running);
        metrics.connections.set(connections);
        metrics.speed.set(speed);
        Ok(())
    }
}
